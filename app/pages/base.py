"""What every page offers main.py: construction from a URL query, a sidebar, notices,
binding its state to the URL, and cleanup when the browser session ends."""

from __future__ import annotations

import html

import panel as pn
import param

from .. import sweeps
from ..jobs import JobSlot, session_scheduler
from ..presets import load_presets
from ..urlstate import apply_values


class Page(pn.viewable.Viewer):
    """Base class of the dashboard's pages (a ``pn.viewable.Viewer``).

    A page names the parameters that outside input may set — :meth:`targets`, pairs of a
    ``param.Parameterized`` and field names — and the base class uses that one list for links
    (validated, then kept in the URL) and for the presets of ``assets/presets.yaml``.
    """

    slug = ""  # the page's ?page= value and its section in presets.yaml
    default_prompt = ""
    preset = param.String(default="", doc="Id of the preset last applied.")

    def __init__(self, query: dict | None = None, **params):
        super().__init__(**params)
        self._notices: list[str] = []
        self._presets = load_presets().get(self.slug, [])

    def targets(self) -> list[tuple[param.Parameterized, tuple[str, ...]]]:
        """(object, fields) that links and presets may set."""
        return []

    def apply_values(self, values: dict) -> None:
        """Validate and set ``values`` on the targets; notices for whatever was changed."""
        for obj, fields in self.targets():
            self._notices += apply_values(obj, values, fields)

    def apply_query(self, query: dict) -> None:
        """A link's values: first its ``preset``, then its explicit parameters."""
        preset_id = query.get("preset")
        if isinstance(preset_id, (list, tuple)):
            preset_id = preset_id[-1] if preset_id else None
        if preset_id and not self.apply_preset(str(preset_id)):
            self._notices.append(f"No preset called {str(preset_id)[:40]!r}; using defaults.")
        self.apply_values(query)

    def apply_preset(self, preset_id: str) -> bool:
        """Set a preset's parameters (its ``params`` and ``run`` maps); False if unknown."""
        for p in self._presets:
            if p["id"] == preset_id:
                self.apply_values({**p.get("params", {}), **p.get("run", {})})
                self.preset = preset_id
                return True
        return False

    def _on_preset(self, event) -> None:
        """A preset chosen in the page: fresh notices, its values, and its id in the URL."""
        if not event.new:
            return
        self._notices.clear()
        self.apply_preset(event.new)
        if pn.state.location is not None:
            pn.state.location.update_query(preset=event.new)
        self._sync_alert()

    def preset_selector(self, on_change) -> pn.widgets.Select:
        """A Select of this page's presets, showing the one applied."""
        options = {"— choose a preset —": ""} | {p["title"]: p["id"] for p in self._presets}
        select = pn.widgets.Select(name="Preset", options=options,
                                   value=self.preset if self.preset in options.values() else "")
        select.param.watch(on_change, "value")
        return select

    @param.depends("preset")
    def prompt_markdown(self) -> str:
        """The applied preset's one-line prompt, or the page's default instruction."""
        for p in self._presets:
            if p["id"] == self.preset:
                return f"**{p['title']}** — {p['prompt']}"
        return self.default_prompt

    def add_notice(self, text: str) -> None:
        """Show a plain-sentence notice (e.g. a clamped URL value) at the top of the page."""
        self._notices.append(text)
        self._sync_alert()

    def clear_notices(self) -> None:
        self._notices.clear()
        self._sync_alert()

    def notices_markdown(self, extra: list[str] = ()) -> str:
        """All notices as Markdown, HTML-escaped: they quote text from links, which must never
        be rendered as HTML (a link could otherwise run script in a student's browser)."""
        return "\n\n".join(html.escape(t, quote=False) for t in [*self._notices, *extra] if t)

    def _sync_alert(self) -> None:
        """Show the notices in the page's ``_alert`` pane (once it is built)."""
        alert = getattr(self, "_alert", None)
        if alert is not None:
            alert.object = self.notices_markdown()
            alert.visible = bool(self._notices)

    @property
    def sidebar(self) -> pn.viewable.Viewable:
        return pn.Column()

    def bind_url(self) -> None:
        """Keep the page's parameters in the URL (after they were validated)."""
        sync_to_url(self.targets(), extra={"page": self.slug},
                    on_error=lambda bad: self.add_notice(f"Ignored link values: {bad}"))

    def cleanup(self) -> None:
        """Stop timers and drop in-flight work."""


def sync_to_url(objects_fields: list[tuple[object, tuple[str, ...]]], extra: dict | None = None,
                on_error=None) -> None:
    """On page load, write the validated values into the URL, then keep them in sync.

    The browser's location model overwrites server-side edits made before it loads, so both
    steps must run in ``pn.state.onload`` (see the Panel location docs).
    """
    loc = pn.state.location
    if loc is None:
        return

    def start():
        values = dict(extra or {})
        for obj, fields in objects_fields:
            values.update({f: getattr(obj, f) for f in fields})
        loc.update_query(**values)
        for obj, fields in objects_fields:
            loc.sync(obj, {f: f for f in fields}, on_error=on_error)

    pn.state.onload(start)


class ProgressiveJob:
    """A list of cached computations run in the background and shown as each one finishes.

    Owns a progress bar, a status line and a cancel button (:attr:`controls`). ``run(tasks)``
    with tasks ``(kind, kwargs, fn)`` computes ``fn(**kwargs, cancel=..., progress=...)``
    through the shared cache, one after the other, and calls ``on_results(list_so_far)`` on the
    session's loop after each; a new ``run`` supersedes the old one (latest wins). With
    ``streaming=True`` the functions also get ``on_partial(ds)`` and a partial result is shown
    as the last entry while it grows. When all are done the status carries
    ``<span id=done_id>`` (browser tests wait for it). Tasks go through
    :func:`app.sweeps.run_tasks`: on a Dask cluster, when one is configured, they run side by
    side.
    """

    def __init__(self, page: Page, on_results, unit: str, done_id: str):
        self._page, self._on_results = page, on_results
        self._unit, self._done_id = unit, done_id
        self._slot = JobSlot(session_scheduler(pn.state.curdoc), self._progress)
        self.bar = pn.indicators.Progress(value=0, max=100, width=300, visible=False)
        self.status = pn.pane.HTML("")
        self.cancel_button = pn.widgets.Button(name="Cancel", button_type="warning", width=90,
                                               disabled=True)
        self.cancel_button.on_click(self.cancel)
        self.controls = pn.Row(self.bar, self.cancel_button, self.status)

    def run(self, tasks: list, streaming: bool = False) -> None:
        self._on_results([])
        self.bar.value, self.bar.visible, self.cancel_button.disabled = 0, True, False
        self.status.object = "computing…"

        def work(ctx):
            n, done = len(tasks), {}

            def report(count, total, partial=None):  # every report carries all results so far
                shown = [done[i] for i in sorted(done)] + ([partial] if partial is not None else [])
                ctx.progress(count, total, shown)

            return sweeps.run_tasks(
                tasks, cancel=lambda: ctx.cancelled, progress=report,
                on_result=done.__setitem__,
                on_partial=(lambda i, ds: report(len(done) + 0.5, n, ds)) if streaming else None)

        self._slot.submit(work, self._done, self._error)

    def _progress(self, done, total, results):
        self._on_results(results)
        self.bar.value = int(100 * done / total)
        self.status.object = f"{int(done)} of {total} {self._unit} done"

    def _done(self, results):
        self._on_results(results)
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = (f'<span id="{self._done_id}">complete: {len(results)} '
                              f'{self._unit}</span>')

    def cancel(self, event=None) -> None:
        self._slot.cancel()
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = "Cancelled; change a parameter to compute again."

    def _error(self, exc):
        self.bar.visible = False
        self._page.add_notice("The computation failed; change a parameter to retry.")

    def close(self) -> None:
        self._slot.close()

"""What every page offers main.py: construction from a URL query, a sidebar, notices,
binding its state to the URL, and cleanup when the browser session ends."""

from __future__ import annotations

import copy
import html
import io
import time

import panel as pn
import param
import xarray as xr

import engine

from .. import ncio, sweeps
from ..guards import guard_inputs, linked_widgets
from ..jobs import JobSlot, draw_queue, session_scheduler
from ..presets import load_presets
from ..urlstate import apply_values, coerce

#: Browser side of "Plots (PNG)": every visible Bokeh plot of the page exported by Bokeh itself
#: (as its save tool does) and drawn at its place on screen into one PNG.
PNG_JS = """
const Plot = Bokeh.Models.Plot;
const views = [...Bokeh.index.query((v) => v.model instanceof Plot)].filter((v) => {
  const r = v.el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && v.el.offsetParent !== null;
});
if (views.length === 0) { alert("No plot is shown yet."); return; }
const rects = views.map((v) => v.el.getBoundingClientRect());
const x0 = Math.min(...rects.map((r) => r.left)), y0 = Math.min(...rects.map((r) => r.top));
const x1 = Math.max(...rects.map((r) => r.right)), y1 = Math.max(...rects.map((r) => r.bottom));
const k = window.devicePixelRatio || 1;
const canvas = document.createElement("canvas");
canvas.width = Math.ceil((x1 - x0) * k); canvas.height = Math.ceil((y1 - y0) * k);
const ctx = canvas.getContext("2d");
ctx.fillStyle = "white"; ctx.fillRect(0, 0, canvas.width, canvas.height);
views.forEach((v, i) => {
  const r = rects[i];
  ctx.drawImage(v.export("png").canvas, (r.left - x0) * k, (r.top - y0) * k, r.width * k, r.height * k);
});
canvas.toBlob((blob) => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name + ".png";
  document.body.appendChild(a); a.click(); a.remove();
}, "image/png");
"""

#: Browser side of "Copy link": the clipboard where the browser allows it (https or this
#: machine), else a selectable copy of the link in a prompt.
COPY_JS = """
const url = window.location.href;
// ``source`` is the button's model (``cb_obj`` is the click event, which has no label)
const done = () => { source.label = "Link copied"; setTimeout(() => { source.label = label; }, 2000); };
const ask = () => window.prompt("Copy this link:", url);
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(url).then(done, ask);
} else { ask(); }
"""


class Page(pn.viewable.Viewer):
    """Base class of the dashboard's pages (a ``pn.viewable.Viewer``).

    A page names the parameters that outside input may set — :meth:`targets`, pairs of a
    ``param.Parameterized`` and field names — and the base class uses that one list for links
    (validated, then kept in the URL) and for the presets of ``assets/presets.yaml``.
    """

    slug = ""  # the page's ?page= value and its section in presets.yaml
    default_prompt = ""
    #: parameters a teacher's ``?hide=advanced`` hides (numerics, caps, seeds)
    advanced: tuple[str, ...] = ()
    #: whether the page has data and plots to download
    exports = True
    preset = param.String(default="", doc="Id of the preset last applied.")

    def __init__(self, query: dict | None = None, **params):
        super().__init__(**params)
        self._notices: list[str] = []
        self._presets = load_presets().get(self.slug, [])
        self._locked: dict[tuple[int, str], object] = {}  # (id(owner), name) -> held value
        self._sidebar: pn.viewable.Viewable | None = None
        self.lock_note = pn.pane.Markdown("", visible=False, css_classes=["atlas-lock-note"],
                                          sizing_mode="stretch_width")
        # the page's own starting values, before any link or preset: every preset starts here
        self._defaults = [(obj, {f: copy.deepcopy(getattr(obj, f)) for f in fields})
                          for obj, fields in self.preset_targets()]

    def targets(self) -> list[tuple[param.Parameterized, tuple[str, ...]]]:
        """(object, fields) that links and presets may set (and the URL keeps)."""
        return []

    def preset_targets(self) -> list[tuple[param.Parameterized, tuple[str, ...]]]:
        """:meth:`targets` and whatever else a preset or a link may set but the URL does not
        keep (e.g. a zoomed window)."""
        return self.targets()

    def apply_values(self, values: dict, requested: dict | None = None) -> None:
        """Validate and set ``values`` on the targets; notices for whatever was changed.

        A control locked by a teacher's link keeps its value; if ``requested`` (by default
        ``values``) asked for another one, one notice says so."""
        requested = values if requested is None else requested
        for obj, fields in self.preset_targets():
            free = tuple(f for f in fields if (id(obj), f) not in self._locked)
            self._notices += apply_values(obj, values, free)
            for f in fields:
                if f in free or f not in requested:
                    continue
                wanted, _ = coerce(obj, f, requested[f])
                if wanted != getattr(obj, f):
                    self._notices.append(f"{obj.param[f].label or f} is fixed by this lesson's "
                                         f"link: kept {getattr(obj, f)}, not {wanted}.")

    def apply_query(self, query: dict) -> None:
        """A link's values: first its ``preset``, then its explicit parameters."""
        preset_id = query.get("preset")
        if isinstance(preset_id, (list, tuple)):
            preset_id = preset_id[-1] if preset_id else None
        if preset_id and not self.apply_preset(str(preset_id)):
            self._notices.append(f"No preset called {str(preset_id)[:40]!r}; using defaults.")
        self.apply_values(query)

    def apply_preset(self, preset_id: str) -> bool:
        """Set the page's starting values, then the preset's (its ``params`` and ``run``
        maps), in one update per state object; False if unknown.

        Whatever the preset does not name starts from the page's defaults, never from the
        previous preset: a preset chosen in the page equals the same preset opened from a
        fresh link (the teacher's projector and the students' screens agree)."""
        for p in self._presets:
            if p["id"] == preset_id:
                wanted = {**p.get("params", {}), **p.get("run", {})}
                defaults = {f: v for _, values in self._defaults for f, v in values.items()}
                self.apply_values({**defaults, **wanted}, requested=wanted)
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

    def sidebar_panel(self) -> pn.viewable.Viewable:
        """The sidebar as shown: built once (``sidebar`` builds a new layout on every call)."""
        if self._sidebar is None:
            self._sidebar = self.sidebar
        return self._sidebar

    def bind_url(self) -> None:
        """Keep the page's parameters in the URL (after they were validated)."""
        sync_to_url(self.targets(), extra={"page": self.slug},
                    on_error=lambda bad: self.add_notice(f"Ignored link values: {bad}"))

    def cleanup(self) -> None:
        """Stop timers and drop in-flight work."""

    @staticmethod
    def when_connected(fn) -> None:
        """Run ``fn`` now if the browser has said the page is ready, else once it does.

        HoloViews reschedules a plot refresh on every tick until the session's document is
        connected (BokehJS's ``document_ready``): a stream event sent before that, for a
        client that never sends it (a broken tab, a script), kept a core busy forever — even
        after the session closed."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None or pn.state._connected.get(doc):
            fn()
        else:
            pn.state.onload(fn)

    @classmethod
    def deferred(cls, view, min_height: int = 300, **layout) -> pn.Column:
        """``view`` in a frame that is sent with the page and filled once the browser is
        connected, when the server's draw queue (:func:`app.jobs.draw_queue`) comes to it.

        Served pages send their widgets and text at once and their plots one per turn of the
        server's loop, so students opening a page together do not stall the server (see
        :class:`app.jobs.DrawQueue`). The frame takes the view's sizing. Without a server
        (tests, notebooks) the view is there at once."""
        layout = {"sizing_mode": getattr(view, "sizing_mode", None) or "stretch_both",
                  "min_height": getattr(view, "min_height", None) or min_height,
                  "margin": 0} | layout
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return pn.Column(view, **layout)
        holder = pn.Column(pn.pane.HTML(
            "<div class='atlas-drawing' style='color:#888;padding:1em'>drawing…</div>",
            margin=0), **layout)

        def fill():
            holder.objects = [view]

        cls.when_connected(lambda: draw_queue().put(doc, fill))
        return holder

    # -- exports and sharing -------------------------------------------------------------------
    def export_datasets(self) -> dict[str, xr.Dataset]:
        """What the page shows now, as ``{netCDF group: Dataset}`` (empty before any result)."""
        return {}

    def export_bytes(self) -> io.BytesIO:
        """The page's datasets as one netCDF file (groups), with the link that reproduces them
        and the engine version in every group's attrs."""
        groups = {name: ds for name, ds in self.export_datasets().items() if ds is not None}
        link = self.current_link()
        stamp = dict(sgd_atlas_link=link, sgd_atlas_engine=engine.engine_version(),
                     sgd_atlas_exported=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if not groups:
            groups = {"empty": xr.Dataset(attrs={"note": "nothing was computed yet"})}
        groups = {k: ds.assign_attrs(**stamp) for k, ds in groups.items()}
        return io.BytesIO(ncio.to_bytes(groups))

    def current_link(self) -> str:
        """The page's address as the browser shows it, whole (scheme, host, path and query),
        so a file keeps a link that opens anywhere; without a browser, the query alone."""
        loc = pn.state.location
        if loc is None:
            return f"?page={self.slug}"
        origin = f"{loc.protocol}//{loc.hostname}" if loc.protocol and loc.hostname else ""
        if origin and loc.port:
            origin += f":{loc.port}"
        return f"{origin}{loc.pathname or ''}{loc.search or ''}"

    def share_panel(self) -> pn.viewable.Viewable:
        """Download the data (netCDF) and the plots (PNG); copy the link to this exact view."""
        if not self.exports:
            return pn.Column(visible=False)
        name = f"sgd-atlas-{self.slug}"
        self._download = pn.widgets.FileDownload(
            callback=self.export_bytes, filename=f"{name}.nc", label="⬇ Data (netCDF)",
            button_type="primary", button_style="outline", embed=False,
            description="Every dataset on this page as netCDF groups, with the link and the "
                        "engine version in their attributes.")
        png = pn.widgets.Button(label="⬇ Plots (PNG)", button_type="primary",
                                button_style="outline", css_classes=["atlas-png"],
                                description="The plots as shown, in one PNG.")
        png.js_on_click(args={"name": name}, code=PNG_JS)
        copy = pn.widgets.Button(label="Copy link", button_type="primary", button_style="outline",
                                 css_classes=["atlas-copy-link"],
                                 description="The address of exactly this view, for a student "
                                             "or a paper.")
        copy.js_on_click(args={"label": "Copy link"}, code=COPY_JS)
        return pn.Column(pn.pane.Markdown("#### Share & export"), self._download,
                         pn.Row(png, copy), sizing_mode="stretch_width")

    def guard_inputs(self, *views: pn.viewable.Viewable) -> int:
        """Validate every value the browser sends to this page's widgets (see
        :mod:`app.guards`) — the sidebar's and those of ``views``, the page's parts as shown
        (its ``__panel__()`` as built once: a second build would queue its plots twice);
        corrections are shown as notices."""
        root = pn.Column(self.sidebar_panel(), *views)
        linked = linked_widgets(self.param_widgets())
        for widget in root.select(pn.widgets.Widget):  # "atlas-<parameter>": tests, tools find it
            if id(widget) in linked:
                css = f"atlas-{linked[id(widget)][1]}"
                if css not in widget.css_classes:
                    widget.css_classes = [*widget.css_classes, css]
        return guard_inputs(root, linked, self.add_notice)

    # -- teacher links: ?lock=…&hide=… ------------------------------------------------------
    def param_widgets(self) -> dict[str, list[tuple[param.Parameterized, pn.widgets.Widget]]]:
        """``{parameter: [(owner, widget), …]}`` of the sidebar's parameter widgets."""
        out: dict[str, list] = {}
        for pane in self.sidebar_panel().select(pn.Param):
            for name, widget in getattr(pane, "_widgets", {}).items():
                if name != "name":
                    out.setdefault(name, []).append((pane.object, widget))
        return out

    def apply_teacher(self, query: dict, extras: dict[str, pn.viewable.Viewable] | None = None) -> None:
        """``lock=a,b``: those controls are disabled and their values held; ``hide=…``: those
        controls are hidden — parameter names, ``advanced`` (the page's :attr:`advanced`), or
        the names of ``extras`` (e.g. ``nav``, ``presets``, ``share``)."""
        widgets = self.param_widgets()
        extras = dict(extras or {})
        if getattr(self, "_preset_select", None) is not None:
            extras.setdefault("presets", self._preset_select)

        def names(key):
            raw = query.get(key, "")
            if isinstance(raw, (list, tuple)):
                raw = ",".join(str(r) for r in raw)
            return [n.strip() for n in str(raw)[:500].split(",") if n.strip()]

        def controls(name):  # parameter names a lock/hide entry stands for
            if name == "advanced":
                return [n for n in self.advanced if n in widgets]
            return [name] if name in widgets else []

        locked = []
        for name in names("lock"):
            targets = controls(name)
            if not targets:
                self.add_notice(f"lock: this page has no control called {name[:40]!r}.")
            for n in targets:
                for owner, widget in widgets[n]:
                    if (id(owner), n) in self._locked:
                        continue
                    widget.disabled = True
                    widget.name = f"{widget.name} 🔒"
                    self._hold(owner, n)
                    locked.append(owner.param[n].label or n)
        if locked:  # a greyed-out control says why
            self.lock_note.object = ("🔒 **Fixed by your teacher's link:** "
                                     + ", ".join(html.escape(t) for t in dict.fromkeys(locked))
                                     + ".")
            self.lock_note.visible = True
        for name in names("hide"):
            items = [w for n in controls(name) for _, w in widgets[n]]
            if not items and name in extras:
                items = [extras[name]]
            elif not items and name != "advanced":
                self.add_notice(f"hide: this page has nothing called {name[:40]!r}.")
            for item in items:
                item.visible = False
        self._hide_empty_sections()

    def _hide_empty_sections(self) -> None:
        """Hide a sidebar heading whose controls are all hidden (with ``hide=advanced``, the
        live page's "Start" and "Animation" headings stood over nothing)."""
        def shown(pane: pn.Param) -> bool:
            return any(w.visible for n, w in pane._widgets.items() if n != "name")

        for column in self.sidebar_panel().select(pn.Column):
            items = list(column.objects)
            for i, item in enumerate(items):
                if not isinstance(item, pn.Param) or shown(item):
                    continue
                item.visible = False
                heading = items[i - 1] if i else None
                if isinstance(heading, pn.pane.Markdown) and str(heading.object).startswith("#"):
                    heading.visible = False

    def _hold(self, owner: param.Parameterized, name: str) -> None:
        """Keep ``owner.name`` at its current value: a locked control cannot be moved from
        the browser (a disabled widget can still be sent values), nor by a preset (which
        :meth:`apply_values` skips)."""
        value = getattr(owner, name)
        self._locked[(id(owner), name)] = value

        def restore(event):
            if event.new != value:
                owner.param.update(**{name: value})
                self.add_notice(f"{owner.param[name].label or name} is fixed by this lesson's link.")

        owner.param.watch(restore, name)


def cell(*objects: pn.viewable.Viewable, basis: int = 420, min_width: int = 300) -> pn.Column:
    """A column of ``objects`` that shares a :func:`flow` row with its siblings, about
    ``basis`` px wide before it wraps."""
    return pn.Column(*objects, sizing_mode="stretch_width", min_width=min_width,
                     styles={"flex": f"1 1 {basis}px"})


def flow(*cells: pn.viewable.Viewable) -> pn.FlexBox:
    """A row of :func:`cell` s that wraps into one column when the page is narrower than
    two of them (a phone, a half-screen window) instead of squeezing or overlapping them."""
    return pn.FlexBox(*cells, flex_wrap="wrap", align_items="flex-start",
                      sizing_mode="stretch_width")


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
    session's loop whenever that list changes; a new ``run`` supersedes the old one (latest
    wins). With ``streaming=True`` the functions also get ``on_partial(ds)`` and a partial
    result is shown as the last entry while it grows. When all are done the status carries
    ``<span id=done_id>`` (browser tests wait for it). Tasks go through
    :func:`app.sweeps.run_tasks`: on a Dask cluster, when one is configured, they run side by
    side.

    A new run keeps the previous results on screen, with ``dim`` (the layout holding the
    page's plots) at :attr:`DIMMED` opacity and "recomputing…" in the status, until its first
    result (or streamed partial result) replaces them at full opacity. Once a task has been
    computed the status estimates the time left (:meth:`time_left`). A failed run says so in
    the status — a sentence, never the traceback, which the server log keeps — and leaves
    whatever was shown.
    """

    #: opacity of the previous results while a new run has not shown anything yet
    DIMMED = 0.4
    #: a task that finishes this quickly (seconds) came from the cache: it is left out of the
    #: time per task the estimate of the time left uses
    FOUND = 0.1

    def __init__(self, on_results, unit: str, done_id: str,
                 dim: pn.viewable.Viewable | None = None):
        self._on_results, self._unit, self._done_id, self.dim = on_results, unit, done_id, dim
        self._shown: list = []  # the list on_results was last called with
        self._stale = False  # ``_shown`` belongs to the run before the current one
        self._slot = JobSlot(session_scheduler(pn.state.curdoc), self._progress)
        self.bar = pn.indicators.Progress(value=0, max=100, width=220, visible=False,
                                          align="center")
        self.status = pn.pane.HTML("", styles={"flex": "1 1 240px"}, align="center")
        self.cancel_button = pn.widgets.Button(label="Cancel", button_type="warning", width=90,
                                               disabled=True, align="center")
        self.cancel_button.on_click(self.cancel)
        # wraps: on a phone the status goes below the bar instead of a column of single words
        self.controls = pn.FlexBox(self.bar, self.cancel_button, self.status,
                                   align_items="center", sizing_mode="stretch_width")

    @property
    def stale(self) -> bool:
        """Whether the results shown belong to the run before the current one (e.g. not to be
        exported with the current link)."""
        return self._stale

    def run(self, tasks: list, streaming: bool = False) -> None:
        self._stale = bool(self._shown)
        self.bar.value, self.bar.visible, self.cancel_button.disabled = 0, True, False
        self.status.object = self._with_stale("computing…", "")
        self._set_stale(self._stale)  # after the status: the note comes with the dimming

        def work(ctx):
            n, done = len(tasks), {}
            start = last = time.monotonic()
            at = [0.0]  # tasks done so far, with the fraction of the current one
            found = [0, 0.0]  # tasks that came from the cache, and the time they took

            def finished(i, ds):
                nonlocal last
                now = time.monotonic()
                if now - last < self.FOUND:
                    found[0], found[1] = found[0] + 1, found[1] + now - last
                last = now
                done[i] = ds

            def report(count, total, partial=None):  # every report carries all results so far
                shown = [done[i] for i in sorted(done)] + ([partial] if partial is not None else [])
                left = None
                if len(done) > found[0] and count < total:  # at least one task was computed
                    per_task = (time.monotonic() - start - found[1]) / (count - found[0])
                    left = per_task * (total - count)
                ctx.progress(count, total, (shown, left))

            def progress(count, total):
                at[0] = count
                report(count, total)

            return sweeps.run_tasks(
                tasks, cancel=lambda: ctx.cancelled, progress=progress, on_result=finished,
                on_partial=(lambda i, ds: report(max(at[0], len(done)), n, ds)) if streaming
                else None)

        self._slot.submit(work, self._done, self._error)

    @staticmethod
    def time_left(seconds: float) -> str:
        """``seconds`` as a round figure: "about 7 s", "about 40 s", "about 2 min"."""
        s = round(seconds) if seconds < 10 else 5 * round(seconds / 5)
        return f"about {max(s, 1)} s" if s < 60 else f"about {round(seconds / 60)} min"

    def _show(self, results: list) -> None:
        """Pass ``results`` to the page (unless it shows those already), at full opacity."""
        if [id(ds) for ds in results] != [id(ds) for ds in self._shown]:
            self._on_results(results)
        self._shown = results
        self._set_stale(False)

    def _set_stale(self, stale: bool) -> None:
        self._stale = stale
        if self.dim is not None:
            opacity = str(self.DIMMED) if stale else "1"
            if (self.dim.styles or {}).get("opacity") != opacity:
                self.dim.styles = {**(self.dim.styles or {}), "opacity": opacity}

    def _with_stale(self, text: str, stale_text: str | None = None) -> str:
        """``text``, or ``stale_text`` (default ``text``) saying that the plots still show the
        previous run."""
        if not self._stale:
            return text
        text = text if stale_text is None else stale_text
        note = "the dimmed plots show the previous result"
        return f"recomputing… {text} · {note}" if text else f"recomputing… {note}"

    def _progress(self, done, total, report):
        results, left = report
        if results:  # the new run's first result replaces the previous run's at once
            self._show(results)
        self.bar.value = int(100 * done / total)
        text = f"{int(done)} of {total} {self._unit} done"
        if left is not None:
            text += f" · {self.time_left(left)} left"
        self.status.object = self._with_stale(text)

    def _done(self, results):
        self._show(results)
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = (f'<span id="{self._done_id}">complete: {len(results)} '
                              f'{self._unit}</span>')

    def cancel(self, event=None) -> None:
        self._slot.cancel()
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = ("Cancelled; the dimmed plots show the previous result. Change a "
                              "parameter to compute again." if self._stale else
                              "Cancelled; change a parameter to compute again.")

    def _error(self, exc):
        self.bar.visible, self.cancel_button.disabled = False, True
        # engine functions raise ValueError with a sentence a student can act on; anything
        # else is a bug whose details belong in the server log (JobSlot logs the traceback)
        text = "The computation failed."
        if isinstance(exc, ValueError) and str(exc).strip():
            reason = str(exc).strip().splitlines()[0][:300]
            text = f"The computation failed: {reason}" + ("" if reason.endswith(".") else ".")
        if self._stale:
            text += " The dimmed plots show the previous result."
        elif self._shown:
            text += " The plots show what was computed before it failed."
        self.status.object = html.escape(f"{text} Change a parameter to retry.", quote=False)

    def close(self) -> None:
        self._slot.close()


def _template_objects(template: pn.template.BaseTemplate, selector=None) -> list:
    """Every Panel object shown by ``template`` (``template.select`` also meets non-viewable
    render items and fails)."""
    parts = (template.header, template.sidebar, template.main, template.modal)
    return [obj for part in parts for item in part for obj in item.select(selector)]


def settle_markup(template: pn.template.BaseTemplate, doc) -> int:
    """Give the rendered markup panes now the stylesheets Panel gives them on their first
    update; returns how many models were settled. Call once ``template`` is rendered into the
    session's document ``doc``, inside ``doc.models.freeze()``.

    A pane rendered in a template gets its design's stylesheets without the theme's base CSS
    (the template loads that once for the page); its first update re-sends the stylesheets
    *with* it (Panel's ``Design.params`` resolves them as for an isolated component). New
    stylesheet models make Bokeh recompute the references of the whole document: measured
    50–65 ms for a student's first slider move on the live page (its list of changes is a
    Markdown pane) instead of 7 ms, and 30 students' first moves queued 1.5 s of work on the
    server's only event loop. Done here, the one recomputation at the end of the session's
    build covers it. ``doc`` is passed because models are attached to it only when that
    recomputation runs (Panel's stylesheet cache is per document)."""
    from panel.pane.markup import HTMLBasePane

    n = 0
    for pane in _template_objects(template, HTMLBasePane):
        for model, _ in list(pane._models.values()):
            styles = pane._get_properties(doc).get("stylesheets")
            if styles is not None:
                model.update(stylesheets=styles)
                n += 1
    return n


def release_js_links(template: pn.template.BaseTemplate) -> int:
    """Forget the browser-side links of a closed session's widgets; returns how many.

    Panel keeps every ``jscallback``/``jslink`` in one process-wide
    ``WeakKeyDictionary`` (``panel.links.Callback.registry``) keyed by the source widget. Its
    values hold the callback's ``args`` strongly — for an editable slider that is the sibling
    slider, which reaches its composite and so the key again: the key never dies, and neither
    does anything reachable from it (the page, its state, its plots, the Bokeh document).
    Every closed session of a page with an editable slider stayed in memory (measured: all 5
    trajectories pages and their documents alive after their sessions were discarded)."""
    from panel.links import Callback

    registry = Callback.registry
    return sum(registry.pop(obj, None) is not None for obj in _template_objects(template))

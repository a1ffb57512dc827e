"""What every page offers main.py: construction from a URL query, presets, a sidebar,
notices, validated input, binding its state to the URL, and cleanup when the browser session
ends. Sharing and exports are in :mod:`.share`, a teacher's locks in :mod:`.teacher`, the
background progress of a page in :mod:`.progress`."""

from __future__ import annotations

import copy
import html

import panel as pn
import param

from ..compat import browser_connected
from ..guards import guard_inputs, linked_widgets
from ..jobs import draw_queue
from ..presets import find_preset, load_presets, preset_prompt, preset_values
from ..urlstate import apply_values, coerce
from .share import Sharing
from .teacher import TeacherLinks

class Page(Sharing, TeacherLinks, pn.viewable.Viewer):
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

    def states(self) -> dict[str, param.Parameterized]:
        """The page's state objects by their :data:`app.state.PAGE_STATES` names."""
        from ..state import PAGE_STATES

        return {attr: getattr(self, attr) for attr in PAGE_STATES.get(self.slug, {})}

    def computation(self, name: str) -> list:
        """The tasks of the page's computation ``name`` for its current values
        (:func:`app.state.computations`, which the class mode's API starts too)."""
        from ..state import computations

        return computations(self.slug, self.states())[name]

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
        preset = find_preset(self.slug, preset_id)
        if preset is None:
            return False
        wanted = preset_values(preset)
        defaults = {f: v for _, values in self._defaults for f, v in values.items()}
        self.apply_values({**defaults, **wanted}, requested=wanted)
        self.preset = preset_id
        return True

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
        preset = find_preset(self.slug, self.preset)
        return self.default_prompt if preset is None else preset_prompt(preset)

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
        if doc is None or doc.session_context is None or browser_connected(doc):
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

    @classmethod
    def plot_cell(cls, view, height: int, basis: int = 420) -> pn.Column:
        """A :func:`cell` of a :func:`flow` row holding ``view`` :meth:`deferred` at a fixed
        ``height`` and the row's width."""
        return cell(cls.deferred(view, height=height, sizing_mode="stretch_width"), basis=basis)

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


    def param_widgets(self) -> dict[str, list[tuple[param.Parameterized, pn.widgets.Widget]]]:
        """``{parameter: [(owner, widget), …]}`` of the sidebar's parameter widgets."""
        out: dict[str, list] = {}
        for pane in self.sidebar_panel().select(pn.Param):
            for name, widget in getattr(pane, "_widgets", {}).items():
                if name != "name":
                    out.setdefault(name, []).append((pane.object, widget))
        return out


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

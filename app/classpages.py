"""Class mode of the map and curve pages — stability, phases, escape, overfitting (issue 17):
each page built once per process and (page, preset), served to a whole class as static HTML.

The page holds the same figures as its Panel page (each page's ``app.figures.<slug>`` module:
``figures()``), controls generated from the state's ``param`` declarations
(:func:`app.classmode._control`) and ``assets/js/class-page.js``. What the figures show arrives
as *views* (:func:`app.figures.apply_view`'s format, the Panel pages' too) through
``GET /api/view`` (:mod:`app.classapi`): the browser asks for each view of the page with its
values; the server starts or joins the computation behind it (computed once for a whole class,
progress for every follower, cancel), draws the view from the results with the figures module's
``view()`` — once per distinct view, kept by its key — and the browser fetches the drawn
columns from ``GET /api/view/data?key=…`` (gzip, cacheable: a key names one content).

:data:`SPEC_BUILDERS` gives, per page, its :class:`ClassSpec`: which state objects and fields
its controls are, how its plots and texts are laid out, and which views show only on one tab.
"""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass, field

import param

from .presets import find_preset, preset_prompt
from .state import PAGE_STATES

EXTRAS = ("nav", "presets", "share")


@dataclass(frozen=True)
class ClassSpec:
    """A page's class mode: ``sections`` are ``(heading, state attribute, fields)`` of the
    sidebar; ``layout`` is rows of items, each ``"fig:<key>"`` (a figure of ``figures()``),
    ``"html:<id>"`` (a view's text), ``"progress:<view>"`` (a computation's progress, cancel
    and export), ``"md:<text>"`` (fixed text, one-line Markdown) or ``"note:<key>"`` (a
    ``notes`` entry: the page's own HTML); a row given as
    ``(field, value, items)`` shows only while ``field`` has that value, and the views whose
    progress it holds are asked for only then. ``labels`` names each computed view for its
    progress and export."""

    slug: str
    page: str  # the Panel page's module under app.pages (its prompt, advanced fields)
    sections: tuple
    layout: tuple
    labels: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)  # field -> {label: value} of its menu
    hidden: tuple = ()  # (state attribute, field): values a link and a box zoom set, no control
    notes: dict = field(default_factory=dict)  # "note:<key>" items: trusted HTML of the page


def _stability() -> ClassSpec:
    from .pages.stability import EXPLAIN

    return ClassSpec(
        "stability", "stability",
        sections=(("Maps", "state", ("sigma2", "lr", "color_by", "resolution")),
                  ("Point", "state", ("w0", "v0")),
                  ("Pullback attractor", "state",
                   ("pullback_time", "pullback_points", "trapped_distance", "seed"))),
        layout=(("progress:maps",), ("fig:mu", "fig:map"), ("html:stab-point",),
                (f"md:{EXPLAIN}",), ("progress:cloud", "html:stab-trapped"), ("fig:cloud",)),
        labels={"maps": "maps", "cloud": "pullback cloud", "point": "the point's values"})


def _escape() -> ClassSpec:
    from .pages.escape import FIELDS, PL_FIELDS

    fig5, pl = ("view", "fig5"), ("view", "powerlaw")
    return ClassSpec(
        "escape", "escape",
        sections=(("Show", "state", ("view",)),
                  ("Optimal noise (paper 000)", "state", FIELDS),
                  ("Power-law escape (paper 003)", "powerlaw", PL_FIELDS)),
        layout=((*fig5, ("progress:curve",)), (*fig5, ("fig:curve",)), (*fig5, ("fig:censored",)),
                (*pl, ("progress:powerlaw",)), (*pl, ("fig:passage", "fig:phi")),
                (*pl, ("html:escape-pl-summary",))),
        labels={"curve": "escape times", "powerlaw": "first-passage curves and φ"},
        choices={"view": {"Optimal noise (paper 000, Fig. 5)": "fig5",
                          "Power-law escape (paper 003, Fig. 3)": "powerlaw"}})


def _overfit() -> ClassSpec:
    from .state import OverfitParams

    return ClassSpec(
        "overfit", "overfit", sections=(("Runs", "state", OverfitParams.FIELDS),),
        layout=(("progress:runs",), ("fig:curves",), ("html:overfit-stage-key",),
                ("fig:w", "fig:v"), ("html:overfit-region-key",), ("fig:count",),
                ("html:overfit-hessian-note",), ("html:overfit-summary",)),
        labels={"runs": "training runs"})


def _phases() -> ClassSpec:
    import html as _html

    from .pages.phases import MEANING, PHASE_COLORS, RANGES

    legend = "".join(f"<li><span style='color:{c}'>■</span> <b>{p}</b>: {_html.escape(MEANING[p])}</li>"
                     for p, c in PHASE_COLORS.items())
    return ClassSpec(
        "phases", "phases",
        sections=(("Maps", "state", ("batch_size", "n_data", "seed", "resolution")),
                  ("λ–S map", "state", ("mu_for_s",)),
                  ("Simulated cell", "state", ("lr", "mu"))),
        hidden=tuple(("state", f) for f in RANGES),
        layout=(("progress:map", "progress:cell"), ("fig:map", "fig:sim"),
                ("note:legend", "html:phases-verdict"), ("progress:s_map", "progress:fig2"),
                ("fig:s", "fig:fig2")),
        labels={"map": "λ–μ map", "cell": "the clicked cell's runs", "s_map": "λ–S map",
                "fig2": "Fig. 2 right"},
        notes={"legend": f"<b>Phases</b> (Prop. 1 of paper 002)<ul class='legend'>{legend}</ul>"
                         "Black line: Λ− = 0; white dashed: Λ+ = 0; purple dotted: L2 boundary. "
                         "Click a cell to simulate SGD there; box-zoom to recompute the region; "
                         "the reset tool goes back."})


SPEC_BUILDERS = {"stability": _stability, "phases": _phases, "escape": _escape,
                 "overfit": _overfit}


def spec(slug: str) -> ClassSpec:
    return SPEC_BUILDERS[slug]()


def figures_module(slug: str):
    """``app.figures.<slug>``: ``figures()``, ``VIEWS``, ``view()`` and the clicks (``TAPS``)."""
    return importlib.import_module(f"app.figures.{slug}")


def page_class(slug: str):
    """The Panel page's class (its prompt and advanced fields; the page is not built)."""
    module = importlib.import_module(f"app.pages.{spec(slug).page}")
    return next(v for v in vars(module).values()
                if isinstance(v, type) and getattr(v, "slug", None) == slug)


def fields_of(slug: str) -> list[str]:
    """Every field a class page sends: its controls' and its hidden ones."""
    sp = spec(slug)
    return [f for _, _, fields in sp.sections for f in fields] + [f for _, f in sp.hidden]


def _owners(slug: str) -> list[tuple[str, str]]:
    sp = spec(slug)
    return [(attr, f) for _, attr, fields in sp.sections for f in fields] + list(sp.hidden)


def json_value(value):
    """A parameter's value as the browser and a link write it (a range as "lo,hi")."""
    if isinstance(value, (tuple, list)):
        return ",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in value)
    return value


def values_of(slug: str, states: dict) -> dict:
    return {f: json_value(getattr(states[attr], f)) for attr, f in _owners(slug)}


def view_fields(slug: str) -> dict[str, list[str]]:
    """Each view's name -> the fields whose change makes the browser ask for it again: the
    figures module's drawing fields and every field of the page's controls that changes the
    computation's tasks (found by changing each one on fresh states)."""
    from .compute import tasks_key
    from .state import computations

    mod = figures_module(slug)
    fresh = {attr: cls() for attr, cls in PAGE_STATES[slug].items()}
    base = {k: tasks_key(v) for k, v in computations(slug, fresh).items()}
    out = {what: list(extra) for what, extra in mod.VIEWS.items()}
    for attr, name in _owners(slug):
        states = {a: cls() for a, cls in PAGE_STATES[slug].items()}
        if not _nudge(states[attr], name):
            continue
        now = {k: tasks_key(v) for k, v in computations(slug, states).items()}
        for what in out:
            if what in base and now[what] != base[what] and name not in out[what]:
                out[what].append(name)
    return out


def _nudge(obj: param.Parameterized, name: str) -> bool:
    """Set ``name`` to another valid value (to see what it changes); False if there is none."""
    p = obj.param[name]
    value = getattr(obj, name)
    if isinstance(p, param.Boolean):
        setattr(obj, name, not value)
        return True
    if isinstance(p, param.ListSelector):
        objects = list(p.objects.values()) if isinstance(p.objects, dict) else list(p.objects)
        other = [o for o in objects if o not in value] or objects[:1]
        if other == list(value):
            return False
        setattr(obj, name, other[:1] if other[:1] != list(value) else objects[-1:])
        return True
    if isinstance(p, param.Selector):
        objects = list(p.objects.values()) if isinstance(p.objects, dict) else list(p.objects)
        other = [o for o in objects if o != value]
        if not other:
            return False
        setattr(obj, name, other[0])
        return True
    if isinstance(p, param.Range):
        lo, hi = value
        setattr(obj, name, (lo, lo + (hi - lo) / 2))
        return True
    if isinstance(p, param.Number):
        lo, hi = p.bounds
        step = 1 if isinstance(p, param.Integer) else (abs(value) * 0.1 or 0.01)
        new = value + step if hi is None or value + step <= hi else value - step
        if lo is not None and new < lo:
            return False
        setattr(obj, name, type(value)(new) if isinstance(value, int) else new)
        return True
    return False


def _layout_html(slug: str, divs: dict, labels: dict, heights: dict) -> str:
    from .classmode import _markdown

    def item(it: str) -> str:
        kind, _, arg = it.partition(":")
        if kind == "fig":
            return f'<div class="cell plot" style="min-height:{heights[arg]}px">{divs[arg]}</div>'
        if kind == "html":
            return f'<div class="cell text view-html" id="{html.escape(arg, quote=True)}"></div>'
        if kind == "md":
            return f'<div class="cell text muted">{_markdown(arg)}</div>'
        if kind == "note":
            return f'<div class="cell text">{spec(slug).notes[arg]}</div>'
        if kind == "progress":
            what = html.escape(arg, quote=True)
            label = html.escape(labels.get(arg, arg))
            return (f'<div class="cell progress" data-progress="{what}">'
                    f'<div class="bar" role="progressbar" aria-label="{label}" aria-valuemin="0" '
                    f'aria-valuemax="100"><span></span></div>'
                    f'<span class="status" id="{what}-status" aria-live="polite">{label}: '
                    f'waiting…</span> <button class="btn cancel" type="button" hidden>Cancel'
                    f'</button><button class="btn resume" type="button" hidden>Compute again'
                    f'</button></div>')
        raise ValueError(f"unknown layout item {it!r}")

    rows = []
    for row in spec(slug).layout:
        when = ""
        if len(row) == 3 and isinstance(row[2], tuple):
            f, v, row = row
            when = f' data-when="{html.escape(f, quote=True)}" data-is="{html.escape(str(v), quote=True)}"'
        plots = " plots" if any(i.startswith("fig:") for i in row) else ""
        rows.append(f'<div class="flow{plots}"{when}>' + "".join(item(i) for i in row) + "</div>")
    return "\n".join(rows)


_TAP_JS = "if (window.AtlasClassTap) window.AtlasClassTap(name, cb_obj.x, cb_obj.y);"
_ZOOM_JS = ("if (window.AtlasClassZoom && cb_obj.x0 != null) "
            "window.AtlasClassZoom(name, cb_obj.x0, cb_obj.x1, cb_obj.y0, cb_obj.y1);")


def build_class_page(slug: str, preset: str = "") -> bytes:
    """The class-mode HTML of ``slug`` for ``preset`` ("" for the page's defaults): its
    figures (empty: views arrive from the API), controls from the state's parameters, the
    preset's prompt; built once per process per (page, preset)."""
    from bokeh.embed import components
    from bokeh.models import CustomJS

    from .classmode import _control, _markdown, render_page
    from .classapi import states_for

    sp, mod, page_cls = spec(slug), figures_module(slug), page_class(slug)
    _, states, _ = states_for({"page": slug, **({"preset": preset} if preset else {})})
    fields = fields_of(slug)
    figs = mod.figures()
    for fig in figs.values():  # clicks and box zooms go to class-page.js
        if fig.name in getattr(mod, "TAPS", {}):
            fig.js_on_event("tap", CustomJS(args={"name": fig.name}, code=_TAP_JS))
        if fig.name in getattr(mod, "ZOOMS", {}):
            fig.js_on_event("rangesupdate", CustomJS(args={"name": fig.name}, code=_ZOOM_JS))
    script, divs = components(figs)
    found = find_preset(slug, preset)
    prompt = page_cls.default_prompt if found is None else preset_prompt(found)
    sidebar = "".join(
        f'<section class="group"><h4>{html.escape(title)}</h4>'
        + "".join(_control(states[attr], f, sp.choices.get(f)) for f in fs) + "</section>"
        for title, attr, fs in sp.sections)
    owners = {f: states[attr] for attr, f in _owners(slug)}
    computed = [w for w in mod.VIEWS if w in sp.labels]
    exports = "".join(
        f'<a class="btn export-nc" data-what="{html.escape(w, quote=True)}" href="#" download>'
        f'⬇ {html.escape(sp.labels[w])} (netCDF)</a>' for w in computed)
    when = {}  # a view shown on one tab only: the tab of its progress item
    for row in sp.layout:
        if len(row) == 3 and isinstance(row[2], tuple):
            for it in row[2]:
                kind, _, arg = it.partition(":")
                if kind == "progress":
                    when[arg] = (row[0], str(row[1]))
    config = {
        "slug": slug, "preset": preset, "fields": fields,
        "advanced": [f for f in page_cls.advanced if f in fields], "extras": list(EXTRAS),
        "values": values_of(slug, states),
        "labels": {f: owners[f].param[f].label or f for f in fields},
        "views": view_fields(slug), "computed": computed, "when": when,
        "taps": {k: list(v) for k, v in getattr(mod, "TAPS", {}).items()},
        "tap_bounds": {k: list(v) for k, v in getattr(mod, "TAP_BOUNDS", {}).items()},
        "tap_transforms": getattr(mod, "TAP_TRANSFORMS", {}),
        "zooms": {k: list(v) for k, v in getattr(mod, "ZOOMS", {}).items()},
        "zoom_transforms": getattr(mod, "ZOOM_TRANSFORMS", {}),
        "zoom_bounds": {k: list(v) for k, v in getattr(mod, "ZOOM_BOUNDS", {}).items()},
    }
    heights = {k: f.height for k, f in figs.items()}
    return render_page("class-page.html", slug, ("class-page",), config, preset,
                       sidebar=sidebar, exports=exports, prompt=_markdown(prompt),
                       body=_layout_html(slug, divs, sp.labels, heights), bokeh_script=script)

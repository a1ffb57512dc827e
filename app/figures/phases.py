"""The phase-diagram page's figures, defined once (paper 002, Proposition 1; Figs. 2, 8, 9): plain
Bokeh models fed by *views* (:func:`app.figures.apply_view`'s format), which the Panel page
(:mod:`app.pages.phases`) applies in Python and the class mode sends to the browser as JSON.

Figures (:func:`figures`, keyed by a short key; each named ``phases-fig-<key>``):

``map``
    the λ–μ map of the phases Ia, Ib, II, III, IV from Λ± (an image of phase codes, hover: the
    phase by name and Λ± ± their standard errors), the Λ− = 0 (black) and Λ+ = 0 (white
    dashed) boundaries, the L2 boundary (purple dotted) and the clicked cell (a black ×). The
    x axis is **log₁₀ η** (linear in its data, as the grid is): see :data:`TAP_TRANSFORMS`.
``sim``
    the clicked cell's saddle SGD, log|w − u| and log|w + u| of 12 runs against the step.
``s``
    the λ–S map at μ = ``mu_for_s`` (Fig. 9 right), x log₁₀ η, y log₂ S (ticks labelled S).
``fig2``
    Fig. 2 right: Λ of the random product Π(I − ηĤ_t) against η (log axis), 95 % error bars,
    Λ = 0 and dotted lines where Λ changes sign.

Sources are named ``phases-<key>-<layer>``; every model a view changes has a name. A view
(:func:`view`) is computed from a computation's results (``app.state.computations("phases",
states)``: "map", "s_map", "cell", "fig2") or, for the instant view "marker", from the state
alone. :data:`VIEWS` lists the PhaseParams fields each view's drawing reads besides the
results, :data:`TAPS` and :data:`ZOOMS` what a click and a box-zoom set (:func:`tap_values`,
:func:`zoom_values` apply them, with :data:`TAP_TRANSFORMS` / :data:`ZOOM_TRANSFORMS` and the
bounds :data:`TAP_BOUNDS` / :data:`ZOOM_BOUNDS`), :data:`HTML_IDS` the HTML elements.
"""

from __future__ import annotations

import html as _html
from urllib.parse import urlencode

import contourpy
import numpy as np
import xarray as xr
from bokeh.models import (ColumnDataSource, CustomJSHover, FixedTicker, HoverTool,
                          LinearColorMapper, Range1d, Span, Whisker)
from bokeh.plotting import figure

from engine import saddle

from ..state import LOG2_S, PhaseParams
from . import finite, new_figure

PHASE_COLORS = {"Ia": "#2ca02c", "Ib": "#98df8a", "II": "#ff7f0e", "III": "#1f77b4",
                "IV": "#d62728"}
PHASE_CODE = {p: i for i, p in enumerate(saddle.PHASES)}  # the image's values
MEANING = {"Ia": "correct learning, also stable in mean square",
           "Ib": "correct learning in probability, not in mean square",
           "II": "stable but incorrect learning", "III": "collapse to the saddle (low rank)",
           "IV": "completely unstable"}
MAP_HEIGHT, PLOT_HEIGHT = 420, 320  # fixed plot heights: the page scrolls instead of squeezing
#: The phase maps' hover names the phase of its colour code (the image's values are numbers);
#: BokehJS calls it with ``names`` (:data:`engine.saddle.PHASES`), ``value``, ``format``,
#: ``special_vars``.
PHASE_NAME_JS = ("const i = Math.round(value);\n"
                 "return Number.isFinite(value) && i >= 0 && i < names.length ? names[i] : '–';")
#: hover columns of the maps' images (beside ``image``) ← the Dataset's variables
LAMBDA_COLUMNS = {"lyap_minus": "Lambda_minus", "lyap_minus_se": "Lambda_minus_se",
                  "lyap_plus": "Lambda_plus", "lyap_plus_se": "Lambda_plus_se"}
LAMBDA_LABELS = {"lyap_minus": "Λ− (w − u)", "lyap_plus": "Λ+ (w + u)"}
IMAGE_POSITION = ("x", "y", "dw", "dh")
MAP_COLUMNS = ("image", *IMAGE_POSITION, "eta", "mu", "S", *LAMBDA_COLUMNS.values())
S_COLUMNS = ("image", *IMAGE_POSITION, "eta", "S", *LAMBDA_COLUMNS.values())
BOUNDARIES = {  # layer: (what is contoured, level, line style, legend)
    "lminus": ("lyap_minus", 0.0, dict(line_color="black", line_width=1.5), None),
    "lplus": ("lyap_plus", 0.0, dict(line_color="white", line_width=1.5, line_dash="dashed"),
              None),
    "l2": ("l2_stable", 0.5, dict(line_color="#9467bd", line_width=2.5, line_dash="dotted"),
           "L2 boundary"),
}
SIM_RUNS = 12  # runs drawn of the cell's simulation
SIM_START = {"minus": 0.5, "plus": 1.5}  # |w − u|, |w + u| at w = 1, u = 0.5
SIM_COLORS = {"minus": "#1f77b4", "plus": "#d62728"}

# -- the public contract --------------------------------------------------------------------------
#: view name -> the PhaseParams fields its drawing reads besides its computation's results
#: (the class page asks for a view again when one of them, or an input of its computation,
#: changes). "map", "s_map", "cell", "fig2" draw the computations of
#: ``app.state.computations("phases", …)``; "marker" (the clicked cell's ×) is instant.
VIEWS: dict[str, tuple[str, ...]] = {
    "map": (),
    "s_map": ("mu_for_s",),  # the title while it is computed
    "cell": (),  # labelled by the values the results were computed for
    "fig2": (),
    "marker": ("lr", "mu"),
}
#: figure name -> (x field, y field) of PhaseParams that a click (Bokeh's tap event, data
#: coordinates) sets, through :data:`TAP_TRANSFORMS`, then clipped to :data:`TAP_BOUNDS`.
TAPS: dict[str, tuple[str, str]] = {"phases-fig-map": ("lr", "mu")}
#: figure name -> {axis: transform} from a click's data coordinate to the field: "pow10" is
#: 10 ** x (the map's x axis is log₁₀ η, the field η); an axis not named is the identity.
TAP_TRANSFORMS: dict[str, dict[str, str]] = {"phases-fig-map": {"x": "pow10"}}
#: where a click may land: the fields' bounds (after the transform)
TAP_BOUNDS: dict[str, tuple[float, float]] = {f: tuple(PhaseParams.param[f].bounds)
                                              for f in ("lr", "mu")}
#: figure name -> (x range field, y range field) that a box-zoom (Bokeh's RangesUpdate event:
#: x0, x1, y0, y1) sets, through :data:`ZOOM_TRANSFORMS`, clipped to :data:`ZOOM_BOUNDS`
#: (the map's axes' own bounds: pan and zoom stay inside them).
ZOOMS: dict[str, tuple[str, str]] = {"phases-fig-map": ("log_lr_range", "mu_range")}
#: as :data:`TAP_TRANSFORMS`; empty: the map's axes are log₁₀ η and μ, the ranges' own units.
ZOOM_TRANSFORMS: dict[str, dict[str, str]] = {}
ZOOM_BOUNDS: dict[str, tuple[float, float]] = {f: tuple(PhaseParams.param[f].bounds)
                                               for f in ("log_lr_range", "mu_range")}
#: view name -> the id of the HTML element it fills (the page places it beside the plots)
HTML_IDS = {"cell": "phases-verdict"}
#: a zoom that moves the range by less than this in total is the plot reporting its range, not
#: the student asking for a new region; a box narrower than this (x, y) is ignored
MIN_ZOOM_CHANGE, MIN_ZOOM_WIDTH = 0.02, (1e-3, 1e-4)

_TRANSFORMS = {"pow10": lambda v: 10.0 ** v, "log10": np.log10}


def tap_values(fig_name: str, x: float, y: float) -> dict:
    """The fields (:data:`TAPS`) a click at data point (``x``, ``y``) of figure ``fig_name``
    sets, transformed (:data:`TAP_TRANSFORMS`) and clipped to :data:`TAP_BOUNDS`."""
    fields, how = TAPS[fig_name], TAP_TRANSFORMS.get(fig_name, {})
    out = {}
    for axis, field, value in zip("xy", fields, (x, y)):
        value = float(_TRANSFORMS[how[axis]](value)) if axis in how else float(value)
        lo, hi = TAP_BOUNDS[field]
        out[field] = float(np.clip(value, lo, hi))
    return out


def zoom_values(fig_name: str, x0: float, x1: float, y0: float, y1: float,
                current: dict | None = None) -> dict | None:
    """The range fields (:data:`ZOOMS`) a box-zoom to [x0, x1] × [y0, y1] of ``fig_name``
    sets, transformed (:data:`ZOOM_TRANSFORMS`) and clipped to :data:`ZOOM_BOUNDS`; None for a
    box too narrow (:data:`MIN_ZOOM_WIDTH`), or one that moves ``current`` ({field: (lo, hi)})
    by less than :data:`MIN_ZOOM_CHANGE` in total (the plot reporting the range it shows)."""
    fields, how = ZOOMS[fig_name], ZOOM_TRANSFORMS.get(fig_name, {})
    out = {}
    for axis, field, (a, b), width in zip("xy", fields, ((x0, x1), (y0, y1)), MIN_ZOOM_WIDTH):
        if a is None or b is None:
            return None
        a, b = (float(_TRANSFORMS[how[axis]](v)) if axis in how else float(v) for v in (a, b))
        lo, hi = ZOOM_BOUNDS[field]
        a, b = max(lo, min(a, b)), min(hi, max(a, b))
        if b - a < width:
            return None
        out[field] = (a, b)
    if current is not None and sum(abs(out[f][i] - current[f][i]) for f in fields
                                   for i in (0, 1)) <= MIN_ZOOM_CHANGE:
        return None
    return out


def figures() -> dict[str, figure]:
    """Every figure of the page, empty: ``{"map", "sim", "s", "fig2"}``."""
    return {"map": map_figure(), "sim": sim_figure(), "s": s_figure(), "fig2": fig2_figure()}


def view(what: str, results: list[xr.Dataset] | None, states: dict) -> dict:
    """The view ``what`` (a name of :data:`VIEWS`) from its computation's ``results`` (None or
    []: not computed yet) and ``states`` (``{"state": PhaseParams}``)."""
    s = states["state"]
    if what == "map":
        return map_view(results[0] if results else None)
    if what == "s_map":
        return s_map_view(results or None, s.mu_for_s)
    if what == "cell":
        return cell_view(results if results and len(results) == 2 else None)
    if what == "fig2":
        return fig2_view(results[0] if results else None)
    if what == "marker":
        return marker_view(s.lr, s.mu)
    raise ValueError(f"unknown view {what!r}; the phases page's views: {', '.join(VIEWS)}")


# -- the shared parts of the two maps ---------------------------------------------------------------
def codes(phase: np.ndarray) -> np.ndarray:
    """The phases (strings of :data:`engine.saddle.PHASES`) as their indices; NaN for none."""
    phase = np.asarray(phase)
    out = np.full(phase.shape, np.nan)
    for p, c in PHASE_CODE.items():
        out[phase == p] = c
    return out


def _phase_image(p: figure, layer: str, cell: list[tuple[str, str]]) -> None:
    """The image of phase codes (source ``phases-<layer>-image``) coloured as
    :data:`PHASE_COLORS`, with its hover: the phase by name, ``cell``, Λ± ± errors."""
    mapper = LinearColorMapper(palette=list(PHASE_COLORS.values()), low=-0.5, high=4.5,
                               nan_color="rgba(0, 0, 0, 0)")
    columns = MAP_COLUMNS if layer == "map" else S_COLUMNS
    src = ColumnDataSource(data={c: [] for c in columns}, name=f"phases-{layer}-image")
    img = p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=src,
                  color_mapper=mapper)
    lam = [(LAMBDA_LABELS[v], f"@{{{LAMBDA_COLUMNS[v]}}}{{%+.4f}} ± "
                              f"@{{{LAMBDA_COLUMNS[v + '_se']}}}{{%.1e}}") for v in LAMBDA_LABELS]
    printf = {f"@{{{c}}}": "printf" for c in LAMBDA_COLUMNS.values()} | {"@{eta}": "printf"}
    formatter = CustomJSHover(args={"names": list(saddle.PHASES)}, code=PHASE_NAME_JS)
    p.add_tools(HoverTool(renderers=[img], tooltips=[("phase", "@image{custom}"), *cell, *lam],
                          formatters={"@image": formatter} | printf))


def _boundaries(p: figure, layer: str) -> None:
    """The Λ− = 0, Λ+ = 0 and L2 boundaries (sources ``phases-<layer>-<boundary>``)."""
    for key, (_, _, style, legend) in BOUNDARIES.items():
        src = ColumnDataSource(data=_no_lines(), name=f"phases-{layer}-{key}")
        p.line("x", "y", source=src, **style, **({"legend_label": legend} if legend else {}))


def _no_lines() -> dict:
    return {"x": [], "y": []}


def joined(lines: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Lines ``[(x, y), …]`` as one ``line`` glyph's columns ``{"x", "y"}``, a NaN between two
    lines (it breaks the line): flat float columns, as the class mode encodes them."""
    if not lines:
        return _no_lines()
    gap = np.array([np.nan])
    x = np.concatenate([part for lx, _ in lines for part in (gap, np.asarray(lx, float))][1:])
    y = np.concatenate([part for _, ly in lines for part in (gap, np.asarray(ly, float))][1:])
    return {"x": x, "y": y}


def contour_lines(x: np.ndarray, y: np.ndarray, z: np.ndarray, level: float) -> dict:
    """The lines where ``z`` (rows along ``y``, columns along ``x``; NaN: none) crosses
    ``level``, linearly interpolated between grid points, as :func:`joined` columns."""
    z = np.asarray(z, dtype=float)
    if z.shape[0] < 2 or z.shape[1] < 2 or not np.isfinite(z).any():
        return _no_lines()
    gen = contourpy.contour_generator(x=np.asarray(x, float), y=np.asarray(y, float), z=z,
                                      line_type="Separate")
    return joined([(line[:, 0], line[:, 1]) for line in gen.lines(level) if len(line) > 1])


def _edges(centres: np.ndarray) -> tuple[float, float]:
    """The outer edges of a uniform grid of cell ``centres``."""
    step = centres[1] - centres[0] if centres.size > 1 else 1.0
    return float(centres[0] - step / 2), float(centres[-1] + step / 2)


def _image_columns(x: np.ndarray, y: np.ndarray, image: np.ndarray, **hover) -> dict:
    (x0, x1), (y0, y1) = _edges(x), _edges(y)
    return {"image": [image], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0],
            **{k: [finite(v)] for k, v in hover.items()}}


def _n_data(ds: xr.Dataset) -> str:
    n = ds.attrs.get("n_data")
    return "∞" if n in (None, "none", 0) else str(n)


# -- the λ–μ map (Figs. 8, 9 left) ----------------------------------------------------------------
def map_figure() -> figure:
    """The λ–μ map over log₁₀ η and μ (ranges: the computed region, named
    ``phases-map-xrange``/``-yrange``; reset: the whole default region), its boundaries and
    the clicked cell (``phases-map-marker``). Click: :data:`TAPS`; box-zoom: :data:`ZOOMS`."""
    (x0, x1), (y0, y1) = (PhaseParams.param.log_lr_range.default,
                          PhaseParams.param.mu_range.default)
    p = new_figure("λ–μ phase diagram: computing…", MAP_HEIGHT, name="phases-fig-map",
                   x_range=Range1d(x0, x1, reset_start=x0, reset_end=x1,
                                   bounds=ZOOM_BOUNDS["log_lr_range"], name="phases-map-xrange"),
                   y_range=Range1d(y0, y1, reset_start=y0, reset_end=y1,
                                   bounds=ZOOM_BOUNDS["mu_range"], name="phases-map-yrange"),
                   x_axis_label="log10 η", y_axis_label="μ")
    _phase_image(p, "map", [("η", "@{eta}{%.3g}"), ("μ (cell centre)", "@{mu}{0.000}"),
                            ("S", "@{S}")])
    _boundaries(p, "map")
    marker = ColumnDataSource(data={"x": [], "y": []}, name="phases-map-marker")
    p.scatter("x", "y", source=marker, marker="x", size=14, line_width=3, color="black")
    p.legend.location = "bottom_right"
    p.legend.label_text_font_size = "11px"
    return p


def map_view(ds: xr.Dataset | None) -> dict:
    """The λ–μ map of ``ds`` (:meth:`PhaseParams.map_task`; None: not computed yet): the
    phase codes with the hover's columns, the boundaries, the title and the axes' ranges (the
    computed region's cell edges)."""
    if ds is None:
        return {"columns": {"phases-map-image": {c: [] for c in MAP_COLUMNS},
                            **{f"phases-map-{k}": _no_lines() for k in BOUNDARIES}},
                "titles": {"phases-fig-map": "λ–μ phase diagram: computing…"}}
    lr, mu = ds.lr.values, ds.mu.values
    x = np.log10(lr)
    shape = (mu.size, lr.size)  # rows along μ (y), columns along η (x)
    columns = {"phases-map-image": _image_columns(
        x, mu, codes(ds.phase.values.T),
        eta=np.broadcast_to(lr[None, :], shape), mu=np.broadcast_to(mu[:, None], shape),
        S=np.full(shape, float(ds.attrs["batch_size"])),
        **{c: ds[v].values.T for v, c in LAMBDA_COLUMNS.items()})}
    for key, (var, level, _, _) in BOUNDARIES.items():
        columns[f"phases-map-{key}"] = contour_lines(x, mu, finite(ds[var].values.T), level)
    (x0, x1), (y0, y1) = _edges(x), _edges(mu)
    return {"columns": columns,
            "titles": {"phases-fig-map": f"λ–μ phase diagram (S = {ds.attrs['batch_size']}, "
                                         f"N = {_n_data(ds)})"},
            "props": {"phases-map-xrange": {"start": x0, "end": x1},
                      "phases-map-yrange": {"start": y0, "end": y1}}}


def marker_view(lr: float, mu: float) -> dict:
    """The clicked cell's × at (log₁₀ η, μ) (an instant view)."""
    return {"columns": {"phases-map-marker": {"x": [float(np.log10(lr))], "y": [float(mu)]}}}


# -- the λ–S map (Fig. 9 right) -------------------------------------------------------------------
def s_figure() -> figure:
    """The λ–S map over log₁₀ η and log₂ S ∈ [0, 6] (ticks labelled S = 1, 2, 4, …, 64)."""
    x0, x1 = PhaseParams.param.log_lr_range.default
    p = new_figure("λ–S phase diagram: computing…", PLOT_HEIGHT, name="phases-fig-s",
                   x_range=Range1d(x0, x1, name="phases-s-xrange"), y_range=Range1d(0, 6),
                   x_axis_label="log10 η", y_axis_label="S (batch size, log scale)")
    p.yaxis.ticker = FixedTicker(ticks=list(range(7)))
    p.yaxis.major_label_overrides = {k: str(2**k) for k in range(7)}
    _phase_image(p, "s", [("η", "@{eta}{%.3g}"), ("S", "@{S}")])
    _boundaries(p, "s")
    p.legend.visible = False  # the λ–μ map's legend says it
    return p


def s_rows(results: list[xr.Dataset]) -> tuple[np.ndarray, list[xr.Dataset | None]]:
    """The rows of the λ–S map: uniform in log₂ S (:data:`app.state.LOG2_S`), each the column
    of ``results`` (one per S of :data:`app.state.S_VALUES`) at its nearest S (None if that
    S is not among ``results``)."""
    by_s = {int(ds.attrs["batch_size"]): ds for ds in results}
    return LOG2_S, [by_s.get(int(S)) for S in np.round(2.0**LOG2_S).astype(int)]


def s_map_view(results: list[xr.Dataset] | None, mu_for_s: float) -> dict:
    """The λ–S map of ``results`` (:meth:`PhaseParams.s_map_tasks`; None: not computed
    yet)."""
    if not results:
        return {"columns": {"phases-s-image": {c: [] for c in S_COLUMNS},
                            **{f"phases-s-{k}": _no_lines() for k in BOUNDARIES}},
                "titles": {"phases-fig-s": f"λ–S phase diagram (μ = {mu_for_s:g}): computing…"}}
    y, rows = s_rows(results)
    lr = results[0].lr.values
    x = np.log10(lr)
    nan = np.full(lr.size, np.nan)

    def stack(fn):
        return np.stack([fn(ds) if ds is not None else nan for ds in rows])

    hover = {c: stack(lambda ds, v=v: ds[v].values[:, 0]) for v, c in LAMBDA_COLUMNS.items()}
    columns = {"phases-s-image": _image_columns(
        x, y, stack(lambda ds: codes(ds.phase.values[:, 0])),
        eta=np.broadcast_to(lr[None, :], (y.size, lr.size)),
        S=stack(lambda ds: np.full(lr.size, float(ds.attrs["batch_size"]))), **hover)}
    for key, (var, level, _, _) in BOUNDARIES.items():
        z = stack(lambda ds, v=var: ds[v].values[:, 0].astype(float))
        columns[f"phases-s-{key}"] = contour_lines(x, y, finite(z), level)
    mu = float(results[0].mu.values[0])
    x0, x1 = _edges(x)
    return {"columns": columns,
            "titles": {"phases-fig-s": f"λ–S phase diagram (μ = {mu:g}, N = ∞)"},
            "props": {"phases-s-xrange": {"start": x0, "end": x1}}}


# -- the clicked cell's simulation ------------------------------------------------------------------
def sim_figure() -> figure:
    """log|w − u| and log|w + u| of :data:`SIM_RUNS` runs of the saddle SGD against the step."""
    p = new_figure("saddle SGD: computing…", PLOT_HEIGHT, name="phases-fig-sim",
                   x_axis_label="step", y_axis_label="log |·|")
    for key, label in (("minus", "log|w − u|"), ("plus", "log|w + u|")):
        src = ColumnDataSource(data=_no_lines(), name=f"phases-sim-{key}")
        p.line("x", "y", source=src, line_color=SIM_COLORS[key], line_alpha=0.5,
               legend_label=label)
    p.legend.location = "top_left"
    p.legend.label_text_font_size = "11px"
    return p


def cell_view(results: list[xr.Dataset] | None) -> dict:
    """The clicked cell: the simulated paths (one line per run, NaN between), labelled by the values they were computed for
    (the state may have moved on since), and the verdict (theory beside simulation) as HTML
    (id :data:`HTML_IDS`\\ ["cell"])."""
    if not results:
        return {"columns": {"phases-sim-minus": _no_lines(), "phases-sim-plus": _no_lines()},
                "titles": {"phases-fig-sim": "saddle SGD: computing…"},
                "html": {HTML_IDS["cell"]: "<p>Theory and simulation of the clicked cell: "
                                           "computing…</p>"}}
    sim, th = results
    lr, mu, S = float(sim.attrs["lr"]), float(sim.attrs["mu"]), int(sim.attrs["batch_size"])
    steps = sim.step.values.astype(float)
    columns = {}
    for key, var in (("minus", "log_m"), ("plus", "log_h")):
        ys = finite(np.log(SIM_START[key]) + sim[var].values[:SIM_RUNS])
        columns[f"phases-sim-{key}"] = joined([(steps, run) for run in ys])
    return {"columns": columns,
            "titles": {"phases-fig-sim": f"saddle SGD at η = {lr:.3g}, μ = {mu:.3f}, S = {S}"},
            "html": {HTML_IDS["cell"]: verdict_html(sim, th)}}


_CELL = "padding:0.3em 0.6em;border:1px solid #ccc;text-align:left"


def verdict_html(sim: xr.Dataset, th: xr.Dataset) -> str:
    """The theory's phase and a table of Λ± (theory ± error; the simulation's empirical
    exponents ± error; the share of runs that shrink), with a link to live trajectories."""
    lr, S = float(sim.attrs["lr"]), int(sim.attrs["batch_size"])
    rows = []
    for var, emp in (("lyap_minus", sim.exp_minus.values), ("lyap_plus", sim.exp_plus.values)):
        t, e = float(th[var].values.ravel()[0]), float(th[var + "_se"].values.ravel()[0])
        cells = (LAMBDA_LABELS[var], f"{t:+.4f} ± {e:.1e}",
                 f"{emp.mean():+.4f} ± {emp.std() / np.sqrt(emp.size):.1e}",
                 f"{100 * np.mean(emp < 0):.0f} %")
        rows.append("<tr>" + "".join(f'<td style="{_CELL}">{_html.escape(c)}</td>'
                                     for c in cells) + "</tr>")
    runs, steps = sim.sizes["trajectory"], sim.sizes["step"]
    head = ("", "theory", f"simulation ({runs} runs × {steps} steps)", "runs that shrink")
    phase = str(th.phase.values.ravel()[0])
    link = "?" + urlencode({"page": "trajectories", "lr": round(lr, 6), "batch_size": S})
    return (f"<p><b>Theory: phase {_html.escape(phase)}</b> — "
            f"{_html.escape(MEANING.get(phase, ''))}. "
            f'<a href="{_html.escape(link)}">▶ η = {lr:.3g}, S = {S} in live trajectories</a></p>'
            f'<table style="border-collapse:collapse;width:100%">'
            "<tr>" + "".join(f'<th style="{_CELL}">{_html.escape(h)}</th>' for h in head)
            + "</tr>" + "".join(rows) + "</table>")


# -- Fig. 2 right ---------------------------------------------------------------------------------
def fig2_figure() -> figure:
    """Λ of Π(I − ηĤ_t) against η (log axis) with 95 % error bars, Λ = 0 (grey dashed) and a
    dotted red line at every sign change of Λ (``phases-fig2-cross``)."""
    p = new_figure("Fig. 2 right: computing…", PLOT_HEIGHT, name="phases-fig-fig2",
                   x_axis_type="log", x_axis_label="η (λ)", y_axis_label="Λ")
    curve = ColumnDataSource(data={"lr": [], "lyapunov": [], "lower": [], "upper": []},
                             name="phases-fig2-curve")
    p.line("lr", "lyapunov", source=curve, color="black", line_width=2)
    p.add_layout(Whisker(source=curve, base="lr", lower="lower", upper="upper",
                         line_color="black"))
    p.add_layout(Span(location=0, dimension="width", line_color="#888", line_dash="dashed"))
    cross = ColumnDataSource(data={"x": []}, name="phases-fig2-cross")
    p.vspan(x="x", source=cross, line_color="#d62728", line_dash="dotted", line_width=2)
    return p


def sign_changes(lr: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Where Λ changes sign between neighbouring η (both finite): their geometric means."""
    lr, sign = np.asarray(lr, float), np.sign(np.asarray(lam, float))
    i = np.flatnonzero(sign[:-1] * sign[1:] < 0)
    return np.sqrt(lr[i] * lr[i + 1])


def fig2_view(ds: xr.Dataset | None) -> dict:
    """Fig. 2 right from ``ds`` (:meth:`PhaseParams.fig2_task`; None: not computed yet)."""
    if ds is None:
        return {"columns": {"phases-fig2-curve": {"lr": [], "lyapunov": [], "lower": [],
                                                  "upper": []},
                            "phases-fig2-cross": {"x": []}},
                "titles": {"phases-fig-fig2": "Fig. 2 right: computing…"}}
    lr, lam, se = ds.lr.values, finite(ds.lyapunov.values), finite(ds.lyapunov_se.values)
    return {"columns": {"phases-fig2-curve": {"lr": lr, "lyapunov": lam,
                                              "lower": lam - 1.96 * se, "upper": lam + 1.96 * se},
                        "phases-fig2-cross": {"x": sign_changes(lr, lam)}},
            # short: fits 440 px
            "titles": {"phases-fig-fig2": "Fig. 2 right: Λ of Π(I − ηĤ_t); dotted: Λ = 0"}}

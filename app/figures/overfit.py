"""The overfitting page's figures, defined once (paper 001 §4, Fig. 3; MATH.md §2): plain Bokeh
models fed from the runs' Datasets (:func:`app.state.overfit_run`), for the Panel page
(:mod:`app.pages.overfit`, ``pn.pane.Bokeh``) and the class mode (the same columns as JSON).

Four figures (:func:`figures`, keyed as below, each named ``overfit-fig-<key>``):

``curves``
    L (training) and R (generalisation) against the step, log–log, with the stretches of the
    solid run's stages shaded (grey plateau, green near-optimal, red overfitting).
``w``, ``v``
    The orbits in the (w1, w2) and (v1, v2) planes with the singular region (dark grey; dotted:
    the embedding of the one-neuron fit O₁ = (w°, v°), w_i = ±w° and v1 + v2 = ±v°), the
    optimal region (light grey lines for T = 2 tanh x, points Θ* for paper 000's teacher), a
    dot at each run's start and a red star at the refined overfitting point.
``count``
    How many eigenvalues of the Hessian of L are positive along each path.

Runs have fixed slots (:data:`MAX_RUNS`): slot 0 is the run at τ (solid), slot 1 its τ = 0
twin on the same inputs (dashed), as :meth:`app.state.OverfitParams.tasks` orders them; an
unused slot's sources are empty. Everything a view changes is named (sources
``overfit-<key>-<layer>``, ranges ``overfit-<key>-x-range`` / ``-y-range``):

=================================  ======================================================
source                             columns
=================================  ======================================================
``overfit-curves-stages``          ``x0, x1, color, stage``: one row per stretch (VStrip)
``overfit-curves-L<k>``            ``step, error, label``: L of the run in slot k
``overfit-curves-R<k>``            ``step, error, label``: R of the run in slot k
``overfit-<w|v>-path<k>``          ``x, y, step``: the orbit of slot k (finite records)
``overfit-<w|v>-start<k>``         ``x, y``: its first point
``overfit-<w|v>-end``              ``x, y``: the refined overfitting point (slot 0 only)
``overfit-<w|v>-o1``               ``x0, y0, x1, y1``: w_i = ±w° / v1 + v2 = ±v° (dotted)
``overfit-<w|v>-optimal-lines``    ``x0, y0, x1, y1``: the optimal region (T = 2 tanh x)
``overfit-<w|v>-optimal-points``   ``x, y``: Θ* (paper 000's teacher)
``overfit-count-n<k>``             ``step, count``: positive Hessian eigenvalues, slot k
=================================  ======================================================

Views (:func:`view`, :data:`VIEWS`): ``"runs"`` draws the results of the page's computation
of that name (:func:`app.state.computations`), ``"regions"`` the optimal region of the
teacher (instant: no computation). Text beside the plots goes to the HTML elements
:data:`HTML_IDS`.
"""

from __future__ import annotations

import html

import numpy as np
import xarray as xr
from bokeh.core.properties import field
from bokeh.models import (ColumnDataSource, HoverTool, Legend, LegendItem, Range1d, Slope,
                          Span)
from bokeh.plotting import figure

from engine import overfit

from . import finite, new_figure

MAX_RUNS = 2  # the run at τ and its τ = 0 twin (OverfitParams.tasks)
STAGE_COLORS = {1: "#9e9e9e", 2: "#8fd18f", 3: "#f3a6a6"}  # plateau, near-optimal, overfitting
NOISY, CLEAN = "#1f77b4", "#ff7f0e"  # L of slot 0 and 1 (the orbits and counts too)
R_COLORS = ("#d62728", "#e8a0a0")  # R of slot 0 and 1
DASHES = ("solid", "dashed")
RUN_COLORS = (NOISY, CLEAN)
DARK = dict(line_color="#555", line_width=1.5)  # the singular region
LIGHT = dict(line_color="#bbb", line_width=4)  # the optimal region
REACH = 100.0  # half-length of the region lines: past any window
ORBIT_LIM = (2.5, 6.0)  # the orbits' half-width: at least, at most
CURVE_FLOOR = 1e-12  # the learning curves' lowest y limit
DEFAULT_YLIM = (1e-5, 5.0)  # the learning curves' y range before any run
PLANES = {"w": ((0, 1), ("w1", "w2")), "v": ((2, 3), ("v1", "v2"))}

#: the HTML elements a view fills (element id: what it holds)
HTML_IDS = {
    "overfit-summary": "one paragraph per run: R's minimum, the end values, the stages seen, the "
                       "refined end point and its Hessian (view 'runs')",
    "overfit-stage-key": "what the shading of the learning curves means (view 'runs')",
    "overfit-hessian-note": "the Hessian count against paper 001's (view 'runs')",
    "overfit-region-key": "the lines and points of the orbits (view 'regions')",
}

#: view name: the OverfitParams fields its drawing reads (besides the results)
VIEWS: dict[str, tuple[str, ...]] = {
    "runs": ("label_noise", "dataset", "n_data", "n_steps"),  # labels; the step axis' end
    "regions": ("teacher", "dataset"),  # the teacher's optimal region
}

CURVE_COLUMNS = ("step", "error", "label")
STAGE_COLUMNS = ("x0", "x1", "color", "stage")
SEGMENT_COLUMNS = ("x0", "y0", "x1", "y1")


def _empty(columns) -> dict:
    return {c: [] for c in columns}


def _range(name: str, start: float, end: float) -> Range1d:
    return Range1d(start, end, reset_start=start, reset_end=end, name=name)


def _range_props(start: float, end: float) -> dict:
    """A range's attributes: a reset (the toolbar's) goes back to the data's window too."""
    return {"start": float(start), "end": float(end), "reset_start": float(start),
            "reset_end": float(end)}


# -- the figures -----------------------------------------------------------------------------------
def curves_figure() -> figure:
    """L and R of every run against the step (log–log) over the shaded stages of slot 0."""
    p = new_figure("learning curves: L (training), R (generalisation)", 360,
                   name="overfit-fig-curves", x_axis_type="log", y_axis_type="log",
                   x_range=_range("overfit-curves-x-range", 1.0, 1.5 * 2e6),
                   y_range=_range("overfit-curves-y-range", *DEFAULT_YLIM),
                   x_axis_label="step", y_axis_label="error")
    stages = ColumnDataSource(_empty(STAGE_COLUMNS), name="overfit-curves-stages")
    strips = p.vstrip(x0="x0", x1="x1", source=stages, fill_color="color", fill_alpha=0.25,
                      line_alpha=0)
    lines = []
    for k in range(MAX_RUNS):
        for q, color in (("L", RUN_COLORS[k]), ("R", R_COLORS[k])):
            src = ColumnDataSource(_empty(CURVE_COLUMNS), name=f"overfit-curves-{q}{k}")
            lines.append(p.line("step", "error", source=src, line_color=color, line_width=2,
                                line_dash=DASHES[k]))
    # each line's label is its source's (one value): an empty slot has no entry
    legend = Legend(items=[LegendItem(label=field("label"), renderers=[r]) for r in lines],
                    location="bottom_left", label_text_font_size="11px", click_policy="hide")
    p.add_layout(legend)
    p.add_tools(HoverTool(renderers=lines, tooltips=[("", "@label"), ("step", "@step{0,0}"),
                                                     ("error", "@error{0.000e}")]))
    p.add_tools(HoverTool(renderers=[strips], tooltips=[("stage", "@stage")]))
    return p


def orbit_figure(key: str) -> figure:
    """The orbits in the (w1, w2) (``key`` "w") or (v1, v2) plane ("v") over the regions."""
    (_, _), (a, b) = PLANES[key]
    lim = ORBIT_LIM[0]
    p = new_figure(f"orbit in the ({a}, {b}) plane", 330, name=f"overfit-fig-{key}",
                   x_range=_range(f"overfit-{key}-x-range", -lim, lim),
                   y_range=_range(f"overfit-{key}-y-range", -lim, lim),
                   x_axis_label=a, y_axis_label=b)
    # the singular region: f ≡ 0 (w1 = w2 = 0, w1 = ±w2; v1 = −v2) and the axes
    for gradient in ((1, -1) if key == "w" else (-1,)):
        p.add_layout(Slope(gradient=gradient, y_intercept=0, **DARK))
    for dimension in ("width", "height"):
        p.add_layout(Span(location=0, dimension=dimension, **DARK))
    o1 = ColumnDataSource(_empty(SEGMENT_COLUMNS), name=f"overfit-{key}-o1")
    p.segment("x0", "y0", "x1", "y1", source=o1, line_dash="dotted", **DARK)
    lines = ColumnDataSource(_empty(SEGMENT_COLUMNS), name=f"overfit-{key}-optimal-lines")
    p.segment("x0", "y0", "x1", "y1", source=lines, **LIGHT)
    points = ColumnDataSource(_empty(("x", "y")), name=f"overfit-{key}-optimal-points")
    p.scatter("x", "y", source=points, size=14, color="#bbb")
    paths = []
    for k in reversed(range(MAX_RUNS)):  # the run at τ on top
        path = ColumnDataSource(_empty(("x", "y", "step")), name=f"overfit-{key}-path{k}")
        paths.append(p.line("x", "y", source=path, line_color=RUN_COLORS[k], line_width=2,
                            line_dash=DASHES[k]))
        start = ColumnDataSource(_empty(("x", "y")), name=f"overfit-{key}-start{k}")
        p.scatter("x", "y", source=start, size=7, marker="circle", color=RUN_COLORS[k])
    end = ColumnDataSource(_empty(("x", "y")), name=f"overfit-{key}-end")
    p.scatter("x", "y", source=end, marker="star", size=18, color="#d62728")
    p.add_tools(HoverTool(renderers=paths, tooltips=[("step", "@step{0,0}"),
                                                     (f"({a}, {b})", "(@x{0.000}, @y{0.000})")]))
    return p


def count_figure() -> figure:
    """The number of positive eigenvalues of the Hessian of L along each path (log step)."""
    p = new_figure("Hessian of L: number of positive eigenvalues along the path", 220,
                   name="overfit-fig-count", x_axis_type="log",
                   x_range=_range("overfit-count-x-range", 1.0, 1.5 * 2e6),
                   y_range=Range1d(-0.2, 4.3), x_axis_label="step",
                   y_axis_label="positive eigenvalues")
    for k in range(MAX_RUNS):
        src = ColumnDataSource(_empty(("step", "count")), name=f"overfit-count-n{k}")
        p.step("step", "count", source=src, mode="after", line_color=RUN_COLORS[k],
               line_width=2, line_dash=DASHES[k])
    return p


def figures() -> dict[str, figure]:
    """Every figure of the page by key (``curves``, ``w``, ``v``, ``count``), all sources
    empty: apply :func:`view` ("regions" and "runs") to draw."""
    return {"curves": curves_figure(), "w": orbit_figure("w"), "v": orbit_figure("v"),
            "count": count_figure()}


# -- what the figures show -------------------------------------------------------------------------
def stretches(steps: np.ndarray, stage: np.ndarray) -> list[tuple[int, int, int]]:
    """(first step, last step, code) of each run of equal non-zero stage codes."""
    out, start = [], 0
    for i in range(1, stage.size + 1):
        if i == stage.size or stage[i] != stage[start]:
            if stage[start] != 0:
                out.append((int(steps[start]), int(steps[i - 1]), int(stage[start])))
            start = i
    return out


def run_label(slot: int, state) -> str:
    """"τ = 0.2" (slot 0), "τ ≈ 0.2 (released)" for the released dataset, "τ = 0" (slot 1)."""
    if slot == 1:
        return "τ = 0"
    if state.dataset == "released":
        return "τ ≈ 0.2 (released)"
    return f"τ = {state.label_noise:g}"


def teacher_of(state) -> str:
    """The teacher the runs learn: the released dataset's is 2 tanh x."""
    return state.teacher if state.dataset == "generated" else "2tanh"


def one_neuron_fit(ds: xr.Dataset | None) -> np.ndarray | None:
    """O₁ = (w°, v°) of a run (:func:`engine.overfit.annotate`), None before it is known (a
    streamed partial run)."""
    if ds is None or "one_neuron_optimum" not in ds.attrs:
        return None
    return np.asarray(ds.attrs["one_neuron_optimum"], dtype=float).ravel()[:2]


def o1_segments(key: str, o1: np.ndarray | None) -> dict:
    """The embedding of O₁ projected on a plane: w1 = ±w° and w2 = ±w° ("w"),
    v1 + v2 = ±v° ("v")."""
    if o1 is None:
        return _empty(SEGMENT_COLUMNS)
    r = REACH
    if key == "w":
        w = float(o1[0])
        seg = [(c, -r, c, r) for c in (w, -w)] + [(-r, c, r, c) for c in (w, -w)]
    else:
        v = float(o1[1])
        seg = [(-r, c + r, r, c - r) for c in (v, -v)]
    return dict(zip(SEGMENT_COLUMNS, np.array(seg, dtype=float).T))


def optimal_region(key: str, teacher: str) -> tuple[dict, dict]:
    """(lines, points) of the optimal region {R = 0} on a plane. T = 2 tanh x: w_i = ±1;
    v1 + v2 = ±2 and v_i = ±2 (lines). Paper 000's teacher: its eight points Θ*."""
    r = REACH
    if teacher == "paper000":
        (i, j), _ = PLANES[key]
        pts = overfit.OPTIMAL_POINTS
        return _empty(SEGMENT_COLUMNS), {"x": pts[:, i].astype(float), "y": pts[:, j].astype(float)}
    c = (1.0, -1.0) if key == "w" else (2.0, -2.0)
    seg = [(x, -r, x, r) for x in c] + [(-r, y, r, y) for y in c]
    if key == "v":
        seg += [(-r, s + r, r, s - r) for s in c]
    return dict(zip(SEGMENT_COLUMNS, np.array(seg, dtype=float).T)), _empty(("x", "y"))


def curve_columns(ds: xr.Dataset, slot: int, label: str) -> dict[str, dict]:
    """L and R of one run at its records from step 1 on (the log axis; NaN after a
    divergence breaks the line)."""
    st = ds.step.values
    keep = st >= 1
    n = int(keep.sum())
    step = st[keep].astype(float)
    return {f"overfit-curves-L{slot}": {"step": step, "error": finite(ds.train_error.values[keep]),
                                        "label": [f"L, {label}"] * n},
            f"overfit-curves-R{slot}": {"step": step,
                                        "error": finite(ds.generalization_error.values[keep]),
                                        "label": [f"R, {label}"] * n}}


def stage_columns(ds: xr.Dataset | None) -> dict:
    """One strip per stretch of equal non-zero stage codes of ``ds`` (step 0 drawn at 1)."""
    if ds is None or "stage" not in ds:
        return _empty(STAGE_COLUMNS)
    rows = stretches(ds.step.values, ds.stage.values)
    return {"x0": np.array([max(a, 1) for a, _, _ in rows], dtype=float),
            "x1": np.array([max(b, 1) for _, b, _ in rows], dtype=float),
            "color": [STAGE_COLORS[c] for _, _, c in rows],
            "stage": [overfit.STAGES[c] for _, _, c in rows]}


def orbit_columns(ds: xr.Dataset, slot: int, key: str) -> dict[str, dict]:
    """The orbit of one run on a plane (its finite records), its start, and — slot 0, when
    the run ends in the overfitting stage — the refined overfitting point."""
    (i, j), _ = PLANES[key]
    th = ds.theta.values
    ok = np.all(np.isfinite(th), axis=1)
    out = {f"overfit-{key}-path{slot}": {"x": th[ok, i], "y": th[ok, j],
                                         "step": ds.step.values[ok].astype(float)},
           f"overfit-{key}-start{slot}": {"x": th[ok, i][:1], "y": th[ok, j][:1]}}
    if slot == 0:
        ref = ds.attrs.get("refined_theta")
        ends_overfitting = "stage" in ds and ds.sizes["step"] and int(ds.stage.values[-1]) == 3
        out[f"overfit-{key}-end"] = (
            {"x": [float(np.ravel(ref)[i])], "y": [float(np.ravel(ref)[j])]}
            if ref is not None and ends_overfitting else _empty(("x", "y")))
    return out


def count_columns(ds: xr.Dataset, slot: int) -> dict:
    """The positive Hessian eigenvalues of one run (records from step 1 with a Hessian)."""
    if "n_positive" not in ds:
        return {"step": [], "count": []}
    st, n = ds.step.values, ds.n_positive.values
    keep = (st >= 1) & (n >= 0)
    return {"step": st[keep].astype(float), "count": n[keep].astype(float)}


def orbit_limit(runs: list[xr.Dataset], key: str) -> float:
    """Half-width of a plane's window: 15 % past the farthest point of every orbit, within
    :data:`ORBIT_LIM`."""
    (i, j), _ = PLANES[key]
    lim = ORBIT_LIM[0]
    for ds in runs:
        th = ds.theta.values
        ok = np.all(np.isfinite(th), axis=1)
        if ok.any():
            lim = max(lim, 1.15 * float(np.max(np.abs(th[ok][:, [i, j]]))))
    return min(lim, ORBIT_LIM[1])


def curve_ylim(runs: list[xr.Dataset]) -> tuple[float, float]:
    """The learning curves' y range: a third of the smallest positive L or R up to 5."""
    lows = []
    for ds in runs:
        for var in (ds.train_error.values, ds.generalization_error.values):
            pos = var[np.isfinite(var) & (var > 0)]
            lows.append(float(pos.min()) if pos.size else 1.0)
    if not lows:
        return DEFAULT_YLIM
    return max(min(lows) / 3, CURVE_FLOOR), DEFAULT_YLIM[1]


# -- the text beside the plots ---------------------------------------------------------------------
def _e(text) -> str:
    return html.escape(str(text), quote=False)


def run_summary(ds: xr.Dataset, label: str) -> str:
    """One run's paragraph (HTML): running, diverged, or R's minimum, the end values, the
    stages seen and the refined end point with its Hessian eigenvalues."""
    a = ds.attrs
    head = f"<b>{_e(label)}</b>: "
    if a.get("partial"):
        return f"<p>{head}running… {int(a['n_steps']):,} steps so far.</p>"
    if int(a.get("diverged_at", -1)) >= 0:
        return (f"<p>{head}diverged at step {int(a['diverged_at']):,} — η is too large for this "
                "landscape (the curves stop there).</p>")
    R = ds.generalization_error.values
    k = int(np.nanargmin(R))
    parts = [f"R is smallest ({R[k]:.3g}) at step {int(ds.step[k]):,}; at the end "
             f"L = {ds.train_error.values[-1]:.4g}, R = {R[-1]:.3g}."]
    seen = {int(s) for s in ds.stage.values} if "stage" in ds else set()
    names = [overfit.STAGES[c] for c in (1, 2, 3) if c in seen]
    if names:
        parts.append("Stages seen: " + ", ".join(names) + ".")
    if "refined_theta" in a:
        th = overfit.canonical(np.asarray(a["refined_theta"], dtype=float))
        ev = np.asarray(a["refined_eigenvalues"], dtype=float)
        kind = ("an attractor (all 4 eigenvalues > 0)" if np.all(ev > 1e-9 * ev.max())
                else f"not a strict minimum ({int(overfit.positive_count(ev))} positive)")
        parts.append(
            f"End point refined (Levenberg–Marquardt + Newton): w = ({th[0]:.6f}, "
            f"{th[1]:.6f}), v = ({th[2]:.6f}, {th[3]:.6f}), |∇L| = "
            f"{float(a['refined_grad_norm']):.1e}, Hessian eigenvalues "
            f"{', '.join(f'{e:.3g}' for e in ev)}: {kind}.")
    return f"<p>{head}{_e(' '.join(parts))}</p>"


def _swatch(color: str) -> str:
    return (f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{color};'
            'vertical-align:-0.1em;border:1px solid #0002"></span>')


STAGE_KEY = ("<p>Shading (solid run): " + ", ".join(
    f"{_swatch(STAGE_COLORS[c])} {name}" for c, name in
    ((1, "plateau (near the singular region)"), (2, "near-optimal"), (3, "overfitting")))
    + ".</p>")
HESSIAN_NOTE = ("<p>Paper 001 counts 1 positive eigenvalue near the optimal region; on the "
                "region itself the Hessian is exactly rank 2 for τ = 0, and that is what the "
                "count shows.</p>")


def region_key(teacher: str) -> str:
    optimal = ("light points = the optimal points Θ* of the teacher" if teacher == "paper000"
               else "light = optimal region")
    return ("<p>Grey lines in the orbits: dark = singular region (dotted: the embedding of the "
            f"one-neuron fit O₁), {optimal}; a dot marks each run's start, the red star the "
            "refined overfitting point.</p>")


# -- views -----------------------------------------------------------------------------------------
def view(what: str, results: list[xr.Dataset] | None, states: dict) -> dict:
    """The view ``what`` (a key of :data:`VIEWS`) of ``results`` for ``states`` =
    ``{"state": OverfitParams}``, in :func:`app.figures.apply_view`'s format.

    ``"runs"``: ``results`` are the runs computed so far in task order (the last one may be a
    streamed partial run); None or [] empties every run's sources and text. ``"regions"``:
    the optimal region of the state's teacher (``results`` unused)."""
    state = states["state"]
    if what == "regions":
        teacher = teacher_of(state)
        out = {}
        for key in PLANES:
            lines, points = optimal_region(key, teacher)
            out[f"overfit-{key}-optimal-lines"] = lines
            out[f"overfit-{key}-optimal-points"] = points
        return {"columns": out, "html": {"overfit-region-key": region_key(teacher)}}
    if what != "runs":
        raise ValueError(f"unknown view {what!r}; the overfitting page has {', '.join(VIEWS)}")
    runs = list(results or [])[:MAX_RUNS]
    main = runs[0] if runs else None
    cols: dict[str, dict] = {"overfit-curves-stages": stage_columns(main)}
    for key in PLANES:
        cols[f"overfit-{key}-o1"] = o1_segments(key, one_neuron_fit(main))
        cols[f"overfit-{key}-end"] = _empty(("x", "y"))
    summaries = []
    for k in range(MAX_RUNS):
        if k < len(runs):
            ds, label = runs[k], run_label(k, state)
            cols |= curve_columns(ds, k, label)
            for key in PLANES:
                cols |= orbit_columns(ds, k, key)
            cols[f"overfit-count-n{k}"] = count_columns(ds, k)
            summaries.append(run_summary(ds, label))
        else:
            cols[f"overfit-curves-L{k}"] = cols[f"overfit-curves-R{k}"] = _empty(CURVE_COLUMNS)
            for key in PLANES:
                cols[f"overfit-{key}-path{k}"] = _empty(("x", "y", "step"))
                cols[f"overfit-{key}-start{k}"] = _empty(("x", "y"))
            cols[f"overfit-count-n{k}"] = {"step": [], "count": []}
    T = state.capped_steps()[0]
    props = {"overfit-curves-x-range": _range_props(1, 1.5 * T),
             "overfit-count-x-range": _range_props(1, 1.5 * T),
             "overfit-curves-y-range": _range_props(*curve_ylim(runs))}
    for key in PLANES:
        lim = orbit_limit(runs, key)
        props[f"overfit-{key}-x-range"] = _range_props(-lim, lim)
        props[f"overfit-{key}-y-range"] = _range_props(-lim, lim)
    return {"columns": cols, "props": props,
            "html": {"overfit-summary": "".join(summaries),
                     "overfit-stage-key": STAGE_KEY if runs else "",
                     "overfit-hessian-note": HESSIAN_NOTE if runs else ""}}

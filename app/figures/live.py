"""The live-trajectories figures, defined once: plain Bokeh models fed from the run's Dataset.

Two functions per plot: ``*_figure()`` builds the Bokeh figure with one named
``ColumnDataSource`` per layer, and :func:`live_columns` turns the run's Dataset
(:meth:`app.state.TrajectoryRun.to_dataset`) into the columns of every source. The Panel page
wraps the figures in ``pn.pane.Bokeh`` and sets ``source.data`` on each frame; the class mode
(:mod:`app.classmode`) builds them once per process and its JSON API sends the same columns to
every browser, which sets them on the sources found by name. No plot is written twice.

Sources are named ``live-<figure>-<layer>`` (a page holds one of each).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Slope, Text
from bokeh.palettes import Category20_20, Greys256
from bokeh.plotting import figure

from engine import fa
from engine.pullback import nearest_mwv_point

from . import finite, new_figure, set_columns  # noqa: F401 (set_columns: re-exported)

TAIL = 120  # recorded points drawn per trajectory in the parameter planes
FLOOR = 1e-16  # log axes: exact zeros are drawn at this value
W_COLOR, V_COLOR = "#d62728", "#1f77b4"  # paper 000 Fig. 4: w red, v blue
EVENT_COLOR = "#ff7f0e"
OPTIMAL_LABEL = "optimal set Θ*"  # one legend entry for the lines and the points of either teacher
REACH = 100.0  # half-length of the optimal-set lines: far past any window a student zooms to
PLANES = {"w": ((0, 1), ("w1", "w2"), (-5.0, 5.0)), "v": ((2, 3), ("v1", "v2"), (-3.0, 3.0))}
WHERE_TEXT = ("**Where am I?** Each orange dot is a trajectory's nearest point on the "
              "degenerate subspace M_wv (w1 = w2, v1 = v2, or its mirror copy w1 = −w2, "
              "v1 = −v2: the same network), drawn on the stability page's map "
              "of π, the fraction of inputs for which that point attracts (paper 000, Fig. 3 "
              "right; dark = attracting). Hover a dot for its distance to M_wv: dots that "
              "settle in the dark region near the red valley curve C with a shrinking distance "
              "are being trapped by the noise.")
_figure = new_figure


def _legend_above(p) -> None:
    """The legend in one row above the plot: inside, it covered data (the optimal points at
    (−1, 4), the loss curves) on a 420-px plot."""
    legend = p.legend[0]
    legend.orientation = "horizontal"
    legend.click_policy = "hide"
    legend.label_text_font_size = "11px"
    legend.glyph_width = legend.glyph_height = 14
    legend.padding = legend.margin = 2
    legend.spacing = 10
    legend.border_line_alpha = 0
    p.add_layout(legend, "above")


def _step_axis(p) -> None:
    """The step axis from step 1: at least a decade more than the data (labels 10^0, 10^1, …),
    where a range under one decade labelled 1000, 1500 and 2000 on top of each other."""
    p.x_range.start = 1


def _source(name: str, **columns) -> ColumnDataSource:
    return ColumnDataSource(data={k: np.asarray(v, dtype=float) for k, v in columns.items()},
                            name=name)


def trajectory_mapper() -> LinearColorMapper:
    """Trajectory ``k`` (a float column holding ``k mod 20``) drawn in Category20's k-th colour."""
    return LinearColorMapper(palette=list(Category20_20), low=-0.5, high=19.5)


def optimal_lines(teacher: str, ij: tuple[int, int]) -> np.ndarray:
    """Segments (x0, y0, x1, y1) of the optimal set's lines on a plane (none for paper 000).

    Paper-000 teacher: the eight points Θ* of eq. (9), no lines. Paper-001 teacher 2tanh(x): a
    set — w1 = w2 = ±1 with v1 + v2 = ±2, w1 = −w2 = ±1 with v1 − v2 = ±2, or one neuron at
    (±1, ±2) with the other silent — drawn as its lines w_i = ±1 and v1 ± v2 = ±2, v_i = ±2."""
    if teacher == "paper000":
        return np.empty((0, 4))
    r = REACH
    if ij == (0, 1):  # w_i = ±1
        return np.array([(c, -r, c, r) for c in (-1, 1)] + [(-r, c, r, c) for c in (-1, 1)], float)
    # v1 + v2 = ±2, v1 − v2 = ±2, v_i = ±2
    return np.array([(-r, c + r, r, c - r) for c in (-2, 2)] + [(-r, -r - c, r, r - c) for c in (-2, 2)]
                    + [(c, -r, c, r) for c in (-2, 2)] + [(-r, c, r, c) for c in (-2, 2)], float)


def optimal_points(teacher: str, ij: tuple[int, int]) -> np.ndarray:
    """The isolated optimal points on a plane: Θ* of paper 000 eq. (9); none for 2tanh."""
    return fa.OPTIMAL_POINTS[:, list(ij)] if teacher == "paper000" else np.empty((0, 2))


# -- the (w1, w2) and (v1, v2) planes ------------------------------------------------------------
def plane_figure(key: str) -> figure:
    """(θ_i, θ_j) plane: diagonal, optimal set, fading tails and the trajectories' heads."""
    ij, labels, lim = PLANES[key]
    p = _figure(f"({labels[0]}, {labels[1]}) plane", 320, x_range=lim, y_range=lim,
                x_axis_label=labels[0], y_axis_label=labels[1])
    p.add_layout(Slope(gradient=1, y_intercept=0, line_color="#888", line_dash="dashed"))
    cmap = trajectory_mapper()
    lines = _source(f"live-{key}-optimal-lines", x0=[], y0=[], x1=[], y1=[])
    points = _source(f"live-{key}-optimal-points", x=[], y=[])
    seg = _source(f"live-{key}-segments", x0=[], y0=[], x1=[], y1=[], color=[], fade=[])
    heads = _source(f"live-{key}-heads", **{labels[0]: [], labels[1]: [], "color": []})
    p.segment("x0", "y0", "x1", "y1", source=lines, line_color="#9a9a9a", line_width=2,
              line_dash="dotted", legend_label=OPTIMAL_LABEL)
    p.scatter("x", "y", source=points, marker="diamond", size=11, fill_color="#9a9a9a",
              line_color="#555", legend_label=OPTIMAL_LABEL)
    p.segment("x0", "y0", "x1", "y1", source=seg, line_width=2, line_alpha="fade",
              line_color={"field": "color", "transform": cmap})
    r = p.scatter(labels[0], labels[1], source=heads, size=8, line_color="white",
                  fill_color={"field": "color", "transform": cmap})
    p.add_tools(HoverTool(renderers=[r], tooltips=[("trajectory", "@color{0}"),
                                                   (labels[0], f"@{labels[0]}{{0.000}}"),
                                                   (labels[1], f"@{labels[1]}{{0.000}}")]))
    _legend_above(p)
    return p


def plane_columns(theta: np.ndarray, key: str, teacher: str, tail: int = TAIL) -> dict[str, dict]:
    """The plane's columns from θ recorded per (trajectory, step): the last ``tail`` records of
    each trajectory as segments whose opacity grows with their age (0.08 → 1), the last finite
    point of each as its head, and the optimal set of ``teacher``."""
    ij, labels, _ = PLANES[key]
    i, j = ij
    n = theta.shape[0]
    pts = finite(theta[:, -tail:, :])
    k = pts.shape[1]
    x0, y0 = pts[:, :-1, i], pts[:, :-1, j]
    x1, y1 = pts[:, 1:, i], pts[:, 1:, j]
    age = np.broadcast_to(0.08 + 0.92 * (np.arange(1, k) / max(k - 1, 1)) ** 2, x0.shape)
    traj = np.broadcast_to(np.arange(n, dtype=float)[:, None] % 20, x0.shape)
    ok = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
    last = np.full((n, 2), np.nan)
    good = np.isfinite(pts[:, :, i]) & np.isfinite(pts[:, :, j])
    has = good.any(axis=1)
    idx = k - 1 - np.argmax(good[:, ::-1], axis=1)  # the last finite record of each trajectory
    last[has] = np.stack([pts[has, idx[has], i], pts[has, idx[has], j]], axis=1)
    lines, points = optimal_lines(teacher, ij), optimal_points(teacher, ij)
    return {
        f"live-{key}-segments": {"x0": x0[ok], "y0": y0[ok], "x1": x1[ok], "y1": y1[ok],
                                 "color": traj[ok], "fade": age[ok]},
        f"live-{key}-heads": {labels[0]: last[:, 0], labels[1]: last[:, 1],
                              "color": np.arange(n, dtype=float) % 20},
        f"live-{key}-optimal-lines": dict(zip(("x0", "y0", "x1", "y1"), lines.T)),
        f"live-{key}-optimal-points": {"x": points[:, 0], "y": points[:, 1]},
    }


# -- the loss and the distance to M_wv against the step ------------------------------------------
DISPLAY_RECORDS = 240  # records per trajectory drawn on a log step axis


def display_records(steps: np.ndarray, k: int = DISPLAY_RECORDS) -> np.ndarray:
    """Indices of the records drawn on a log step axis: those at steps > 0, thinned to at most
    about ``k`` spread evenly in log(step), the last one always kept. The run keeps up to 1200
    records evenly in steps, most of them in its last decade, where a 420-px plot cannot
    separate them; every frame sent them all to every browser (up to 0.3 MB a frame)."""
    idx = np.flatnonzero(steps > 0)
    if idx.size <= k:
        return idx
    s = steps[idx].astype(float)
    pos = np.searchsorted(s, np.geomspace(s[0], s[-1], k))
    return idx[np.unique(np.append(np.clip(pos, 0, idx.size - 1), idx.size - 1))]


def polylines(steps: np.ndarray, values: np.ndarray,
              keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All trajectories as one polyline with NaN breaks (one cheap Bokeh line, not one per
    trajectory) through the records ``keep`` (by default those at steps > 0: the log axis)."""
    keep = np.flatnonzero(steps > 0) if keep is None else keep
    n, k = values.shape[0], len(keep)
    x = np.full((n, k + 1), np.nan)
    y = np.full((n, k + 1), np.nan)
    x[:, :k] = steps[keep]
    y[:, :k] = values[:, keep]
    return x.ravel(), y.ravel()


def loss_figure() -> figure:
    """The expected loss E[½(f − T)²] of every trajectory (grey), their median (black), the
    training loss on a fixed dataset (green) and dotted lines where η or τ changed."""
    p = _figure("expected loss E[½(f − T)²]", 320, x_axis_type="log", y_axis_type="log",
                x_axis_label="step", y_axis_label="loss")
    lines = _source("live-loss-lines", x=[], y=[])
    train = _source("live-loss-train", x=[], y=[])
    median = _source("live-loss-median", x=[], y=[])
    events = _source("live-loss-events", x=[])
    p.line("x", "y", source=lines, line_color="#555", line_alpha=0.35, legend_label="expected loss")
    p.line("x", "y", source=train, line_color="#2ca02c", line_alpha=0.5)  # named in the title
    r = p.line("x", "y", source=median, line_color="black", line_width=3, legend_label="median")
    p.vspan(x="x", source=events, line_color=EVENT_COLOR, line_dash="dotted", line_width=2)
    p.add_tools(HoverTool(renderers=[r], tooltips=[("step", "@x{0,0}"), ("median loss", "@y{0.000e}")]))
    _legend_above(p)
    _step_axis(p)
    return p


def degeneration_figure() -> figure:
    """|w1 − w2| (red) and |v1 − v2| (blue) against the step: the distance to M_wv."""
    p = _figure("distance to M_wv", 320, x_axis_type="log",
                y_axis_type="log", x_axis_label="step", y_axis_label="|w1 − w2|, |v1 − v2|")
    w = _source("live-deg-w", x=[], y=[])
    v = _source("live-deg-v", x=[], y=[])
    events = _source("live-deg-events", x=[])
    p.line("x", "y", source=w, line_color=W_COLOR, line_alpha=0.45, legend_label="|w1 − w2|")
    p.line("x", "y", source=v, line_color=V_COLOR, line_alpha=0.45, legend_label="|v1 − v2|")
    p.vspan(x="x", source=events, line_color=EVENT_COLOR, line_dash="dotted", line_width=2)
    _legend_above(p)
    _step_axis(p)
    return p


def _event_columns(ds: xr.Dataset) -> dict:
    return {"x": np.array([max(int(s), 1) for s, _ in ds.attrs.get("events", [])], dtype=float)}


def loss_columns(ds: xr.Dataset) -> dict[str, dict]:
    """Columns of :func:`loss_figure` at the :func:`display_records` (zeros drawn at ``FLOOR``
    on the log axis); the median is over the trajectories at each of those records."""
    steps = ds.step.values
    keep = display_records(steps)
    loss = np.maximum(finite(ds.loss.values), FLOOR)
    med = np.full(len(keep), np.nan)
    sub = loss[:, keep]
    if sub.shape[0] and not np.isnan(sub).any():
        med = np.median(sub, axis=0)  # (nanmedian costs 6× more; NaN only after a blow-up)
    elif sub.shape[0]:
        with warnings.catch_warnings():  # a step where every trajectory diverged has no median
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(sub, axis=0)
    x, y = polylines(steps, loss, keep)
    out = {"live-loss-lines": {"x": x, "y": y},
           "live-loss-median": {"x": steps[keep].astype(float), "y": med},
           "live-loss-events": _event_columns(ds)}
    if "train_loss" in ds:
        tx, ty = polylines(steps, np.maximum(finite(ds.train_loss.values), FLOOR), keep)
        out["live-loss-train"] = {"x": tx, "y": ty}
    else:
        out["live-loss-train"] = {"x": np.empty(0), "y": np.empty(0)}
    return out


def degeneration_columns(ds: xr.Dataset) -> dict[str, dict]:
    """Columns of :func:`degeneration_figure` at the :func:`display_records`."""
    steps, th = ds.step.values, finite(ds.theta.values)
    keep = display_records(steps)
    r = np.maximum(np.abs(th[:, :, 0] - th[:, :, 1]), FLOOR)
    s = np.maximum(np.abs(th[:, :, 2] - th[:, :, 3]), FLOOR)
    (wx, wy), (vx, vy) = polylines(steps, r, keep), polylines(steps, s, keep)
    return {"live-deg-w": {"x": wx, "y": wy}, "live-deg-v": {"x": vx, "y": vy},
            "live-deg-events": _event_columns(ds)}


# -- "where am I": the trajectories' nearest points of M_wv on the stability page's π map ---------
def where_figure() -> figure:
    """π = P[μ+ ≤ 0] over M_wv (paper 000 eq. 38, Fig. 3 right), its valley curve C and each
    trajectory's nearest point of M_wv (:func:`engine.pullback.nearest_mwv_point`)."""
    p = _figure("where am I on M_wv", 340, x_range=(0, 2), y_range=(0, 2), x_axis_label="w",
                y_axis_label="v")
    mapper = LinearColorMapper(palette=list(reversed(Greys256)), low=0, high=1, nan_color=(0, 0, 0, 0))
    image = ColumnDataSource(data={"image": [np.full((2, 2), np.nan)], "x": [0.0], "y": [0.0],
                                   "dw": [2.0], "dh": [2.0]}, name="live-where-image")
    valley = _source("live-where-valley", x=[], y=[])
    points = _source("live-where-points", w=[], v=[], distance=[])
    note = ColumnDataSource(data={"x": [1.0], "y": [1.0], "text": ["computing the π map…"]},
                            name="live-where-note")
    p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=image, color_mapper=mapper)
    p.add_layout(ColorBar(color_mapper=mapper, title="π = P[μ+ ≤ 0]", width=10), "right")
    p.line("x", "y", source=valley, line_color=W_COLOR, line_width=2, legend_label="valley C")
    r = p.scatter("w", "v", source=points, size=9, fill_color="#ff7f0e", line_color="black",
                  legend_label="trajectories (projected)")
    p.add_glyph(note, Text(x="x", y="y", text="text", text_align="center", text_color="#555",
                           text_font_size="12px"))
    p.add_tools(HoverTool(renderers=[r], tooltips=[("w", "@w{0.000}"), ("v", "@v{0.000}"),
                                                   ("distance to M_wv", "@distance{0.000e}")]))
    _legend_above(p)
    return p


def where_columns(ds: xr.Dataset) -> dict[str, dict]:
    """Each running trajectory's nearest point of M_wv (of the nearer copy, folded to w ≥ 0)."""
    theta = ds.theta.values[:, -1, :] if ds.sizes["step"] else np.empty((0, 4))
    t = theta[np.all(np.isfinite(theta), axis=1)]
    w, v, dist = nearest_mwv_point(t)
    return {"live-where-points": {"w": w, "v": v, "distance": dist}}


def pi_columns(pi: xr.Dataset | None, teacher: str = "paper000") -> tuple[dict[str, dict], str]:
    """(columns, title) of the π map and its valley curve: ``pi`` is the stability page's
    π-map Dataset, or None while it is computed (or for another teacher, which has none). What
    is missing is said in the plot (its note): the map, or the valley curve C when it lies
    outside the window [0, 2]² (as at σ² = 0.1, where v* < 0)."""
    if pi is None:
        other = teacher != "paper000"
        text = "π map: paper 000 teacher only" if other else "computing the π map…"
        cols = {"live-where-image": {"image": [np.full((2, 2), np.nan)], "x": [0.0], "y": [0.0],
                                     "dw": [2.0], "dh": [2.0]},
                "live-where-valley": {"x": np.empty(0), "y": np.empty(0)},
                "live-where-note": {"x": [1.0], "y": [1.0], "text": [text]}}
        return cols, "where am I on M_wv"
    w, v = pi.w.values, pi.v.values
    valley = pi.valley.values
    ok = (valley >= 0) & (valley <= 2)
    dw, dh = (w[-1] - w[0]) * len(w) / max(len(w) - 1, 1), (v[-1] - v[0]) * len(v) / max(len(v) - 1, 1)
    note = "" if ok.any() else "valley C: outside this window"
    cols = {"live-where-image": {"image": [finite(pi.pi_small_lr.values.T)],
                                 "x": [float(w[0] - dw / len(w) / 2)],
                                 "y": [float(v[0] - dh / len(v) / 2)], "dw": [float(dw)], "dh": [float(dh)]},
            "live-where-valley": {"x": w[ok], "y": valley[ok]},
            "live-where-note": {"x": [1.0], "y": [1.9], "text": [note]}}
    return cols, f"where am I — π map, σ² = {float(pi.attrs['sigma2']):.3g}"


# -- everything at once ---------------------------------------------------------------------------
def live_figures() -> dict[str, figure]:
    """The page's five figures, by the keys the pages lay them out with."""
    figures = {"w": plane_figure("w"), "v": plane_figure("v"), "loss": loss_figure(),
               "deg": degeneration_figure(), "where": where_figure()}
    for key, fig in figures.items():
        fig.name = f"live-fig-{key}"  # the class mode's browser code finds a figure by it
    return figures


def live_columns(ds: xr.Dataset) -> dict[str, dict]:
    """Every source's columns (but the π map's, :func:`pi_columns`) for the run ``ds``."""
    teacher = str(ds.attrs.get("teacher", "paper000"))
    out = {}
    for key in PLANES:
        out |= plane_columns(ds.theta.values, key, teacher)
    out |= loss_columns(ds) | degeneration_columns(ds) | where_columns(ds)
    return out


def loss_title(ds: xr.Dataset) -> str:
    return ("loss: expected (grey), training (green)" if "train_loss" in ds
            else "expected loss E[½(f − T)²]")



"""The stability page's figures, defined once: plain Bokeh models fed from the engine's Datasets
(see :mod:`app.figures.live` for the pattern: ``*_figure()`` builds a figure whose layers are
named ``ColumnDataSource`` s, ``*_columns()`` turns a Dataset into their columns; the Panel page
wraps the figure in ``pn.pane.Bokeh``, the class mode will send the same columns as JSON).

μ±(x) at a point of M_wv (Fig. 3 left, :func:`mu_figure`), the map of π, its finite-η version
or λ over M_wv with the valley curve C (Fig. 3 right, :func:`map_figure`), and the pullback
cloud of paper 000 Fig. 4 — the 10⁵ paths rasterised with datashader
(the (w1, w2) projection red, (v1, v2) blue), the optimal points Θ*, the diagonals, and a
ring at each cluster of trapped paths (:func:`trapped_clusters`) with its share. Sources are
named ``stab-<figure>-<layer>``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from bokeh.models import (ColorBar, ColumnDataSource, DataRange1d, HoverTool, Legend, LegendItem,
                          LinearAxis, LinearColorMapper, Slope, Span, TapTool)
from bokeh.palettes import Greys256, RdBu11
from bokeh.plotting import figure

from engine import fa, stability

from . import finite, new_figure

W_COLOR, V_COLOR = "#d62728", "#1f77b4"  # paper 000 Fig. 4: w red, v blue
CLOUD_RANGE = (-5.0, 5.0)  # the window of Fig. 4 (both axes)
RASTER = 600  # pixels per side of the cloud's raster
CLUSTER_RADIUS = 0.25  # trapped paths within this (in θ = (w1, w2, v1, v2)) of a centre: one cluster
MIN_SHARE = 0.01  # clusters holding less than this share of all paths get no ring
MAX_CLUSTERS = 8
PROJECTIONS = (("w", (0, 1), W_COLOR, "(w1, w2)"), ("v", (2, 3), V_COLOR, "(v1, v2)"))
RING_COLUMNS = ("θ1", "θ2", "share", "paths", "spread", "size", "note", "label")


def trapped_clusters(cloud: np.ndarray, trapped: np.ndarray, radius: float = CLUSTER_RADIUS,
                     min_share: float = MIN_SHARE, max_clusters: int = MAX_CLUSTERS):
    """Where the trapped paths of a pullback cloud sit: ``(centres (k, 4), counts (k,),
    spreads (k,))``, largest cluster first.

    ``cloud`` is (path, 4), ``trapped`` a boolean mask over its paths. Synchronised paths sit on
    one point of M_wv and its symmetric images (MATH.md §1, "Symmetries"), so the clusters are
    found by a greedy mean shift: start at the densest cell of a grid of side ``radius``, move
    to the mean of the trapped paths within ``radius`` until it settles, take them out, and
    repeat while a cluster holds at least ``min_share`` of all paths. The spread is the RMS
    distance of a cluster's paths to its centre.
    """
    cloud = np.asarray(cloud, dtype=float)
    rest = cloud[np.asarray(trapped, bool) & np.all(np.isfinite(cloud), axis=1)]
    centres, counts, spreads = [], [], []
    while rest.shape[0] and len(centres) < max_clusters:
        _, cell, per_cell = np.unique(np.floor(rest / radius), axis=0, return_inverse=True,
                                      return_counts=True)
        centre = rest[cell.ravel() == np.argmax(per_cell)].mean(axis=0)
        for _ in range(20):
            inside = np.linalg.norm(rest - centre, axis=1) < radius
            moved = rest[inside].mean(axis=0)
            if np.allclose(moved, centre, rtol=0, atol=1e-9):
                break
            centre = moved
        inside = np.linalg.norm(rest - centre, axis=1) < radius
        if inside.sum() < min_share * cloud.shape[0]:
            break
        centres.append(centre)
        counts.append(int(inside.sum()))
        spreads.append(float(np.sqrt(np.mean(np.sum((rest[inside] - centre) ** 2, axis=1)))))
        rest = rest[~inside]
    return np.reshape(centres, (-1, 4)), np.array(counts, dtype=int), np.array(spreads)


def cloud_figure() -> figure:
    """The pullback cloud at time 0 (paper 000 Fig. 4) on [−5, 5]²: the raster of both
    projections, Θ*, the diagonals w1 = ±w2 (v1 = ±v2) and the rings of the trapped clusters
    (hover: their share and centre)."""
    p = new_figure("pullback cloud at time 0: (w1, w2) red, (v1, v2) blue", 440,
                   x_range=CLOUD_RANGE, y_range=CLOUD_RANGE, x_axis_label="w1 (red), v1 (blue)",
                   y_axis_label="w2 (red), v2 (blue)", name="stab-fig-cloud")
    image = ColumnDataSource(data=_cloud_image(None), name="stab-cloud-image")
    p.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=image)
    for gradient in (1, -1):
        p.add_layout(Slope(gradient=gradient, y_intercept=0, line_color="#555",
                           line_dash="dashed"))
    rings = []
    for key, cols, color, name in PROJECTIONS:
        theta = fa.OPTIMAL_POINTS[:, list(cols)]
        p.scatter(theta[:, 0], theta[:, 1], marker="diamond", size=9,
                  color="#777" if key == "w" else "#bbb", legend_label=f"Θ* {name}")
        src = ColumnDataSource(data={c: [] for c in RING_COLUMNS}, name=f"stab-cloud-rings-{key}")
        rings.append(p.scatter("θ1", "θ2", source=src, size="size", marker="circle",
                               fill_color=color, fill_alpha=0.3, line_color="black",
                               line_width=2.5, line_dash="dashed", legend_label=f"trapped {name}"))
        # the share inside its ring: beside it, it would fall on a neighbouring ring at some zoom
        p.text("θ1", "θ2", text="label", source=src, text_color="black",
               text_font_size="8pt", text_font_style="bold", text_align="center",
               text_baseline="middle")
    p.add_tools(HoverTool(renderers=rings, tooltips=[
        ("", "@note"), ("centre", "(@{θ1}{0.000}, @{θ2}{0.000})")]))
    p.legend.location = "top_left"
    p.legend.click_policy = "hide"
    p.legend.label_text_font_size = "11px"
    return p


def cloud_raster(cloud: np.ndarray, size: int = RASTER) -> np.ndarray:
    """The cloud's two projections drawn by datashader on [−5, 5]² (``size`` pixels a side):
    an RGBA image as Bokeh's ``image_rgba`` takes it ((size, size) uint32, row 0 at the
    bottom), each projection in its colour, points spread so that single paths stay visible."""
    import datashader as dsh
    import datashader.transfer_functions as tf
    import pandas as pd

    c = finite(cloud)
    canvas = dsh.Canvas(plot_width=size, plot_height=size, x_range=CLOUD_RANGE,
                        y_range=CLOUD_RANGE)
    images = []
    for _, (i, j), color, _ in PROJECTIONS:
        frame = pd.DataFrame({"x": c[:, i], "y": c[:, j]}).dropna()
        agg = canvas.points(frame, "x", "y")
        images.append(tf.dynspread(tf.shade(agg, cmap=[color], min_alpha=80), threshold=0.6))
    return np.asarray(tf.stack(*images).data, dtype=np.uint32)


def ring_columns(ds: xr.Dataset, trapped_distance: float) -> dict[str, dict]:
    """The rings' columns: one per cluster of trapped paths (distance to M_wv below
    ``trapped_distance``), per projection, area ∝ share (the synchronised paths of Fig. 4 sit
    on one point, which the raster draws about a pixel wide; the paper circles it)."""
    distance = ds.distance.values
    centres, counts, spreads = trapped_clusters(ds.cloud.values, distance < trapped_distance)
    share = 100.0 * counts / max(distance.size, 1)
    size = 12 + 4 * np.sqrt(share)  # px, area growing with the share: 16 at 1 %, 52 at 100 %
    note = [f"{s:.1f} % of the paths synchronised here" if sp < 0.01 else
            f"{s:.1f} % of the paths gathered here (spread {sp:.2g})"
            for s, sp in zip(share, spreads)]
    out = {}
    for key, (i, j), _, _ in PROJECTIONS:
        out[f"stab-cloud-rings-{key}"] = {
            "θ1": centres[:, i], "θ2": centres[:, j], "share": share,
            "paths": counts.astype(float), "spread": spreads, "size": size, "note": note,
            "label": [f"{s:.0f}%" for s in share]}
    return out


def _cloud_image(raster: np.ndarray | None) -> dict:
    """The raster's source columns: the whole window [−5, 5]² (a transparent pixel for none)."""
    image = np.zeros((1, 1), dtype=np.uint32) if raster is None else raster
    return {"image": [image], "x": [CLOUD_RANGE[0]], "y": [CLOUD_RANGE[0]],
            "dw": [np.ptp(CLOUD_RANGE)], "dh": [np.ptp(CLOUD_RANGE)]}


def cloud_columns(ds: xr.Dataset | None, trapped_distance: float) -> dict[str, dict]:
    """Every source of :func:`cloud_figure` for the cloud ``ds`` (None: empty)."""
    if ds is None:
        return {"stab-cloud-image": _cloud_image(None),
                **{f"stab-cloud-rings-{k}": {c: [] for c in RING_COLUMNS} for k, *_ in PROJECTIONS}}
    return {"stab-cloud-image": _cloud_image(cloud_raster(ds.cloud.values)),
            **ring_columns(ds, trapped_distance)}


# -- μ±(x) at a point of M_wv (paper 000 Fig. 3 left) ---------------------------------------------
def mu_figure() -> figure:
    """μ+(x) and μ−(x) at the chosen (w, v) against the input x, with the input density ρ(x)
    on its own axis (right) and the line μ = 0: where μ+ ≤ 0 a sample pulls SGD towards the
    point (paper 000 eq. 38)."""
    p = new_figure("μ±(x)", 340, name="stab-fig-mu", x_axis_label="x", y_axis_label="μ")
    src = ColumnDataSource(data={c: [] for c in ("x", "mu_plus", "mu_minus", "rho")},
                           name="stab-mu-curves")
    p.extra_y_ranges = {"rho": DataRange1d(start=0)}
    area = p.varea("x", y1=0, y2="rho", source=src, fill_color="#999", fill_alpha=0.25,
                   legend_label="ρ(x)", y_range_name="rho")
    p.extra_y_ranges["rho"].renderers = [area]
    p.add_layout(LinearAxis(y_range_name="rho", axis_label="ρ(x)"), "right")
    p.y_range = DataRange1d(renderers=[])  # fitted to the μ curves below
    plus = p.line("x", "mu_plus", source=src, color=W_COLOR, line_width=2, legend_label="μ+")
    minus = p.line("x", "mu_minus", source=src, color=V_COLOR, line_width=2, legend_label="μ−")
    p.y_range.renderers = [plus, minus]
    p.add_layout(Span(location=0, dimension="width", line_color="#888", line_dash="dashed"))
    p.legend.location = "bottom_right"
    p.legend.label_text_font_size = "11px"
    return p


def mu_columns(w: float, v: float, sigma2: float) -> tuple[dict[str, dict], str]:
    """μ±(x) (:func:`engine.stability.mu_pm`, a closed form) on |x| ≤ max(4, 4σ) and the
    Gaussian input density; and the figure's title."""
    half = max(4.0, 4.0 * np.sqrt(sigma2))
    x = np.linspace(-half, half, 801)
    lo, hi = stability.mu_pm(x, w, v)
    rho = np.exp(-x * x / (2 * sigma2)) / np.sqrt(2 * np.pi * sigma2)
    return ({"stab-mu-curves": {"x": x, "mu_plus": finite(hi), "mu_minus": finite(lo),
                                "rho": rho}},
            f"μ±(x; w = {w:.2f}, v = {v:.2f}), σ² = {sigma2:g}")


# -- the map over M_wv (paper 000 Fig. 3 right) ---------------------------------------------------
MAP_LABELS = {"pi_small_lr": "π = P[μ+ ≤ 0]", "pi_finite_lr": "P[|1 + ημ±| < 1]",
              "lyapunov": "λ (per step)"}
MAP_VALUES = ("pi_small_lr", "pi_finite_lr", "lyapunov", "lyapunov_se", "mu_plus_mean",
              "mu_minus_mean")


def map_figure() -> figure:
    """π, its finite-η version or λ over (w, v) ∈ [0, 2]² with the valley curve C and the
    chosen point (an orange ×); hover gives every value of the cell. Click: see
    the Panel page's tap callback."""
    p = new_figure("where M_wv attracts (click to pick (w, v))", 340, name="stab-fig-map",
                x_range=(0, 2), y_range=(0, 2), x_axis_label="w", y_axis_label="v")
    p.add_tools(TapTool())
    mapper = LinearColorMapper(palette=list(reversed(Greys256)), low=0, high=1,
                               nan_color="rgba(0, 0, 0, 0)", name="stab-map-mapper")
    image = ColumnDataSource(data=map_columns(None, "pi_small_lr")[0]["stab-map-image"],
                             name="stab-map-image")
    img = p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=image,
                  color_mapper=mapper)
    p.add_tools(HoverTool(renderers=[img], tooltips=[("(w, v)", "($x{0.000}, $y{0.000})")] + [
        (MAP_LABELS.get(v, v), f"@{v}{{0.000}}") for v in MAP_VALUES[:3]]))
    bar = ColorBar(color_mapper=mapper, title=MAP_LABELS["pi_small_lr"], name="stab-map-bar",
                   width=10)
    p.add_layout(bar, "right")
    valley = ColumnDataSource(data={"w": [], "v": []}, name="stab-map-valley")
    line = p.line("w", "v", source=valley, color=W_COLOR, line_width=2,
                  name="stab-map-valley-line")
    marker = ColumnDataSource(data={"w": [0.5], "v": [0.5]}, name="stab-map-marker")
    p.scatter("w", "v", source=marker, marker="x", size=14, line_width=3, color="#ff7f0e")
    p.add_layout(Legend(items=[LegendItem(label="valley C", renderers=[line],
                                          name="stab-map-valley-item")],
                        location="top_right", label_text_font_size="11px"))
    return p


def map_columns(data: xr.Dataset | None, color_by: str) -> tuple[dict[str, dict], dict]:
    """The map's image (``color_by``, or the first map the Dataset has: the π map comes
    first), the valley curve C in the window, and the colour mapper's and bar's settings."""
    if data is None:
        return ({"stab-map-image": {"image": [np.full((1, 1), np.nan)], "x": [0.0], "y": [0.0],
                                    "dw": [2.0], "dh": [2.0],
                                    **{v: [np.full((1, 1), np.nan)] for v in MAP_VALUES}},
                 "stab-map-valley": {"w": [], "v": []}},
                {"legend": "valley C: not computed yet", **_mapper(color_by, None)})
    var = color_by if color_by in data else next(v for v in MAP_LABELS if v in data)
    w, v = data.w.values, data.v.values
    dw, dh = w[1] - w[0], v[1] - v[0]
    arrays = {name: [finite(data[name].values.T)] if name in data else
              [np.full((v.size, w.size), np.nan)] for name in MAP_VALUES}
    valley = data.valley.values
    ok = (valley >= 0) & (valley <= 2)
    return ({"stab-map-image": {"image": arrays[var], "x": [w[0] - dw / 2], "y": [v[0] - dh / 2],
                                "dw": [w[-1] - w[0] + dw], "dh": [v[-1] - v[0] + dh], **arrays},
             "stab-map-valley": {"w": w[ok], "v": valley[ok]}},
            {"legend": "valley C" if ok.any() else "valley C: outside this window",
             **_mapper(var, arrays[var][0])})


def _mapper(var: str, values) -> dict:
    """The colours of a map: white → black over 0 … 1 for the probabilities, red → blue
    symmetric about 0 for λ."""
    if var == "lyapunov":
        lim = float(np.nanmax(np.abs(values))) if values is not None and np.isfinite(values).any() else 1.0
        # red below 0 (contracting), blue above: the page's colours since its first version
        return {"palette": list(reversed(RdBu11)), "low": -(lim or 1.0), "high": lim or 1.0,
                "title": MAP_LABELS[var]}
    return {"palette": list(reversed(Greys256)), "low": 0.0, "high": 1.0,
            "title": MAP_LABELS.get(var, var)}


def map_props(settings: dict) -> dict:
    """The models a map's settings change, by name: the mapper's palette and limits, the colour
    bar's title and the valley's legend (a view's ``props``)."""
    return {"stab-map-mapper": {k: settings[k] for k in ("palette", "low", "high")},
            "stab-map-bar": {"title": settings["title"]},
            "stab-map-valley-item": {"label": {"value": settings["legend"]}}}


# -- the page's views (app.figures.apply_view): what the Panel page and the class mode draw -------
#: each view's name -> the fields its drawing reads besides its computation's inputs; "maps",
#: "cloud" and "point" draw the computations of app.state.computations("stability", …), "mu"
#: is a closed form
VIEWS = {"maps": ("color_by",), "cloud": ("trapped_distance",), "point": ("w0", "v0"),
         "mu": ("w0", "v0", "sigma2")}
#: a click on the map picks (w, v): the figure's name -> the fields its x and y set
TAPS = {"stab-fig-map": ("w0", "v0")}
#: where a click may land: the fields' window (M_wv ∩ [0, 2]²)
TAP_BOUNDS = {"w0": (0.0, 2.0), "v0": (0.0, 2.0)}
#: the text beside the plots, by element id
HTML_IDS = ("stab-point", "stab-trapped")


def figures() -> dict:
    """Every figure of the stability page, by key (``mu``, ``map``, ``cloud``)."""
    return {"mu": mu_figure(), "map": map_figure(), "cloud": cloud_figure()}


def view(what: str, results: list | None, states: dict) -> dict:
    """The view ``what`` (:data:`VIEWS`) for the computation's ``results`` so far (None or []:
    not computed yet) and the page's ``states`` (``{"state": StabilityParams}``)."""
    s = states["state"]
    last = results[-1] if results else None
    if what == "maps":  # the π map as soon as it is in, then the full map replacing it
        columns, settings = map_columns(last, s.color_by)
        return {"columns": columns, "props": map_props(settings)}
    if what == "mu":
        columns, title = mu_columns(s.w0, s.v0, s.sigma2)
        return {"columns": {**columns, "stab-map-marker": {"w": [s.w0], "v": [s.v0]}},
                "titles": {"stab-fig-mu": title}}
    if what == "point":
        return {"html": {"stab-point": point_html(last, s)}}
    if what == "cloud":
        return {"columns": cloud_columns(last, s.trapped_distance),
                "html": {"stab-trapped": "" if last is None else trapped_html(last, s.trapped_distance)}}
    raise ValueError(f"the stability page has no view {what!r}; views: {', '.join(VIEWS)}")


def trapped_html(ds: xr.Dataset, trapped_distance: float) -> str:
    """"<b>45.9 %</b> of 100,000 paths trapped within 0.1 of M_wv at τ_pb = 30,000"."""
    d = ds.distance.values
    frac = float(np.mean(d < trapped_distance))
    return (f"<b id='trapped-fraction'>{100 * frac:.1f} %</b> of {d.size:,} paths trapped within "
            f"{trapped_distance:g} of M_wv at τ_pb = {int(ds.attrs['pullback_time']):,}"
            + (" (ringed on the cloud)" if frac > 0 else ""))


def point_html(ds: xr.Dataset | None, s) -> str:
    """The chosen point's π, finite-η π and λ from ``ds`` (:meth:`StabilityParams.point_task`;
    None: "computing…"), and a link that opens the live page near it."""
    from urllib.parse import urlencode

    link = "?" + urlencode({"page": "trajectories", "sigma2": s.sigma2, "lr": s.lr,
                            "start": "point", "w0": round(s.w0, 4), "v0": round(s.v0, 4),
                            "spread": 0.05, "steps_per_frame": 500})
    if ds is None:
        values = "π, P[|1 + ημ±| < 1] and λ: computing…"
    else:
        at = dict(w=0, v=0)
        p_small, p_eta = (float(ds[k].isel(at)) for k in ("pi_small_lr", "pi_finite_lr"))
        lam, se = float(ds.lyapunov.isel(at)), float(ds.lyapunov_se.isel(at))
        lam_txt = (f"{lam:.2e} ± {1.96 * se:.1e} (95 % CI, per step)"
                   if np.isfinite(lam) else "diverges (|1 + ημ| too large)")
        values = (f"π = {p_small:.3f}; P[|1 + ημ±| < 1] = {p_eta:.3f} at η = {s.lr:g}; "
                  f"λ = {lam_txt}")
    return (f"<b>(w, v) = ({s.w0:.3f}, {s.v0:.3f})</b> — {values}.<br>"
            f"<a href='{link.replace('&', '&amp;')}'>▶ Open in live trajectories, starting near "
            f"this point</a>")

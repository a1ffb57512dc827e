"""The stability page's figures, defined once: plain Bokeh models fed from the engine's Datasets
(see :mod:`app.figures.live` for the pattern: ``*_figure()`` builds a figure whose layers are
named ``ColumnDataSource`` s, ``*_columns()`` turns a Dataset into their columns; the Panel page
wraps the figure in ``pn.pane.Bokeh``, the class mode will send the same columns as JSON).

So far: the pullback cloud of paper 000 Fig. 4 — the 10⁵ paths rasterised with datashader
(the (w1, w2) projection red, (v1, v2) blue), the optimal points Θ*, the diagonals, and a
ring at each cluster of trapped paths (:func:`trapped_clusters`) with its share. Sources are
named ``stab-cloud-<layer>``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from bokeh.models import ColumnDataSource, HoverTool, Slope
from bokeh.plotting import figure

from engine import fa

from . import finite, scroll_friendly

W_COLOR, V_COLOR = "#d62728", "#1f77b4"  # paper 000 Fig. 4: w red, v blue
CLOUD_RANGE = (-5.0, 5.0)  # the window of Fig. 4 (both axes)
RASTER = 600  # pixels per side of the cloud's raster
CLUSTER_RADIUS = 0.25  # trapped paths within this (in θ = (w1, w2, v1, v2)) of a centre: one cluster
MIN_SHARE = 0.01  # clusters holding less than this share of all paths get no ring
MAX_CLUSTERS = 8
PROJECTIONS = (("w", (0, 1), W_COLOR, "(w1, w2)"), ("v", (2, 3), V_COLOR, "(v1, v2)"))
RING_COLUMNS = ("θ1", "θ2", "share", "paths", "spread", "size", "note", "label")
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


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
    p = figure(title="pullback cloud at time 0: (w1, w2) red, (v1, v2) blue", height=440,
               sizing_mode="stretch_width", x_range=CLOUD_RANGE, y_range=CLOUD_RANGE,
               tools=TOOLS, x_axis_label="w1 (red), v1 (blue)", y_axis_label="w2 (red), v2 (blue)",
               output_backend="canvas", name="stab-fig-cloud")
    p.toolbar.logo = None
    p.title.text_font_size = "13px"
    scroll_friendly(p)
    image = ColumnDataSource(data=dict(image=[np.zeros((1, 1), dtype=np.uint32)],
                                       x=[CLOUD_RANGE[0]], y=[CLOUD_RANGE[0]],
                                       dw=[np.ptp(CLOUD_RANGE)], dh=[np.ptp(CLOUD_RANGE)]),
                             name="stab-cloud-image")
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


def cloud_columns(ds: xr.Dataset | None, trapped_distance: float) -> dict[str, dict]:
    """Every source of :func:`cloud_figure` for the cloud ``ds`` (None: empty)."""
    if ds is None:
        empty = {c: [] for c in RING_COLUMNS}
        return {"stab-cloud-image": {"image": [np.zeros((1, 1), dtype=np.uint32)],
                                     "x": [CLOUD_RANGE[0]], "y": [CLOUD_RANGE[0]],
                                     "dw": [np.ptp(CLOUD_RANGE)], "dh": [np.ptp(CLOUD_RANGE)]},
                **{f"stab-cloud-rings-{k}": dict(empty) for k, *_ in PROJECTIONS}}
    return {"stab-cloud-image": {"image": [cloud_raster(ds.cloud.values)],
                                 "x": [CLOUD_RANGE[0]], "y": [CLOUD_RANGE[0]],
                                 "dw": [np.ptp(CLOUD_RANGE)], "dh": [np.ptp(CLOUD_RANGE)]},
            **ring_columns(ds, trapped_distance)}

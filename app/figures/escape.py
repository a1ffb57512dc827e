"""The escape page's figures, defined once: plain Bokeh models fed from the engine's Datasets
(the pattern of :mod:`app.figures.stability`; the Panel page wraps them in ``pn.pane.Bokeh``,
the class mode sends the same *views* as JSON — see :func:`app.figures.apply_view`).

Paper 000 Fig. 5 (:func:`curve_figure`, :func:`censored_figure`): the mean escape time τ*
against σ² on log–log axes with its 95 % band, the σ² whose trajectories hit the step cap as
upward triangles (their restricted mean is only a lower bound: never joined to the curve of
true means), the step cap and the minimum of the curve; below, the censored fraction.
Paper 003 Fig. 3 (:func:`passage_figure`, :func:`phi_figure`): the mean first-passage time t_p
against c = L/L* per dimension d with the theory slope B/(ηh*) + 1 − d/2, and the stationary
exponent φ against B per η with φ = 1 + B/(ηh*).

Names (every one unique; a *view* sets them):

* figures ``escape-fig-<key>``, keys ``curve``, ``censored``, ``passage``, ``phi``;
* sources ``escape-curve-band`` (σ², low, high), ``escape-curve-mean`` (σ², τ*, low, high,
  censored: the uncensored points), ``escape-curve-censored`` (σ², τ*, censored: the lower
  bounds), ``escape-curve-minimum`` (x, y, text: the minimum's label),
  ``escape-censored-fraction`` (σ², censored);
  per d of :data:`D_SLOTS` ``escape-passage-d<d>-points`` (c, t_p, low, high, label: the
  uncensored means with their 95 % error bars; ``label`` is the legend entry),
  ``escape-passage-d<d>-censored`` (c, t_p, label), ``escape-passage-d<d>-theory`` (c, t_p);
  per η of :data:`ETA_SLOTS` ``escape-phi-eta<η:g>-points`` (B, φ, low, high, label) and
  ``escape-phi-eta<η:g>-theory`` (B, φ) — a slot without results has empty columns;
* other models: the σ² range ``escape-sigma2-range`` (shared by both Fig. 5 plots, fixed),
  the ranges ``escape-curve-y``, ``escape-passage-x``, ``escape-passage-y``,
  ``escape-phi-x``, ``escape-phi-y`` (start, end, reset_start, reset_end), the spans
  ``escape-curve-cap``, ``escape-curve-min``, ``escape-passage-cap`` (location, visible);
* html (:data:`HTML_IDS`): ``escape-pl-summary``, the table of the power-law tab (the fitted
  slopes and φ against theory), set by the ``powerlaw`` view ("" before any result).

Views (:data:`VIEWS`, :func:`view`): ``curve`` and ``powerlaw``, the page's computations of
:func:`app.state.computations`, drawn from the results computed so far.
"""

from __future__ import annotations

import html

import numpy as np
import xarray as xr
from bokeh.models import (ColumnDataSource, HoverTool, Legend, LegendItem, NumeralTickFormatter,
                          Range1d, Span, TeeHead, Whisker)
from bokeh.plotting import figure

from engine import linreg

from ..state import PowerLawParams
from . import finite, new_figure

#: σ² of Fig. 5 run from 0.002 to 1 (:meth:`app.state.EscapeParams.sigma2_values`)
SIGMA2_RANGE = (0.0015, 1.4)
CURVE_COLOR, CENSORED_COLOR, MIN_COLOR, CAP_COLOR = "#1f77b4", "#d62728", "#2ca02c", "#888"
#: one t_p curve per d, one φ series per η: every value the page offers has its own slot (and
#: colour), empty when not computed
D_SLOTS: tuple[int, ...] = tuple(PowerLawParams.param.fp_dims.objects)
ETA_SLOTS: tuple[float, ...] = tuple(PowerLawParams.param.phi_lrs.objects)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f")
D_COLORS = dict(zip(D_SLOTS, _PALETTE))
#: the default η (0.1, 0.5, 1) blue, orange, green
ETA_COLORS = dict(zip(sorted(ETA_SLOTS, key=lambda v: (v not in (0.1, 0.5, 1.0), v)), _PALETTE))

CURVE_COLUMNS = ("σ²", "τ*", "low", "high", "censored")
PASSAGE_COLUMNS = ("c", "t_p", "low", "high", "label")
CENSORED_COLUMNS = ("c", "t_p", "label")
PHI_COLUMNS = ("B", "φ", "low", "high", "label")

#: for each view, the state fields its drawing reads (besides its computation's results)
VIEWS: dict[str, tuple[str, ...]] = {
    "curve": ("max_steps",),
    "powerlaw": ("fp_lr", "fp_batch_size", "fp_c_max", "fp_max_steps", "phi_lrs",
                 "phi_batches"),
}
#: the text beside the plots, by element id: the power-law tab's table
SUMMARY_ID = "escape-pl-summary"
HTML_IDS = (SUMMARY_ID,)


def _d_key(d) -> str:
    return f"escape-passage-d{int(d)}"


def _eta_key(lr) -> str:
    return f"escape-phi-eta{float(lr):g}"


def _empty(columns) -> dict:
    return {c: [] for c in columns}


def _range(name: str, start: float, end: float) -> Range1d:
    return Range1d(start=start, end=end, reset_start=start, reset_end=end, name=name)


def _range_props(start: float, end: float) -> dict:
    start, end = float(start), float(end)
    return {"start": start, "end": end, "reset_start": start, "reset_end": end}


def _whisker(p, src, base: str, color: str) -> None:
    """95 % error bars of ``src`` (columns low, high) at ``base``."""
    p.add_layout(Whisker(source=src, base=base, lower="low", upper="high", line_color=color,
                         upper_head=TeeHead(size=8, line_color=color),
                         lower_head=TeeHead(size=8, line_color=color)))


# -- paper 000, Fig. 5 ----------------------------------------------------------------------------
def curve_figure(x_range: Range1d | None = None) -> figure:
    """τ* against σ² (log–log): the 95 % band and the mean where nothing is censored, the
    lower bounds (red triangles) where something is, the step cap (dashed) and the minimum
    (dotted green)."""
    p = new_figure("escape time from M_wv (Fig. 5)", 380, name="escape-fig-curve",
                   x_axis_type="log", y_axis_type="log",
                   x_range=x_range or Range1d(*SIGMA2_RANGE),
                   y_range=_range("escape-curve-y", 10.0, 3.0e5),
                   x_axis_label="σ²", y_axis_label="mean escape time τ* (steps)")
    band = ColumnDataSource(data=_empty(("σ²", "low", "high")), name="escape-curve-band")
    area = p.varea("σ²", y1="low", y2="high", source=band, fill_color=CURVE_COLOR,
                   fill_alpha=0.25)
    mean = ColumnDataSource(data=_empty(CURVE_COLUMNS), name="escape-curve-mean")
    line = p.line("σ²", "τ*", source=mean, color=CURVE_COLOR, line_width=2)
    dots = p.scatter("σ²", "τ*", source=mean, color=CURVE_COLOR, size=7)
    cens = ColumnDataSource(data=_empty(CURVE_COLUMNS), name="escape-curve-censored")
    tri = p.scatter("σ²", "τ*", source=cens, marker="triangle", color=CENSORED_COLOR, size=10)
    p.add_layout(Span(location=1e5, dimension="width", line_color=CAP_COLOR, line_width=2,
                      line_dash="dashed", visible=False, name="escape-curve-cap"))
    p.add_layout(Span(location=0.07, dimension="height", line_color=MIN_COLOR, line_width=2,
                      line_dash="dotted", visible=False, name="escape-curve-min"))
    label = ColumnDataSource(data=_empty(("x", "y", "text")), name="escape-curve-minimum")
    p.text("x", "y", text="text", source=label, text_color=MIN_COLOR, text_font_size="12px",
           text_baseline="middle")
    p.add_tools(HoverTool(renderers=[dots], tooltips=[
        ("σ²", "@{σ²}{0.0000}"), ("τ*", "@{τ*}{0,0}"), ("95 % CI", "@low{0,0} … @high{0,0}")]))
    p.add_tools(HoverTool(renderers=[tri], tooltips=[
        ("σ²", "@{σ²}{0.0000}"), ("τ* ≥", "@{τ*}{0,0}"), ("censored", "@censored{0 %}")]))
    # bottom left: the top holds the censored points at the cap, the middle the minimum
    p.add_layout(_legend([LegendItem(label="95 % CI", renderers=[area]),
                          LegendItem(label="mean (nothing censored)", renderers=[line, dots]),
                          LegendItem(label="lower bound (censored)", renderers=[tri])],
                         "bottom_left"))
    # 20k, 100k, 1m: the range may span less than two decades, where a log axis's default
    # labels are 2.000e+5, 3.000e+5, …
    p.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
    return p


def censored_figure(x_range: Range1d | None = None) -> figure:
    """The fraction of trajectories still inside [−2, 2]² at the step cap, against σ²."""
    p = new_figure("fraction still inside at the step cap", 200, name="escape-fig-censored",
                   x_axis_type="log", x_range=x_range or Range1d(*SIGMA2_RANGE),
                   y_range=Range1d(0, 1.05), x_axis_label="σ²", y_axis_label="censored fraction")
    src = ColumnDataSource(data=_empty(("σ²", "censored")), name="escape-censored-fraction")
    p.line("σ²", "censored", source=src, color=CENSORED_COLOR, line_width=2)
    dots = p.scatter("σ²", "censored", source=src, color=CENSORED_COLOR, size=5)
    p.add_tools(HoverTool(renderers=[dots], tooltips=[("σ²", "@{σ²}{0.0000}"),
                                                      ("censored", "@censored{0.0 %}")]))
    return p


def curve_table(results: list[xr.Dataset] | None) -> xr.Dataset | None:
    """The Fig. 5 points computed so far (one Dataset per σ²) as one Dataset over σ²,
    sorted (None for none)."""
    if not results:
        return None
    return xr.concat(list(results), dim="sigma2").sortby("sigma2")


def curve_view(results: list[xr.Dataset] | None, state) -> dict:
    """The view of Fig. 5 for the points computed so far (``state``: the
    :class:`~app.state.EscapeParams`, for the step cap)."""
    cap = float(state.max_steps)
    ds = curve_table(results)
    if ds is None:
        return {"columns": {"escape-curve-band": _empty(("σ²", "low", "high")),
                            "escape-curve-mean": _empty(CURVE_COLUMNS),
                            "escape-curve-censored": _empty(CURVE_COLUMNS),
                            "escape-curve-minimum": _empty(("x", "y", "text")),
                            "escape-censored-fraction": _empty(("σ²", "censored"))},
                "props": {"escape-curve-y": _range_props(10.0, 3.0 * cap),
                          "escape-curve-cap": {"location": cap, "visible": False},
                          "escape-curve-min": {"visible": False}},
                "html": {}}
    s2, m = ds.sigma2.values.astype(float), finite(ds.mean_time.values)
    lo, hi = finite(ds.mean_ci_low.values), finite(ds.mean_ci_high.values)
    frac = finite(ds.censored_fraction.values)
    lb = ds.mean_is_lower_bound.values.astype(bool)
    exact = ~lb

    def points(mask):
        return {"σ²": s2[mask], "τ*": m[mask], "low": lo[mask], "high": hi[mask],
                "censored": frac[mask]}

    low_end = np.where(exact, lo, m)
    low_end = low_end[np.isfinite(low_end)]
    y0 = max(0.3 * float(low_end.min()), 1.0) if low_end.size else 10.0
    props = {"escape-curve-y": _range_props(y0, 3.0 * cap),
             "escape-curve-cap": {"location": cap, "visible": True},
             "escape-curve-min": {"visible": False}}
    minimum = _empty(("x", "y", "text"))
    candidates = exact & np.isfinite(m)
    if candidates.any():
        i = int(np.argmin(np.where(candidates, m, np.inf)))
        props["escape-curve-min"] = {"location": float(s2[i]), "visible": True}
        minimum = {"x": [float(s2[i])], "y": [max(float(m[i]) / 3, 1.0)],
                   "text": [f" minimum at σ² = {s2[i]:.3g}"]}
    return {"columns": {"escape-curve-band": {"σ²": s2[exact], "low": np.maximum(lo[exact], 1),
                                              "high": hi[exact]},
                        "escape-curve-mean": points(exact),
                        "escape-curve-censored": points(lb),
                        "escape-curve-minimum": minimum,
                        "escape-censored-fraction": {"σ²": s2, "censored": frac}},
            "props": props, "html": {}}


# -- paper 003, Fig. 3 ----------------------------------------------------------------------------
def passage_figure() -> figure:
    """Mean first-passage time t_p against c (log–log), one colour per d: the uncensored
    means with 95 % error bars, joined; lower bounds as triangles; the theory slope dashed
    through the points of the fit; the step cap dotted. Legend: the fitted slope against
    theory (a column of the points' source, so only computed d are listed)."""
    p = new_figure("first passage from θ* (Fig. 3b)", 380, name="escape-fig-passage",
                   x_axis_type="log", y_axis_type="log",
                   x_range=_range("escape-passage-x", 1.07, 2.06),
                   y_range=_range("escape-passage-y", 1.0, 3.0e6),
                   x_axis_label="c = L(θ_s) / L(θ*)",
                   y_axis_label="mean first-passage time t_p (steps)")
    hover, bounds, items = [], [], []
    for d in D_SLOTS:
        col, key = D_COLORS[d], _d_key(d)
        pts = ColumnDataSource(data=_empty(PASSAGE_COLUMNS), name=f"{key}-points")
        _whisker(p, pts, "c", col)
        line = p.line("c", "t_p", source=pts, color=col, line_width=2)
        dots = p.scatter("c", "t_p", source=pts, color=col, size=6)
        cens = ColumnDataSource(data=_empty(CENSORED_COLUMNS), name=f"{key}-censored")
        tri = p.scatter("c", "t_p", source=cens, color=col, marker="triangle", size=9)
        theory = ColumnDataSource(data=_empty(("c", "t_p")), name=f"{key}-theory")
        p.line("c", "t_p", source=theory, color=col, line_dash="dashed", line_width=1.5)
        # the label is a column: only the computed d are listed
        items.append(LegendItem(label={"field": "label"}, renderers=[line, dots]))
        hover.append(dots)
        bounds.append(tri)
    p.add_tools(HoverTool(renderers=hover, tooltips=[
        ("", "@label"), ("c", "@c{0.000}"), ("t_p", "@{t_p}{0,0}"),
        ("95 % CI", "@low{0,0} … @high{0,0}")]))
    p.add_tools(HoverTool(renderers=bounds, tooltips=[
        ("", "@label"), ("c", "@c{0.000}"), ("t_p ≥", "@{t_p}{0,0}")]))
    p.add_layout(Span(location=1e6, dimension="width", line_color=CAP_COLOR, line_width=2,
                      line_dash="dotted", visible=False, name="escape-passage-cap"))
    p.add_layout(_legend(items))
    return p


def _legend(items: list, location: str = "top_left") -> Legend:
    return Legend(items=items, location=location, label_text_font_size="11px")


def phi_figure() -> figure:
    """The stationary exponent φ against B (log y), one colour per η: the fitted φ with 95 %
    error bars and the theory 1 + B/(ηh*) dashed."""
    p = new_figure("stationary exponent (Fig. 3a); dashed: 1 + B/(ηh*)", 380,
                   name="escape-fig-phi", y_axis_type="log",
                   x_range=_range("escape-phi-x", 0.0, 11.0),
                   y_range=_range("escape-phi-y", 1.0, 100.0),
                   x_axis_label="B (batch size; d = 1, N = 10⁵)",
                   y_axis_label="exponent φ of P(θ) ∝ L(θ)^−φ")
    hover, items = [], []
    for lr in ETA_SLOTS:
        col, key = ETA_COLORS[lr], _eta_key(lr)
        theory = ColumnDataSource(data=_empty(("B", "φ")), name=f"{key}-theory")
        p.line("B", "φ", source=theory, color=col, line_dash="dashed", line_width=1.5)
        pts = ColumnDataSource(data=_empty(PHI_COLUMNS), name=f"{key}-points")
        _whisker(p, pts, "B", col)
        dots = p.scatter("B", "φ", source=pts, color=col, size=8)
        items.append(LegendItem(label={"field": "label"}, renderers=[dots]))
        hover.append(dots)
    p.add_tools(HoverTool(renderers=hover, tooltips=[
        ("", "@label"), ("B", "@B"), ("φ", "@{φ}{0.00}"), ("95 % CI", "@low{0.00} … @high{0.00}")]))
    p.add_layout(_legend(items))
    return p


def split_powerlaw(results: list[xr.Dataset] | None) -> tuple[list, list]:
    """The power-law tab's results as (t_p curves sorted by d, φ points sorted by (η, B))."""
    results = list(results or [])
    fp = sorted((ds for ds in results if ds.attrs["kind"] == "first_passage"),
                key=lambda ds: ds.attrs["dim"])
    phi = sorted((ds for ds in results if ds.attrs["kind"] == "stationary_exponent"),
                 key=lambda ds: (ds.attrs["lr"], ds.attrs["batch_size"]))
    return fp, phi


def _pm(value: float, err: float, digits: int = 2) -> str:
    """"12.10 ± 0.44", or "—" where there is no estimate (too few points, divergence)."""
    if np.isfinite(value) and np.isfinite(err):
        return f"{value:.{digits}f} ± {err:.{digits}f}"
    return "—"


def _slot(slots: tuple, value, what: str):
    """The slot of ``value`` (a d or an η the page offers)."""
    for v in slots:
        if np.isclose(value, v):
            return v
    raise ValueError(f"{what} = {value:g} has no curve of its own (the page offers "
                         f"{', '.join(f'{v:g}' for v in slots)}).")


def passage_columns(ds: xr.Dataset) -> dict[str, dict]:
    """The sources of one t_p curve (:func:`engine.linreg.first_passage_times`)."""
    a = ds.attrs
    cs, m = ds.c.values.astype(float), finite(ds.mean_time.values)
    half = 1.96 * finite(ds.mean_time_se.values)
    lb = ds.mean_is_lower_bound.values.astype(bool)
    ok = ~lb
    th = float(a["theory_slope"])
    label = f"d = {a['dim']}: slope {_pm(a['fitted_slope'], a['fitted_slope_se'], 1)} (theory {th:.2f})"
    # error bars below t_p = 0 would leave a log axis: they end at its floor instead
    low = np.maximum(m - half, 0.5)
    key = _d_key(_slot(D_SLOTS, a["dim"], "d"))
    out = {f"{key}-points": {"c": cs[ok], "t_p": m[ok], "low": low[ok], "high": (m + half)[ok],
                             "label": [label] * int(ok.sum())},
           f"{key}-censored": {"c": cs[lb], "t_p": m[lb],
                               "label": [f"d = {a['dim']}: lower bound (censored)"] * int(lb.sum())},
           f"{key}-theory": _empty(("c", "t_p"))}
    # the theory slope through the points of the fit (intercept by least squares in log–log)
    use = linreg.fit_points(cs, {v: ds[v].values for v in ("mean_time", "mean_is_lower_bound")},
                            a["fit_from"])
    if use.sum() >= 2:
        icpt = np.mean(np.log(m[use]) - th * np.log(cs[use]))
        out[f"{key}-theory"] = {"c": cs[use], "t_p": np.exp(icpt + th * np.log(cs[use]))}
    return out


def phi_columns(points: list[xr.Dataset], batches) -> dict[str, dict]:
    """The sources of one η's φ series (:func:`engine.linreg.stationary_exponent` per B): the
    fitted φ (finite ones) and the theory 1 + B/(ηh*) over ``batches``' range."""
    a = points[0].attrs
    lr, h = float(a["lr"]), float(a["h_star"])
    b = np.array([ds.attrs["batch_size"] for ds in points], dtype=float)
    phi = np.array([float(ds.phi) for ds in points])
    se = np.array([float(ds.phi_se) for ds in points])
    ok = np.isfinite(phi) & np.isfinite(se)
    bs = np.concatenate([np.asarray(batches, dtype=float), b])
    bb = np.linspace(min(bs.min(), 1.0), bs.max(), 50)
    key = _eta_key(_slot(ETA_SLOTS, lr, "η"))
    return {f"{key}-points": {"B": b[ok], "φ": phi[ok], "low": (phi - 1.96 * se)[ok],
                              "high": (phi + 1.96 * se)[ok],
                              "label": [f"η = {lr:g}"] * int(ok.sum())},
            f"{key}-theory": {"B": bb, "φ": 1.0 + bb / (lr * h)}}


def summary_html(fp: list[xr.Dataset], phi: list[xr.Dataset]) -> str:
    """The power-law tab's table: each t_p curve's fitted slope and each φ against theory,
    with the censored or diverged share ("" for no results)."""
    rows = []
    for ds in fp:
        a = ds.attrs
        cens = float(ds.censored_fraction.max())
        rows.append((f"first passage, d = {a['dim']}", f"h* = {a['h_star']:.3f}",
                     _pm(a["fitted_slope"], a["fitted_slope_se"]), f"{a['theory_slope']:.2f}",
                     f"{100 * cens:.0f} % censored at the largest c"))
    for ds in phi:
        a = ds.attrs
        div = int(ds.diverged.sum())
        note = (f"{div} of {a['n_chains']} chains diverged: no stationary law"
                if div else "none diverged")
        rows.append((f"φ at η = {a['lr']:g}, B = {a['batch_size']}", f"h* = {a['h_star']:.3f}",
                     _pm(float(ds.phi), float(ds.phi_se)), f"{float(ds.phi_theory):.2f}", note))
    if not rows:
        return ""
    cell = 'style="border:1px solid #ccc;padding:3px 8px;text-align:left"'
    head = ("measurement", "data", "measured (slope or φ)", "theory", "censored / diverged")
    lines = ["<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in row) + "</tr>"
              for row in rows]
    return ('<table class="atlas-pl-summary" style="border-collapse:collapse;font-size:14px">'
            + "".join(lines) + "</table>"
            '<p style="margin:6px 0;color:#333">Slopes are fitted over the upper half of the '
            "c range (uncensored points); the dashed lines have the theory slope. Beyond "
            "eq. 17, discrete steps lower φ at large η (the paper notes the departure at "
            "η = 1).</p>")


def powerlaw_view(results: list[xr.Dataset] | None, pl) -> dict:
    """The view of paper 003 Fig. 3 for the curves and points computed so far (``pl``: the
    :class:`~app.state.PowerLawParams`, for the axes and the title)."""
    fp, phi = split_powerlaw(results)
    columns = {}
    for d in D_SLOTS:
        key = _d_key(d)
        columns |= {f"{key}-points": _empty(PASSAGE_COLUMNS),
                    f"{key}-censored": _empty(CENSORED_COLUMNS),
                    f"{key}-theory": _empty(("c", "t_p"))}
    for lr in ETA_SLOTS:
        columns |= {f"{_eta_key(lr)}-points": _empty(PHI_COLUMNS),
                    f"{_eta_key(lr)}-theory": _empty(("B", "φ"))}
    for ds in fp:
        columns |= passage_columns(ds)
    by_lr: dict[float, list] = {}
    for ds in phi:
        by_lr.setdefault(float(ds.attrs["lr"]), []).append(ds)
    for points in by_lr.values():
        columns |= phi_columns(points, pl.phi_batches or [1])
    c = pl.thresholds()
    bmax = float(max(pl.phi_batches or [1]))
    lr_min = float(min(pl.phi_lrs or [1.0]))
    return {"columns": columns,
            "titles": {"escape-fig-passage": f"first passage from θ* (Fig. 3b): η = {pl.fp_lr:g}, "
                                             f"B = {pl.fp_batch_size}"},
            "props": {"escape-passage-x": _range_props(c[0] / 1.03, c[-1] * 1.03),
                      "escape-passage-y": _range_props(1.0, 3.0 * pl.fp_max_steps),
                      "escape-passage-cap": {"location": float(pl.fp_max_steps),
                                             "visible": bool(fp)},
                      "escape-phi-x": _range_props(0.0, bmax + 1),
                      "escape-phi-y": _range_props(1.0, 2.0 * (1 + bmax / lr_min))},
            "html": {SUMMARY_ID: summary_html(fp, phi)}}


# -- the page's contract --------------------------------------------------------------------------
def figures() -> dict[str, figure]:
    """Every figure of the page by key (``curve``, ``censored``, ``passage``, ``phi``), built
    empty; the two Fig. 5 plots share their σ² axis."""
    sigma2 = Range1d(*SIGMA2_RANGE, name="escape-sigma2-range")
    return {"curve": curve_figure(sigma2), "censored": censored_figure(sigma2),
            "passage": passage_figure(), "phi": phi_figure()}


def view(what: str, results: list[xr.Dataset] | None, states: dict) -> dict:
    """The view ``what`` (a key of :data:`VIEWS`: ``curve`` or ``powerlaw``, the page's
    computations of :func:`app.state.computations`) of ``results`` (the Datasets computed so
    far; None or [] for none) for ``states`` = ``{"state": EscapeParams, "powerlaw":
    PowerLawParams}``. Pure: the same input gives the same view."""
    if what == "curve":
        return curve_view(results, states["state"])
    if what == "powerlaw":
        return powerlaw_view(results, states["powerlaw"])
    raise ValueError(f"the escape page has no view {what!r}; its views: {', '.join(VIEWS)}")

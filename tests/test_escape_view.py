"""The escape page's figures and views (app/figures/escape.py), headless, against the
mathematics of paper 000 Fig. 5 (censored means are lower bounds, never joined to the curve)
and paper 003 Fig. 3 (t_p ∝ c^(B/(ηh*) + 1 − d/2), φ = 1 + B/(ηh*))."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from bokeh.models import ColumnDataSource, Line, Range1d, Span

from app.figures import apply_view
from app.figures import escape as figs
from app.state import EscapeParams, PowerLawParams, computations
from engine import escape, schema

CAP = 20_000


def _states(**pl):
    return {"state": EscapeParams(max_steps=CAP, n_sigma2=6),
            "powerlaw": PowerLawParams(**({"fp_runs": 20, "fp_dims": [1, 3], "fp_n_data": 1_000,
                                            "fp_max_steps": 100_000, "phi_chains": 2,
                                            "phi_samples": 100, "phi_lrs": [0.1, 0.5],
                                            "phi_batches": [1, 2]} | pl))}


def _escape_point(sigma2: float, times: np.ndarray, cap: int) -> xr.Dataset:
    """One σ² of Fig. 5 built as :func:`engine.escape.escape_times` builds it: trajectories
    still inside at the cap are censored there."""
    censored = times >= cap
    times = np.minimum(times, cap).astype(np.int64)
    summ = escape.summarise(times, censored, cap)
    data = {"escape_time": (("sigma2", "trajectory"), times[None]),
            "censored": (("sigma2", "trajectory"), censored[None]),
            **{k: (("sigma2",), np.array([v])) for k, v in summ.items()}}
    inputs = dict(lr=0.1, batch_size=1, n_trajectories=times.size, max_steps=cap, seed=0,
                  model="fukumizu_amari_reduced")
    return schema.dataset(data, {"sigma2": np.array([sigma2]), "trajectory": np.arange(times.size)},
                          inputs, kind="escape_times")


@pytest.fixture(scope="module")
def synthetic_points():
    """Eight σ² whose mean escape time is U-shaped (slow at both ends: partly censored, fast
    in the middle: nothing censored), in the scrambled order results may arrive in."""
    rng = np.random.default_rng(5)
    s2 = np.geomspace(0.002, 1.0, 8)
    means = 800.0 * (0.07 / s2 + s2 / 0.07)
    points = [_escape_point(v, rng.exponential(m, 60), CAP) for v, m in zip(s2, means)]
    frac = np.array([float(p.censored_fraction[0]) for p in points])
    assert (frac > 0).any() and (frac == 0).sum() >= 2  # both kinds of point
    return [points[i] for i in (3, 0, 7, 5, 1, 6, 2, 4)]


@pytest.fixture(scope="module")
def computed_points():
    """A small Fig. 5 computed by the engine through the page's tasks."""
    state = EscapeParams(n_trajectories=30, max_steps=3000, n_sigma2=4)
    return [t.fn(**t.inputs) for t in computations("escape", {"state": state,
                                                               "powerlaw": PowerLawParams()})["curve"]]


@pytest.fixture(scope="module")
def powerlaw_results():
    """The power-law tab's results (t_p curves for d = 1, 3, φ for η = 0.1, 0.5 and B = 1, 2)
    computed by the engine through the page's tasks, at a reduced size."""
    return [t.fn(**t.inputs) for t in computations("escape", _states())["powerlaw"]]


def _sources(figures) -> dict[str, ColumnDataSource]:
    return {s.name: s for f in figures.values() for s in f.select(type=ColumnDataSource)}


def _jsonable(view) -> str:
    """The view as the class mode sends it (columns as lists); fails on inf/NaN in props."""
    json.dumps({k: view.get(k, {}) for k in ("titles", "props", "html")}, allow_nan=False)
    return json.dumps({n: {c: np.asarray(v).tolist() for c, v in cols.items()}
                       for n, cols in view["columns"].items()})


# -- the contract --------------------------------------------------------------------------------
def test_figures_and_their_named_models():
    figures = figs.figures()
    assert set(figures) == {"curve", "censored", "passage", "phi"}
    for key, fig in figures.items():
        assert fig.name == f"escape-fig-{key}"
        for src in fig.select(type=ColumnDataSource):
            assert src.name and src.name.startswith(f"escape-{key}-"), src.name
    # a name belongs to one model (the two Fig. 5 plots share their σ² range: one model)
    models = {id(m): m for f in figures.values() for m in f.references() if m.name}
    names = [m.name for m in models.values()]
    assert len(names) == len(set(names))
    # one curve slot per d and per η the page offers
    sources = _sources(figures)
    for d in PowerLawParams.param.fp_dims.objects:
        assert f"escape-passage-d{d}-points" in sources
    for lr in PowerLawParams.param.phi_lrs.objects:
        assert f"escape-phi-eta{lr:g}-theory" in sources


def test_views_name_only_existing_models_and_cover_every_source(synthetic_points,
                                                              powerlaw_results):
    figures = figs.figures()
    sources = _sources(figures)
    names = {m.name for f in figures.values() for m in f.references() if m.name}
    fig_names = {f.name for f in figures.values()}
    states = _states()
    covered = set()
    for what, results in (("curve", synthetic_points), ("powerlaw", powerlaw_results)):
        for shown in (figs.view(what, results, states), figs.view(what, [], states)):
            _jsonable(shown)
            for name, cols in shown["columns"].items():
                # every column a glyph reads is set (a missing one would blank the layer)
                assert set(cols) == set(sources[name].data), name
                lengths = {len(v) for v in cols.values()}
                assert len(lengths) == 1, (name, lengths)
            assert set(shown["props"]) <= names
            assert set(shown.get("titles", {})) <= fig_names
            covered |= set(shown["columns"])
    assert covered == set(sources)  # a view resets every layer it owns
    with pytest.raises(ValueError, match="no view"):
        figs.view("fig5", [], states)


@pytest.mark.parametrize("what", list(figs.VIEWS))
def test_the_view_of_nothing_is_empty(what):
    states = _states()
    for nothing in (None, []):
        shown = figs.view(what, nothing, states)
        assert shown["columns"]
        assert all(len(v) == 0 for cols in shown["columns"].values() for v in cols.values())
        assert not any(shown.get("html", {}).values())
        assert set(shown.get("html", {})) <= set(figs.HTML_IDS)
        spans = [p for n, p in shown["props"].items() if n.endswith(("-cap", "-min"))]
        assert spans and not any(p["visible"] for p in spans)


def _another(p, value):
    """A valid value of parameter ``p`` other than ``value``."""
    import param

    if isinstance(p, param.ListSelector):
        return [next(v for v in p.objects if v not in value), *value]
    if isinstance(p, param.Selector):
        objs = list(p.objects.values()) if isinstance(p.objects, dict) else list(p.objects)
        return next(v for v in objs if v != value)
    hi = (p.bounds or (None, None))[1]
    if isinstance(p, param.Integer):
        return value + 1 if hi is None or value + 1 <= hi else value - 1
    return value * 1.1 if hi is None or value * 1.1 <= hi else value * 0.9


def _whole(view) -> tuple:
    return _jsonable(view), json.dumps({k: view.get(k, {}) for k in ("titles", "props", "html")})


def test_views_read_only_the_fields_they_list(synthetic_points, powerlaw_results):
    """Changing any other field of the states leaves a view as it was; changing a listed
    field changes it (the class page re-requests a view on exactly those)."""
    results = {"curve": synthetic_points, "powerlaw": powerlaw_results}
    fields_seen = set()
    for what, fields in figs.VIEWS.items():
        before = _whole(figs.view(what, results[what], _states()))
        for key, obj in _states().items():
            for name, p in obj.param.objects().items():
                if name == "name":
                    continue
                states = _states()
                old = getattr(states[key], name)
                new = _another(p, old)
                setattr(states[key], name, new)
                assert getattr(states[key], name) != old
                same = _whole(figs.view(what, results[what], states)) == before
                assert same == (name not in fields), (what, name, new)
                fields_seen.add(name)
    assert {f for fs in figs.VIEWS.values() for f in fs} <= fields_seen


# -- paper 000, Fig. 5 ---------------------------------------------------------------------------
def _check_curve(points, cap):
    shown = figs.view("curve", points, {"state": EscapeParams(max_steps=cap),
                                        "powerlaw": PowerLawParams()})
    cols = shown["columns"]
    s2 = np.array([float(p.sigma2[0]) for p in points])
    frac = np.array([float(p.censored_fraction[0]) for p in points])
    mean = np.array([float(p.mean_time[0]) for p in points])
    cens, exact = cols["escape-curve-censored"], cols["escape-curve-mean"]
    # the lower bounds are exactly the σ² with anything censored, the curve exactly the others
    assert sorted(cens["σ²"]) == sorted(s2[frac > 0])
    assert sorted(exact["σ²"]) == sorted(s2[frac == 0])
    assert sorted(cols["escape-curve-band"]["σ²"]) == sorted(s2[frac == 0])
    for c in (cens, exact):
        assert np.all(np.diff(c["σ²"]) > 0)  # sorted along σ², whatever the arrival order
        np.testing.assert_allclose(c["τ*"], [mean[s2 == v][0] for v in c["σ²"]])
        np.testing.assert_allclose(c["censored"], [frac[s2 == v][0] for v in c["σ²"]])
    # the 95 % band holds the mean
    band = cols["escape-curve-band"]
    np.testing.assert_array_equal(band["σ²"], exact["σ²"])
    assert np.all(band["low"] <= exact["τ*"]) and np.all(exact["τ*"] <= band["high"])
    assert np.all(band["low"] >= 1)  # a log axis
    # the censored fraction at every σ² computed
    np.testing.assert_allclose(cols["escape-censored-fraction"]["censored"], frac[np.argsort(s2)])
    # the cap, the range around everything drawn, the minimum of the true means
    props = shown["props"]
    assert props["escape-curve-cap"] == {"location": cap, "visible": True}
    y = props["escape-curve-y"]
    drawn = np.concatenate([band["low"], cens["τ*"]])
    assert y["start"] <= drawn.min() and y["end"] >= 2 * cap and y["start"] >= 1
    if (frac == 0).any():
        best = s2[frac == 0][np.argmin(mean[frac == 0])]
        assert props["escape-curve-min"] == {"location": best, "visible": True}
        assert cols["escape-curve-minimum"]["x"] == [best]
        assert f"{best:.3g}" in cols["escape-curve-minimum"]["text"][0]
    else:
        assert props["escape-curve-min"]["visible"] is False
    return shown


def test_censored_points_are_lower_bounds_never_joined_to_the_curve(synthetic_points):
    shown = _check_curve(synthetic_points, CAP)
    figures = figs.figures()
    apply_view(figures, shown)
    censored = set(shown["columns"]["escape-curve-censored"]["σ²"])
    fig = figures["curve"]
    lines = [r for r in fig.renderers if isinstance(r.glyph, Line)]
    assert lines
    for r in lines:  # no line of the plot passes through a lower bound
        assert not censored & set(r.data_source.data["σ²"])
    tri = [r for r in fig.renderers if getattr(r.glyph, "marker", None) == "triangle"]
    assert [set(r.data_source.data["σ²"]) for r in tri] == [censored]
    # the view reached the figure's models by name
    assert fig.select_one({"name": "escape-curve-cap"}).location == CAP
    assert fig.y_range.start == shown["props"]["escape-curve-y"]["start"]
    assert figures["censored"].x_range is fig.x_range  # one σ² axis


def test_the_curve_fills_in_point_by_point(synthetic_points):
    """Each prefix of the arriving results is drawn, and only it."""
    for k in range(1, len(synthetic_points) + 1):
        shown = _check_curve(synthetic_points[:k], CAP)
        drawn = (len(shown["columns"]["escape-curve-mean"]["σ²"])
                 + len(shown["columns"]["escape-curve-censored"]["σ²"]))
        assert drawn == k


def test_a_curve_computed_by_the_engine(computed_points):
    _check_curve(computed_points, 3000)


def test_the_page_draws_the_view_of_its_results():
    """The Panel page computes a small curve and shows exactly the view of its points, in
    Bokeh panes inside the layout its progress view dims."""
    import panel as pn

    from app.pages.escape import EscapePage
    from tests.support import wait_until

    page = EscapePage(query={"n_trajectories": "20", "max_steps": "2000", "n_sigma2": "3"})
    try:
        wait_until(lambda: "complete" in page._job.status.object, 120)
        shown = figs.view("curve", page._points, page.states())
        sources = _sources(page._figs)
        for name, cols in shown["columns"].items():
            for c, v in cols.items():
                np.testing.assert_array_equal(np.asarray(sources[name].data[c]), np.asarray(v))
        assert isinstance(page._job.dim, pn.layout.ListLike)
        panes = page._job.dim.select(pn.pane.Bokeh)
        assert {p.object.name for p in panes} == {"escape-fig-curve", "escape-fig-censored"}
        assert not page._pl_job.dim.select(pn.pane.HoloViews)
        assert page._table().sizes["sigma2"] == 3
    finally:
        page.cleanup()


# -- paper 003, Fig. 3 ---------------------------------------------------------------------------
def _fp(results, d):
    return next(ds for ds in results if ds.attrs["kind"] == "first_passage" and ds.attrs["dim"] == d)


def test_the_theory_slope_line_of_each_d(powerlaw_results):
    shown = figs.view("powerlaw", powerlaw_results, _states())
    cols = shown["columns"]
    for d in (1, 3):
        ds = _fp(powerlaw_results, d)
        a = ds.attrs
        theory = cols[f"escape-passage-d{d}-theory"]
        assert len(theory["c"]) >= 2
        # eq. 15 from the inputs, not from the Dataset's own theory_slope
        slope = a["batch_size"] / (a["lr"] * a["h_star"]) + 1 - d / 2
        fit = np.polyfit(np.log(theory["c"]), np.log(theory["t_p"]), 1)
        assert fit[0] == pytest.approx(slope, rel=1e-9)
        # through the points of the fit: the log residuals of those points average to zero
        m = dict(zip(ds.c.values, ds.mean_time.values))
        resid = np.log([m[c] for c in theory["c"]]) - np.log(theory["t_p"])
        assert abs(resid.mean()) < 1e-9
        assert min(theory["c"]) >= a["fit_from"] * (1 - 1e-12)
        # the points with their 95 % error bars, and the legend's fitted slope against theory
        pts = cols[f"escape-passage-d{d}-points"]
        ok = ~ds.mean_is_lower_bound.values
        np.testing.assert_allclose(pts["c"], ds.c.values[ok])
        np.testing.assert_allclose(pts["high"] - pts["t_p"], 1.96 * ds.mean_time_se.values[ok])
        assert np.all(pts["low"] <= pts["t_p"]) and np.all(pts["low"] > 0)
        assert np.isfinite(a["fitted_slope"])  # (a cap where nothing is censored)
        assert set(pts["label"]) == {f"d = {d}: slope {a['fitted_slope']:.1f} ± "
                                     f"{a['fitted_slope_se']:.1f} (theory {slope:.2f})"}
    for d in set(PowerLawParams.param.fp_dims.objects) - {1, 3}:  # no curve, no legend entry
        assert all(len(v) == 0 for v in cols[f"escape-passage-d{d}-points"].values())
        assert all(len(v) == 0 for v in cols[f"escape-passage-d{d}-theory"].values())
    assert shown["props"]["escape-passage-cap"] == {"location": 100_000.0, "visible": True}
    assert "η = 0.1, B = 1" in shown["titles"]["escape-fig-passage"]


def test_censored_thresholds_are_triangles_outside_the_curve_and_the_fit(powerlaw_results):
    ds = _fp(powerlaw_results, 1).copy(deep=True)
    lb = np.zeros(ds.sizes["c"], bool)
    lb[-3:] = True  # the largest c hit the cap in some runs
    ds["mean_is_lower_bound"] = ("c", lb)
    cols = figs.passage_columns(ds)
    np.testing.assert_allclose(cols["escape-passage-d1-censored"]["c"], ds.c.values[lb])
    np.testing.assert_allclose(cols["escape-passage-d1-points"]["c"], ds.c.values[~lb])
    assert not set(cols["escape-passage-d1-theory"]["c"]) & set(ds.c.values[lb])


def test_phi_theory_is_one_plus_b_over_eta_h(powerlaw_results):
    shown = figs.view("powerlaw", powerlaw_results, _states())
    cols = shown["columns"]
    phi = [ds for ds in powerlaw_results if ds.attrs["kind"] == "stationary_exponent"]
    for lr in (0.1, 0.5):
        points = sorted((ds for ds in phi if ds.attrs["lr"] == lr),
                        key=lambda ds: ds.attrs["batch_size"])
        h = points[0].attrs["h_star"]
        theory = cols[f"escape-phi-eta{lr:g}-theory"]
        np.testing.assert_allclose(theory["φ"], 1 + np.asarray(theory["B"]) / (lr * h))
        assert min(theory["B"]) <= 1 and max(theory["B"]) >= 2
        # … which is the engine's phi_theory at each computed B
        for ds in points:
            at = np.interp(ds.attrs["batch_size"], theory["B"], theory["φ"])
            assert at == pytest.approx(float(ds.phi_theory), rel=1e-9)
        pts = cols[f"escape-phi-eta{lr:g}-points"]
        np.testing.assert_array_equal(pts["B"], [ds.attrs["batch_size"] for ds in points])
        np.testing.assert_allclose(pts["φ"], [float(ds.phi) for ds in points])
        assert np.all(pts["low"] <= pts["φ"]) and np.all(pts["φ"] <= pts["high"])
        assert set(pts["label"]) == {f"η = {lr:g}"}
    assert all(len(v) == 0 for v in cols["escape-phi-eta0.2-points"].values())
    x, y = shown["props"]["escape-phi-x"], shown["props"]["escape-phi-y"]
    assert x["start"] <= 1 and x["end"] >= 2
    top = max(max(cols[f"escape-phi-eta{lr:g}-theory"]["φ"]) for lr in (0.1, 0.5))
    assert y["start"] >= 1 and y["end"] >= top  # every theory line inside the window


def test_a_diverged_phi_point_is_left_out(powerlaw_results):
    points = [ds.copy(deep=True) for ds in powerlaw_results
              if ds.attrs["kind"] == "stationary_exponent" and ds.attrs["lr"] == 0.5]
    points[0]["phi"] = ((), np.nan)
    cols = figs.phi_columns(points, [1, 2])
    assert np.all(np.isfinite(cols["escape-phi-eta0.5-points"]["φ"]))
    assert len(cols["escape-phi-eta0.5-points"]["B"]) == len(points) - 1


def test_the_summary_lists_every_result_against_theory(powerlaw_results):
    shown = figs.view("powerlaw", powerlaw_results, _states())
    text = shown["html"][figs.SUMMARY_ID]
    assert text.count("<tr>") == 1 + len(powerlaw_results)  # a head and a row per result
    for ds in powerlaw_results:
        a = ds.attrs
        if a["kind"] == "first_passage":
            assert f"first passage, d = {a['dim']}" in text
            assert f"{a['theory_slope']:.2f}" in text
        else:
            assert f"φ at η = {a['lr']:g}, B = {a['batch_size']}" in text
            assert f"{float(ds.phi_theory):.2f}" in text
    # the progressive view of the first result only
    first = figs.view("powerlaw", powerlaw_results[:1], _states())["html"][figs.SUMMARY_ID]
    assert first.count("<tr>") == 2


def test_a_slope_without_a_fit_says_so(powerlaw_results):
    ds = _fp(powerlaw_results, 3).copy()
    ds.attrs = {**ds.attrs, "fitted_slope": np.nan, "fitted_slope_se": np.nan}
    label = figs.passage_columns(ds)["escape-passage-d3-points"]["label"]
    assert set(label) == {f"d = 3: slope — (theory {ds.attrs['theory_slope']:.2f})"}


def test_a_d_the_page_does_not_offer_is_refused(powerlaw_results):
    ds = _fp(powerlaw_results, 1).copy()
    ds.attrs = {**ds.attrs, "dim": 7}
    with pytest.raises(ValueError, match="d = 7"):
        figs.view("powerlaw", [ds], _states())


def test_ranges_are_reset_to_what_a_view_sets():
    """A view moves a range's reset values with it (the reset tool returns there)."""
    figures = figs.figures()
    shown = figs.view("powerlaw", [], _states(fp_c_max=3.0))
    apply_view(figures, shown)
    x = figures["passage"].x_range
    assert isinstance(x, Range1d) and (x.reset_start, x.reset_end) == (x.start, x.end)
    c = PowerLawParams(fp_c_max=3.0).thresholds()
    assert x.start < c[0] and x.end > c[-1]
    assert not figures["passage"].select_one({"name": "escape-passage-cap"}).visible
    assert isinstance(figures["passage"].select_one({"name": "escape-passage-cap"}), Span)

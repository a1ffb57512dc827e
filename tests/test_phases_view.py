"""The phase-diagram page's figures and views (app/figures/phases.py) built headlessly (no
server), checked against the mathematics of paper 002, Prop. 1 (Figs. 2, 8, 9): the phase image
against the phases of Λ± and the L2 condition, the Λ = 0 and L2 boundaries against the sign
changes of the computed grid, the hover naming the phases, the click and box-zoom fields; and
the Panel page drawing those views (the clicked-cell marker, the background simulation)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import numpy as np
import pytest
from bokeh.embed import json_item
from bokeh.events import RangesUpdate, Tap
from bokeh.models import ColumnDataSource, CustomJSHover, HoverTool

from app import sweeps
from app.classapi import view_json
from app.figures import apply_view
from app.figures import phases as fp
from app.pages.phases import PhasesPage
from app.state import LOG2_S, S_VALUES, PhaseParams, computations
from engine import saddle
from tests.support import wait_until

RESOLUTION = 16


def _wait(cond, timeout=120.0):
    wait_until(cond, timeout)


def _computed(state: PhaseParams) -> dict:
    """Every computation of the page for ``state``, by name (through the shared cache)."""
    return {name: sweeps.run_tasks(tasks)
            for name, tasks in computations("phases", {"state": state}).items()}


@pytest.fixture(scope="module")
def state():
    return PhaseParams(resolution=RESOLUTION)


@pytest.fixture(scope="module")
def results(state):
    return _computed(state)


@pytest.fixture(scope="module")
def page():
    """A page at a coarse resolution, with its λ–μ and λ–S maps computed."""
    p = PhasesPage(query={"resolution": str(RESOLUTION)})
    try:
        _wait(lambda: p._map_ds is not None and p._s_ds is not None)
        yield p
    finally:
        p.cleanup()


# -- helpers --------------------------------------------------------------------------------------
def _image_cells(cols: dict):
    """(x, y) of every pixel's centre of an image source's columns, and its values, as
    BokehJS places them (row j at y + (j + ½) dh / ny)."""
    img = np.asarray(cols["image"][0])
    ny, nx = img.shape
    x = cols["x"][0] + (np.arange(nx) + 0.5) * cols["dw"][0] / nx
    y = cols["y"][0] + (np.arange(ny) + 0.5) * cols["dh"][0] / ny
    return x, y, img


def _check_boundary(lines: dict, x: np.ndarray, y: np.ndarray, z: np.ndarray, level: float):
    """Every vertex of ``lines`` lies on an edge of the grid (x, y) whose ends straddle
    ``level`` in ``z`` (rows along y), at the linearly interpolated crossing; and every edge
    that straddles it strictly, between cells with finite values all around, carries one.
    Returns the number of vertices."""
    xs, ys = np.asarray(lines["x"], float), np.asarray(lines["y"], float)
    assert xs.shape == ys.shape and np.array_equal(np.isnan(xs), np.isnan(ys))
    xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]  # NaN: a break between two lines
    tol = 1e-9 * max(np.ptp(x), np.ptp(y), 1.0)
    crossed = set()
    for px, py in zip(xs, ys):
        on_x = np.flatnonzero(np.abs(x - px) < tol)
        on_y = np.flatnonzero(np.abs(y - py) < tol)
        assert on_x.size or on_y.size, f"vertex ({px}, {py}) is off the grid's edges"
        if on_x.size:  # on the edge from (x[i], y[j]) to (x[i], y[j + 1])
            i, j = on_x[0], int(np.clip(np.searchsorted(y, py) - 1, 0, y.size - 2))
            a, b, t = z[j, i], z[j + 1, i], (py - y[j]) / (y[j + 1] - y[j])
            crossed.add(("y", i, j))
        else:  # on the edge from (x[i], y[j]) to (x[i + 1], y[j])
            j, i = on_y[0], int(np.clip(np.searchsorted(x, px) - 1, 0, x.size - 2))
            a, b, t = z[j, i], z[j, i + 1], (px - x[i]) / (x[i + 1] - x[i])
            crossed.add(("x", i, j))
        assert (a - level) * (b - level) <= 0, (px, py, a, b)  # the sign changes here
        if a != b:
            assert t == pytest.approx((level - a) / (b - a), abs=1e-6)
    finite = np.isfinite(z)
    ok_cell = finite[:-1, :-1] & finite[1:, :-1] & finite[:-1, 1:] & finite[1:, 1:]

    def cells_ok(cells):
        return all(ok_cell[j, i] for j, i in cells if 0 <= j < ok_cell.shape[0]
                   and 0 <= i < ok_cell.shape[1])

    for j in range(y.size):  # edges along x
        for i in range(x.size - 1):
            if (z[j, i] - level) * (z[j, i + 1] - level) < 0 and cells_ok([(j - 1, i), (j, i)]):
                assert ("x", i, j) in crossed, ("x", i, j)
    for j in range(y.size - 1):  # edges along y
        for i in range(x.size):
            if (z[j, i] - level) * (z[j + 1, i] - level) < 0 and cells_ok([(j, i - 1), (j, i)]):
                assert ("y", i, j) in crossed, ("y", i, j)
    return xs.size


def _split(cols: dict) -> tuple[list, list]:
    """The lines of a ``line`` glyph's columns, NaN between two lines."""
    x, y = np.asarray(cols["x"], float), np.asarray(cols["y"], float)
    cuts = np.flatnonzero(np.isnan(x))  # each line after the first starts with its NaN
    return ([part[1:] if i else part for i, part in enumerate(np.split(x, cuts))],
            [part[1:] if i else part for i, part in enumerate(np.split(y, cuts))])


def _hover(fig) -> HoverTool:
    tools = [t for t in fig.select({"type": HoverTool}) if t.tooltips]
    assert len(tools) == 1, tools
    return tools[0]


def _run_formatter(fmt: CustomJSHover, values) -> list[str]:
    """Run a CustomJSHover's code in Node as BokehJS calls it (its ``args`` by name, then
    ``value``, ``format``, ``special_vars``)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is needed to run the hover formatter's JavaScript")
    names = list(fmt.args)
    script = (f"const f = new Function({json.dumps([*names, 'value', 'format', 'special_vars'])[1:-1]}, "
              f"{json.dumps(fmt.code)});\n"
              f"const args = {json.dumps([fmt.args[n] for n in names])};\n"
              f"console.log(JSON.stringify({json.dumps(values)}.map("
              f"(v) => f(...args, v === null ? NaN : v, '', {{}}))));")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


# -- the contract ---------------------------------------------------------------------------------
def test_every_view_names_models_of_the_figures(state, results):
    """Figures are named ``phases-fig-<key>``, sources ``phases-<key>-<layer>``; every source,
    title and model a view sets (computed or not yet) is exactly one named model of the
    figures; props, titles and HTML are plain JSON; the figures serialise once drawn."""
    figs = fp.figures()
    assert {k: f.name for k, f in figs.items()} == {k: f"phases-fig-{k}" for k in figs}
    sources = [s.name for f in figs.values() for s in f.select(type=ColumnDataSource)
               if s.name]
    assert len(sources) == len(set(sources))
    assert all(n.startswith("phases-") for n in sources)
    states = {"state": state}
    for what in fp.VIEWS:
        assert set(fp.VIEWS[what]) <= set(PhaseParams.param)
        for res in (None, results.get(what)):
            shown = fp.view(what, res, states)
            assert set(shown) <= {"columns", "titles", "props", "html"}
            for name in shown.get("columns", {}):
                assert sources.count(name) == 1, (what, name)
            assert set(shown.get("titles", {})) <= {f.name for f in figs.values()}
            for name in shown.get("props", {}):
                assert sum(len(list(f.select({"name": name}))) for f in figs.values()) >= 1, name
                assert len({id(m) for f in figs.values() for m in f.select({"name": name})}) == 1
            json.dumps([shown.get("titles", {}), shown.get("props", {}), shown.get("html", {})])
            json.loads(gzip.decompress(view_json(shown)))  # as the class mode sends it
            assert set(shown.get("html", {})) <= set(fp.HTML_IDS.values())
            apply_view(figs, shown)
    for what in ("map", "s_map", "cell", "fig2"):  # the computations' names
        assert what in computations("phases", states)
    for fig in figs.values():
        json.dumps(json_item(fig))
    with pytest.raises(ValueError):
        fp.view("nothing", None, states)


def test_not_computed_views_are_empty_and_say_so(state):
    """Before the results: empty sources (the browser tests wait for a non-empty image) and a
    "computing…" title."""
    for what in ("map", "s_map", "cell", "fig2"):
        shown = fp.view(what, None, {"state": state})
        assert all(len(v) == 0 for cols in shown["columns"].values() for v in cols.values())
        assert all("computing…" in t for t in shown["titles"].values())
    assert fp.view("map", [], {"state": state}) == fp.view("map", None, {"state": state})


def test_the_page_recomputes_exactly_what_a_change_affects():
    """The page's watched fields (INPUTS) are exactly those that change each computation's
    tasks; the views' drawing fields (VIEWS) are the rest each drawing reads."""
    from app.compute import tasks_key
    from app.pages.phases import INPUTS

    other = {"batch_size": 2, "n_data": 10, "seed": 1, "mu_for_s": 0.1, "resolution": 64,
             "lr": 0.3, "mu": 0.4, "log_lr_range": (-1.0, 0.0), "mu_range": (0.2, 0.4)}

    def keys(**values):
        return {k: tasks_key(v) for k, v in computations(
            "phases", {"state": PhaseParams(**values)}).items()}

    base = keys()
    for field, value in other.items():
        changed = {what for what, key in keys(**{field: value}).items() if key != base[what]}
        assert changed == {what for what, fields in INPUTS.items() if field in fields}, field
    assert set(INPUTS) | {"fig2"} == set(computations("phases", {"state": PhaseParams()}))
    assert fp.VIEWS["marker"] == ("lr", "mu")


# -- the maps against Prop. 1 -------------------------------------------------------------------
def test_phase_image_codes_are_the_phases_of_the_exponents(state, results):
    """Each pixel of the λ–μ image sits at its cell's (log₁₀ η, μ), and its code is the index in
    ``saddle.PHASES`` of the phase that Λ−, Λ+ and the L2 condition give there (MATH.md §3);
    the hover's columns are that cell's η, μ, S and Λ± ± errors."""
    ds = results["map"][0]
    cols = fp.view("map", results["map"], {"state": state})["columns"]["phases-map-image"]
    x, y, img = _image_cells(cols)
    assert x == pytest.approx(np.log10(ds.lr.values)) and y == pytest.approx(ds.mu.values)
    lm, lp, l2 = ds.lyap_minus.values, ds.lyap_plus.values, ds.l2_stable.values
    phases = saddle.phase_label(lm, lp, l2)  # (lr, mu)
    assert img.shape == (ds.mu.size, ds.lr.size)
    assert [[saddle.PHASES[int(c)] for c in row] for row in img] == phases.T.tolist()
    assert len(set(phases.ravel())) >= 3  # the default region shows several phases
    assert np.asarray(cols["eta"][0]) == pytest.approx(np.broadcast_to(ds.lr.values, img.shape))
    assert np.asarray(cols["mu"][0]) == pytest.approx(np.broadcast_to(ds.mu.values[:, None], img.shape))
    assert np.all(np.asarray(cols["S"][0]) == state.batch_size)
    for var, col in fp.LAMBDA_COLUMNS.items():
        np.testing.assert_allclose(cols[col][0], ds[var].values.T, equal_nan=True)


def test_map_boundaries_lie_where_the_exponents_change_sign(state, results):
    """The Λ− = 0 and Λ+ = 0 lines of the λ–μ map cross exactly the grid edges where the
    computed Λ− (Λ+) changes sign, at the linear interpolation of its zero; the L2 boundary
    those where E[(1 − ηχ)²] < 1 changes."""
    ds = results["map"][0]
    cols = fp.view("map", results["map"], {"state": state})["columns"]
    x, y = np.log10(ds.lr.values), ds.mu.values
    counts = {}
    for key, (var, level) in {"lminus": ("lyap_minus", 0.0), "lplus": ("lyap_plus", 0.0),
                              "l2": ("l2_stable", 0.5)}.items():
        z = ds[var].values.T.astype(float)
        counts[key] = _check_boundary(cols[f"phases-map-{key}"], x, y, z, level)
    assert all(n > 0 for n in counts.values()), counts  # all three cross the default region


def test_s_map_rows_are_their_batch_sizes(state, results):
    """Row r of the λ–S image is log₂ S = LOG2_S[r], drawn from the column computed at the
    nearest S: its phases are that column's, its hover says that S; its boundaries cross
    where that stack of columns changes sign."""
    shown = fp.view("s_map", results["s_map"], {"state": state})
    cols = shown["columns"]["phases-s-image"]
    x, y, img = _image_cells(cols)
    assert y == pytest.approx(LOG2_S)
    by_s = {int(ds.attrs["batch_size"]): ds for ds in results["s_map"]}
    assert sorted(by_s) == sorted(int(s) for s in S_VALUES)
    lr = results["s_map"][0].lr.values
    assert x == pytest.approx(np.log10(lr))
    nearest = np.round(2.0**LOG2_S).astype(int)
    for r, S in enumerate(nearest):
        ds = by_s[S]
        labels = saddle.phase_label(ds.lyap_minus.values[:, 0], ds.lyap_plus.values[:, 0],
                                    ds.l2_stable.values[:, 0])
        assert [saddle.PHASES[int(c)] for c in img[r]] == labels.tolist()
        assert np.all(np.asarray(cols["S"][0])[r] == S)
    z = np.stack([by_s[S].lyap_minus.values[:, 0] for S in nearest])
    assert _check_boundary(shown["columns"]["phases-s-lminus"], np.log10(lr), LOG2_S, z, 0.0) > 0
    assert f"μ = {state.mu_for_s:g}" in shown["titles"]["phases-fig-s"]


@pytest.mark.parametrize("key", ["map", "s"])
def test_map_hover_names_the_phase_and_the_exponents(key):
    """The hover reads "phase: III" and "Λ− (w − u): … ± …", not a code legend or variable
    names; the phase formatter (BokehJS code, run in Node) turns every code back into its
    name."""
    hover = _hover(fp.figures()[key])
    labels = [label for label, _ in hover.tooltips]
    tips = dict(hover.tooltips)
    assert labels[0] == "phase"
    assert {"Λ− (w − u)", "Λ+ (w + u)"} <= set(labels)
    assert not any("lyap" in label or "(0 Ia" in label for label in labels)
    for label in ("Λ− (w − u)", "Λ+ (w + u)"):  # the uncertainty of Λ± (Prop. 1)
        assert " ± " in tips[label]
        for field in (f.split("}")[0] + "}" for f in tips[label].split(" ± ")):
            assert hover.formatters[field] == "printf"
    assert [r.glyph.__class__.__name__ for r in hover.renderers] == ["Image"]
    field = tips["phase"]
    assert field.endswith("{custom}")
    fmt = hover.formatters[field[: -len("{custom}")]]
    assert isinstance(fmt, CustomJSHover)
    codes = [fp.PHASE_CODE[p] for p in saddle.PHASES]
    assert _run_formatter(fmt, [*codes, 3.0, None, -1, 7]) == [*saddle.PHASES, "III", "–", "–", "–"]


def test_map_colours_are_the_phases_colours():
    """Code c is drawn in the colour of phase PHASES[c] (the sidebar's legend)."""
    for key in ("map", "s"):
        img = next(r for r in fp.figures()[key].renderers
                   if r.glyph.__class__.__name__ == "Image")
        mapper = img.glyph.color_mapper
        n = len(mapper.palette)
        for phase, colour in fp.PHASE_COLORS.items():
            c = fp.PHASE_CODE[phase]
            bin_ = int((c - mapper.low) / (mapper.high - mapper.low) * n)
            assert mapper.palette[bin_] == colour


# -- the clicked cell and Fig. 2 right ------------------------------------------------------------
def test_cell_view_shows_the_simulation_beside_the_theory(state, results):
    """The paths are log|w − u| = log 0.5 + log|m_t/m_0| (and log|w + u| from 1.5) of the first
    runs; the table's simulation column is (1/T) log|m_T/m_0| averaged over the runs, its
    theory column Λ± ± error, the phase the one Λ± and L2 give; the title names the values the
    cell was computed for."""
    sim, th = results["cell"]
    shown = fp.view("cell", results["cell"], {"state": state})
    for key, var, start in (("minus", "log_m", 0.5), ("plus", "log_h", 1.5)):
        cols = shown["columns"][f"phases-sim-{key}"]
        x, y = _split(cols)
        assert len(y) == fp.SIM_RUNS
        for xs, ys, run in zip(x, y, sim[var].values):
            assert xs == pytest.approx(sim.step.values)
            assert ys == pytest.approx(np.log(start) + run)
    assert shown["titles"]["phases-fig-sim"] == (
        f"saddle SGD at η = {state.lr:.3g}, μ = {state.mu:.3f}, S = {state.batch_size}")
    verdict = shown["html"][fp.HTML_IDS["cell"]]
    T = sim.sizes["step"]
    phase = saddle.phase_label(th.lyap_minus.values, th.lyap_plus.values,
                               th.l2_stable.values).item()
    assert f"Theory: phase {phase}</b>" in verdict and fp.MEANING[phase] in verdict
    for var, logv in (("lyap_minus", sim.log_m.values), ("lyap_plus", sim.log_h.values)):
        emp = logv[:, -1] / T
        assert f"{float(th[var][0, 0]):+.4f} ± {float(th[var + '_se'][0, 0]):.1e}" in verdict
        assert f"{emp.mean():+.4f} ± {emp.std() / np.sqrt(emp.size):.1e}" in verdict
        assert f"{100 * np.mean(emp < 0):.0f} %" in verdict
        # the simulation agrees with the theory (paper 002: "checkable against simulation")
        assert abs(emp.mean() - float(th[var][0, 0])) < 5 * emp.std() / np.sqrt(emp.size) + 1e-3
    assert f"simulation ({sim.sizes['trajectory']} runs × {T} steps)" in verdict
    assert "page=trajectories&amp;lr=0.5&amp;batch_size=1" in verdict


def test_fig2_marks_every_sign_change_of_lambda(state, results):
    """Fig. 2 right: the curve is Λ(η) with 95 % bars (Λ ∓ 1.96 se); a dotted line stands
    between every two neighbouring η where Λ changes sign, and nowhere else."""
    ds = results["fig2"][0]
    cols = fp.view("fig2", results["fig2"], {"state": state})["columns"]
    lam, se, lr = ds.lyapunov.values, ds.lyapunov_se.values, ds.lr.values
    curve = cols["phases-fig2-curve"]
    assert curve["lyapunov"] == pytest.approx(lam)
    assert curve["upper"] - curve["lower"] == pytest.approx(2 * 1.96 * se)
    cross = np.asarray(cols["phases-fig2-cross"]["x"])
    changes = [i for i in range(lr.size - 1) if lam[i] * lam[i + 1] < 0]
    assert len(changes) >= 1 and cross.size == len(changes)
    for c, i in zip(np.sort(cross), changes):
        assert lr[i] < c < lr[i + 1]
    assert fp.sign_changes(np.array([1.0, 2, 4]), np.array([np.nan, 1.0, 2.0])).size == 0


# -- clicks and box-zoom ----------------------------------------------------------------------------
def test_a_click_on_a_cell_sets_its_values_and_the_marker_round_trips(state, results):
    """A click at the centre of cell (i, j) of the drawn map sets η = lr[i], μ = mu[j] (the
    x axis is log₁₀ η: :data:`TAP_TRANSFORMS`); the marker's view puts the × at data
    coordinates that a click maps back to the same values; clicks outside are clipped."""
    assert set(fp.TAPS) <= {f.name for f in fp.figures().values()}
    assert fp.TAP_TRANSFORMS["phases-fig-map"] == {"x": "pow10"}
    ds = results["map"][0]
    x, y, _ = _image_cells(fp.view("map", results["map"], {"state": state})["columns"]["phases-map-image"])
    for i, j in ((0, 0), (3, 9), (RESOLUTION - 1, RESOLUTION - 1)):
        values = fp.tap_values("phases-fig-map", x[i], y[j])
        assert set(values) == set(fp.TAPS["phases-fig-map"])
        assert values["lr"] == pytest.approx(ds.lr.values[i], rel=1e-12)
        assert values["mu"] == pytest.approx(ds.mu.values[j], abs=1e-12)
        clicked = PhaseParams(**values)  # (the state tidies the values: 4 significant digits)
        marker = fp.view("marker", None, {"state": clicked})["columns"]["phases-map-marker"]
        assert fp.tap_values("phases-fig-map", marker["x"][0], marker["y"][0]) == pytest.approx(
            {"lr": clicked.lr, "mu": clicked.mu}, rel=1e-12)
    lo, hi = PhaseParams.param.lr.bounds
    assert fp.tap_values("phases-fig-map", 5.0, 2.0) == {"lr": hi, "mu": 1.0}
    assert fp.tap_values("phases-fig-map", -9.0, -1.0) == {"lr": lo, "mu": 0.0}


def test_a_box_zoom_sets_the_region_the_map_is_computed_and_drawn_on():
    """A box-zoom to [x0, x1] × [y0, y1] (log₁₀ η, μ) sets log_lr_range and mu_range to it; the
    map computed for them is drawn with exactly those axes' ranges (cell edges), so the box
    comes back as the plot's range. The plot reporting its own range, or a box too narrow,
    changes nothing; a box beyond the fields' bounds is clipped to them."""
    assert fp.ZOOMS == {"phases-fig-map": ("log_lr_range", "mu_range")}
    box = (-1.0, 0.0, 0.2, 0.4)
    ranges = fp.zoom_values("phases-fig-map", *box)
    assert ranges == {"log_lr_range": (-1.0, 0.0), "mu_range": (0.2, 0.4)}
    zoomed = PhaseParams(resolution=RESOLUTION, **ranges)
    shown = fp.view("map", _computed(zoomed)["map"], {"state": zoomed})
    props = shown["props"]
    assert (props["phases-map-xrange"]["start"], props["phases-map-xrange"]["end"]) == pytest.approx(box[:2])
    assert (props["phases-map-yrange"]["start"], props["phases-map-yrange"]["end"]) == pytest.approx(box[2:])
    x, y, img = _image_cells(shown["columns"]["phases-map-image"])
    assert img.shape == (RESOLUTION, RESOLUTION) and box[0] < x.min() < x.max() < box[1]
    assert fp.zoom_values("phases-fig-map", *box, current=ranges) is None
    assert fp.zoom_values("phases-fig-map", -1.0, -1.0 + 1e-4, 0.2, 0.4) is None
    assert fp.zoom_values("phases-fig-map", -6.0, 3.0, -0.5, 1.5) == {
        "log_lr_range": PhaseParams.param.log_lr_range.bounds,
        "mu_range": PhaseParams.param.mu_range.bounds}


# -- the Panel page -------------------------------------------------------------------------------
def test_the_page_draws_its_results_with_plain_bokeh(page):
    """The page's plots are Bokeh panes of the figures module's figures, drawn from its
    Datasets (the λ–μ image's codes are the Dataset's phases); no HoloViews plot is left."""
    import panel as pn

    from app.pages import phases as page_module

    assert "hv" not in vars(page_module) and "holoviews" not in vars(page_module)
    for pane in (page._map_pane, page._s_pane, page._sim_pane, page._fig2_pane):
        assert isinstance(pane, pn.pane.Bokeh)
    ds = page._map_ds
    src = page._figs["map"].select_one({"name": "phases-map-image"})
    _, _, img = _image_cells(src.data)
    assert [[saddle.PHASES[int(c)] for c in row] for row in img] == ds.phase.values.T.tolist()
    assert page._figs["map"].title.text.startswith("λ–μ phase diagram (S = 1")
    assert page._figs["s"].title.text.startswith("λ–S phase diagram")


def test_marker_follows_the_clicked_cell_without_redrawing_the_map(page):
    """A click (Bokeh's tap event on the map) sets the cell and moves the × to the clicked
    (log10 η, μ); the map itself is neither recomputed nor redrawn."""
    ds = page._map_ds
    fig = page._figs["map"]
    image = fig.select_one({"name": "phases-map-image"})
    before = image.data
    x, y = float(np.log10(ds.lr.values[2])), float(ds.mu.values[9])
    try:
        fig._trigger_event(Tap(fig, x=x, y=y))
        s = page.state  # the state may tidy the clicked values (a few significant digits)
        assert s.lr == pytest.approx(10.0**x, rel=1e-3) and s.mu == pytest.approx(y, abs=1e-3)
        marker = fig.select_one({"name": "phases-map-marker"}).data
        assert list(marker["x"]) == pytest.approx([np.log10(s.lr)])
        assert list(marker["y"]) == pytest.approx([s.mu])
        assert page._map_ds is ds and image.data is before
    finally:
        page.state.param.update(lr=0.5, mu=0.5)


def test_a_box_zoom_event_recomputes_the_region(page):
    """Bokeh's RangesUpdate on the map (a box-zoom) sets the state's region, the map is
    recomputed there and its axes follow; the range the map is drawn with changes nothing."""
    fig, s = page._figs["map"], page.state
    default = (s.log_lr_range, s.mu_range)
    first = page._map_ds
    try:
        fig._trigger_event(RangesUpdate(fig, x0=fig.x_range.start, x1=fig.x_range.end,
                                        y0=fig.y_range.start, y1=fig.y_range.end))
        assert (s.log_lr_range, s.mu_range) == default
        fig._trigger_event(RangesUpdate(fig, x0=-1.0, x1=0.0, y0=0.2, y1=0.4))
        assert s.log_lr_range == pytest.approx((-1.0, 0.0)) and s.mu_range == pytest.approx((0.2, 0.4))
        _wait(lambda: page._map_ds is not first)
        assert np.log10(page._map_ds.lr.values).min() > -1.0
        assert (fig.x_range.start, fig.x_range.end) == pytest.approx((-1.0, 0.0))
        assert (fig.y_range.start, fig.y_range.end) == pytest.approx((0.2, 0.4))
    finally:
        page._on_reset_view(None)
        _wait(lambda: page._map_ds.lr.values[0] == pytest.approx(first.lr.values[0]))


def test_a_click_simulates_the_cell_in_the_background(page, monkeypatch):
    """A click on a cell never runs the engine on the server's event loop (here: the calling
    thread): the simulation and Λ± of the cell are cached tasks of a background job; their
    results, labelled by the values they were computed for, reach the plot, the verdict and
    the page's export (issue 16)."""
    import threading

    threads = []  # (thread, task kinds) of every computation through the state's tasks
    real = sweeps.run_tasks

    def spy(tasks, *args, **kwargs):
        threads.append((threading.get_ident(), [t[0] for t in tasks]))
        return real(tasks, *args, **kwargs)

    monkeypatch.setattr(sweeps, "run_tasks", spy)
    ds = page._map_ds
    x, y = float(np.log10(ds.lr.values[4])), float(ds.mu.values[3])
    try:
        page._on_tap(x=x, y=y)
        lr, mu = page.state.lr, page.state.mu
        _wait(lambda: page._figs["sim"].title.text.startswith(
            f"saddle SGD at η = {lr:.3g}, μ = {mu:.3f},"))
        cell = [t for t, kinds in threads if "saddle_simulation" in kinds]
        assert cell and threading.get_ident() not in cell
        sim = page.export_datasets()["cell_simulation"]
        assert (float(sim.attrs["lr"]), float(sim.attrs["mu"])) == (lr, mu)
        assert "Theory: phase" in page._verdict.object and f"η = {lr:.3g}" in page._verdict.object
        _, paths = _split(page._figs["sim"].select_one({"name": "phases-sim-minus"}).data)
        assert paths[0] == pytest.approx(np.log(0.5) + sim.log_m.values[0])
    finally:
        page.state.param.update(lr=0.5, mu=0.5)

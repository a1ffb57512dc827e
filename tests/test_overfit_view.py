"""The overfitting page's figures and views built headlessly (app/figures/overfit.py; paper 001
§4, Fig. 3; MATH.md §2), checked against the runs' Datasets and the mathematics they draw:
the shaded stretches are exactly the stage labels, the curves are L and R at the kept steps,
the dotted lines are the one-neuron fit O₁ of the run's own (noisy) labels, and the light lines
lie in the optimal region {R = 0}."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bokeh.models import ColumnDataSource
from scipy import optimize

from app.figures import apply_view
from app.figures import overfit as figs
from app.state import OverfitParams, computations
from engine import overfit


def _state(**kw) -> OverfitParams:
    return OverfitParams(**({"n_steps": 20_000, "n_data": 40} | kw))


@pytest.fixture(scope="module")
def computed():
    """(state, [run at τ = 0.2, its τ = 0 twin]): seed 6, n = 40, 2·10⁴ steps — small, and
    still the whole plateau, near-optimal, overfitting path."""
    state = _state()
    runs = [t.fn(**t.inputs) for t in state.tasks()]
    assert {1, 2, 3} <= set(runs[0].stage.values.tolist())  # every stage is exercised
    return state, runs


@pytest.fixture(scope="module")
def drawn(computed):
    state, runs = computed
    return figs.view("runs", runs, {"state": state})


def _sources(figures) -> dict[str, ColumnDataSource]:
    out = {}
    for fig in figures.values():
        for src in fig.select(type=ColumnDataSource):
            assert src.name not in out, f"two sources named {src.name}"
            out[src.name] = src
    return out


def _named(figures) -> set[str]:
    return {m.name for fig in figures.values() for m in fig.references() if m.name}


# -- the contract ---------------------------------------------------------------------------------
def test_figures_and_views_name_what_they_change(drawn):
    """Every source, range and figure a view changes exists by name in :func:`figures` (the
    class mode finds them by name), once; every source is some view's; props are plain JSON;
    the view names cover the page's computations and read only OverfitParams fields."""
    figures = figs.figures()
    assert {k: f.name for k, f in figures.items()} == {
        k: f"overfit-fig-{k}" for k in ("curves", "w", "v", "count")}
    sources = _sources(figures)
    assert all(name.startswith("overfit-") for name in sources)
    regions = figs.view("regions", None, {"state": _state()})
    for v in (drawn, regions):
        assert set(v["columns"]) <= set(sources)
        assert set(v.get("props", {})) <= _named(figures)
        assert set(v.get("html", {})) <= set(figs.HTML_IDS)
        json.dumps(v.get("props", {}))
        json.dumps(v.get("html", {}))
    assert set(drawn["columns"]) | set(regions["columns"]) == set(sources)
    assert set(computations("overfit", {"state": _state()})) <= set(figs.VIEWS)
    assert all(set(fields) <= set(OverfitParams.FIELDS) for fields in figs.VIEWS.values())
    with pytest.raises(ValueError, match="unknown view"):
        figs.view("bogus", None, {"state": _state()})


@pytest.mark.parametrize("results", [None, []])
def test_the_view_of_nothing_is_empty(results):
    state = _state()
    v = figs.view("runs", results, {"state": state})
    for name, cols in v["columns"].items():
        assert all(len(c) == 0 for c in cols.values()), name
    assert all(text == "" for text in v["html"].values())
    T = state.capped_steps()[0]
    assert v["props"]["overfit-curves-x-range"]["end"] == 1.5 * T
    figures = figs.figures()
    apply_view(figures, v)  # drawn as such: every source empty
    assert all(len(c) == 0 for s in _sources(figures).values() for c in s.data.values()
               if s.name in v["columns"])


def test_applying_the_view_sets_every_named_model(computed, drawn):
    state, runs = computed
    figures = figs.figures()
    apply_view(figures, drawn)
    src = _sources(figures)
    np.testing.assert_array_equal(src["overfit-curves-L0"].data["error"],
                                  drawn["columns"]["overfit-curves-L0"]["error"])
    lim = drawn["props"]["overfit-w-x-range"]["end"]
    assert figures["w"].x_range.end == lim and figures["w"].y_range.start == -lim
    assert figures["w"].x_range.reset_end == lim  # the reset tool comes back to the data


# -- the learning curves and the stages -------------------------------------------------------
def test_curves_are_L_and_R_at_the_steps_of_the_log_axis(computed, drawn):
    state, runs = computed
    for k, ds in enumerate(runs):
        keep = ds.step.values >= 1
        for q, var in (("L", ds.train_error), ("R", ds.generalization_error)):
            cols = drawn["columns"][f"overfit-curves-{q}{k}"]
            np.testing.assert_array_equal(cols["step"], ds.step.values[keep])
            np.testing.assert_array_equal(cols["error"], var.values[keep])
            tau = "τ = 0.2" if k == 0 else "τ = 0"
            assert set(cols["label"]) == {f"{q}, {tau}"}  # one legend entry per line
    lo, hi = (drawn["props"]["overfit-curves-y-range"][e] for e in ("start", "end"))
    smallest = min(float(np.min(var.values)) for ds in runs
                   for var in (ds.train_error, ds.generalization_error))
    assert 0 < lo <= smallest and hi == 5.0  # every point of every curve is in the window


def test_stage_strips_cover_exactly_the_stretches_of_the_stage_labels(computed, drawn):
    """A record at step ≥ 1 lies in a strip iff it is labelled (stage ≠ 0), in exactly one,
    coloured and named after its label; one strip per maximal run of equal labels."""
    _, runs = computed
    ds = runs[0]
    strips = drawn["columns"]["overfit-curves-stages"]
    x0, x1 = np.asarray(strips["x0"]), np.asarray(strips["x1"])
    steps, stage = ds.step.values, ds.stage.values
    for s, c in zip(steps[steps >= 1], stage[steps >= 1]):
        inside = np.flatnonzero((x0 <= s) & (s <= x1))
        if c == 0:
            assert inside.size == 0, s
        else:
            assert inside.size == 1, s
            assert strips["color"][inside[0]] == figs.STAGE_COLORS[int(c)]
            assert strips["stage"][inside[0]] == overfit.STAGES[int(c)]
    # maximal runs of equal non-zero labels, from where the label changes
    edges = np.flatnonzero(np.diff(stage)) + 1
    runs_of_codes = [int(chunk[0]) for chunk in np.split(stage, edges) if chunk[0] != 0]
    assert [overfit.STAGES.index(n) for n in strips["stage"]] == runs_of_codes
    assert np.all(x0 <= x1) and np.all(x1[:-1] < x0[1:])  # in order, disjoint


# -- the orbits -------------------------------------------------------------------------------
def _lift_fit(x, y):
    """O₁ = (w°, v°), w° ≥ 0: the least-squares fit of one neuron v tanh(w x) to the labels,
    found here by BFGS from several starts (the engine uses Levenberg–Marquardt)."""
    def loss(p):
        return np.mean((p[1] * np.tanh(p[0] * x) - y) ** 2)

    best = min((optimize.minimize(loss, p0, method="BFGS", options={"gtol": 1e-12})
                for p0 in ([0.5, 1.0], [1.0, 2.0], [3.0, 1.0])), key=lambda r: r.fun)
    w, v = best.x
    return abs(w), v * np.sign(w)


def test_dotted_lines_are_the_one_neuron_fit_of_the_runs_own_labels(computed, drawn):
    """Paper 001 §4: the singular region holds the embedding of O₁, w1 = w2 = w°,
    v1 + v2 = v°; its projections are w_i = ±w° and v1 + v2 = ±v° (the symmetries). O₁ is the
    fit to the noisy labels of the run at τ, not to the teacher."""
    state, runs = computed
    inputs = state.run_inputs()
    x, y = overfit.make_dataset(inputs["n_data"], inputs["label_noise"], inputs["teacher"],
                                inputs["seed"])
    w_o, v_o = _lift_fit(x, y)
    w_clean, _ = _lift_fit(x, overfit.teacher_values(x, inputs["teacher"]))
    assert abs(w_o - w_clean) > 1e-3  # τ moves O₁: the test tells the two apart
    w = drawn["columns"]["overfit-w-o1"]
    vertical = np.isclose(w["x0"], w["x1"])
    np.testing.assert_allclose(sorted(np.asarray(w["x0"])[vertical]), [-w_o, w_o], rtol=1e-6)
    np.testing.assert_allclose(sorted(np.asarray(w["y0"])[~vertical]), [-w_o, w_o], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(w["y0"])[~vertical], np.asarray(w["y1"])[~vertical])
    v = drawn["columns"]["overfit-v-o1"]
    sums = np.stack([np.add(v["x0"], v["y0"]), np.add(v["x1"], v["y1"])])
    np.testing.assert_allclose(sums[0], sums[1], rtol=0, atol=1e-9)  # each a line v1 + v2 = c
    np.testing.assert_allclose(sorted(sums[0]), [-abs(v_o), abs(v_o)], rtol=1e-6)


def test_orbits_start_and_overfitting_point(computed, drawn):
    _, runs = computed
    for key, (i, j) in (("w", (0, 1)), ("v", (2, 3))):
        lim = drawn["props"][f"overfit-{key}-x-range"]["end"]
        for k, ds in enumerate(runs):
            th = ds.theta.values
            path = drawn["columns"][f"overfit-{key}-path{k}"]
            np.testing.assert_array_equal(path["x"], th[:, i])
            np.testing.assert_array_equal(path["y"], th[:, j])
            np.testing.assert_array_equal(path["step"], ds.step.values)
            start = drawn["columns"][f"overfit-{key}-start{k}"]
            assert (start["x"][0], start["y"][0]) == tuple(overfit.RELEASED_THETA0[[i, j]])
            # the window holds every orbit (unless the 6 cap cuts a far excursion)
            assert lim >= min(np.max(np.abs(th[:, [i, j]])), figs.ORBIT_LIM[1])
        end = drawn["columns"][f"overfit-{key}-end"]
        ref = np.asarray(runs[0].attrs["refined_theta"])
        assert runs[0].stage.values[-1] == 3  # the run at τ ends overfitting: its star
        assert (end["x"], end["y"]) == ([ref[i]], [ref[j]])


def test_the_star_is_only_for_a_run_that_ends_overfitting():
    """τ = 0: R keeps falling, no overfitting stage, no star — though the end is refined."""
    state = _state(label_noise=0.0, compare_clean=False)
    runs = [t.fn(**t.inputs) for t in state.tasks()]
    assert len(runs) == 1 and "refined_theta" in runs[0].attrs
    assert 3 not in runs[0].stage.values
    v = figs.view("runs", runs, {"state": state})
    assert all(len(c) == 0 for c in v["columns"]["overfit-w-end"].values())
    assert all(len(c) == 0 for c in v["columns"]["overfit-curves-L1"].values())  # no twin


@pytest.mark.parametrize("teacher", ["2tanh", "paper000"])
def test_light_lines_and_points_lie_in_the_optimal_region(teacher):
    """Every point of the drawn optimal region lifts to some θ with R(θ) = 0 (MATH.md §2):
    T = 2 tanh x has lines; paper 000's teacher has the eight points Θ* of eq. (9)."""
    v = figs.view("regions", None, {"state": _state(teacher=teacher)})
    t = np.linspace(-3.0, 3.0, 13)
    for key in ("w", "v"):
        lines = v["columns"][f"overfit-{key}-optimal-lines"]
        points = v["columns"][f"overfit-{key}-optimal-points"]
        pts = [np.stack([np.asarray(points["x"], float), np.asarray(points["y"], float)], 1)]
        for x0, y0, x1, y1 in zip(*(lines[c] for c in ("x0", "y0", "x1", "y1"))):
            f = (t + figs.REACH) / (2 * figs.REACH)  # points of the window on the segment
            pts.append(np.stack([x0 + f * (x1 - x0), y0 + f * (y1 - y0)], 1))
        pts = np.concatenate(pts)
        if teacher == "paper000":
            assert len(lines["x0"]) == 0 and len(pts) == 8
        else:
            assert len(points["x"]) == 0 and len(pts) > 0
        for a, b in pts:
            if key == "w":  # the second pair of weights free: v ∈ {(±2, 0), (0, ±2)}, or Θ*'s
                lifts = [[a, b, *vv] for vv in ([2, 0], [-2, 0], [0, 2], [0, -2])]
                lifts += [[a, b, *p[2:]] for p in overfit.OPTIMAL_POINTS]
            else:
                lifts = [[*ww, a, b] for ww in ([1, 1], [-1, -1], [1, 0], [-1, 0], [0, 1],
                                                [0, -1], [1, -1], [-1, 1])]
                lifts += [[*p[:2], a, b] for p in overfit.OPTIMAL_POINTS]
            R = overfit.generalization_error(np.array(lifts, float), teacher)
            assert np.min(np.abs(R)) < 1e-12, (key, a, b)
    assert "Θ*" in v["html"]["overfit-region-key"] or teacher == "2tanh"
    # the released dataset's teacher is 2 tanh x whatever the teacher control says
    released = figs.view("regions", None, {"state": _state(teacher="paper000",
                                                            dataset="released")})
    assert len(released["columns"]["overfit-w-optimal-lines"]["x0"]) > 0


# -- the Hessian counts and the text --------------------------------------------------------------
def test_counts_are_the_positive_hessian_eigenvalues(computed, drawn):
    _, runs = computed
    for k, ds in enumerate(runs):
        cols = drawn["columns"][f"overfit-count-n{k}"]
        keep = ds.step.values >= 1
        np.testing.assert_array_equal(cols["step"], ds.step.values[keep])
        ev = ds.hessian_eigenvalues.values[keep]
        scale = np.max(np.abs(ev), axis=1, keepdims=True)
        np.testing.assert_array_equal(cols["count"], np.sum(ev > 1e-9 * scale, axis=1))
    assert drawn["columns"]["overfit-count-n0"]["count"][-1] == 4  # paper 001: an attractor


def test_summaries_say_where_R_is_smallest_and_the_end(computed, drawn):
    _, runs = computed
    text = drawn["html"]["overfit-summary"]
    assert text.count("<p>") == 2 and text.count("R is smallest") == 2
    R = runs[0].generalization_error.values
    k = int(np.argmin(R))
    assert f"R is smallest ({R[k]:.3g}) at step {int(runs[0].step[k]):,}" in text
    assert "Stages seen: plateau, near-optimal, overfitting." in text
    assert "an attractor (all 4 eigenvalues &gt; 0)" in text  # escaped HTML
    assert drawn["html"]["overfit-stage-key"].count(figs.STAGE_COLORS[3]) == 1
    assert "rank 2" in drawn["html"]["overfit-hessian-note"]


def test_a_streamed_partial_run_and_a_diverged_run():
    """While a run streams: its curves and orbit so far, no stages, no O₁ yet, "running…".
    A diverged run: its curves stop (NaN) at the divergence, which the summary names."""
    state = _state(n_data=30, compare_clean=False)
    x, y = overfit.make_dataset(30, 0.2, "2tanh", 6)
    parts = []
    overfit.train(x, y, overfit.RELEASED_THETA0, 0.02, 20_000, chunk_steps=5_000,
                  on_partial=parts.append)
    part = parts[0]
    v = figs.view("runs", [part], {"state": state})
    keep = part.step.values >= 1
    np.testing.assert_array_equal(v["columns"]["overfit-curves-R0"]["error"],
                                  part.generalization_error.values[keep])
    for empty in ("overfit-curves-stages", "overfit-w-o1", "overfit-v-o1", "overfit-count-n0",
                  "overfit-w-end"):
        assert all(len(c) == 0 for c in v["columns"][empty].values()), empty
    assert "running… 5,000 steps so far" in v["html"]["overfit-summary"]

    ds = overfit.train(x, y, [0.5, -0.5, 1.0, 1.0], 1e3, 200)
    k = ds.attrs["diverged_at"]
    assert k > 0
    v = figs.view("runs", [ds], {"state": state})
    cols = v["columns"]["overfit-curves-L0"]
    assert np.all(np.isnan(cols["error"][cols["step"] >= k]))
    assert f"diverged at step {k:,}" in v["html"]["overfit-summary"]


def test_the_released_dataset_is_named_as_such():
    state = _state(dataset="released")
    assert figs.run_label(0, state) == "τ ≈ 0.2 (released)"
    assert figs.run_label(1, state) == "τ = 0"
    assert figs.run_label(0, _state(label_noise=0.35)) == "τ = 0.35"

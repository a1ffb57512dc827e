"""GUI-free state (app/state.py) and outside-value validation (app/urlstate.py)."""

from __future__ import annotations

import math

import numpy as np
import param
import pytest

from app.state import EnsembleParams, ModelParams, TrajectoryRun
from app.urlstate import apply_values, coerce
from engine import fa


def test_every_parameter_is_declared_with_bounds_and_doc():
    for cls in (ModelParams, EnsembleParams, TrajectoryRun):
        for name, p in cls.param.objects("existing").items():
            if name == "name":
                continue
            assert p.doc, f"{cls.__name__}.{name} has no doc (it is the tooltip)"
            if isinstance(p, param.Number) and name not in ("step",):
                lo, hi = p.bounds
                assert lo is not None and hi is not None, name
                if p.softbounds:
                    assert lo <= p.softbounds[0] <= p.softbounds[1] <= hi, name


@pytest.mark.parametrize("raw", [1e6, "1e300", "inf", float("inf")])
def test_huge_values_are_clamped(raw):
    m = EnsembleParams()
    notices = apply_values(m, {"lr": raw, "n_trajectories": raw}, ["lr", "n_trajectories"])
    assert m.lr == 10.0 and m.n_trajectories == 100
    assert len(notices) == 2 and all("clamped" in n for n in notices)


@pytest.mark.parametrize("raw", ["nan", float("nan"), "abc", None, [], {"a": 1}])
def test_garbage_keeps_the_current_value_with_a_notice(raw):
    m = EnsembleParams(lr=0.2)
    notices = apply_values(m, {"lr": raw}, ["lr"])
    assert m.lr == 0.2 and len(notices) == 1


def test_negative_and_fractional_values():
    m = EnsembleParams()
    notices = apply_values(m, {"sigma2": -5, "batch_size": "2.6", "seed": "-1"},
                           ["sigma2", "batch_size", "seed"])
    assert m.sigma2 == 1e-4 and m.batch_size == 3 and m.seed == 0
    assert len(notices) == 3


def test_selectors_accept_values_and_nearest_numbers():
    m = EnsembleParams()
    assert coerce(m, "teacher", "paper001") == ("paper001", None)
    assert coerce(m, "n_data", "100") == (100, None)
    value, notice = coerce(m, "n_data", "57")
    assert value == 30 and "nearest" in notice
    value, notice = coerce(m, "teacher", "<script>")
    assert value == "paper000" and "not one of the choices" in notice


def test_unknown_keys_are_ignored():
    m = EnsembleParams()
    assert apply_values(m, {"bokeh-session-id": "x", "page": "y"}, ["lr"]) == []


def _run(**model):
    return TrajectoryRun(model=EnsembleParams(n_trajectories=4, **model), steps_per_frame=50)


def test_chunked_live_run_equals_one_engine_run():
    """Advancing frame by frame (η unchanged) reproduces one long engine run exactly."""
    run = _run(sigma2=0.5, seed=4)
    theta0 = run.theta.copy()
    for _ in range(6):
        run.advance()
    assert run.step == 300
    ds = fa.run_ensemble(theta0, 0.1, 0.5, 300, seed=4, loss=False)
    np.testing.assert_array_equal(run.theta, ds.theta_final.values)
    np.testing.assert_array_equal(run.hist_theta[:, -1], ds.theta_final.values)


def test_lr_change_mid_run_is_marked_and_uses_the_new_lr():
    run = _run()
    run.advance()
    state50 = run.theta.copy()
    run.model.lr = 0.2
    assert run.events == [(50, "η → 0.2")] and run.step == 50
    run.model.lr = 0.25  # a drag of the slider at the same step is one change
    assert run.events == [(50, "η → 0.25")]
    run.advance()
    assert run.step == 100
    # the continuation is exactly SGD with the new η from step 50, same noise
    ref = fa.run_ensemble(state50, 0.25, 0.1, 50, seed=0, start_step=50, loss=False)
    np.testing.assert_array_equal(run.theta, ref.theta_final.values)
    old = fa.run_ensemble(state50, 0.1, 0.1, 50, seed=0, start_step=50, loss=False)
    assert not np.array_equal(run.theta, old.theta_final.values)


def test_work_per_frame_is_capped():
    run = TrajectoryRun(model=EnsembleParams(n_trajectories=100, batch_size=1024, n_data=10_000),
                        steps_per_frame=20_000)
    work = run.prepare()
    assert work.kwargs["n_steps"] * 100 * 1024 <= run.work_budget
    assert run.capped == work.kwargs["n_steps"]


def test_restart_params_restart_the_run():
    run = _run()
    run.advance()
    run.model.sigma2 = 1.0
    assert run.step == 0 and "restarted" in run.message
    run.model.n_data = 10
    run.advance()
    run.model.label_noise = 0.3  # part of a fixed dataset: restarts
    assert run.step == 0 and "τ" in run.message


def test_divergence_pauses_with_a_plain_sentence():
    run = TrajectoryRun(model=EnsembleParams(n_trajectories=8, lr=2.0, sigma2=1.0))
    run.advance(200)
    assert run.diverged
    assert "Loss blew up at step" in run.message and "η = 2" in run.message
    assert np.all(np.isfinite(run.hist_theta) | np.isnan(run.hist_theta))  # no ±inf kept
    stopped = run.exit_step >= 0
    assert 0 < stopped.sum() < 8
    # the diverged trajectories stay stopped, the others keep going
    run.advance(10)
    assert run.step == 210 and np.array_equal(run.exit_step >= 0, stopped | (run.exit_step >= 200))
    run.model.lr = 5.0
    run.advance(500)
    run.advance(10)
    assert run.n_running == 0 and "Every trajectory has stopped" in run.message


def test_history_is_thinned():
    run = _run()
    run.max_history = 50
    for _ in range(20):
        run.advance()
    assert run.hist_step.size <= 50 and run.hist_step[-1] == run.step
    assert np.all(np.diff(run.hist_step) > 0)
    assert math.isfinite(run.hist_loss[0, -1])


def test_sessions_do_not_share_state():
    a, b = _run(), _run()
    a.model.lr = 0.3
    a.advance()
    assert b.model.lr == 0.1 and b.step == 0


def test_ranges_from_links_are_parsed_and_clamped():
    from app.state import PhaseParams

    p = PhaseParams()
    assert apply_values(p, {"log_lr_range": "-3,1.5"}, ["log_lr_range"]) == []
    assert p.log_lr_range == (-3.0, 1.5)
    notices = apply_values(p, {"mu_range": [-1, 0.5], "log_lr_range": "2,1"}, ["mu_range", "log_lr_range"])
    assert p.mu_range == (0.0, 0.5) and p.log_lr_range == (-3.0, 1.5) and len(notices) == 2


@pytest.mark.parametrize("name,value,says", [
    ("v0", 0.7, "where the trajectories start"), ("n_trajectories", 5, "where the trajectories start"),
    ("spread", 0.2, "where the trajectories start"), ("sigma2", 0.5, "the data SGD sees"),
    ("batch_size", 4, "the data SGD sees"),
    ("seed", 3, "the data SGD sees and where the trajectories start")])
def test_the_restart_notice_says_what_the_change_changes(name, value, says):
    """v0 or the number of trajectories move the starting points, not the data SGD sees
    (issue 15, item 9); σ² and S change the data; the seed draws both."""
    run = TrajectoryRun(model=EnsembleParams())
    setattr(run.model, name, value)
    assert run.step == 0 and run.message.endswith(f"(this changes {says}).")
    assert ("data SGD sees" in run.message) == ("data" in says)


@pytest.mark.parametrize("raw,step,kept", [
    (1.200000158019822, 0.01, 1.2), (0.25118873255775953, 0.001, 0.2512),
    (0.00012, 0.001, 0.00012), (2.5, 0.001, 2.5), (-0.3000000119, 0.01, -0.3)])
def test_values_are_kept_to_their_controls_precision(raw, step, kept):
    """A slider sends float32 (1.2 → 1.200000158019822), a click on a log axis 10^x: links
    and exports showed these tails. Stored values keep the step's decimals and at least four
    significant digits, whoever sets them."""
    from app.state import tidy

    assert tidy(raw, step) == kept
    p = EnsembleParams()
    p.w0 = raw if abs(raw) <= 5 else 0.5
    assert p.w0 == tidy(raw, EnsembleParams.param.w0.step)
    p.lr = 0.1  # an exact value stays exact
    assert p.lr == 0.1 and repr(p.lr) == "0.1"

"""Fukumizu–Amari ensemble SGD (engine/fa.py) against the equations of paper 000 / MATH.md §1."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import integrate

from engine import fa, schema

RNG = np.random.default_rng(12345)
THETA0 = RNG.uniform(-1.5, 1.5, (7, 4))


def numpy_sgd(theta0, lr, x, y):
    """Plain-NumPy SGD for MATH.md §1: x, y of shape (n, T, S); returns (n, T + 1, 4)."""
    th = np.array(theta0, dtype=float)
    out = [th.copy()]
    for t in range(x.shape[1]):
        xb, yb = x[:, t, :], y[:, t, :]
        w1, w2, v1, v2 = (th[:, i, None] for i in range(4))
        t1, t2 = np.tanh(w1 * xb), np.tanh(w2 * xb)
        h = v1 * t1 + v2 * t2 - yb
        grad = np.stack([
            np.mean(xb * v1 * h / np.cosh(w1 * xb) ** 2, axis=1),
            np.mean(xb * v2 * h / np.cosh(w2 * xb) ** 2, axis=1),
            np.mean(t1 * h, axis=1),
            np.mean(t2 * h, axis=1),
        ], axis=1)
        th = th - lr * grad
        out.append(th.copy())
    return np.stack(out, axis=1)


@pytest.mark.parametrize("teacher", ["paper000", "paper001"])
@pytest.mark.parametrize("batch_size,tau,shared", [(1, 0.0, False), (3, 0.3, False), (2, 0.1, True)])
def test_online_step_equals_numpy(teacher, batch_size, tau, shared):
    T, lr, sigma2 = 40, 0.05, 0.7
    ds = fa.run_ensemble(THETA0, lr, sigma2, T, batch_size=batch_size, label_noise=tau,
                         teacher=teacher, shared_noise=shared, seed=11)
    n = THETA0.shape[0]
    x = fa.sample_inputs(n, T, sigma2, batch_size, shared, seed=11)
    xi = fa.sample_inputs(n, T, sigma2, batch_size, shared, seed=11, stream="label")
    y = fa.teacher_numpy(x, teacher) + tau * xi
    expected = numpy_sgd(THETA0, lr, x, y)
    np.testing.assert_allclose(ds.theta.values, expected, rtol=1e-11, atol=1e-13)
    if shared:  # every trajectory saw the inputs of trajectory 0
        assert np.all(x == x[:1])


@pytest.mark.parametrize("batch_size", [4, 50])
def test_dataset_step_equals_numpy(batch_size):
    n_data, T, lr = 20, 30, 0.1
    ds = fa.run_ensemble(THETA0, lr, 1.0, T, batch_size=batch_size, label_noise=0.2,
                         teacher="paper001", n_data=n_data, seed=5)
    x_d, y_d = fa.make_data(n_data, 1.0, 0.2, "paper001", seed=5)
    np.testing.assert_array_equal(ds.data_x.values, x_d)
    # the labels carry the label noise drawn once with the data (paper 001)
    assert 0.1 < np.std(y_d - 2 * np.tanh(x_d)) < 0.3
    for j in range(THETA0.shape[0]):
        idx = fa.batch_indices(n_data, batch_size, T, seed=5, trajectory=j)
        assert all(len(set(row)) == len(row) for row in idx)  # without replacement
        expected = numpy_sgd(THETA0[j:j + 1], lr, x_d[idx][None], y_d[idx][None])
        np.testing.assert_allclose(ds.theta.values[j:j + 1], expected, rtol=1e-11, atol=1e-13)


def test_batches_cover_the_dataset_uniformly():
    idx = fa.batch_indices(10, 3, 20_000, seed=1)
    counts = np.bincount(idx.ravel(), minlength=10)
    expected = idx.size / 10
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_gradient_equals_finite_differences():
    x = RNG.normal(0, 1.2, 9)
    y = fa.teacher_numpy(x) + 0.1 * RNG.normal(size=9)
    loss, grad = fa.loss_and_grad(THETA0, x, y)
    h = 1e-6
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd = (fa.loss_and_grad(THETA0 + e, x, y)[0] - fa.loss_and_grad(THETA0 - e, x, y)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(loss, 0.5 * np.mean((fa.student(THETA0, x) - y) ** 2, axis=-1))


def test_population_gradient_equals_finite_differences():
    grad = fa.population_grad(THETA0, 0.5)
    h = 1e-6
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd = (fa.population_loss(THETA0 + e, 0.5) - fa.population_loss(THETA0 - e, 0.5)) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("sigma2", [1e-4, 0.004, 0.1, 1.0, 4.0, 100.0])
@pytest.mark.parametrize("theta", [(0.5, 0.5, 0.5, 0.5), (1.0, 4.5, -2.0, 0.7), (-5.0, 0.1, 3.0, -1.0),
                                   (40.0, -0.01, 1.0, 2.0)])
def test_population_loss_equals_adaptive_quadrature(sigma2, theta):
    """The quadrature rule against scipy's adaptive QUADPACK (MATH.md §2 warns about G–H)."""
    s = np.sqrt(sigma2)

    def integrand(x):
        f = theta[2] * np.tanh(theta[0] * x) + theta[3] * np.tanh(theta[1] * x)
        return 0.5 * (f - fa.teacher_numpy(x)) ** 2 * np.exp(-x * x / (2 * sigma2)) / np.sqrt(2 * np.pi * sigma2)

    ref = 2 * integrate.quad(integrand, 0, 12 * s, epsabs=0, epsrel=1e-13, limit=500,
                             points=[s * p for p in (0.01, 0.1, 1)])[0]
    assert fa.population_loss(np.array(theta), sigma2) == pytest.approx(ref, rel=1e-9)


def test_reduced_map_equals_4d_map_on_Mwv():
    """Paper 000 eqs. (31)–(32) in NumPy against the 4-D integrator started on M_wv."""
    wv0 = RNG.uniform(0.05, 2.0, (5, 2))
    T, lr, sigma2 = 60, 0.1, 0.3
    ds = fa.run_reduced(wv0, lr, sigma2, T, seed=3)
    x = fa.sample_inputs(5, T, sigma2, 1, seed=3)[:, :, 0]
    w, v = wv0[:, 0].copy(), wv0[:, 1].copy()
    traj = [np.stack([w, v], axis=1)]
    for t in range(T):
        w, v = fa.reduced_map(w, v, x[:, t], lr)
        traj.append(np.stack([w, v], axis=1))
    np.testing.assert_allclose(ds.theta.values, np.stack(traj, axis=1), rtol=1e-11, atol=1e-13)
    full = fa.run_ensemble(wv0[:, [0, 0, 1, 1]], lr, sigma2, T, seed=3)
    th = full.theta.values  # stays on M_wv exactly
    assert np.array_equal(th[..., 0], th[..., 1]) and np.array_equal(th[..., 2], th[..., 3])


def _swap(th):
    return th[..., [1, 0, 3, 2]]


def _flip_first(th):
    out = th.copy()
    out[..., [0, 2]] *= -1
    return out


@pytest.mark.parametrize("n_data", [None, 15])
def test_symmetries_are_exact(n_data):
    """Neuron swap and the sign flip (w1, v1) → (−w1, −v1) commute with SGD (paper 000 §2)."""
    kw = dict(lr=0.1, sigma2=1.0, n_steps=50, label_noise=0.1, n_data=n_data, batch_size=3,
              shared_noise=True, seed=4)
    base = fa.run_ensemble(THETA0, **kw).theta.values
    np.testing.assert_array_equal(fa.run_ensemble(_swap(THETA0), **kw).theta.values, _swap(base))
    np.testing.assert_array_equal(fa.run_ensemble(_flip_first(THETA0), **kw).theta.values,
                                  _flip_first(base))


def test_optimal_points_are_fixed_points_of_exact_gd():
    """The eight minima of paper 000 eq. (9) are fixed points of GD on the exact loss."""
    for sigma2 in (0.1, 1.0):
        grad = fa.population_grad(fa.OPTIMAL_POINTS, sigma2)
        assert np.max(np.abs(grad)) < 1e-14
        np.testing.assert_array_equal(fa.OPTIMAL_POINTS - 0.1 * grad, fa.OPTIMAL_POINTS)
        assert np.max(fa.population_loss(fa.OPTIMAL_POINTS, sigma2)) < 1e-28
        # …and the check can fail: a nearby point is not a fixed point
        assert np.min(np.abs(fa.population_grad(fa.OPTIMAL_POINTS + 0.05, sigma2)).max(axis=1)) > 1e-3
    # full-batch GD with the teacher's own labels leaves them exactly in place
    ds = fa.run_ensemble(fa.OPTIMAL_POINTS, 0.1, 1.0, 200, n_data=40, batch_size=40)
    np.testing.assert_array_equal(ds.theta_final.values, fa.OPTIMAL_POINTS)


def test_same_seed_is_bit_identical_and_seeds_differ():
    kw = dict(lr=0.1, sigma2=0.5, n_steps=300, record_every=7, label_noise=0.2)
    a = fa.run_ensemble(THETA0, seed=9, **kw)
    xr.testing.assert_identical(a, fa.run_ensemble(THETA0, seed=9, **kw))
    assert not np.array_equal(a.theta.values, fa.run_ensemble(THETA0, seed=10, **kw).theta.values)


def test_trajectory_does_not_depend_on_ensemble_size_or_threads():
    """A trajectory's noise is its own: serial (7) and parallel (600) ensembles agree exactly."""
    big = np.concatenate([THETA0, RNG.uniform(-1, 1, (593, 4))])
    kw = dict(lr=0.1, sigma2=0.5, n_steps=200, record_every=50, seed=2, loss=False)
    np.testing.assert_array_equal(fa.run_ensemble(big, **kw).theta.values[:7],
                                  fa.run_ensemble(THETA0, **kw).theta.values)


@pytest.mark.parametrize("n_data", [None, 12])
def test_continuing_a_run_equals_one_long_run(n_data):
    kw = dict(lr=0.1, sigma2=0.5, batch_size=2, label_noise=0.1, n_data=n_data, seed=8)
    whole = fa.run_ensemble(THETA0, n_steps=100, **kw)
    first = fa.run_ensemble(THETA0, n_steps=60, **kw)
    second = fa.run_ensemble(first.theta_final.values, n_steps=40, start_step=60, **kw)
    np.testing.assert_array_equal(second.theta.values, whole.theta.sel(step=slice(60, None)).values)
    np.testing.assert_array_equal(second.step.values, np.arange(60, 101))


def test_divergence_over_a_log_grid_of_lr_is_reported_not_raised():
    th = np.tile([0.5, -0.5, 1.0, 1.0], (4, 1))
    seen_diverged = False
    for lr in np.geomspace(1e-4, 1e3, 15):
        ds = fa.run_ensemble(th, lr, 1.0, 400, batch_size=4, seed=1)
        reason, step = ds.exit_reason.values, ds.exit_step.values
        assert np.all((reason == schema.EXIT_DIVERGED) == (step >= 0))
        for j in np.flatnonzero(step >= 0):
            seen_diverged = True
            rec = ds.theta.values[j]
            k = np.searchsorted(ds.step.values, step[j])  # first record at/after divergence
            assert np.all(np.isnan(rec[k:])) and np.all(np.isfinite(rec[:k]))
            assert np.all(np.isfinite(ds.loss.values[j, :k]))
        if lr < 0.1:
            assert np.all(step == -1), f"lr={lr} should not diverge"
    assert seen_diverged


def test_leaving_the_box_is_recorded():
    # σ² = 0.07 is near the escape-time minimum of paper 000 Fig. 5: many leave [−2, 2]²
    wv0 = RNG.uniform(0.01, 2.0, (50, 2))
    ds = fa.run_reduced(wv0, 0.1, 0.07, 20_000, bound=2.0, record_every=10, seed=6)
    left = ds.exit_step.values >= 0
    assert left.any()
    assert np.all(ds.exit_reason.values[left] == schema.EXIT_BOX)
    final = ds.theta_final.values[left]
    assert np.all(np.abs(final).max(axis=1) > 2.0)  # stopped on the first step outside
    for j in np.flatnonzero(left):
        before = ds.theta.values[j, ds.step.values < ds.exit_step.values[j]]
        assert np.all(np.abs(before) <= 2.0) and np.all(np.isnan(ds.theta.values[j, -1]))


def test_dataset_follows_the_schema():
    ds = fa.run_ensemble(THETA0, 0.1, 1.0, 20, n_data=10, batch_size=3, seed=1)
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
    for dim in ds.dims:
        assert dim in ds.coords
    assert ds.attrs["seed"] == 1 and ds.attrs["engine_version"]
    assert ds.theta.dims == ("trajectory", "step", "param")
    assert list(ds.param.values) == ["w1", "w2", "v1", "v2"]
    schema.require(ds, "theta", "loss", "train_loss")
    with pytest.raises(ValueError, match="lacks nope"):
        schema.require(ds, "nope")
    # the training loss is the mean over the returned dataset
    th = ds.theta.values[:, -1]
    f = fa.student(th, ds.data_x.values)
    np.testing.assert_allclose(ds.train_loss.values[:, -1],
                               0.5 * np.mean((f - ds.data_y.values) ** 2, axis=1))


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1.0), "lr must be a finite number > 0"),
    (dict(lr=np.nan), "lr must be a finite number"),
    (dict(sigma2=np.inf), "sigma2 must be a finite number"),
    (dict(n_steps=2.5), "n_steps must be a whole number"),
    (dict(batch_size=0), "batch_size must be ≥ 1"),
    (dict(label_noise=-0.1), "label_noise must be a finite number ≥ 0"),
    (dict(teacher="nope"), "teacher must be one of"),
    (dict(n_data=0), "n_data must be ≥ 1"),
    (dict(record_every=0), "record_every must be ≥ 1"),
    (dict(seed=-3), "seed must be ≥ 0"),
    (dict(theta0=np.zeros((3, 3))), "last axis of length 4"),
    (dict(theta0=np.full((3, 4), np.nan)), "NaN or inf"),
])
def test_bad_input_gets_a_clear_message(kwargs, match):
    args = dict(theta0=THETA0, lr=0.1, sigma2=1.0, n_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fa.run_ensemble(**args)


def test_uniform_initial_conditions():
    th = fa.uniform_initial(20_000, 0.5, seed=3)
    assert th.shape == (20_000, 4) and np.all(np.abs(th) <= 0.5)
    assert np.allclose(th.mean(axis=0), 0, atol=5 * 0.5 / np.sqrt(3 * 20_000))
    np.testing.assert_array_equal(fa.uniform_initial(10, 0.5, seed=3), th[:10])


@pytest.mark.parametrize("n_data", [None, 12])
def test_a_subset_with_its_ids_reproduces_the_full_run(n_data):
    kw = dict(lr=0.1, sigma2=0.5, n_steps=80, batch_size=2, n_data=n_data, seed=8)
    full = fa.run_ensemble(THETA0, **kw)
    ids = np.array([1, 4, 6])
    part = fa.run_ensemble(THETA0[ids], trajectory_ids=ids, **kw)
    np.testing.assert_array_equal(part.theta.values, full.theta.values[ids])
    np.testing.assert_array_equal(part.trajectory.values, ids)


@pytest.mark.parametrize("n_data", [None, 12])
def test_the_final_step_is_always_recorded(n_data):
    ds = fa.run_ensemble(THETA0, 0.1, 0.5, 50, record_every=7, n_data=n_data, start_step=3)
    np.testing.assert_array_equal(ds.step.values, [3, 10, 17, 24, 31, 38, 45, 52, 53])
    np.testing.assert_array_equal(ds.theta.values[:, -1], ds.theta_final.values)
    every = fa.run_ensemble(THETA0, 0.1, 0.5, 50, n_data=n_data, start_step=3)
    np.testing.assert_array_equal(ds.theta.values, every.theta.sel(step=ds.step).values)


def test_the_callers_array_is_never_aliased_and_inf_bound_is_accepted():
    th = THETA0.copy()
    ds = fa.run_ensemble(th, 0.1, 1.0, 5, bound=np.inf)
    ds.theta_init.values.flags.writeable = False  # as the cache does
    th[0, 0] = 9.0  # still writable
    assert ds.theta_init.values[0, 0] == THETA0[0, 0]


def test_large_batches_are_distinct_and_uniform():
    idx = fa.batch_indices(10, 9, 4000, seed=3)
    assert all(len(set(row)) == 9 for row in idx)
    counts = np.bincount(idx.ravel(), minlength=10)
    assert np.all(np.abs(counts - idx.size / 10) < 5 * np.sqrt(idx.size / 10))


def test_teacher_alias_gives_the_same_dataset():
    a = fa.run_ensemble(THETA0, 0.1, 1.0, 20, teacher="2tanh", seed=1)
    b = fa.run_ensemble(THETA0, 0.1, 1.0, 20, teacher="paper001", seed=1)
    xr.testing.assert_identical(a, b)


@pytest.mark.parametrize("teacher", ["paper000", "paper001"])
def test_the_loss_alone_is_the_loss_of_the_loss_and_gradient_kernel_to_the_last_bit(teacher):
    """The loss records use a kernel without the gradient (engine.fa._weighted_loss); it must
    give exactly what the loss-and-gradient kernel gives for the same quadrature."""
    theta = np.random.default_rng(4).normal(scale=2.0, size=(200, 4))
    for sigma2 in (0.1, 1.0, 7.0):
        np.testing.assert_array_equal(fa.population_loss(theta, sigma2, teacher),
                                      fa._population(theta, sigma2, teacher)[0])

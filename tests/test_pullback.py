"""Finite-time pullback attractors (paper 000 Fig. 4, Appendix C)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import fa, pullback


def test_distance_to_mwv():
    th = np.array([[0.3, 0.3, -1.0, -1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    np.testing.assert_allclose(pullback.distance_to_mwv(th), [0.0, 0.5, 1.0])


def test_chunked_cloud_equals_one_shared_noise_run():
    ds = pullback.pullback_cloud(1.0, 700, n_points=300, chunk_steps=128, seed=2)
    th0 = fa.uniform_initial(300, 1.0, 2)
    ref = fa.run_ensemble(th0, 0.1, 1.0, 700, shared_noise=True, record_every=700, seed=2,
                          start_step=pullback.HORIZON - 700, loss=False)
    np.testing.assert_array_equal(ds.cloud.values, ref.theta_final.values)
    np.testing.assert_allclose(ds.distance.values, pullback.distance_to_mwv(ref.theta_final.values))


def test_all_paths_share_one_noise_realisation():
    """Identical starts end identically, and the first k paths do not depend on n."""
    small = pullback.pullback_cloud(1.0, 500, n_points=50, seed=1).cloud.values
    big = pullback.pullback_cloud(1.0, 500, n_points=600, seed=1).cloud.values
    np.testing.assert_array_equal(small, big[:50])


def test_nested_pullback_uses_the_same_past():
    """The τ_pb = 400 cloud is the τ_pb = 200 map applied to the state at −200 of the
    τ_pb = 400 run: both see the inputs of times −200 … −1."""
    th0 = fa.uniform_initial(100, 1.0, 0)
    first = fa.run_ensemble(th0, 0.1, 1.0, 200, shared_noise=True, record_every=200,
                            start_step=pullback.HORIZON - 400, loss=False).theta_final.values
    second = fa.run_ensemble(first, 0.1, 1.0, 200, shared_noise=True, record_every=200,
                             start_step=pullback.HORIZON - 200, loss=False).theta_final.values
    np.testing.assert_array_equal(pullback.pullback_cloud(1.0, 400, n_points=100).cloud.values, second)


def test_progress_and_cancel():
    seen = []
    pullback.pullback_cloud(1.0, 1000, n_points=100, chunk_steps=300,
                            progress=lambda d, t: seen.append((d, t)))
    assert seen == [(300, 1000), (600, 1000), (900, 1000), (1000, 1000)]
    calls = iter([False, False, True])
    with pytest.raises(pullback.Cancelled):
        pullback.pullback_cloud(1.0, 1000, n_points=100, chunk_steps=300, cancel=lambda: next(calls))


def test_strong_noise_traps_more_paths():
    """Paper 000 Fig. 4: many paths stay near M_wv at σ² = 1, almost none at σ² = 0.1."""
    strong = pullback.pullback_cloud(1.0, 5_000, n_points=3_000).trapped_fraction
    weak = pullback.pullback_cloud(0.1, 5_000, n_points=3_000).trapped_fraction
    assert float(strong) > 0.1 and float(weak) < 0.05


def test_several_pullback_times_and_bad_input():
    ds = pullback.pullback_clouds(1.0, (100, 300), n_points=50)
    assert list(ds.pullback_time.values) == [100, 300] and ds.cloud.dims == ("pullback_time", "trajectory", "param")
    assert ds.pullback_time.attrs["long_name"]
    with pytest.raises(ValueError, match="pullback_time"):
        pullback.pullback_cloud(1.0, 10**7)
    with pytest.raises(ValueError, match="distance"):
        pullback.pullback_cloud(1.0, 10, distance=-1)

"""Finite-time pullback attractors (paper 000 Fig. 4, Appendix C)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import fa, pullback


def test_distance_to_mwv():
    """Eq. 19 of paper 000, to the nearer copy of M_wv (MATH.md §1): a point with one weight
    or one output zero is as far from M_wv as from its mirror."""
    th = np.array([[0.3, 0.3, -1.0, -1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0],
                   [1.0, 0.8, 0.0, 0.0], [1.0, -0.8, 0.5, -0.4]])
    np.testing.assert_allclose(pullback.distance_to_mwv(th), [0.0, 0.5, 1.0, 0.1, np.hypot(0.1, 0.05)])


# the order-8 group under which f, and SGD, are invariant (MATH.md §1, "Symmetries")
def _swap(t):
    return t[..., [1, 0, 3, 2]]


def _flip(t, i):
    out = t.copy()
    out[..., [i, i + 2]] *= -1
    return out


def _group(t):
    """The 8 images of t under swapping the neurons and flipping one neuron's pair (w_i, v_i)."""
    images = [t, _flip(t, 0), _flip(t, 1), _flip(_flip(t, 0), 1)]
    return images + [_swap(x) for x in images]


SYNC = np.array([0.283, 0.283, 0.876, 0.876])  # paper 000 σ² = 1, η = 0.1: a trapped point
MIRROR = np.array([0.283, -0.283, 0.876, -0.876])  # its image with neuron 2's sign flipped


def test_the_mirror_copy_of_mwv_is_at_distance_zero():
    """Paths synchronised on {w1 = −w2, v1 = −v2} are on M_wv's mirror: distance 0, as on M_wv."""
    pts = np.array(_group(SYNC))
    assert len({tuple(p) for p in pts}) == 4  # the four images of MATH.md §1: ±SYNC, ±MIRROR
    np.testing.assert_array_equal(pullback.distance_to_mwv(pts), 0.0)
    rng = np.random.default_rng(3)
    wv = rng.uniform(-2, 2, (50, 2))
    on_mirror = np.column_stack([wv[:, 0], -wv[:, 0], wv[:, 1], -wv[:, 1]])
    np.testing.assert_array_equal(pullback.distance_to_mwv(on_mirror), 0.0)


def test_distance_is_invariant_under_the_symmetry_group():
    theta = np.random.default_rng(0).normal(0, 1.5, (2_000, 4))
    d = pullback.distance_to_mwv(theta)
    images = _group(theta)
    assert not any(np.array_equal(images[0], x) for x in images[1:])  # 8 distinct maps
    for image in images:
        np.testing.assert_allclose(pullback.distance_to_mwv(image), d, rtol=1e-15, atol=0)


def test_distance_is_the_smaller_of_the_two_closed_forms():
    """min(√(r² + s²), √(r′² + s′²)): eq. 19 for M_wv and for its mirror, and both are
    1/√2 times the Euclidean distance in θ to the nearest point of that plane."""
    theta = np.random.default_rng(1).uniform(-3, 3, (2_000, 4))
    w1, w2, v1, v2 = theta.T
    to_mwv = np.sqrt(((w1 - w2) / 2) ** 2 + ((v1 - v2) / 2) ** 2)
    to_mirror = np.sqrt(((w1 + w2) / 2) ** 2 + ((v1 + v2) / 2) ** 2)
    d = pullback.distance_to_mwv(theta)
    np.testing.assert_allclose(d, np.minimum(to_mwv, to_mirror), rtol=1e-14)
    assert 0.3 < np.mean(to_mirror < to_mwv) < 0.7  # both branches are exercised
    # independently: orthogonal projection onto each plane, spanned by its two unit vectors
    for a in (np.array([[1, 1, 0, 0], [0, 0, 1, 1]]), np.array([[1, -1, 0, 0], [0, 0, 1, -1]])):
        basis = a / np.sqrt(2)
        foot = theta @ basis.T @ basis
        euclid = np.linalg.norm(theta - foot, axis=1)
        assert np.all(d <= euclid / np.sqrt(2) + 1e-12)
    assert d.shape == (2_000,) and d.dtype == np.float64
    with pytest.raises(ValueError, match="length 4"):
        pullback.distance_to_mwv(np.zeros((3, 5)))


def test_nearest_mwv_point_returns_points_on_either_copy_folded():
    rng = np.random.default_rng(2)
    w, v = rng.uniform(-2, 2, 400), rng.uniform(-2, 2, 400)
    on_mwv = np.column_stack([w, w, v, v])
    on_mirror = np.column_stack([w, -w, v, -v])
    sign = np.where(w < 0, -1.0, 1.0)  # the fold (w, v) → (−w, −v) to w ≥ 0
    for pts in (on_mwv, on_mirror):
        got_w, got_v, dist = pullback.nearest_mwv_point(pts)
        np.testing.assert_allclose(got_w, sign * w, rtol=1e-15)
        np.testing.assert_allclose(got_v, sign * v, rtol=1e-15)
        np.testing.assert_array_equal(dist, 0.0)
    np.testing.assert_allclose(pullback.nearest_mwv_point(MIRROR)[:2], (0.283, 0.876))
    np.testing.assert_allclose(pullback.nearest_mwv_point(-MIRROR)[:2], (0.283, 0.876))


def test_nearest_mwv_point_is_a_symmetry_invariant_foot_at_distance_to_mwv():
    theta = np.random.default_rng(4).normal(0, 1.5, (2_000, 4))
    w, v, dist = pullback.nearest_mwv_point(theta)
    np.testing.assert_array_equal(dist, pullback.distance_to_mwv(theta))
    assert np.all(w >= 0)
    # the foot (w, w, v, v) or its mirror image is the orthogonal projection, at √2 · distance
    feet = [np.column_stack([s * w, t * w, s * v, t * v]) for s in (1, -1) for t in (1, -1)]
    euclid = np.min([np.linalg.norm(theta - f, axis=1) for f in feet], axis=0)
    np.testing.assert_allclose(euclid, np.sqrt(2) * dist, rtol=1e-12)
    for image in _group(theta):  # every image of θ has the same nearest point of M_wv
        for got, want in zip(pullback.nearest_mwv_point(image), (w, v, dist)):
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)


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


@pytest.mark.slow
def test_the_fig4_preset_prompts_numbers():
    """The ``fig4-s1`` prompt (assets/presets.yaml; paper 000 Fig. 4, σ² = 1, η = 0.1):
    "89–92 % trapped …, about 22–23 % in each of the four clusters … At τ_pb = 10⁴ (seed 0)
    41 %". Checked on the first 2·10⁴ of the seed-0 cloud's 10⁵ paths (the paths are
    independent given the shared noise; a share of 2·10⁴ paths has a standard error < 0.4 %)."""
    late = pullback.pullback_cloud(1.0, 100_000, 0.1, n_points=20_000, seed=0)
    d = late.distance.values
    assert 0.88 <= np.mean(d < 0.1) <= 0.93
    assert np.mean(d < 0.01) == pytest.approx(np.mean(d < 0.1), abs=0.005)  # synchronised
    trapped = late.cloud.values[d < 0.1]
    signs = np.sign(trapped[:, :2])  # the four clusters: ±(w, w, v, v), ±(w, −w, v, −v)
    shares = [np.mean((signs[:, 0] == a) & (signs[:, 1] == b)) * trapped.shape[0] / d.size
              for a in (-1, 1) for b in (-1, 1)]
    assert all(0.21 <= s <= 0.245 for s in shares), shares
    early = pullback.pullback_cloud(1.0, 10_000, 0.1, n_points=20_000, seed=0)
    assert np.mean(early.distance.values < 0.1) == pytest.approx(0.41, abs=0.02)

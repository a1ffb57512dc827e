"""The branch-free elementary functions and the counter-based RNG (engine/_vecmath.py)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import stats

from engine._vecmath import _sincos_turn, normals, stream_key, uniforms, vlog, vtanh

EPS = np.finfo(float).eps


@njit(error_model="numpy")
def _map(f, z):
    out = np.empty_like(z)
    for i in range(z.size):
        out[i] = f(z[i])
    return out


@njit
def _vtanh(z):
    return vtanh(z)


@njit
def _vlog(z):
    return vlog(z)


def _map_tanh(z):
    return _map(_vtanh, z)


def _map_log(z):
    return _map(_vlog, z)


@njit(error_model="numpy")
def _map_sincos(u):
    c = np.empty_like(u)
    s = np.empty_like(u)
    for i in range(u.size):
        c[i], s[i] = _sincos_turn(u[i])
    return c, s


def test_tanh_matches_numpy_to_a_few_ulp():
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(0, 1, 200_000), rng.normal(0, 30, 100_000),
                        rng.uniform(-1e-9, 1e-9, 10_000), np.geomspace(1e-300, 800, 2000)])
    z = np.concatenate([z, -z])
    got, ref = _map_tanh(z), np.tanh(z)
    nz = ref != 0
    assert np.max(np.abs(got[nz] - ref[nz]) / np.abs(ref[nz])) < 4 * EPS
    assert np.array_equal(got, -_map_tanh(-z))  # exactly odd: neuron sign flips are exact


def test_tanh_special_values():
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324])
    got = _map_tanh(z)
    assert got[0] == 0 and got[1] == 0 and np.signbit(got[1])
    assert got[2] == 1 and got[3] == -1
    assert np.isnan(got[4])
    assert got[5] == 5e-324


def test_log_matches_numpy():
    rng = np.random.default_rng(2)
    u = np.concatenate([rng.uniform(0, 1, 200_000), 2.0 ** -np.arange(0, 53), [1.0]])
    got, ref = _map_log(u), np.log(u)
    nz = ref != 0
    assert np.max(np.abs(got[nz] - ref[nz]) / np.abs(ref[nz])) < 4 * EPS
    assert got[-1] == 0.0


def test_sincos_of_a_turn_matches_numpy():
    u = np.concatenate([np.linspace(0, 1, 100_001)[:-1], [0.125, 0.25, 0.375, 0.5, 0.75]])
    c, s = _map_sincos(u)
    assert np.max(np.abs(c - np.cos(2 * np.pi * u))) < 4 * EPS
    assert np.max(np.abs(s - np.sin(2 * np.pi * u))) < 4 * EPS


def test_normals_are_standard_normal():
    z = normals(stream_key(7, 0, 3), 0, 400_000)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # Box–Muller pairs must not be correlated with each other
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / np.sqrt(n / 2)


def test_uniforms_are_uniform_and_streams_independent():
    u = uniforms(stream_key(7, 0, 3), 0, 200_000)
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3
    a = normals(stream_key(7, 0, 0), 0, 100_000)
    b = normals(stream_key(7, 0, 1), 0, 100_000)
    c = normals(stream_key(8, 0, 0), 0, 100_000)
    for x, y in ((a, b), (a, c)):
        assert abs(np.corrcoef(x, y)[0, 1]) < 5 / np.sqrt(a.size)


def test_streams_are_counter_based():
    key = stream_key(3, 1, 4)
    full = normals(key, 0, 1001)
    for start in (0, 1, 2, 499, 1000):
        np.testing.assert_array_equal(normals(key, start, 1001 - start), full[start:])
    assert not np.array_equal(normals(stream_key(3, 1, 5), 0, 10), full[:10])


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1])
def test_stream_keys_differ(seed):
    keys = {stream_key(seed, s, i) for s in range(3) for i in range(100)}
    assert len(keys) == 300

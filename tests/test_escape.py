"""Escape times from M_wv (paper 000 §4.2, Fig. 5; MATH.md §1c). Issue 5's engine part."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from engine import escape, fa, schema


def test_escape_times_equal_a_plain_per_trajectory_loop():
    """The same random numbers through eqs. (31)–(32) in NumPy, one trajectory at a time."""
    n, cap, s2 = 25, 3000, 0.07
    ds = escape.escape_times(s2, n_trajectories=n, max_steps=cap, seed=3)
    wv0 = escape.initial_conditions(n, 3)
    x = fa.sample_inputs(n, cap, s2, seed=3)[:, :, 0]
    for j in range(n):
        w, v = wv0[j]
        t_exit = cap
        for t in range(cap):
            w, v = fa.reduced_map(w, v, x[j, t], 0.1)
            if abs(w) > 2 or abs(v) > 2:
                t_exit = t + 1
                break
        assert int(ds.escape_time.values[0, j]) == t_exit
        assert bool(ds.censored.values[0, j]) == (t_exit == cap and not (abs(w) > 2 or abs(v) > 2))


def test_initial_conditions_are_in_the_half_open_box():
    """Uniform in (0, 2]² (MATH.md §1c): each coordinate has mean 1 and variance 1/3, and its
    empirical distribution function is x/2 — within what sampling allows for n points
    (5 standard errors for the moments; 1.95/√n, the 0.1 % Kolmogorov–Smirnov bound)."""
    n = 50_000
    wv = escape.initial_conditions(n, 1)
    assert np.all((wv > 0) & (wv <= 2))
    for c in wv.T:
        assert abs(c.mean() - 1) < 5 * math.sqrt(1 / 3 / n)
        # Var[(x - 1)²] = E(x-1)⁴ - (1/3)² = 1/5 - 1/9 for x uniform on (0, 2]
        assert abs(c.var() - 1 / 3) < 5 * math.sqrt((1 / 5 - 1 / 9) / n)
        x = np.sort(c)
        ks = max(np.max(np.arange(1, n + 1) / n - x / 2), np.max(x / 2 - np.arange(n) / n))
        assert ks < 1.95 / math.sqrt(n)
    assert abs(np.corrcoef(wv.T)[0, 1]) < 5 / math.sqrt(n)  # w and v independent


def _summary_by_hand(times, censored, cap):
    """The summary of MATH.md §1c, in plain Python: the restricted mean E[min(T, cap)] with
    its normal 95 % interval (1.96 sample standard deviations over √n), the median when
    fewer than half are censored."""
    t = [min(float(x), cap) for x in times]
    mean, half = statistics.fmean(t), 1.96 * statistics.stdev(t) / math.sqrt(len(t))
    frac = sum(bool(c) for c in censored) / len(t)
    return dict(mean_time=mean, mean_ci_low=mean - half, mean_ci_high=mean + half,
                censored_fraction=frac, mean_is_lower_bound=frac > 0,
                median_time=statistics.median(t) if frac < 0.5 else math.nan)


def _same_summary(got, want):
    for k, v in want.items():
        if isinstance(v, bool):
            assert bool(got[k]) == v, k
        elif math.isnan(v):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v, rel=1e-12), k


def test_summary_without_censoring_is_the_plain_mean():
    t = np.array([5, 7, 9, 11])
    s = escape.summarise(t, np.zeros(4, bool), cap=100)
    assert s["mean_time"] == t.mean() and not s["mean_is_lower_bound"]
    _same_summary(s, _summary_by_hand(t, np.zeros(4, bool), 100))


def test_censoring_is_never_presented_as_the_mean():
    t = np.array([5, 100, 100, 100])
    cens = np.array([False, True, True, True])
    s = escape.summarise(t, cens, cap=100)
    assert s["mean_is_lower_bound"]
    assert np.isnan(s["median_time"])  # beyond the cap
    _same_summary(s, _summary_by_hand(t, cens, 100))
    # one censored of four: the median is still known, the mean is a lower bound
    t2, c2 = np.array([5, 7, 9, 250]), np.array([False, False, False, True])
    _same_summary(escape.summarise(t2, c2, cap=100), _summary_by_hand(t2, c2, 100))


def test_fig5_shape_at_reduced_size():
    """Paper 000 Fig. 5: escape is fastest near σ² ≈ 0.07, slow for weak and strong noise."""
    ds = escape.escape_times([0.004, 0.07, 0.5], n_trajectories=200, max_steps=100_000)
    m = ds.mean_time.values
    # the minimum is real, not noise: its 95 % interval lies below the others' (a censored
    # mean is a lower bound of the true one, so the comparison then only gets stronger)
    assert ds.mean_ci_high.values[1] < ds.mean_ci_low.values[0]
    assert ds.mean_ci_high.values[1] < ds.mean_ci_low.values[2]
    assert m[1] < m[0] and m[1] < m[2]
    for i in range(3):  # each point's summary is that of its own escape times
        _same_summary({k: ds[k].values[i] for k in _summary_by_hand([1, 2], [0, 0], 3)},
                      _summary_by_hand(ds.escape_time.values[i], ds.censored.values[i], 100_000))
    assert ds.censored_fraction.values[1] < ds.censored_fraction.values[2]
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
    assert ds.attrs["kind"] == "escape_times" and ds.attrs["engine_version"]
    assert schema.VARIABLES["mean_time"]


def test_bad_input():
    with pytest.raises(ValueError, match="sigma2"):
        escape.escape_times([-1.0])
    with pytest.raises(ValueError, match="max_steps"):
        escape.escape_times(0.1, max_steps=0)

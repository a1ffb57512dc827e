"""Escape times from M_wv (paper 000 §4.2, Fig. 5; MATH.md §1c). Issue 5's engine part."""

from __future__ import annotations

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
    wv = escape.initial_conditions(50_000, 1)
    assert np.all((wv > 0) & (wv <= 2))
    assert abs(wv.mean() - 1) < 0.02


def test_summary_without_censoring_is_the_plain_mean():
    t = np.array([5, 7, 9, 11])
    s = escape.summarise(t, np.zeros(4, bool), cap=100)
    assert s["mean_time"] == t.mean() and not s["mean_is_lower_bound"] and s["median_time"] == 8
    assert s["mean_ci_low"] < 8 < s["mean_ci_high"]


def test_censoring_is_never_presented_as_the_mean():
    t = np.array([5, 100, 100, 100])
    s = escape.summarise(t, np.array([False, True, True, True]), cap=100)
    assert s["mean_is_lower_bound"] and s["censored_fraction"] == 0.75
    assert np.isnan(s["median_time"])  # beyond the cap


def test_fig5_shape_at_reduced_size():
    """Paper 000 Fig. 5: escape is fastest near σ² ≈ 0.07, slow for weak and strong noise."""
    ds = escape.escape_times([0.004, 0.07, 0.5], n_trajectories=200, max_steps=100_000)
    m = ds.mean_time.values
    assert m[1] < 0.6 * m[0] and m[1] < 0.6 * m[2]
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

"""Issue 5's escape-time benchmark: the Fig. 5 workload of paper 000.

12 σ² values from 0.002 to 1, 1000 trajectories each, η = 0.1, cap 10⁵ steps, through the
engine; and, side by side, a vectorised-NumPy 2-D map (masking escaped trajectories) on one σ²
(0.07) against the engine on the same σ². Run: ``python benchmarks/bench_escape.py``
"""

from __future__ import annotations

import time

import numpy as np

from engine import escape


def numpy_escape(sigma2, n=1000, cap=100_000, lr=0.1, seed=0):
    rng = np.random.default_rng(seed)
    wv = escape.initial_conditions(n, seed)
    w, v = wv[:, 0].copy(), wv[:, 1].copy()
    t_exit = np.full(n, cap)
    alive = np.ones(n, bool)
    s = np.sqrt(sigma2)
    for t in range(cap):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        x = s * rng.standard_normal(idx.size)
        T = 2 * np.tanh(x) - np.tanh(4 * x)
        th = np.tanh(w[idx] * x)
        h = 2 * v[idx] * th - T
        w[idx] -= lr * x * v[idx] * h * (1 - th * th)
        v[idx] -= lr * th * h
        out = (np.abs(w[idx]) > 2) | (np.abs(v[idx]) > 2)
        t_exit[idx[out]] = t + 1
        alive[idx[out]] = False
    return t_exit


def main():
    escape.escape_times(0.07, n_trajectories=10, max_steps=100)  # compile
    s2 = np.geomspace(0.002, 1.0, 12)
    t0 = time.perf_counter()
    ds = escape.escape_times(s2, n_trajectories=1000, max_steps=100_000)
    t_all = time.perf_counter() - t0
    print(f"Fig. 5 workload (12 sigma2 x 1000 trajectories, cap 1e5): engine {t_all:.1f} s (target < 20 s)")
    for v, m, c, lb in zip(s2, ds.mean_time.values, ds.censored_fraction.values, ds.mean_is_lower_bound.values):
        print(f"  sigma2 = {v:.4f}: mean escape {'>=' if lb else '= '} {m:8.0f} steps, censored {100 * c:5.1f} %")
    t0 = time.perf_counter()
    escape.escape_times(0.07, n_trajectories=1000, max_steps=100_000)
    t_eng = time.perf_counter() - t0
    t0 = time.perf_counter()
    numpy_escape(0.07)
    t_np = time.perf_counter() - t0
    print(f"sigma2 = 0.07 alone: engine {t_eng:.2f} s, vectorised NumPy {t_np:.2f} s ({t_np / t_eng:.1f}x slower)")


if __name__ == "__main__":
    main()

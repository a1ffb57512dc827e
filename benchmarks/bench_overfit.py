"""Issue 6's benchmark: 2·10⁶ full-batch GD steps on n = 100 with R on a log-spaced grid.

Side by side in the same run: the engine (``engine.overfit.train``), a straightforward numba
port (math.tanh per point, no vectorisation: what "a careful numba port of the released code"
does) and plain NumPy (vectorised over the data, extrapolated from 2·10⁴ steps).
Run: ``python benchmarks/bench_overfit.py``
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from engine import overfit


@njit(cache=True)
def port(x, y, th, lr, n_steps):
    w1, w2, v1, v2 = th
    n = x.size
    for _ in range(n_steps):
        g1 = g2 = g3 = g4 = 0.0
        for i in range(n):
            t1 = math.tanh(w1 * x[i])
            t2 = math.tanh(w2 * x[i])
            h = v1 * t1 + v2 * t2 - y[i]
            g1 += h * v1 * x[i] * (1 - t1 * t1)
            g2 += h * v2 * x[i] * (1 - t2 * t2)
            g3 += h * t1
            g4 += h * t2
        c = lr / n
        w1, w2, v1, v2 = w1 - c * g1, w2 - c * g2, v1 - c * g3, v2 - c * g4
    return np.array([w1, w2, v1, v2])


def numpy_gd(x, y, th, lr, n_steps):
    th = th.copy()
    for _ in range(n_steps):
        t1, t2 = np.tanh(th[0] * x), np.tanh(th[1] * x)
        h = th[2] * t1 + th[3] * t2 - y
        g = np.array([th[2] * np.mean(h * x * (1 - t1 * t1)), th[3] * np.mean(h * x * (1 - t2 * t2)),
                      np.mean(h * t1), np.mean(h * t2)])
        th -= lr * g
    return th


def main():
    x, y = overfit.make_dataset(100, 0.2, seed=6)
    th0 = np.array(overfit.RELEASED_THETA0)
    T = 2_000_000
    overfit.train(x, y, th0, 0.02, 100)  # compile
    port(x, y, th0, 0.02, 10)
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        ds = overfit.train(x, y, th0, 0.02, T)
        best = min(best, time.perf_counter() - t)
    t = time.perf_counter()
    end_port = port(x, y, th0, 0.02, T)
    t_port = time.perf_counter() - t
    m = 20_000
    t = time.perf_counter()
    numpy_gd(x, y, th0, 0.02, m)
    t_np = (time.perf_counter() - t) * T / m
    print(f"engine (with {ds.step.size} records of L, R, Hessian): {best:.2f} s "
          f"({T / best:.3g} steps/s)")
    print(f"straightforward numba port: {t_port:.2f} s ({T / t_port:.3g} steps/s) "
          f"→ engine {t_port / best:.1f}× faster")
    print(f"plain NumPy (extrapolated from {m:,} steps): {t_np:.1f} s → engine {t_np / best:.0f}× faster")
    print(f"end points agree: max |Δθ| = {np.max(np.abs(ds.theta.values[-1] - end_port)):.2e}")


if __name__ == "__main__":
    main()

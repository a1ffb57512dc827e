"""Issue 4's engine benchmarks: 256×256 λ–μ maps of Λ± (paper 002 Fig. 9 left, Fig. 8).

Engine: exact inner expectation + graded log-space quadrature over Q ~ χ²_S (N = ∞), or the
exact average over the dataset (finite N, S = 1). Baseline in the same run: plain vectorised
NumPy Monte Carlo with 1,000 samples of χ per cell (standard error ~1e-2, i.e. far less
accurate). Run: ``python benchmarks/bench_saddle.py``
"""

from __future__ import annotations

import time

import numpy as np

from engine import saddle


def numpy_mc(lr, mu, S, R=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((R, S))
    eps = 2 * rng.standard_normal((R, S))
    A, B = (x * x).mean(axis=1), (x * eps).mean(axis=1)
    out = np.empty((lr.size, mu.size))
    for j, m in enumerate(mu):
        chi = m * A + (1 - m) * B
        out[:, j] = np.log(np.abs(1 - lr[:, None] * chi[None, :])).mean(axis=1)
    return out


def timed(fn):
    fn()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    lr = np.geomspace(1e-3, 10, 256)
    mu = (np.arange(256) + 0.5) / 256
    for label, kw, target in (("N = inf, S = 1", {}, 1.0), ("N = inf, S = 8", {"batch_size": 8}, 5.0),
                              ("N = 100, S = 1", {"n_data": 100}, 0.5)):
        t, ds = timed(lambda: saddle.lyapunov_exponents(lr, mu, **kw))
        err = float(np.maximum(ds.lyap_minus_se, ds.lyap_plus_se).max())
        print(f"{label}: engine {t:6.3f} s (target < {target} s), max reported error {err:.1e}")
    t_np, _ = timed(lambda: numpy_mc(lr, mu, 1))
    print(f"plain NumPy Monte Carlo, 1000 samples/cell, S = 1: {t_np:6.3f} s")


if __name__ == "__main__":
    main()

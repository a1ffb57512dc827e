"""Ensemble SGD throughput of the Fukumizu–Amari engine (issue 2's benchmark).

Workload: paper-000 teacher, online SGD, S = 1, η = 0.1, σ² = 0.07, 10,000 trajectories, random
numbers generated inside the timed region. Compared in the same run with

* a plain vectorised-NumPy ensemble (one ``standard_normal`` and array update per step), and
* a straightforward per-trajectory numba loop (``np.random.normal`` + ``math.tanh``, prange).

Prints trajectory-steps per second (median of ``--repeats``) and the ratios.
Run: ``python benchmarks/bench_ensemble.py [--steps 2000] [--trajectories 10000]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from numba import njit, prange

from engine import fa

LR, SIGMA2 = 0.1, 0.07


def numpy_ensemble(theta0, n_steps, seed=0):
    rng = np.random.default_rng(seed)
    w1, w2, v1, v2 = (theta0[:, i].copy() for i in range(4))
    sigma = math.sqrt(SIGMA2)
    for _ in range(n_steps):
        x = sigma * rng.standard_normal(w1.size)
        y = 2 * np.tanh(x) - np.tanh(4 * x)
        t1, t2 = np.tanh(w1 * x), np.tanh(w2 * x)
        h = v1 * t1 + v2 * t2 - y
        w1, w2, v1, v2 = (w1 - LR * x * v1 * h * (1 - t1 * t1), w2 - LR * x * v2 * h * (1 - t2 * t2),
                          v1 - LR * t1 * h, v2 - LR * t2 * h)
    return np.stack([w1, w2, v1, v2], axis=1)


@njit(parallel=True, cache=True)
def _naive_numba(theta, n_steps, sigma, lr, seed):
    np.random.seed(seed)
    for j in prange(theta.shape[0]):
        w1, w2, v1, v2 = theta[j, 0], theta[j, 1], theta[j, 2], theta[j, 3]
        for _ in range(n_steps):
            x = np.random.normal(0.0, sigma)
            y = 2 * math.tanh(x) - math.tanh(4 * x)
            t1, t2 = math.tanh(w1 * x), math.tanh(w2 * x)
            h = v1 * t1 + v2 * t2 - y
            w1, w2, v1, v2 = (w1 - lr * x * v1 * h * (1 - t1 * t1), w2 - lr * x * v2 * h * (1 - t2 * t2),
                              v1 - lr * t1 * h, v2 - lr * t2 * h)
        theta[j, 0], theta[j, 1], theta[j, 2], theta[j, 3] = w1, w2, v1, v2


def naive_numba(theta0, n_steps):
    th = theta0.copy()
    _naive_numba(th, n_steps, math.sqrt(SIGMA2), LR, 0)
    return th


def engine_run(theta0, n_steps, shared=False):
    return fa.run_ensemble(theta0, LR, SIGMA2, n_steps, shared_noise=shared,
                           record_every=n_steps, loss=False).theta_final.values


def timed(fn, repeats, *args, **kw):
    fn(*args[:1], 10, **kw)  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kw)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trajectories", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=2_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    theta0 = np.random.default_rng(0).uniform(-1, 1, (a.trajectories, 4))
    work = a.trajectories * a.steps
    rows = [
        ("plain vectorised NumPy", timed(numpy_ensemble, a.repeats, theta0, a.steps)),
        ("per-trajectory numba loop", timed(naive_numba, a.repeats, theta0, a.steps)),
        ("engine, independent noise", timed(engine_run, a.repeats, theta0, a.steps)),
        ("engine, shared noise", timed(engine_run, a.repeats, theta0, a.steps, shared=True)),
    ]
    base = work / rows[0][1]
    print(f"{a.trajectories} trajectories x {a.steps} steps, eta={LR}, sigma2={SIGMA2}, S=1")
    print(f"{'implementation':28s} {'traj-steps/s':>14s} {'vs NumPy':>9s}")
    for name, t in rows:
        print(f"{name:28s} {work / t:14.3g} {work / t / base:8.1f}x")


if __name__ == "__main__":
    main()

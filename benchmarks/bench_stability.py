"""Issue 3's benchmarks: the π map (paper 000 Fig. 3 right) and a pullback cloud (Fig. 4).

* π(w, v) = P_x[μ+ ≤ 0] on a 200×200 grid over [0, 2]², σ² = 1 — engine (scan + bisection +
  exact Gaussian mass, parallel numba) against a plain vectorised-NumPy version (μ+ on a fixed
  grid of 400 |x| values per point, indicator times weights); the NumPy error is reported too.
* A pullback cloud of 10⁵ paths at τ_pb = 10⁴ (10⁹ trajectory-steps, one shared noise) —
  engine against a vectorised-NumPy shared-noise ensemble timed on 200 steps and extrapolated.

Run: ``python benchmarks/bench_stability.py``
"""

from __future__ import annotations

import time

import numpy as np

from engine import fa, pullback, stability


def numpy_pi(W, V, sigma2, n_x=400):
    """Plain NumPy: μ+ from the symmetric Jacobian on a midpoint grid of |x| ≤ 10σ."""
    s = np.sqrt(sigma2)
    u = (np.arange(n_x) + 0.5) * (10.0 / n_x)
    weight = 2 * np.exp(-u * u / 2) / np.sqrt(2 * np.pi) * (10.0 / n_x)
    out = np.empty(W.shape)
    for i in range(W.shape[0]):  # one grid row at a time keeps memory small
        x = s * u[None, :]
        w, v = W[i][:, None], V[i][:, None]
        t = np.tanh(w * x)
        sech2 = 1 - t * t
        T = 2 * np.tanh(x) - np.tanh(4 * x)
        a = -2 * v * x * x * sech2 * (v - 3 * v * t * t + T * t)
        b = x * sech2 * (T - 4 * v * t)
        d = -2 * t * t
        hi = 0.5 * (a + d) + np.sqrt(0.25 * (a - d) ** 2 + b * b)
        out[i] = np.sum((hi <= 0) * weight, axis=1)
    return out


def numpy_shared_steps(theta, n_steps, sigma2=1.0, lr=0.1, seed=0):
    rng = np.random.default_rng(seed)
    w1, w2, v1, v2 = (theta[:, i].copy() for i in range(4))
    for _ in range(n_steps):
        x = np.sqrt(sigma2) * rng.standard_normal()
        y = 2 * np.tanh(x) - np.tanh(4 * x)
        t1, t2 = np.tanh(w1 * x), np.tanh(w2 * x)
        h = v1 * t1 + v2 * t2 - y
        w1, w2, v1, v2 = (w1 - lr * x * v1 * h * (1 - t1 * t1), w2 - lr * x * v2 * h * (1 - t2 * t2),
                          v1 - lr * t1 * h, v2 - lr * t2 * h)
    return w1


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    n = 200
    g = (np.arange(n) + 0.5) * 2.0 / n
    W, V = np.meshgrid(g, g, indexing="ij")
    stability.attracting_probability(W[:2, :2], V[:2, :2], 1.0)  # compile
    t_eng, pi = best_of(lambda: stability.attracting_probability(W, V, 1.0))
    t_np, pi_np = best_of(lambda: numpy_pi(W, V, 1.0), repeats=1)
    print(f"pi map {n}x{n}, sigma2 = 1")
    print(f"  engine (scan + bisection + erf)  {t_eng:8.3f} s")
    print(f"  plain NumPy (400-point grid)     {t_np:8.3f} s   ({t_np / t_eng:.1f}x slower, "
          f"max |error| {np.abs(pi_np - pi).max():.1e})")

    pullback.pullback_cloud(1.0, 10, n_points=1000)  # compile
    t_pb, ds = best_of(lambda: pullback.pullback_cloud(1.0, 10_000, n_points=100_000), repeats=1)
    theta = fa.uniform_initial(100_000, 1.0, 0)
    t200, _ = best_of(lambda: numpy_shared_steps(theta, 200), repeats=1)
    t_np_pb = t200 * 10_000 / 200
    print("pullback cloud, 1e5 paths, tau_pb = 1e4, sigma2 = 1 (1e9 trajectory-steps)")
    print(f"  engine                           {t_pb:8.2f} s   ({1e9 / t_pb:.3g} steps/s), "
          f"trapped fraction {float(ds.trapped_fraction):.3f}")
    print(f"  plain NumPy (extrapolated)       {t_np_pb:8.2f} s   ({t_np_pb / t_pb:.1f}x slower)")


if __name__ == "__main__":
    main()

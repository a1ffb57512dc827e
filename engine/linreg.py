"""Power-law escape of SGD in linear regression (paper 003 §5.3.1, Fig. 3a–b; MATH.md §4).

Data: x^(μ) ∈ R^d and y^(μ) i.i.d. N(0, 1), μ = 1 … N; model f(θ, x) = θᵀx; loss
L(θ) = (1/2N) Σ_μ (θᵀx^(μ) − y^(μ))². Its minimum θ* (least squares) has L* = L(θ*) ≈ ½ and
Hessian H = (1/N) Σ x xᵀ with eigenvalues ≈ 1 (d ≪ N), so h* ≈ 1 and n = d (paper 003 §5.3.1).
Because L is quadratic, L(θ) = L* + ½ uᵀHu with u = θ − θ* exactly; every step evaluates the
loss that way in O(d²) instead of O(N d).

SGD: θ ← θ − (η/B) Σ_{μ∈batch} (θᵀx^(μ) − y^(μ)) x^(μ), with B distinct points drawn afresh each
step (partial Fisher–Yates on the counter-based stream of run r: a run's batches do not depend
on how many runs there are or how they are scheduled).

Two measurements, both started at θ*:

* :func:`first_passage_times` — t_p(c), the first step with L(θ_t) ≥ c·L*, for several c in
  one pass; the mean over runs against c is a power law of slope B/(η h*) + 1 − n/2
  (eq. 15 with h_e* = h*, n = d; Fig. 3b).
* :func:`stationary_exponent` — the exponent φ of the stationary law P_s(θ) ∝ L(θ)^−φ, with
  φ = 1 + B/(η h*) in theory (eq. 17; Fig. 3a). The paper fits a histogram of θ sampled every
  100 steps; we fit the same family by maximum likelihood: with u ∈ R^d the normalised density
  is L^−φ / Z(φ) with Z ∝ L*^(d/2−φ) Γ(φ − d/2)/Γ(φ), so the likelihood equation is
  ψ(φ) − ψ(φ − d/2) = mean log(L/L*) (ψ the digamma function), solved by bracketing.
  The error comes from the spread of that statistic across independent chains (samples
  within a chain are correlated over ~1/(η h*) steps).

What the theory leaves out, and what the engine therefore does not hide: the SDE behind
eq. 17 is the small-η limit, and the decoupling approximation (eq. 7) replaces the exact
noise (1/B)[u² Var(x²) + Var(r x)] by (2L/B)h*, which for Gaussian inputs underestimates the
noise far from θ* by up to a factor 2 (E x⁴ = 3). Both shift the measured exponents by
amounts that vanish relative to B/(η h*) as η/B → 0. For d = 1 the exact stationary second
moment of the discrete SGD is known (:func:`stationary_variance`), which the tests use to
check the simulation itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from numba import njit, prange
from scipy import optimize, special

from . import schema
from ._kernels import _JIT, _choose, _count, _positive, _seed
from ._parallel import PARALLEL_LOCK
from ._vecmath import normals, stream_key
from .escape import summarise
from .fa import DIVERGENCE_THRESHOLD, batch_indices

__all__ = ["Regression", "make_regression", "first_passage_times", "stationary_exponent",
           "stationary_variance", "fit_exponent", "theory_slope", "theory_phi"]

_S_LR_X, _S_LR_Y, _S_LR_BATCH = 40, 41, 42  # random-stream tags (see fa for 0–5, escape 31)
MAX_DIM = 64
MAX_DATA = 1_000_000


@dataclass(frozen=True)
class Regression:
    """A linear-regression dataset and its exact minimum (paper 003 §5.3.1)."""

    x: np.ndarray  # (N, d)
    y: np.ndarray  # (N,)
    theta_star: np.ndarray  # (d,) least-squares minimum
    loss_star: float  # L(θ*)
    hessian: np.ndarray  # (d, d) = XᵀX / N
    seed: int

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.hessian)

    @property
    def h_star(self) -> float:
        """h* = the largest Hessian eigenvalue (the paper's identification of h_e*, §5.3.2)."""
        return float(self.eigenvalues[-1])

    def loss(self, theta) -> np.ndarray:
        """L(θ) for θ of shape (..., d), from the quadratic identity L = L* + ½ uᵀHu."""
        u = np.asarray(theta, dtype=float) - self.theta_star
        return self.loss_star + 0.5 * np.einsum("...i,ij,...j->...", u, self.hessian, u)


def make_regression(dim: int = 1, n_data: int = 10_000, seed: int = 0) -> Regression:
    """x ∈ R^d and y i.i.d. N(0, 1) for N points, drawn from ``seed``; θ*, L* and H exactly."""
    d = _count(dim, "dim", 1)
    n = _count(n_data, "n_data", 2)
    if d > MAX_DIM:
        raise ValueError(f"dim must be ≤ {MAX_DIM}; got {d}.")
    if n > MAX_DATA:
        raise ValueError(f"n_data must be ≤ {MAX_DATA:,}; got {n:,}.")
    if n <= d:
        raise ValueError(f"n_data must exceed dim (d ≪ N in paper 003); got N = {n}, d = {d}.")
    seed = _seed(seed)
    x = normals(stream_key(seed, _S_LR_X, 0), 0, n * d).reshape(n, d)
    y = normals(stream_key(seed, _S_LR_Y, 0), 0, n)
    theta_star = np.linalg.lstsq(x, y, rcond=None)[0]
    r = x @ theta_star - y
    return Regression(x=x, y=y, theta_star=theta_star, loss_star=float(0.5 * np.mean(r * r)),
                      hessian=x.T @ x / n, seed=seed)


def theory_phi(lr: float, batch_size: int, h_star: float) -> float:
    """φ = 1 + B/(η h*), paper 003 eq. 17."""
    return 1.0 + batch_size / (lr * h_star)


def theory_slope(lr: float, batch_size: int, h_star: float, n_eff: int) -> float:
    """Exponent of t_p ∝ c^(B/(η h*) + 1 − n/2), paper 003 eq. 15 and Fig. 3b."""
    return batch_size / (lr * h_star) + 1.0 - n_eff / 2.0


def stationary_variance(reg: Regression, lr: float, batch_size: int = 1) -> float:
    """Exact stationary E[(θ − θ*)²] of discrete-time SGD for d = 1 (inf if it does not exist).

    With a_μ = x_μ², r_μ = (θ*x_μ − y_μ) x_μ (Σ r_μ = 0 at θ*) and u = θ − θ*, one step is
    u' = u − η ḡ with ḡ the mean of z_μ = u a_μ + r_μ over B points drawn without replacement:
    E[ḡ | u] = h u and Var[ḡ | u] = k · Var_N(z), k = (N − B)/(B (N − 1)). With E u = 0 in the
    stationary state, m = (1 − η h)² m + η² k (Va m + Vr), so
    m = η² k Vr / (1 − (1 − η h)² − η² k Va). Not in the paper: our independent check.
    """
    if reg.x.shape[1] != 1:
        raise ValueError("stationary_variance is exact only for d = 1.")
    x, y, t = reg.x[:, 0], reg.y, float(reg.theta_star[0])
    n, B = x.size, int(batch_size)
    k = (n - B) / (B * (n - 1)) if B < n else 0.0
    a, r = x * x, (t * x - y) * x
    h = a.mean()
    denom = 1.0 - (1.0 - lr * h) ** 2 - lr * lr * k * a.var()
    return float(lr * lr * k * r.var() / denom) if denom > 0 else np.inf


def fit_exponent(log_ratio: np.ndarray, dim: int) -> tuple[float, float]:
    """Maximum-likelihood φ of P ∝ L^−φ on R^d from samples of log(L/L*) (rows = chains).

    Returns (φ, standard error); the error propagates the chain-to-chain standard error of
    the mean statistic through the likelihood equation (needs ≥ 2 chains, else NaN).
    """
    s = np.asarray(log_ratio, dtype=float)
    s = s.reshape(1, -1) if s.ndim == 1 else s
    if not np.all(np.isfinite(s)):
        return np.nan, np.nan
    per_chain = s.mean(axis=1)
    phi = _solve_phi(float(per_chain.mean()), dim)
    if per_chain.size < 2 or not np.isfinite(phi):
        return phi, np.nan
    se_s = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
    a = dim / 2.0
    slope = special.polygamma(1, phi) - special.polygamma(1, phi - a)  # dS/dφ < 0
    return phi, float(se_s / abs(slope))


def _solve_phi(mean_stat: float, dim: int) -> float:
    if not mean_stat > 0:
        return np.nan
    a = dim / 2.0

    def f(phi):
        return special.digamma(phi) - special.digamma(phi - a) - mean_stat

    lo, hi = a + 1e-12, a + 2.0 * a / mean_stat + 2.0
    while f(hi) > 0:
        hi = a + 2.0 * (hi - a)
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-13))


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _walk(x, y, theta_star, hess, lstar, key, lr, B, n_steps, levels, hit, burn, every,
          samples):
    """One SGD run from θ*: first steps with L ≥ levels[k] into ``hit`` (−1: not reached),
    θ after step burn + j·every into samples[j − 1]. Stops early once every level is hit and
    no samples are wanted. Returns (steps taken, diverged)."""
    n, d = x.shape
    full = B >= n
    nb = n if full else B
    idx = np.arange(nb)
    perm = np.arange(n)
    theta = theta_star.copy()
    g = np.empty(d)
    u = np.empty(d)
    n_lev = levels.size
    n_samp = samples.shape[0]
    k = 0
    j = 0
    scale = lr / nb
    for t in range(n_steps):
        if not full:
            _choose(key, t * B, n, B, idx, perm)
        for a in range(d):
            g[a] = 0.0
        for q in range(nb):
            i = idx[q]
            r = -y[i]
            for a in range(d):
                r += theta[a] * x[i, a]
            for a in range(d):
                g[a] += r * x[i, a]
        for a in range(d):
            theta[a] -= scale * g[a]
            u[a] = theta[a] - theta_star[a]
        quad = 0.0
        for a in range(d):
            row = 0.0
            for b in range(d):
                row += hess[a, b] * u[b]
            quad += u[a] * row
        loss = lstar + 0.5 * quad
        if not loss < DIVERGENCE_THRESHOLD:  # also NaN: diverged, every level is crossed
            while k < n_lev:
                hit[k] = t + 1
                k += 1
            for jj in range(j, n_samp):
                for a in range(d):
                    samples[jj, a] = np.nan
            return t + 1, True
        while k < n_lev and loss >= levels[k]:
            hit[k] = t + 1
            k += 1
        step = t + 1 - burn
        if j < n_samp and step > 0 and step % every == 0:
            for a in range(d):
                samples[j, a] = theta[a]
            j += 1
        if k == n_lev and j == n_samp:
            return t + 1, False
    return n_steps, False


@njit(parallel=True, **_JIT)
def _walk_parallel(x, y, theta_star, hess, lstar, keys, lr, B, n_steps, levels, hit, burn,
                   every, samples, steps, diverged):
    for r in prange(keys.size):
        steps[r], diverged[r] = _walk(x, y, theta_star, hess, lstar, keys[r], lr, B, n_steps,
                                      levels, hit[r], burn, every, samples[r])


def _run(reg: Regression, keys, lr, B, n_steps, levels, burn, every, n_samples):
    m, d = keys.size, reg.x.shape[1]
    hit = np.full((m, levels.size), -1, dtype=np.int64)
    samples = np.full((m, n_samples, d), np.nan)
    steps = np.zeros(m, dtype=np.int64)
    diverged = np.zeros(m, dtype=np.bool_)
    with PARALLEL_LOCK:
        _walk_parallel(reg.x, reg.y, reg.theta_star, reg.hessian, reg.loss_star, keys, lr, B,
                       n_steps, levels, hit, burn, every, samples, steps, diverged)
    return hit, samples, steps, diverged


def run_keys(seed: int, runs) -> np.ndarray:
    """The batch-stream keys of runs ``runs`` (see :func:`run_batches`)."""
    return np.array([stream_key(seed, _S_LR_BATCH, int(r)) for r in runs], dtype=np.uint64)


def run_batches(n_data: int, batch_size: int, n_steps: int, seed: int = 0, run: int = 0):
    """The mini-batch indices (n_steps, batch_size) of run ``run`` (for independent checks)."""
    return batch_indices(n_data, batch_size, n_steps, seed=seed, trajectory=run,
                         stream=_S_LR_BATCH)


def _common(lr, batch_size, dim, n_data, seed):
    lr = _positive(lr, "lr")
    B = _count(batch_size, "batch_size", 1)
    seed = _seed(seed)
    reg = make_regression(dim, n_data, seed)
    return lr, B, seed, reg


def _chunks(n, size):
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def first_passage_times(c, lr: float = 0.1, batch_size: int = 1, dim: int = 1,
                        n_data: int = 10_000, n_runs: int = 100, max_steps: int = 1_000_000,
                        seed: int = 0, *, fit_from: float | None = None, progress=None,
                        cancel=None) -> xr.Dataset:
    """First-passage times t_p(c) = min{t : L(θ_t) ≥ c·L*} of SGD started at θ* (Fig. 3b).

    ``c`` is a scalar or 1-D array of ratios > 1. Returns a Dataset over (``c``, ``run``) with
    ``passage_time`` (``max_steps`` where censored), ``censored`` and ``diverged`` per run, and
    over ``c`` the censoring-aware summaries of :func:`engine.escape.summarise`. Attributes:
    ``h_star``, ``loss_star``, ``theory_slope`` = B/(η h*) + 1 − d/2, and ``fitted_slope`` ±
    ``fitted_slope_se`` — weighted least squares of log mean t_p on log c over the uncensored
    c ≥ ``fit_from`` (default: the upper half of the c range, where the power law is asymptotic;
    the value used is ``attrs['fit_from']``).
    """
    cs = np.atleast_1d(np.asarray(c, dtype=float))
    if cs.ndim != 1 or cs.size == 0 or not np.all(np.isfinite(cs)) or np.any(cs <= 1):
        raise ValueError("c must be a scalar or 1-D array of finite ratios > 1.")
    if cs.size > 200:
        raise ValueError("at most 200 thresholds c.")
    order = np.argsort(cs)
    lr, B, seed, reg = _common(lr, batch_size, dim, n_data, seed)
    n = _count(n_runs, "n_runs", 1)
    cap = _count(max_steps, "max_steps", 1)
    levels = np.ascontiguousarray(cs[order] * reg.loss_star)
    hit = np.empty((n, cs.size), dtype=np.int64)
    diverged = np.empty(n, dtype=bool)
    chunks = _chunks(n, 16)
    for i, runs in enumerate(chunks):
        if cancel is not None and cancel():
            raise RuntimeError("cancelled")
        h, _, _, dv = _run(reg, run_keys(seed, runs), lr, B, cap, levels, 0, 1, 0)
        hit[runs.start:runs.stop], diverged[runs.start:runs.stop] = h, dv
        if progress is not None:
            progress(i + 1, len(chunks))
    hit = hit[:, np.argsort(order)]  # back to the caller's order of c
    cens = hit < 0
    times = np.where(cens, cap, hit).T  # (c, run)
    summ = [summarise(times[k], cens.T[k], cap) for k in range(cs.size)]
    table = {k: np.array([s[k] for s in summ]) for k in summ[0]}
    table["mean_time_se"] = (table["mean_ci_high"] - table["mean_ci_low"]) / 3.92  # 95 % CI
    h_star = reg.h_star
    if fit_from is None:  # the upper half of the c range (log scale)
        fit_from = float(np.sqrt(cs.min() * cs.max()))
    slope, slope_se = _fit_slope(cs, table, fit_from)
    data = {
        "passage_time": (("c", "run"), times),
        "censored": (("c", "run"), cens.T),
        "diverged": (("run",), diverged),
        **{k: (("c",), v) for k, v in table.items()},
    }
    inputs = dict(lr=lr, batch_size=B, dim=reg.x.shape[1], n_data=reg.x.shape[0], n_runs=n,
                  max_steps=cap, seed=seed, model="linear_regression_paper003",
                  h_star=h_star, h_min=float(reg.eigenvalues[0]), loss_star=reg.loss_star,
                  theory_slope=theory_slope(lr, B, h_star, reg.x.shape[1]),
                  fitted_slope=slope, fitted_slope_se=slope_se,
                  fit_from=float(fit_from))
    return schema.dataset(data, {"c": cs, "run": np.arange(n)}, inputs, kind="first_passage")


def fit_points(cs, table, fit_from) -> np.ndarray:
    """The thresholds a slope is fitted on: c ≥ ``fit_from``, mean not censored, mean > 0."""
    return ((np.asarray(cs) >= fit_from * (1 - 1e-12)) & ~table["mean_is_lower_bound"].astype(bool)
            & (table["mean_time"] > 0))


def _fit_slope(cs, table, fit_from):
    """Weighted least squares of log E[t_p] on log c (weights from the standard errors)."""
    cs = np.asarray(cs, dtype=float)
    m, se = table["mean_time"], table["mean_time_se"]
    ok = fit_points(cs, table, fit_from) & (se > 0)
    if ok.sum() < 3:
        return np.nan, np.nan
    xs, ys, sy = np.log(cs[ok]), np.log(m[ok]), se[ok] / m[ok]
    (b, a), cov = np.polyfit(xs, ys, 1, w=1.0 / sy, cov="unscaled")
    return float(b), float(np.sqrt(cov[0, 0]))


def stationary_exponent(lr: float = 0.1, batch_size: int = 1, dim: int = 1,
                        n_data: int = 100_000, n_chains: int = 8, n_samples: int = 10_000,
                        sample_every: int = 100, burn_in: int | None = None, seed: int = 0, *,
                        keep_samples: bool = True, progress=None, cancel=None) -> xr.Dataset:
    """The stationary law of SGD around θ* and its fitted exponent φ (paper 003 eq. 17, Fig. 3a).

    ``n_chains`` independent chains start at θ*, discard ``burn_in`` steps (default
    ⌈20/(η h*)⌉, twenty relaxation times) and then record θ every ``sample_every`` steps,
    ``n_samples`` times (the paper: one chain, every 100 steps, 10⁴ samples). Returns a Dataset
    with ``theta_sample`` (chain, draw, component) when ``keep_samples``, ``log_loss_ratio``
    per draw, ``phi_chain`` per chain and the scalars ``phi`` ± ``phi_se`` (maximum likelihood,
    see the module docstring), ``phi_theory`` = 1 + B/(η h*), ``variance`` of θ − θ* (d = 1:
    also the exact ``variance_exact``), and ``diverged`` per chain.
    """
    lr, B, seed, reg = _common(lr, batch_size, dim, n_data, seed)
    k = _count(n_chains, "n_chains", 1)
    ns = _count(n_samples, "n_samples", 1)
    every = _count(sample_every, "sample_every", 1)
    h_star = reg.h_star
    burn = int(np.ceil(20.0 / (lr * h_star))) if burn_in is None else _count(burn_in, "burn_in")
    n_steps = burn + ns * every
    if n_steps * k * B > 5e10:
        raise ValueError("that many SGD steps would take hours; reduce chains, samples or B.")
    d = reg.x.shape[1]
    samples = np.empty((k, ns, d))
    diverged = np.empty(k, dtype=bool)
    no_levels = np.empty(0)
    chunks = _chunks(k, 2)
    for i, chains in enumerate(chunks):
        if cancel is not None and cancel():
            raise RuntimeError("cancelled")
        _, s, _, dv = _run(reg, run_keys(seed, chains), lr, B, n_steps, no_levels, burn, every, ns)
        samples[chains.start:chains.stop], diverged[chains.start:chains.stop] = s, dv
        if progress is not None:
            progress(i + 1, len(chunks))
    log_ratio = np.log(reg.loss(samples) / reg.loss_star)
    phi, phi_se = fit_exponent(log_ratio, d)
    per_chain = np.array([fit_exponent(row, d)[0] for row in log_ratio])
    u = samples - reg.theta_star
    data = {
        "log_loss_ratio": (("chain", "draw"), log_ratio),
        "phi_chain": (("chain",), per_chain),
        "diverged": (("chain",), diverged),
        "phi": ((), np.float64(phi)),
        "phi_se": ((), np.float64(phi_se)),
        "phi_theory": ((), np.float64(theory_phi(lr, B, h_star))),
        "variance": ((), np.float64(np.mean(np.sum(u * u, axis=-1)) / d)),
    }
    if keep_samples:
        data["theta_sample"] = (("chain", "draw", "component"), samples)
    if d == 1:
        data["variance_exact"] = ((), np.float64(stationary_variance(reg, lr, B)))
    inputs = dict(lr=lr, batch_size=B, dim=d, n_data=reg.x.shape[0], n_chains=k, n_samples=ns,
                  sample_every=every, burn_in=burn, seed=seed, model="linear_regression_paper003",
                  h_star=h_star, loss_star=reg.loss_star,
                  theta_star=reg.theta_star.tolist() if d > 1 else float(reg.theta_star[0]))
    coords = {"chain": np.arange(k), "draw": np.arange(1, ns + 1) * every + burn}
    if keep_samples:
        coords["component"] = np.arange(d)
    return schema.dataset(data, coords, inputs, kind="stationary_exponent")

"""Probabilistic stability at a Type-II saddle: Proposition 1 of paper 002 (MATH.md §3).

Near the saddle w = u = 0 of f(x) = u σ(wx), SGD is linear and random (paper 002 eq. 54):
h = w + u and m = w − u evolve as h ← (1 + ηχ) h and m ← (1 − ηχ) m with
χ = (1/S) Σ_batch x y, x ~ N(0, 1), ε ~ N(0, 4), y = μx + (1 − μ)ε. Hence

    Λ− = E log|1 − ηχ| < 0  ⟺  w − u → 0 in probability,
    Λ+ = E log|1 + ηχ| < 0  ⟺  w + u → 0 in probability.

N = ∞ (fresh batches). Given Q = Σ_batch x², χ | Q ~ N(μQ/S, 4(1 − μ)² Q/S²), so with
a = 1 ∓ ημQ/S and b = 2η(1 − μ)√Q/S,

    Λ∓ = E_Q[ E log|a + bZ| ],   Q ~ χ²_S,   Z ~ N(0, 1).

The inner expectation is exact: E log|a + bZ| = log b + g(a/b) with
g(m) = E log|m + Z| = ½[log 2 + Σ_k Pois(k; m²/2) ψ(k + ½)] (the log-moment of a non-central
χ²₁ — MATH.md's "Poisson mixture of digamma values"), tabulated on |m| ≤ 20 with its exact
derivative g'(m) = m Σ_k Pois(k; m²/2)/(2k + 1) for cubic Hermite interpolation (error
< 1e-12), and its asymptotic series beyond. The outer expectation over Q is generalised
Gauss–Laguerre quadrature (exact in the χ²_S weight); its error is estimated as the difference
between 64- and 128-node rules and reported as the uncertainty. This covers every S, not only
S = 1.

Finite N: the dataset (x_i, ε_i) is drawn once from the seed. S = 1 is the exact average over
the N points (no uncertainty); S > 1 averages over random batches drawn without replacement
(Monte Carlo, with standard errors).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import xarray as xr
from numba import njit, prange
from scipy import special

from . import schema
from ._kernels import _JIT, _count, _positive, _seed
from ._parallel import PARALLEL_LOCK
from ._vecmath import normal_pair

__all__ = ["lyapunov_exponents", "log_abs_normal_mean", "phase_label", "simulate_saddle",
           "random_product_lyapunov", "PHASES"]

PHASES = ("Ia", "Ib", "II", "III", "IV")
_M_MAX = 20.0
_H = 1.0 / 256.0
_ASYM = np.array([1.0 / 2, 3.0 / 4, 15.0 / 6, 105.0 / 8, 945.0 / 10, 10395.0 / 12])  # (2k−1)!!/(2k)


@lru_cache(maxsize=1)
def _g_table() -> tuple[np.ndarray, np.ndarray]:
    """g(m) = E log|m + Z| and g'(m) on m = 0, h, …, 20 from the Poisson–digamma series."""
    m = np.arange(0.0, _M_MAX + _H / 2, _H)
    lam = 0.5 * m * m
    k = np.arange(0, 700)[:, None]
    logpois = -lam + k * np.log(np.where(lam > 0, lam, 1.0)) - special.gammaln(k + 1.0)
    pois = np.where(lam > 0, np.exp(logpois), (k == 0).astype(float))
    g = 0.5 * (math.log(2.0) + np.sum(pois * special.digamma(k + 0.5), axis=0))
    dg = m * np.sum(pois / (2.0 * k + 1.0), axis=0)
    g.flags.writeable = False
    dg.flags.writeable = False
    return g, dg


@njit(inline="always", **_JIT)
def _g(m, table, dtable):
    """E log|m + Z| for Z ~ N(0, 1): Hermite interpolation of the table, asymptotics beyond."""
    m = abs(m)
    if m >= _M_MAX:
        r = 1.0 / (m * m)
        corr = r * (_ASYM[0] + r * (_ASYM[1] + r * (_ASYM[2] + r * (_ASYM[3] + r * (_ASYM[4] + r * _ASYM[5])))))
        return math.log(m) - corr
    s = m / _H
    i = min(int(s), table.size - 2)
    t = s - i
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * table[i] + (t3 - 2 * t2 + t) * _H * dtable[i]
            + (-2 * t3 + 3 * t2) * table[i + 1] + (t3 - t2) * _H * dtable[i + 1])


@njit(inline="always", **_JIT)
def _elog(a, b, table, dtable):
    """E log|a + bZ|, Z ~ N(0, 1), b ≥ 0 (exact up to the table's 1e-12)."""
    if b * _M_MAX <= abs(a):  # |a/b| ≥ 20 (or b = 0): the series in (b/a)² avoids log b
        if a == 0.0:
            return -np.inf
        r = (b / a) ** 2
        corr = r * (_ASYM[0] + r * (_ASYM[1] + r * (_ASYM[2] + r * (_ASYM[3] + r * (_ASYM[4] + r * _ASYM[5])))))
        return math.log(abs(a)) - corr
    return math.log(b) + _g(a / b, table, dtable)


def log_abs_normal_mean(a, b):
    """E log|a + bZ| for Z ~ N(0, 1), broadcasting (b ≥ 0)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    table, dtable = _g_table()
    return _elog_array(a.ravel(), b.ravel(), table, dtable).reshape(a.shape)


@njit(**_JIT)
def _elog_array(a, b, table, dtable):
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = _elog(a[i], b[i], table, dtable)
    return out


@njit(inline="always", **_JIT)
def _panel(lo, hi, sign, eta, mu, S, k, c, gx, gw, table, dtable):
    """Σ over one Gauss–Legendre panel [lo, hi] in s = log Q of f_S(s) E log|1 ∓ ηχ|."""
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    acc = 0.0
    for n in range(gx.size):
        s = mid + half * gx[n]
        q = math.exp(s)
        dens = math.exp(k * s - 0.5 * q - c)  # χ²_S density times dQ/ds = Q
        a = 1.0 - sign * eta * mu * q / S
        b = 2.0 * eta * (1.0 - mu) * math.sqrt(q) / S
        acc += gw[n] * half * dens * _elog(a, b, table, dtable)
    return acc


@njit(inline="always", **_JIT)
def _levels(d, smear):
    """Graded panels needed towards a log singularity smeared over ``smear`` in a panel of
    half-width ``d``: down to 2⁻⁶ of the smear (at most 40 halvings)."""
    if smear <= 0.0:
        return 40
    return max(0, min(40, int(math.log2(d / smear)) + 6))


@njit(**_JIT)
def _outer(sign, eta, mu, S, s_lo, s_hi, width, gx, gw, table, dtable):
    """E_Q E log|1 ∓ ηχ| by composite Gauss–Legendre in s = log Q: uniform panels of
    ``width``, and — for Λ− — panels graded geometrically towards s* = log(S/(ημ)), where
    the mean of 1 − ηχ vanishes and the integrand has a (broadened) log singularity."""
    k = 0.5 * S
    c = k * math.log(2.0) + math.lgamma(k)
    star = math.log(S / (eta * mu)) if (sign > 0 and mu > 0) else s_hi + 1.0
    total = 0.0
    n_pan = int(math.ceil((s_hi - s_lo) / width))
    for p in range(n_pan):
        lo = s_lo + p * width
        hi = min(lo + width, s_hi)
        if lo < star < hi:
            # the singularity is smeared over δs ≈ b(Q*) in s; grade down to well below that
            width_star = 2.0 * eta * (1.0 - mu) * math.sqrt(math.exp(star)) / S
            left = lo
            d = star - lo
            levels = _levels(d, width_star)
            for j in range(levels):
                nxt = star - d * 0.5 ** (j + 1)
                total += _panel(left, nxt, sign, eta, mu, S, k, c, gx, gw, table, dtable)
                left = nxt
            total += _panel(left, star, sign, eta, mu, S, k, c, gx, gw, table, dtable)
            right = hi
            d = hi - star
            levels = _levels(d, width_star)
            for j in range(levels):
                nxt = star + d * 0.5 ** (j + 1)
                total += _panel(nxt, right, sign, eta, mu, S, k, c, gx, gw, table, dtable)
                right = nxt
            total += _panel(star, right, sign, eta, mu, S, k, c, gx, gw, table, dtable)
        else:
            total += _panel(lo, hi, sign, eta, mu, S, k, c, gx, gw, table, dtable)
    return total


@njit(parallel=True, **_JIT)
def _infinite_kernel(lr, mu, S, s_lo, s_hi, width, gx, gw, table, dtable, out_m, out_p):
    """Λ∓ for every (lr[i], mu[j])."""
    for ij in prange(lr.size * mu.size):
        i = ij // mu.size
        j = ij % mu.size
        out_m[i, j] = _outer(1.0, lr[i], mu[j], S, s_lo, s_hi, width, gx, gw, table, dtable)
        out_p[i, j] = _outer(-1.0, lr[i], mu[j], S, s_lo, s_hi, width, gx, gw, table, dtable)


def _infinite(lr, mu, S):
    """Λ∓ with an error estimate: the difference between 6- and 8-point panels."""
    table, dtable = _g_table()
    s_lo = math.log(1e-8)  # below: E log|…| = O(ηQ) on a mass O(Q^{S/2}), < 1e-11
    s_hi = math.log(S + 12.0 * math.sqrt(2.0 * S) + 40.0)  # χ²_S tail beyond < 1e-12
    results = []
    for order in (6, 8):
        gx, gw = np.polynomial.legendre.leggauss(order)
        lm = np.empty((lr.size, mu.size))
        lp = np.empty((lr.size, mu.size))
        with PARALLEL_LOCK:
            _infinite_kernel(lr, mu, float(S), s_lo, s_hi, 1.5, gx, gw, table, dtable, lm, lp)
        results.append((lm, lp))
    (lm1, lp1), (lm2, lp2) = results
    return lm2, lp2, np.abs(lm2 - lm1), np.abs(lp2 - lp1)


@njit(parallel=True, **_JIT)
def _batch_kernel(lr, mu, A, B, out_m, out_p, se_m, se_p):
    """Mean (and its standard error) over batches r with mean x² = A[r], mean xε = B[r], so
    that χ = μA + (1 − μ)B: Monte Carlo batches for S > 1, or the N single points for S = 1."""
    R = A.size
    for ij in prange(lr.size * mu.size):
        i = ij // mu.size
        j = ij % mu.size
        eta, m_ = lr[i], mu[j]
        s1m = 0.0
        s2m = 0.0
        s1p = 0.0
        s2p = 0.0
        for r in range(R):
            chi = m_ * A[r] + (1.0 - m_) * B[r]
            lm = math.log(abs(1.0 - eta * chi))
            lp = math.log(abs(1.0 + eta * chi))
            s1m += lm
            s2m += lm * lm
            s1p += lp
            s2p += lp * lp
        out_m[i, j] = s1m / R
        out_p[i, j] = s1p / R
        se_m[i, j] = math.sqrt(max(s2m / R - (s1m / R) ** 2, 0.0) / (R - 1))
        se_p[i, j] = math.sqrt(max(s2p / R - (s1p / R) ** 2, 0.0) / (R - 1))


def make_dataset(n_data: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed dataset (x_i, ε_i), x ~ N(0, 1), ε ~ N(0, 4), drawn once from ``seed``."""
    rng = np.random.default_rng([_seed(seed), 2002])
    n = _count(n_data, "n_data", 1)
    return rng.standard_normal(n), 2.0 * rng.standard_normal(n)


def phase_label(lyap_minus, lyap_plus, l2_stable) -> np.ndarray:
    """Phases of paper 002 Fig. 2 / MATH.md §3: Ia, Ib, II, III, IV (strings)."""
    lm, lp, l2 = np.broadcast_arrays(np.asarray(lyap_minus), np.asarray(lyap_plus), np.asarray(l2_stable))
    out = np.full(lm.shape, "IV", dtype="<U3")
    out[(lm < 0) & (lp >= 0)] = "Ib"
    out[(lm < 0) & (lp >= 0) & l2] = "Ia"
    out[(lm >= 0) & (lp < 0)] = "II"
    out[(lm < 0) & (lp < 0)] = "III"
    return out


def lyapunov_exponents(lr, mu, batch_size=1, n_data=None, seed=0, *, n_batches=4000):
    """Λ− and Λ+ of Proposition 1 (paper 002) on the grid ``lr`` × ``mu``.

    Parameters
    ----------
    lr, mu : float or 1-D array
        Learning rates η > 0 (λ in paper 002) and signal fractions μ ∈ [0, 1].
    batch_size : int
        S ≥ 1.
    n_data : int or None
        None: fresh batches (N = ∞). An int: one dataset of N points drawn from ``seed``.
    seed : int
        Seeds the dataset and, for finite N with S > 1, the Monte Carlo batches.
    n_batches : int, keyword-only
        Batches drawn (without replacement) for finite N and S > 1.

    Returns
    -------
    xr.Dataset
        dims ``lr``, ``mu``: ``lyap_minus``, ``lyap_plus``, their standard errors
        ``lyap_minus_se``, ``lyap_plus_se`` (quadrature-error estimate for N = ∞, zero for the
        exact finite-N S = 1 average, Monte Carlo standard error otherwise), ``l2_stable``
        (E[(1 − ηχ)²] < 1) and ``phase``.
    """
    lr = np.atleast_1d(np.asarray(lr, dtype=float))
    mu = np.atleast_1d(np.asarray(mu, dtype=float))
    if lr.ndim != 1 or mu.ndim != 1:
        raise ValueError("lr and mu must be scalars or 1-D arrays.")
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0)):
        raise ValueError("lr must be finite and > 0.")
    if not (np.all(np.isfinite(mu)) and np.all((mu >= 0) & (mu <= 1))):
        raise ValueError("mu must lie in [0, 1].")
    S = _count(batch_size, "batch_size", 1)
    seed = _seed(seed)
    zeros = np.zeros((lr.size, mu.size))
    if n_data is None:
        lm, lp, sem, sep = _infinite(lr, mu, S)
        e_chi = mu
        e_chi2 = mu**2 + (2 * mu**2 + 4 * (1 - mu) ** 2) / S
    else:
        N = _count(n_data, "n_data", 1)
        if S > N:
            raise ValueError(f"batch_size S = {S} cannot exceed n_data N = {N}.")
        x, eps = make_dataset(N, seed)
        xx, xe = x * x, x * eps
        if S == 1 or S == N:
            A, B = np.array([xx.mean()]), np.array([xe.mean()])
            if S == 1:  # the exact average over the N points: no sampling error
                lm, lp, spread_m, spread_p = (np.empty_like(zeros) for _ in range(4))
                with PARALLEL_LOCK:
                    _batch_kernel(lr, mu, xx, xe, lm, lp, spread_m, spread_p)
            else:  # full batch: χ is deterministic
                chi = mu * A[0] + (1 - mu) * B[0]
                lm = np.log(np.abs(1 - lr[:, None] * chi[None, :]))
                lp = np.log(np.abs(1 + lr[:, None] * chi[None, :]))
            sem = sep = zeros
        else:
            rng = np.random.default_rng([seed, 2003])
            R = _count(n_batches, "n_batches", 2)
            idx = np.argsort(rng.random((R, N)), axis=1)[:, :S]
            A, B = xx[idx].mean(axis=1), xe[idx].mean(axis=1)
            lm, lp, sem, sep = (np.empty_like(zeros) for _ in range(4))
            with PARALLEL_LOCK:
                _batch_kernel(lr, mu, A, B, lm, lp, sem, sep)
        # moments of the batch mean χ under sampling without replacement
        e_chi = mu * xx.mean() + (1 - mu) * xe.mean()
        var_pop = (np.outer(mu, xx) + np.outer(1 - mu, xe)).var(axis=1)  # of χ_i = x_i y_i
        fpc = (N - S) / (N - 1) if N > 1 else 0.0
        e_chi2 = e_chi**2 + var_pop / S * fpc
    with np.errstate(divide="ignore", invalid="ignore"):
        l2 = (1.0 - 2.0 * lr[:, None] * e_chi[None, :] + lr[:, None] ** 2 * e_chi2[None, :]) < 1.0
    data = {
        "lyap_minus": (("lr", "mu"), lm),
        "lyap_plus": (("lr", "mu"), lp),
        "lyap_minus_se": (("lr", "mu"), sem),
        "lyap_plus_se": (("lr", "mu"), sep),
        "l2_stable": (("lr", "mu"), l2),
        "phase": (("lr", "mu"), phase_label(lm, lp, l2)),
    }
    inputs = dict(batch_size=S, n_data=n_data, seed=seed, n_batches=n_batches,
                  model="type_ii_saddle")
    return schema.dataset(data, {"lr": lr, "mu": mu}, inputs, kind="saddle_lyapunov")


def simulate_saddle(lr: float, mu: float, batch_size: int = 1, n_data=None, n_runs: int = 200,
                    n_steps: int = 2000, seed: int = 0) -> xr.Dataset:
    """Direct simulation of w ← w + ηχu, u ← u + ηχw (paper 002 eq. 54), fresh χ each step.

    The map is linear, so it is tracked through log|m_t/m_0| and log|h_t/h_0| (m = w − u,
    h = w + u; the products themselves overflow). Returns them per run and step, and the
    empirical exponents (1/T) log|m_T/m_0|, (1/T) log|h_T/h_0|, which estimate Λ−, Λ+.
    """
    eta = _positive(lr, "lr")
    mu = _positive(mu, "mu", allow_zero=True)
    if not mu <= 1:
        raise ValueError(f"mu must lie in [0, 1]; got {mu!r}.")
    S = _count(batch_size, "batch_size", 1)
    R = _count(n_runs, "n_runs", 2)
    T = _count(n_steps, "n_steps", 1)
    rng = np.random.default_rng([_seed(seed), 2004])
    if n_data is None:
        x = rng.standard_normal((R, T, S))
        eps = 2.0 * rng.standard_normal((R, T, S))
        chi = np.mean(x * (mu * x + (1 - mu) * eps), axis=2)
    else:
        xd, ed = make_dataset(n_data, seed)
        if S > n_data:
            raise ValueError("batch_size cannot exceed n_data.")
        idx = np.argsort(rng.random((R, T, n_data)), axis=2)[..., :S]
        chi = np.mean(xd[idx] * (mu * xd[idx] + (1 - mu) * ed[idx]), axis=2)
    with np.errstate(divide="ignore"):
        log_m = np.cumsum(np.log(np.abs(1 - eta * chi)), axis=1)
        log_h = np.cumsum(np.log(np.abs(1 + eta * chi)), axis=1)
    steps = np.arange(1, T + 1)
    data = {
        "log_m": (("trajectory", "step"), log_m),
        "log_h": (("trajectory", "step"), log_h),
        "exp_minus": (("trajectory",), log_m[:, -1] / T),
        "exp_plus": (("trajectory",), log_h[:, -1] / T),
    }
    inputs = dict(lr=eta, mu=float(mu), batch_size=S, n_data=n_data, n_runs=R, n_steps=T,
                  seed=int(seed))
    return schema.dataset(data, {"trajectory": np.arange(R), "step": steps}, inputs,
                          kind="saddle_simulation")


@njit(parallel=True, **_JIT)
def _product_kernel(lr, keys, max_steps, out):
    """(1/t) log‖θ_t‖ for θ ← (I − λĤ_t)θ, Ĥ = diag(0.1, −0.1) + M + Mᵀ (paper 002 eq. 4,
    App. A.2), stopped at ‖θ‖ > 1e100, ‖θ‖ < 1e−140 or t = max_steps."""
    R = keys.size
    for ij in prange(lr.size * R):
        i = ij // R
        r = ij % R
        key = keys[r]
        lam = lr[i]
        z0, z1 = normal_pair(key, 0)
        ang = math.atan2(z1, z0)  # initial state on the unit circle
        t1, t2 = math.cos(ang), math.sin(ang)
        logn = 0.0
        t = 0
        while t < max_steps:
            a, b = normal_pair(key, 1 + 2 * t)
            c, d = normal_pair(key, 2 + 2 * t)
            h11 = 0.1 + 2.0 * a
            h22 = -0.1 + 2.0 * d
            h12 = b + c
            n1 = t1 - lam * (h11 * t1 + h12 * t2)
            n2 = t2 - lam * (h12 * t1 + h22 * t2)
            nrm = math.sqrt(n1 * n1 + n2 * n2)
            t += 1
            if nrm == 0.0:
                logn = -np.inf
                break
            logn += math.log(nrm)
            t1, t2 = n1 / nrm, n2 / nrm
            if logn > 100.0 * math.log(10.0) or logn < -140.0 * math.log(10.0):
                break
        out[i, r] = logn / t


def random_product_lyapunov(lr, n_runs: int = 800, max_steps: int = 5000, seed: int = 0) -> xr.Dataset:
    """Fig. 2 right of paper 002: the Lyapunov exponent of θ ← (I − λĤ)θ against λ = ``lr``,
    mean and standard error over ``n_runs`` runs (App. A.2)."""
    from ._vecmath import stream_key

    lr = np.atleast_1d(np.asarray(lr, dtype=float))
    if lr.ndim != 1 or not (np.all(np.isfinite(lr)) and np.all(lr > 0)):
        raise ValueError("lr must be finite, > 0 and 1-D.")
    R = _count(n_runs, "n_runs", 2)
    keys = np.array([stream_key(_seed(seed), 21, r) for r in range(R)], dtype=np.uint64)
    out = np.empty((lr.size, R))
    with PARALLEL_LOCK:
        _product_kernel(lr, keys, _count(max_steps, "max_steps", 1), out)
    data = {"lyapunov": (("lr",), out.mean(axis=1)),
            "lyapunov_se": (("lr",), out.std(axis=1, ddof=1) / math.sqrt(R))}
    inputs = dict(n_runs=R, max_steps=max_steps, seed=int(seed), model="random_matrix_product")
    return schema.dataset(data, {"lr": lr}, inputs, kind="random_product_lyapunov")

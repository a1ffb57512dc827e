"""Local stability on the degenerate subspace M_wv (paper 000 §3.2, Fig. 3, Appendices A–B).

On M_wv the dynamics is the 2-D random map (w, v) ← (w, v) + η g(x; w, v) (eqs. 31–34) with

    g(x; w, v) = −h · (v x sech²(wx), tanh(wx)),   h = 2v tanh(wx) − T(x).

Its Jacobian J = ∂g/∂(w, v) is symmetric (g is minus the gradient of the per-sample loss on
M_wv); with t = tanh(wx), s = sech²(wx):

    J11 = −2 v x² s (v − 3v t² + T t),   J12 = J21 = x s (T − 4 v t),   J22 = −2 t².

(The printed eq. 35 has J12 = x s (T − v q t): a typo — MATH.md §1a.)  Its eigenvalues
μ− ≤ μ+ are those of Appendix B (B.2–B.5); the tests check both this form and B.2–B.5 against a
finite-difference Jacobian of g.  For small η the point is attracting for a sample x when
μ+(x) ≤ 0, and π(w, v) = P_x[μ+ ≤ 0] (eq. 38).  At finite η the linearised map I + ηJ contracts
both eigendirections when |1 + η μ±| < 1, i.e. −2/η < μ− and μ+ < 0.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import xarray as xr
from numba import njit, prange

from . import schema
from ._kernels import (
    _JIT,
    _apply_teacher,
    _count,
    _positive,
    _seed,
    _teacher,
    _teacher_id,
    teacher_numpy,
)
from ._parallel import PARALLEL_LOCK
from ._vecmath import normal_pair, stream_key, vtanh
from .pullback import Cancelled
from .quadrature import half_gauss_rule

__all__ = ["jacobian", "mu_pm", "attracting_probability", "attracting_map", "valley_curve",
           "lyapunov"]

_S_LYAP = 16  # random-stream tag of the Lyapunov estimates
_PARALLEL_MIN = 64  # grid points below which the serial kernels run


@njit(inline="always", **_JIT)
def _jac_T(x, T, w, v):
    """(J11, J12, J22) of g at one sample with teacher value T = T(x) (J is symmetric)."""
    t = vtanh(w * x)
    s = 1.0 - t * t
    return (-2.0 * v * x * x * s * (v - 3.0 * v * t * t + T * t),
            x * s * (T - 4.0 * v * t),
            -2.0 * t * t)


@njit(inline="always", **_JIT)
def _jac(x, w, v, c4):
    return _jac_T(x, _teacher(x, c4), w, v)


@njit(inline="always", **_JIT)
def _eig(a, b, d):
    """Eigenvalues (μ−, μ+) of the symmetric matrix [[a, b], [b, d]], without cancellation."""
    m = 0.5 * (a + d)
    h = 0.5 * (a - d)
    r = math.sqrt(h * h + b * b)
    # the root farther from 0 is computed directly, the other from the determinant
    big = m + r if m >= 0 else m - r
    det = a * d - b * b
    small = det / big if big != 0.0 else 0.0
    lo = min(big, small)
    hi = max(big, small)
    return lo, hi


@njit(**_JIT)
def _mu_pm(x, w, v, c4, lo, hi):
    for i in range(x.size):
        a, b, d = _jac(x[i], w[i], v[i], c4)
        lo[i], hi[i] = _eig(a, b, d)


def jacobian(x, w, v, teacher: str = "paper000"):
    """(J11, J12, J22) of g(x; w, v), broadcasting NumPy arrays (J21 = J12)."""
    x, w, v = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, w, v)))
    t = np.tanh(w * x)
    s = 1.0 - t * t
    T = teacher_numpy(x, teacher)
    return (-2.0 * v * x * x * s * (v - 3.0 * v * t * t + T * t), x * s * (T - 4.0 * v * t),
            -2.0 * t * t)


def mu_pm(x, w, v, teacher: str = "paper000") -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (μ−, μ+) of J(x; w, v), μ− ≤ μ+ (paper 000 Appendix B), broadcasting."""
    x, w, v = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, w, v)))
    lo = np.empty(x.shape)
    hi = np.empty(x.shape)
    _mu_pm(np.ascontiguousarray(x).ravel(), np.ascontiguousarray(w).ravel(),
           np.ascontiguousarray(v).ravel(), _teacher_id(teacher), lo.reshape(-1), hi.reshape(-1))
    return lo, hi


# ---------------------------------------------------------------------------------------------
# π(w, v) = P_x[stable], by integrating the Gaussian over the stable set
# ---------------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _margin_T(x, T, w, v, neg_limit):
    """≥ 0 exactly where the sample is stable: min(−μ+, μ− − neg_limit) (neg_limit = −2/η,
    or −inf for the small-η criterion μ+ ≤ 0)."""
    a, b, d = _jac_T(x, T, w, v)
    lo, hi = _eig(a, b, d)
    return min(-hi, lo - neg_limit)


@njit(inline="always", **_JIT)
def _margin(u, sigma, w, v, c4, neg_limit):
    x = sigma * u
    return _margin_T(x, _teacher(x, c4), w, v, neg_limit)


@njit(inline="always", **_JIT)
def _half_cdf(u):
    """P(|Z| ≤ u) for Z ~ N(0, 1)."""
    return math.erf(u / math.sqrt(2.0))


@njit(**_JIT)
def _edge(lo, hi, stable_lo, sigma, w, v, c4, neg_limit):
    """Bisection for the stability boundary in [lo, hi] (stable at lo iff ``stable_lo``)."""
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if (_margin(mid, sigma, w, v, c4, neg_limit) >= 0.0) == stable_lo:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@njit(**_JIT)
def _extremum(lo, hi, sign, sigma, w, v, c4, neg_limit):
    """Golden-section search for the min (sign = 1) or max (sign = −1) of the margin."""
    g = 0.6180339887498949
    a, b = lo, hi
    c = b - g * (b - a)
    d = a + g * (b - a)
    fc = sign * _margin(c, sigma, w, v, c4, neg_limit)
    fd = sign * _margin(d, sigma, w, v, c4, neg_limit)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = sign * _margin(c, sigma, w, v, c4, neg_limit)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = sign * _margin(d, sigma, w, v, c4, neg_limit)
    u = 0.5 * (a + b)
    return u, _margin(u, sigma, w, v, c4, neg_limit)


@njit(**_JIT)
def _pi_point(w, v, sigma, c4, neg_limit, us, Ts):
    """P_x[stable] for x ~ N(0, σ²), as the Gaussian mass (erf) of the set where the margin is
    ≥ 0 on |x| = σu, u ∈ [0, 10].

    The margin is scanned on ``us`` (teacher values ``Ts`` precomputed); each sign change is
    refined by bisection. A stable (unstable) interval narrower than the scan step shows up as
    a discrete local minimum (maximum) of the margin between three same-signed samples: there
    a golden-section search finds the extremum, and if it crosses zero the hidden interval's
    two edges are found by bisection and its mass subtracted (added).
    """
    total = 0.0
    m_prev = _margin_T(sigma * us[0], Ts[0], w, v, neg_limit)
    m_prev2 = m_prev
    s_prev = m_prev >= 0.0
    start = 0.0
    for k in range(1, us.size):
        m = _margin_T(sigma * us[k], Ts[k], w, v, neg_limit)
        s = m >= 0.0
        if s != s_prev:
            edge = _edge(us[k - 1], us[k], s_prev, sigma, w, v, c4, neg_limit)
            if s_prev:
                total += _half_cdf(edge) - _half_cdf(start)
            else:
                start = edge
        elif k >= 2 and (m_prev2 >= 0.0) == s and (m_prev >= 0.0) == s:
            a, b = us[k - 2], us[k]
            if s and m_prev <= m_prev2 and m_prev <= m:  # a hidden unstable dip?
                u_ext, m_ext = _extremum(a, b, 1.0, sigma, w, v, c4, neg_limit)
                if m_ext < 0.0:
                    left = _edge(a, u_ext, True, sigma, w, v, c4, neg_limit)
                    right = _edge(u_ext, b, False, sigma, w, v, c4, neg_limit)
                    total -= _half_cdf(right) - _half_cdf(left)
            elif not s and m_prev >= m_prev2 and m_prev >= m:  # a hidden stable bump?
                u_ext, m_ext = _extremum(a, b, -1.0, sigma, w, v, c4, neg_limit)
                if m_ext >= 0.0:
                    left = _edge(a, u_ext, False, sigma, w, v, c4, neg_limit)
                    right = _edge(u_ext, b, True, sigma, w, v, c4, neg_limit)
                    total += _half_cdf(right) - _half_cdf(left)
        s_prev = s
        m_prev2 = m_prev
        m_prev = m
    if s_prev:
        total += 1.0 - _half_cdf(start)  # stable to the end of the scan (|x| = 10σ)
    return total


@njit(parallel=True, **_JIT)
def _pi_grid(w, v, sigma, c4, neg_limit, us, Ts, out):
    for i in prange(w.size):
        out[i] = _pi_point(w[i], v[i], sigma, c4, neg_limit, us, Ts)


@njit(**_JIT)
def _pi_grid_serial(w, v, sigma, c4, neg_limit, us, Ts, out):
    for i in range(w.size):
        out[i] = _pi_point(w[i], v[i], sigma, c4, neg_limit, us, Ts)


@njit(parallel=True, **_JIT)
def _mu_moments(w, v, xs, cs, c4, out_hi, out_lo):
    """E_x[μ+], E_x[μ−] by the quadrature rule (xs, cs) for even integrands."""
    for i in prange(w.size):
        hi_acc = 0.0
        lo_acc = 0.0
        for k in range(xs.size):
            a, b, d = _jac(xs[k], w[i], v[i], c4)
            lo, hi = _eig(a, b, d)
            hi_acc += cs[k] * hi
            lo_acc += cs[k] * lo
        out_hi[i] = hi_acc
        out_lo[i] = lo_acc


def attracting_probability(w, v, sigma2: float, lr: float | None = None,
                           teacher: str = "paper000", n_grid: int = 200) -> np.ndarray:
    """π(w, v) = P_x[μ+(x; w, v) ≤ 0], x ~ N(0, σ²) (paper 000 eq. 38, Fig. 3 right).

    With ``lr`` = η given, the finite-η criterion P_x[|1 + η μ±| < 1 for both] instead.
    The Gaussian mass of the stable set is integrated exactly (erf) between its boundary
    points, which are located by a scan of ``n_grid`` points on |x| ≤ 10σ refined by bisection;
    the error is that of stable intervals narrower than the scan step (checked against a
    10⁶-point midpoint rule in the tests: < 1e-4).  ``w`` and ``v`` broadcast.
    """
    sigma = math.sqrt(_positive(sigma2, "sigma2"))
    neg_limit = -np.inf if lr is None else -2.0 / _positive(lr, "lr")
    w, v = np.broadcast_arrays(np.asarray(w, dtype=float), np.asarray(v, dtype=float))
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(v))):
        raise ValueError("w and v must be finite.")
    out = np.empty(w.shape)
    c4 = _teacher_id(teacher)
    us = np.linspace(0.0, 10.0, _count(n_grid, "n_grid", 10) + 1)
    us[0] = 1e-300  # at x = 0, J = 0: take the limit from the right
    args = (np.ascontiguousarray(w).ravel(), np.ascontiguousarray(v).ravel(), sigma, c4,
            neg_limit, us, _apply_teacher(sigma * us, c4), out.reshape(-1))
    if w.size < _PARALLEL_MIN:
        _pi_grid_serial(*args)  # small requests never wait for the parallel lock
    else:
        with PARALLEL_LOCK:
            _pi_grid(*args)
    return out


def valley_curve(w, sigma2: float) -> np.ndarray:
    """The valley C of the averaged potential, v*(w; σ²) (paper 000 Appendix A, eqs. A.4–A.6).

    v* = Σ_a ν_a Φ(w, ω_a) / (2 Φ(w, w)), Φ(ζ1, ζ2) = arcsin(σ² ζ1 ζ2 / √((1 + σ²ζ1²)(1 + σ²ζ2²))),
    (ω1, ω2, ν1, ν2) = (1, 4, 2, −1): the teacher of paper 000 in the erf approximation of tanh.
    """
    s2 = _positive(sigma2, "sigma2")
    w = np.asarray(w, dtype=float)

    def phi(z1, z2):
        return np.arcsin(s2 * z1 * z2 / np.sqrt((1 + s2 * z1 * z1) * (1 + s2 * z2 * z2)))

    with np.errstate(invalid="ignore", divide="ignore"):
        return (2.0 * phi(w, 1.0) - phi(w, 4.0)) / (2.0 * phi(w, w))


# ---------------------------------------------------------------------------------------------
# top Lyapunov exponent of the products of I + η J(x_t; w, v)
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _lyap_point(w, v, sigma, c4, lr, n_steps, key, burn):
    """(1/T) log ‖Π (I + ηJ_t) u0‖ for one noise stream; the first ``burn`` steps align u.
    Norms are multiplied up and logged every 16 steps (they stay within ~1e±20 meanwhile)."""
    inv = 1.0 / math.sqrt(2.0)
    u1, u2 = inv, inv
    acc = 0.0
    prod = 1.0
    z1 = 0.0
    for t in range(burn + n_steps):
        if t % 2 == 0:
            z, z1 = normal_pair(key, t >> 1)
        else:
            z = z1
        a, b, d = _jac(sigma * z, w, v, c4)
        n1 = u1 + lr * (a * u1 + b * u2)
        n2 = u2 + lr * (b * u1 + d * u2)
        nrm = math.sqrt(n1 * n1 + n2 * n2)
        if not (nrm > 0.0 and nrm < np.inf):
            return -np.inf if nrm == 0.0 else np.inf
        if t >= burn:
            prod *= nrm
            if (t - burn) % 16 == 15:
                acc += math.log(prod)
                prod = 1.0
        u1 = n1 / nrm
        u2 = n2 / nrm
    return (acc + math.log(prod)) / n_steps


@njit(parallel=True, **_JIT)
def _lyap_grid(w, v, sigma, c4, lr, n_steps, keys, burn, out):
    n_rep = keys.size
    for k in prange(w.size * n_rep):
        i = k // n_rep
        r = k % n_rep
        out[i, r] = _lyap_point(w[i], v[i], sigma, c4, lr, n_steps, keys[r], burn)


@njit(**_JIT)
def _lyap_grid_serial(w, v, sigma, c4, lr, n_steps, keys, burn, out):
    for i in range(w.size):
        for r in range(keys.size):
            out[i, r] = _lyap_point(w[i], v[i], sigma, c4, lr, n_steps, keys[r], burn)


def lyapunov(w, v, sigma2: float, lr: float, n_steps: int = 2000, n_replicas: int = 16,
             teacher: str = "paper000", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top Lyapunov exponent λ of the random products Π_t (I + η J(x_t; w, v)), x_t ~ N(0, σ²)
    i.i.d., at fixed (w, v) — the linearised 2-D map on M_wv frozen at that point.

    λ < 0: a small perturbation of (w, v) shrinks almost surely (probabilistic stability of
    the linearisation, at this η); unlike π it weighs *how much* each sample expands or
    contracts, not only the sign of μ+. Estimated by ``n_replicas`` independent products of
    ``n_steps`` steps (after 100 steps to align the vector); returns (mean, standard error),
    broadcasting ``w`` and ``v``. Replica r uses the same noise at every (w, v).
    """
    sigma = math.sqrt(_positive(sigma2, "sigma2"))
    lr = _positive(lr, "lr")
    T = _count(n_steps, "n_steps", 1)
    R = _count(n_replicas, "n_replicas", 2)
    w, v = np.broadcast_arrays(np.asarray(w, dtype=float), np.asarray(v, dtype=float))
    keys = np.array([stream_key(_seed(seed), _S_LYAP, r) for r in range(R)], dtype=np.uint64)
    out = np.empty((w.size, R))
    args = (np.ascontiguousarray(w).ravel(), np.ascontiguousarray(v).ravel(), sigma,
            _teacher_id(teacher), lr, T, keys, 100, out)
    if w.size * R * T < 200_000:
        _lyap_grid_serial(*args)  # small requests never wait for the parallel lock
    else:
        with PARALLEL_LOCK:
            _lyap_grid(*args)
    with np.errstate(invalid="ignore"):
        mean = out.mean(axis=1)
        se = out.std(axis=1, ddof=1) / math.sqrt(R)
    return mean.reshape(w.shape), se.reshape(w.shape)


# ---------------------------------------------------------------------------------------------
# the maps the page shows
# ---------------------------------------------------------------------------------------------
def attracting_map(sigma2: float, lr: float | None = None, n: int = 200,
                   w_range=(0.0, 2.0), v_range=(0.0, 2.0), teacher: str = "paper000",
                   lyapunov_steps: int = 0, lyapunov_replicas: int = 8,
                   seed: int = 0, moments: bool = False, *,
                   cancel: Callable[[], bool] | None = None) -> xr.Dataset:
    """π over an n×n grid of (w, v) cell centres (Fig. 3 right), the valley curve C, and —
    with ``lyapunov_steps`` > 0 and ``lr`` given — the Lyapunov map with its standard error;
    with ``moments`` the means E_x[μ±] (``mu_plus_mean``, ``mu_minus_mean``) by quadrature.
    ``cancel()`` is asked before each of these parts; true stops with
    :class:`engine.pullback.Cancelled`.

    Returns an ``xr.Dataset`` with dims ``w``, ``v``: ``pi_small_lr`` (P[μ+ ≤ 0]),
    ``pi_finite_lr`` (P[|1 + ημ±| < 1], if ``lr``), ``lyapunov``, ``lyapunov_se``, and
    ``valley`` (v* over ``w``).
    """
    n = _count(n, "n", 2, maximum=4096)
    lyapunov_steps = _count(lyapunov_steps, "lyapunov_steps")
    lyapunov_replicas = _count(lyapunov_replicas, "lyapunov_replicas", 1)
    (w0, w1), (v0, v1) = w_range, v_range
    w = w0 + (np.arange(n) + 0.5) * (w1 - w0) / n
    v = v0 + (np.arange(n) + 0.5) * (v1 - v0) / n
    W, V = np.meshgrid(w, v, indexing="ij")

    def check():
        if cancel is not None and cancel():
            raise Cancelled("cancelled")

    check()
    data = {"pi_small_lr": (("w", "v"), attracting_probability(W, V, sigma2, None, teacher))}
    if moments:
        check()
        # μ± are only piecewise smooth in x: a finer rule than the loss needs (error < 1e-9)
        xs, cs = half_gauss_rule(_positive(sigma2, "sigma2"), n_panels=64, order=30)
        hi = np.empty(W.size)
        lo = np.empty(W.size)
        with PARALLEL_LOCK:
            _mu_moments(W.ravel(), V.ravel(), np.ascontiguousarray(xs), np.ascontiguousarray(cs),
                        _teacher_id(teacher), hi, lo)
        data["mu_plus_mean"] = (("w", "v"), hi.reshape(W.shape))
        data["mu_minus_mean"] = (("w", "v"), lo.reshape(W.shape))
    if lr is not None:
        check()
        data["pi_finite_lr"] = (("w", "v"), attracting_probability(W, V, sigma2, lr, teacher))
        if lyapunov_steps:
            check()
            lam, se = lyapunov(W, V, sigma2, lr, lyapunov_steps, lyapunov_replicas, teacher, seed)
            data["lyapunov"] = (("w", "v"), lam)
            data["lyapunov_se"] = (("w", "v"), se)
    data["valley"] = (("w",), valley_curve(w, sigma2))
    inputs = dict(sigma2=sigma2, lr=lr, n=n, w_range=list(w_range), v_range=list(v_range),
                  teacher=teacher, lyapunov_steps=lyapunov_steps,
                  lyapunov_replicas=lyapunov_replicas, seed=seed, moments=moments)
    return schema.dataset(data, {"w": w, "v": v}, inputs, kind="stability_map")

"""Fukumizu–Amari two-neuron network under SGD (paper 000 eqs. 4–8, 31–32; paper 001 §4).

Student  f(x; θ) = v1 tanh(w1 x) + v2 tanh(w2 x),  θ = (w1, w2, v1, v2).
Teachers T(x) = 2 tanh(x) − tanh(4x)  (``'paper000'``, paper 000 eq. 5)
         T(x) = 2 tanh(x)             (``'paper001'`` or ``'2tanh'``, paper 001 §4).

Per-sample loss l = ½ (f − y)², signed residual h = f − y (MATH.md §1: paper 001's h = ‖f − y‖
is a typo).  One SGD step with a batch of S samples (MATH.md §1):

    w_i ← w_i − η · mean_batch[ x v_i h sech²(w_i x) ]
    v_i ← v_i − η · mean_batch[ tanh(w_i x) h ]

Inputs are fresh x ~ N(0, σ²) every step (online; S = 1 is paper 000's setting) or drawn from a
fixed dataset of n points drawn once from the seed (paper 001; S ≥ n is full-batch GD).  Labels
are y = T(x) + ξ, ξ ~ N(0, τ²).

The one model rule is :func:`_fa_sample` (residual and per-sample gradient); the integrators
(:func:`_online_block`, :func:`_dataset_block`) only loop, draw noise, check exits and record.
The teacher T(x), the mini-batch sampler, the numba options and the input checks shared with the
other models live in :mod:`engine._kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import schema
from ._kernels import (
    _JIT,
    MAX_ELEMENTS,
    TEACHERS,
    _apply_teacher,
    _choose,
    _count,
    _positive,
    _seed,
    _teacher,
    _teacher_id,
    _teacher_name,
    _theta_array,
    teacher_numpy,
)
from ._parallel import PARALLEL_LOCK
from ._vecmath import normal_pair, stream_key, vtanh
from .quadrature import half_gauss_rule

__all__ = [
    "TEACHERS",
    "OPTIMAL_POINTS",
    "teacher",
    "student",
    "loss_and_grad",
    "population_loss",
    "population_grad",
    "reduced_map",
    "sample_inputs",
    "uniform_initial",
    "batch_indices",
    "make_data",
    "run_ensemble",
    "run_reduced",
    "DIVERGENCE_THRESHOLD",
]

#: the eight global minima of the paper-000 teacher, paper 000 eq. (9), order (w1, w2, v1, v2)
OPTIMAL_POINTS = np.array(
    [
        (1, 4, 2, -1), (-1, 4, -2, -1), (1, -4, 2, 1), (-1, -4, -2, 1),
        (4, 1, -1, 2), (4, -1, -1, -2), (-4, 1, 1, 2), (-4, -1, 1, -2),
    ],
    dtype=float,
)
OPTIMAL_POINTS.flags.writeable = False

#: a parameter whose magnitude passes this is declared diverged (the loss is then > 1e16)
DIVERGENCE_THRESHOLD = 1e8

# random-stream tags (see engine._vecmath: streams are independent by construction)
_S_X, _S_XI, _S_DATA_X, _S_DATA_XI, _S_BATCH, _S_INIT = 0, 1, 2, 3, 4, 5
_BLOCK = 128  # trajectories per block: local arrays stay in L1/L2
_ROWS = 64  # samples of noise drawn ahead per block


# ---------------------------------------------------------------------------------------------
# the model rule
# ---------------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _fa_sample(w1, w2, v1, v2, x, y):
    """Residual h = f(x; θ) − y and ∂l/∂θ for one sample, l = ½ h² (paper 000 eqs. 6–8)."""
    t1 = vtanh(w1 * x)
    t2 = vtanh(w2 * x)
    h = v1 * t1 + v2 * t2 - y
    return h, x * v1 * h * (1.0 - t1 * t1), x * v2 * h * (1.0 - t2 * t2), t1 * h, t2 * h


@njit(inline="always", **_JIT)
def _bad(a, limit):
    """True when |a| > limit or a is NaN."""
    return not (abs(a) <= limit)


@njit(inline="always", **_JIT)
def _exit_code(a, b, c, d, limit):
    """schema.EXIT_* for a new state: 2 diverged (NaN/inf or past DIVERGENCE_THRESHOLD),
    1 left the box |θ_i| ≤ limit, 0 fine. Bitwise | and selects, no short-circuit branches,
    so loops calling it stay vectorised."""
    out = _bad(a, limit) | _bad(b, limit) | _bad(c, limit) | _bad(d, limit)
    div = (_bad(a, DIVERGENCE_THRESHOLD) | _bad(b, DIVERGENCE_THRESHOLD)
           | _bad(c, DIVERGENCE_THRESHOLD) | _bad(d, DIVERGENCE_THRESHOLD))
    return np.int8(2) if div else (np.int8(1) if out else np.int8(0))


# ---------------------------------------------------------------------------------------------
# integrators
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _fill_normals(buf, keys, j0, m, pair0, n_pairs):
    """buf[2i + e, j] = normal number 2(pair0 + i) + e of stream keys[j0 + j]."""
    for i in range(n_pairs):
        p = pair0 + i
        for j in range(m):
            a, b = normal_pair(keys[j0 + j], p)
            buf[2 * i, j] = a
            buf[2 * i + 1, j] = b


@njit(**_JIT)
def _online_block(theta, keys_x, keys_xi, shared, lr, sigma, tau, c4, S, n_steps, step0,
                  rec_every, bound, rec, exit_step, exit_reason, j0, m):
    """Advance trajectories j0 … j0+m−1 of ``theta`` (n, 4) by ``n_steps`` online SGD steps.

    Noise of trajectory j, step t (global, i.e. counting from ``step0``), batch element b is
    normal number t·S + b of stream ``keys_x[j]`` (``keys_x[0]`` for all when ``shared``).
    Writes the final state into ``theta``, records every ``rec_every`` steps into
    ``rec[j, 1:, :]`` (NaN after exit) and the exit step/reason.
    """
    w1 = np.empty(m)
    w2 = np.empty(m)
    v1 = np.empty(m)
    v2 = np.empty(m)
    act = np.empty(m, dtype=np.bool_)
    g1 = np.zeros(m)
    g2 = np.zeros(m)
    g3 = np.zeros(m)
    g4 = np.zeros(m)
    for j in range(m):
        w1[j] = theta[j0 + j, 0]
        w2[j] = theta[j0 + j, 1]
        v1[j] = theta[j0 + j, 2]
        v2[j] = theta[j0 + j, 3]
        act[j] = exit_step[j0 + j] < 0
    width = 1 if shared else m
    kj0 = 0 if shared else j0
    steps_ahead = max(1, _ROWS // S)
    zb = np.empty((steps_ahead * S + 2, width))
    xb = np.zeros((steps_ahead * S + 2, width))
    limit = min(bound, DIVERGENCE_THRESHOLD)
    eta = lr / S
    for t0 in range(0, n_steps, steps_ahead):
        if not np.any(act):
            break  # every trajectory of the block has stopped: records stay NaN
        k = min(steps_ahead, n_steps - t0)
        c0 = (step0 + t0) * S
        c1 = c0 + k * S
        p0 = c0 >> 1
        n_pairs = ((c1 + 1) >> 1) - p0
        _fill_normals(zb, keys_x, kj0, width, p0, n_pairs)
        if tau > 0.0:
            _fill_normals(xb, keys_xi, kj0, width, p0, n_pairs)
        off = c0 - 2 * p0
        for s in range(k):
            for b in range(S):
                row = off + s * S + b
                if shared:
                    x = sigma * zb[row, 0]
                    y = _teacher(x, c4) + tau * xb[row, 0]
                    for j in range(m):
                        h, d1, d2, d3, d4 = _fa_sample(w1[j], w2[j], v1[j], v2[j], x, y)
                        g1[j] += d1
                        g2[j] += d2
                        g3[j] += d3
                        g4[j] += d4
                else:
                    for j in range(m):
                        x = sigma * zb[row, j]
                        y = _teacher(x, c4) + tau * xb[row, j]
                        h, d1, d2, d3, d4 = _fa_sample(w1[j], w2[j], v1[j], v2[j], x, y)
                        g1[j] += d1
                        g2[j] += d2
                        g3[j] += d3
                        g4[j] += d4
            step = step0 + t0 + s + 1  # global count of steps taken after this update
            for j in range(m):
                a = act[j]
                n1 = w1[j] - eta * g1[j]
                n2 = w2[j] - eta * g2[j]
                n3 = v1[j] - eta * g3[j]
                n4 = v2[j] - eta * g4[j]
                g1[j] = 0.0
                g2[j] = 0.0
                g3[j] = 0.0
                g4[j] = 0.0
                code = _exit_code(n1, n2, n3, n4, limit)
                w1[j] = n1 if a else w1[j]
                w2[j] = n2 if a else w2[j]
                v1[j] = n3 if a else v1[j]
                v2[j] = n4 if a else v2[j]
                stop = a & (code != 0)
                exit_step[j0 + j] = step if stop else exit_step[j0 + j]
                exit_reason[j0 + j] = code if stop else exit_reason[j0 + j]
                act[j] = a ^ stop  # false exactly where it stopped now
            if (t0 + s + 1) % rec_every == 0:
                _record(rec, (t0 + s + 1) // rec_every, j0, m, act, w1, w2, v1, v2)
    if n_steps % rec_every != 0:  # the final state is always recorded
        _record(rec, rec.shape[1] - 1, j0, m, act, w1, w2, v1, v2)
    for j in range(m):
        theta[j0 + j, 0] = w1[j]
        theta[j0 + j, 1] = w2[j]
        theta[j0 + j, 2] = v1[j]
        theta[j0 + j, 3] = v2[j]


@njit(inline="always", **_JIT)
def _record(rec, i, j0, m, act, w1, w2, v1, v2):
    for j in range(m):
        a = act[j]
        rec[j0 + j, i, 0] = w1[j] if a else np.nan
        rec[j0 + j, i, 1] = w2[j] if a else np.nan
        rec[j0 + j, i, 2] = v1[j] if a else np.nan
        rec[j0 + j, i, 3] = v2[j] if a else np.nan


@njit(**_JIT)
def _dataset_block(theta, data_x, data_y, keys_b, shared, lr, S, n_steps, step0, rec_every,
                   bound, rec, exit_step, exit_reason, j0, m):
    """Mini-batch SGD on a fixed dataset (full-batch GD when S ≥ n) for trajectories j0 … j0+m−1.

    Each step draws S distinct points (partial Fisher–Yates) from counter (step·S) of stream
    ``keys_b[j]`` (``keys_b[0]`` for all when ``shared``).
    """
    n = data_x.shape[0]
    full = S >= n
    nb = n if full else S
    idx = np.arange(nb)
    perm = np.arange(n)
    limit = min(bound, DIVERGENCE_THRESHOLD)
    eta = lr / nb
    for j in range(j0, j0 + m):
        if exit_step[j] >= 0:
            continue
        key = keys_b[0] if shared else keys_b[j]
        w1, w2, v1, v2 = theta[j, 0], theta[j, 1], theta[j, 2], theta[j, 3]
        alive = True
        for t in range(n_steps):
            if not full:
                _choose(key, (step0 + t) * S, n, S, idx, perm)
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            for q in range(nb):
                i = idx[q]
                h, d1, d2, d3, d4 = _fa_sample(w1, w2, v1, v2, data_x[i], data_y[i])
                s1 += d1
                s2 += d2
                s3 += d3
                s4 += d4
            w1 -= eta * s1
            w2 -= eta * s2
            v1 -= eta * s3
            v2 -= eta * s4
            code = _exit_code(w1, w2, v1, v2, limit)
            if code != 0:
                exit_step[j] = step0 + t + 1
                exit_reason[j] = code
                alive = False
            if (t + 1) % rec_every == 0 or t + 1 == n_steps:
                i_rec = (t + 1) // rec_every if (t + 1) % rec_every == 0 else rec.shape[1] - 1
                rec[j, i_rec, 0] = w1 if alive else np.nan
                rec[j, i_rec, 1] = w2 if alive else np.nan
                rec[j, i_rec, 2] = v1 if alive else np.nan
                rec[j, i_rec, 3] = v2 if alive else np.nan
            if not alive:
                for i_rec in range((t + 1) // rec_every + 1, rec.shape[1]):
                    rec[j, i_rec, :] = np.nan  # includes the final record
                break
        theta[j, 0], theta[j, 1], theta[j, 2], theta[j, 3] = w1, w2, v1, v2


@njit(parallel=True, **_JIT)
def _online_parallel(n, theta, keys_x, keys_xi, shared, lr, sigma, tau, c4, S, n_steps, step0,
                     rec_every, bound, rec, exit_step, exit_reason):
    nblk = (n + _BLOCK - 1) // _BLOCK
    for ib in prange(nblk):
        j0 = ib * _BLOCK
        _online_block(theta, keys_x, keys_xi, shared, lr, sigma, tau, c4, S, n_steps, step0,
                      rec_every, bound, rec, exit_step, exit_reason, j0, min(_BLOCK, n - j0))


@njit(parallel=True, **_JIT)
def _dataset_parallel(n, theta, data_x, data_y, keys_b, shared, lr, S, n_steps, step0,
                      rec_every, bound, rec, exit_step, exit_reason):
    nblk = (n + _BLOCK - 1) // _BLOCK
    for ib in prange(nblk):
        j0 = ib * _BLOCK
        _dataset_block(theta, data_x, data_y, keys_b, shared, lr, S, n_steps, step0, rec_every,
                       bound, rec, exit_step, exit_reason, j0, min(_BLOCK, n - j0))


_PARALLEL_MIN_TRAJECTORIES = 2 * _BLOCK


# ---------------------------------------------------------------------------------------------
# vectorised helpers (NumPy level)
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _student(theta, x):
    """f(x_k; θ_r) for theta (R, 4) and x (K,) → (R, K)."""
    out = np.empty((theta.shape[0], x.shape[0]))
    for r in range(theta.shape[0]):
        w1, w2, v1, v2 = theta[r, 0], theta[r, 1], theta[r, 2], theta[r, 3]
        for k in range(x.shape[0]):
            out[r, k] = v1 * vtanh(w1 * x[k]) + v2 * vtanh(w2 * x[k])
    return out


@njit(**_JIT)
def _weighted_loss_grad(theta, x, y, c):
    """Σ_k c_k ½ h_k² and Σ_k c_k ∂(½ h_k²)/∂θ for theta (R, 4), x, y, c (K,)."""
    R = theta.shape[0]
    loss = np.zeros(R)
    grad = np.zeros((R, 4))
    for r in range(R):
        w1, w2, v1, v2 = theta[r, 0], theta[r, 1], theta[r, 2], theta[r, 3]
        for k in range(x.shape[0]):
            h, d1, d2, d3, d4 = _fa_sample(w1, w2, v1, v2, x[k], y[k])
            loss[r] += c[k] * 0.5 * h * h
            grad[r, 0] += c[k] * d1
            grad[r, 1] += c[k] * d2
            grad[r, 2] += c[k] * d3
            grad[r, 3] += c[k] * d4
    return loss, grad


@njit(**_JIT)
def _weighted_loss(theta, x, y, c):
    """Σ_k c_k ½ h_k² alone for theta (R, 4), x, y, c (K,): the loss records of every run.
    The residual h = f − y is the model rule of :func:`_student`; without the gradient that
    :func:`_weighted_loss_grad` also computes, 72 records take 0.35 ms instead of 0.48 ms
    (the same values to the last bit)."""
    R = theta.shape[0]
    loss = np.zeros(R)
    for r in range(R):
        w1, w2, v1, v2 = theta[r, 0], theta[r, 1], theta[r, 2], theta[r, 3]
        acc = 0.0
        for k in range(x.shape[0]):
            h = v1 * vtanh(w1 * x[k]) + v2 * vtanh(w2 * x[k]) - y[k]
            acc += c[k] * 0.5 * h * h
        loss[r] = acc
    return loss


def teacher(x, name: str = "paper000") -> np.ndarray:
    """Teacher T(x) evaluated elementwise (paper 000 eq. 5, or 2tanh(x) of paper 001)."""
    return _apply_teacher(np.asarray(x, dtype=float), _teacher_id(name))


def student(theta, x) -> np.ndarray:
    """f(x; θ) = v1 tanh(w1 x) + v2 tanh(w2 x) for theta (..., 4) and x (K,) → (..., K)."""
    th = _theta_array(theta)
    x = np.asarray(x, dtype=float).ravel()
    return _student(th.reshape(-1, 4), x).reshape(th.shape[:-1] + (x.size,))


def loss_and_grad(theta, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Batch loss ½ mean (f − y)² and its gradient in θ (the SGD step is θ − η · grad).

    ``theta`` (..., 4); ``x``, ``y`` (K,). Returns loss (...) and grad (..., 4).
    """
    th = _theta_array(theta)
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("x and y must be non-empty and of equal length.")
    c = np.full(x.size, 1.0 / x.size)
    loss, grad = _weighted_loss_grad(th.reshape(-1, 4), x, y, c)
    return loss.reshape(th.shape[:-1]), grad.reshape(th.shape)


def _population(theta, sigma2, teacher_name):
    th = _theta_array(theta)
    sigma2 = _positive(sigma2, "sigma2")
    x, c = half_gauss_rule(sigma2)
    y = _apply_teacher(x, _teacher_id(teacher_name))
    flat = th.reshape(-1, 4)
    loss = np.full(flat.shape[0], np.nan)
    grad = np.full(flat.shape, np.nan)
    ok = np.all(np.isfinite(flat), axis=1)
    loss[ok], grad[ok] = _weighted_loss_grad(np.ascontiguousarray(flat[ok]), x, y, c)
    return loss.reshape(th.shape[:-1]), grad.reshape(th.shape)


def population_loss(theta, sigma2: float, teacher: str = "paper000") -> np.ndarray:
    """Expected loss E_x[½ (f(x; θ) − T(x))²], x ~ N(0, σ²), by deterministic quadrature.

    The label-noise floor τ²/2 is not included. ``theta`` (..., 4) → (...). Rows with
    non-finite entries give NaN.
    """
    th = np.asarray(theta, dtype=float)
    out = np.full(th.shape[:-1], np.nan)
    ok = np.all(np.isfinite(th), axis=-1)
    if np.any(ok):
        x, c = half_gauss_rule(_positive(sigma2, "sigma2"))
        y = _apply_teacher(x, _teacher_id(teacher))
        out[ok] = _weighted_loss(np.ascontiguousarray(th[ok].reshape(-1, 4)), x, y, c)
    return out


def population_grad(theta, sigma2: float, teacher: str = "paper000") -> np.ndarray:
    """Gradient of :func:`population_loss` in θ (the exact-loss GD direction), (..., 4)."""
    return _population(theta, sigma2, teacher)[1]


def reduced_map(w, v, x, lr: float, teacher: str = "paper000") -> tuple[np.ndarray, np.ndarray]:
    """One step of the 2-D random map on M_wv, paper 000 eqs. (31)–(32), in plain NumPy.

        w ← w − η x v (2v tanh(wx) − T(x)) sech²(wx)
        v ← v − η tanh(wx) (2v tanh(wx) − T(x))
    """
    w, v, x = (np.asarray(a, dtype=float) for a in (w, v, x))
    t = np.tanh(w * x)
    h = 2.0 * v * t - teacher_numpy(x, teacher)
    return w - lr * x * v * h * (1.0 - t * t), v - lr * t * h


# ---------------------------------------------------------------------------------------------
# random streams, data and initial conditions
# ---------------------------------------------------------------------------------------------
def _keys(seed, stream, ids):
    return np.array([stream_key(seed, stream, int(j)) for j in ids], dtype=np.uint64)


def make_data(n_data: int, sigma2: float = 1.0, label_noise: float = 0.0,
              teacher: str = "paper000", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed training set of :func:`run_ensemble` with ``n_data`` points.

    x_i = σ z_i and y_i = T(x_i) + τ ξ_i with z, ξ standard normals drawn from ``seed``.
    """
    n = _count(n_data, "n_data", 1)
    sigma = np.sqrt(_positive(sigma2, "sigma2"))
    tau = _positive(label_noise, "label_noise", allow_zero=True)
    seed = _seed(seed)
    from ._vecmath import normals

    x = sigma * normals(stream_key(seed, _S_DATA_X, 0), 0, n)
    xi = normals(stream_key(seed, _S_DATA_XI, 0), 0, n)
    return x, _apply_teacher(x, _teacher_id(teacher)) + tau * xi


def uniform_initial(n_trajectories: int, half_width: float = 1.0, seed: int = 0) -> np.ndarray:
    """Initial conditions uniform in [−a, a]⁴ (paper 000 Fig. 4 uses a = 1): (n, 4) array.

    Drawn from their own stream of ``seed``: the first k of n are the same for every n ≥ k.
    """
    from ._vecmath import uniforms

    n = _count(n_trajectories, "n_trajectories", 1)
    a = _positive(half_width, "half_width")
    u = uniforms(stream_key(_seed(seed), _S_INIT, 0), 0, 4 * n).reshape(n, 4)
    return a * (2.0 * u - 1.0)


def sample_inputs(n_trajectories: int, n_steps: int, sigma2: float, batch_size: int = 1,
                  shared_noise: bool = False, seed: int = 0, start_step: int = 0,
                  stream: str = "x") -> np.ndarray:
    """The inputs x (``stream='x'``) or the standard normals ξ of the label noise
    (``stream='label'``; the label noise is τ ξ) that online :func:`run_ensemble` draws:
    array (n_trajectories, n_steps, batch_size)."""
    if stream not in ("x", "label"):
        raise ValueError("stream must be 'x' or 'label'.")
    label_noise = stream == "label"
    from ._vecmath import normals

    n = _count(n_trajectories, "n_trajectories", 1)
    T = _count(n_steps, "n_steps")
    S = _count(batch_size, "batch_size", 1)
    scale = 1.0 if label_noise else np.sqrt(_positive(sigma2, "sigma2"))
    stream = _S_XI if label_noise else _S_X
    out = np.empty((n, T, S))
    for j in range(n):
        key = stream_key(_seed(seed), stream, 0 if shared_noise else j)
        out[j] = scale * normals(key, start_step * S, T * S).reshape(T, S)
    return out


def batch_indices(n_data: int, batch_size: int, n_steps: int, seed: int = 0,
                  trajectory: int = 0, start_step: int = 0, *, stream: int = _S_BATCH) -> np.ndarray:
    """The mini-batch indices (n_steps, batch_size) that :func:`run_ensemble` with ``n_data``
    uses for one trajectory (trajectory 0 stands for all of them with ``shared_noise``).
    ``stream`` is the random-stream tag (other engines draw their batches the same way)."""
    n = _count(n_data, "n_data", 1)
    S = _count(batch_size, "batch_size", 1)
    if S >= n:
        return np.tile(np.arange(n), (_count(n_steps, "n_steps"), 1))
    key = stream_key(_seed(seed), stream, _count(trajectory, "trajectory"))
    out = np.empty((_count(n_steps, "n_steps"), S), dtype=np.int64)
    perm = np.arange(n)
    for t in range(out.shape[0]):
        _choose(key, (start_step + t) * S, n, S, out[t], perm)
    return out


# ---------------------------------------------------------------------------------------------
# public integrators
# ---------------------------------------------------------------------------------------------
def run_ensemble(theta0, lr, sigma2, n_steps, batch_size=1, label_noise=0.0, teacher="paper000",
                 n_data=None, shared_noise=False, record_every=1, seed=0, *, start_step=0,
                 bound=None, loss=True, trajectory_ids=None):
    """Run an ensemble of SGD trajectories of the Fukumizu–Amari model.

    Parameters
    ----------
    theta0 : array_like, shape (n_trajectories, 4)
        Initial parameters, ordered (w1, w2, v1, v2).
    lr : float
        Learning rate η > 0.
    sigma2 : float
        Input variance σ², x ~ N(0, σ²).
    n_steps : int
        Number of SGD steps.
    batch_size : int
        Mini-batch size S ≥ 1 (S ≥ n_data is full-batch GD).
    label_noise : float
        Label-noise std τ ≥ 0: y = T(x) + ξ, ξ ~ N(0, τ²). Online, ξ is fresh every step; with
        ``n_data`` it is drawn once with the dataset (paper 001).
    teacher : {'paper000', 'paper001'}
        2tanh(x) − tanh(4x) (paper 000) or 2tanh(x) (paper 001).
    n_data : int or None
        None: fresh samples every step (online). An int: a fixed dataset of that many points
        drawn once from ``seed`` (see :func:`make_data`).
    shared_noise : bool
        All trajectories see the same inputs (as for pullback attractors) instead of
        independent ones.
    record_every : int
        Record θ every k-th step; the initial and the final state are always recorded.
    seed : int
        Same seed and inputs give bit-identical results, whatever the ensemble size.
    start_step : int, keyword-only
        Global index of the first step: a run continued from ``start_step = t`` with the final
        state of a run of t steps draws the same noise as one long run and matches it exactly.
    bound : float or None, keyword-only
        Stop a trajectory when some |θ_i| exceeds it (leaving the box). Regardless, a
        trajectory stops when it diverges (NaN/inf or |θ_i| > DIVERGENCE_THRESHOLD).
    loss : bool, keyword-only
        Record the expected loss E_x[½(f − T)²] at recorded steps (by quadrature).
    trajectory_ids : array_like of int, keyword-only
        The noise stream (and ``trajectory`` coordinate) of each row of ``theta0``; default
        0 … n−1. Running a subset with its ids reproduces those trajectories of the full run.

    Returns
    -------
    xr.Dataset
        ``theta`` (trajectory, step, param) with NaN after exit, ``loss`` (trajectory, step),
        ``exit_step`` (trajectory; −1 if it never left or diverged, else the number of steps
        after which it stopped), ``exit_reason`` (0 none, 1 left the box, 2 diverged),
        ``theta_init`` and ``theta_final`` (trajectory, param); with ``n_data`` also
        ``train_loss`` and the dataset ``data_x``, ``data_y``.
    """
    th0 = _theta_array(theta0, "theta0")
    if th0.ndim != 2:
        raise ValueError(f"theta0 must have shape (n_trajectories, 4); got {th0.shape}.")
    n = th0.shape[0]
    if n == 0:
        raise ValueError("theta0 must hold at least one trajectory.")
    lr = _positive(lr, "lr")
    sigma2 = _positive(sigma2, "sigma2")
    T = _count(n_steps, "n_steps")
    S = _count(batch_size, "batch_size", 1)
    tau = _positive(label_noise, "label_noise", allow_zero=True)
    c4 = _teacher_id(teacher)
    teacher = _teacher_name(teacher)  # canonical name ('2tanh' is an alias)
    if n_data is not None:
        n_data = _count(n_data, "n_data", 1)
    k = _count(record_every, "record_every", 1)
    seed = _seed(seed)
    t0 = _count(start_step, "start_step")
    bound = np.inf if bound is None or bound == np.inf else _positive(bound, "bound")
    n_rec = 1 + T // k + (1 if T % k else 0)
    if n * n_rec * 4 > MAX_ELEMENTS:
        raise ValueError(
            f"recording {n} trajectories at {n_rec} steps needs more than 2 GiB; "
            "raise record_every."
        )
    shared = bool(shared_noise)
    ids = np.arange(n) if trajectory_ids is None else np.asarray(trajectory_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise ValueError("trajectory_ids must be n_trajectories non-negative integers.")

    th0 = th0.copy()  # the Dataset keeps it: never alias (or freeze) the caller's array
    theta = np.ascontiguousarray(th0.copy())
    rec = np.full((n, n_rec, 4), np.nan)
    rec[:, 0] = th0
    exit_step = np.full(n, -1, dtype=np.int64)
    exit_reason = np.zeros(n, dtype=np.int8)
    parallel = n >= _PARALLEL_MIN_TRAJECTORIES
    key_ids = ids[:1] * 0 if shared else ids
    if n_data is None:
        args = (theta, _keys(seed, _S_X, key_ids), _keys(seed, _S_XI, key_ids), shared, lr,
                np.sqrt(sigma2), tau, c4, S, T, t0, k, bound, rec, exit_step, exit_reason)
        if parallel:
            with PARALLEL_LOCK:
                _online_parallel(n, *args)
        else:
            _online_block(*args, 0, n)
        data_x = data_y = None
    else:
        data_x, data_y = make_data(n_data, sigma2, tau, teacher, seed)
        args = (theta, data_x, data_y, _keys(seed, _S_BATCH, key_ids), shared, lr, S, T, t0, k,
                bound, rec, exit_step, exit_reason)
        if parallel:
            with PARALLEL_LOCK:
                _dataset_parallel(n, *args)
        else:
            _dataset_block(*args, 0, n)

    data_vars = {
        "theta": (("trajectory", "step", "param"), rec),
        "theta_init": (("trajectory", "param"), th0),
        "theta_final": (("trajectory", "param"), theta),
        "exit_step": (("trajectory",), exit_step),
        "exit_reason": (("trajectory",), exit_reason),
    }
    if loss:
        data_vars["loss"] = (("trajectory", "step"), population_loss(rec, sigma2, teacher))
    coords = {
        "trajectory": ids,
        "step": t0 + np.minimum(k * np.arange(n_rec), T),
        "param": np.array(schema.PARAM_NAMES),
    }
    if data_x is not None:
        flat = rec.reshape(-1, 4)
        ok = np.all(np.isfinite(flat), axis=1)
        tl = np.full(flat.shape[0], np.nan)
        tl[ok] = 0.5 * np.mean((_student(np.ascontiguousarray(flat[ok]), data_x) - data_y) ** 2,
                               axis=1)
        data_vars["train_loss"] = (("trajectory", "step"), tl.reshape(n, n_rec))
        data_vars["data_x"] = (("sample",), data_x)
        data_vars["data_y"] = (("sample",), data_y)
        coords["sample"] = np.arange(n_data)
    inputs = dict(lr=lr, sigma2=sigma2, n_steps=T, batch_size=S, label_noise=tau,
                  teacher=teacher, n_data=n_data, shared_noise=shared, record_every=k,
                  seed=seed, start_step=t0, bound=float(bound), model="fukumizu_amari")
    return schema.dataset(data_vars, coords, inputs, kind="fa_ensemble")


def run_reduced(wv0, lr, sigma2, n_steps, batch_size=1, label_noise=0.0, teacher="paper000",
                shared_noise=False, record_every=1, seed=0, *, start_step=0, bound=None):
    """The 2-D random map on M_wv (paper 000 eqs. 31–32) from ``wv0`` (n_trajectories, 2).

    On M_wv = {w1 = w2, v1 = v2} both neurons compute bit-identical updates, so the 4-D
    integrator started at (w, w, v, v) stays on M_wv exactly and *is* the 2-D map (checked
    against :func:`reduced_map` in the tests). Returns ``theta`` over param = (w, v).
    """
    wv = np.asarray(wv0, dtype=float)
    if wv.ndim != 2 or wv.shape[1] != 2:
        raise ValueError(f"wv0 must have shape (n_trajectories, 2) ordered (w, v); got {wv.shape}.")
    th0 = wv[:, [0, 0, 1, 1]]
    ds = run_ensemble(th0, lr, sigma2, n_steps, batch_size, label_noise, teacher, None,
                      shared_noise, record_every, seed, start_step=start_step, bound=bound)
    out = ds.isel(param=[0, 2]).assign_coords(param=("param", np.array(["w", "v"]), ds.param.attrs))
    out.attrs["kind"] = "fa_reduced"
    return out

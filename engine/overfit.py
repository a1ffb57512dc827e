"""Overfitting under label noise τ: the saddle–saddle–attractor path (paper 001 §4, Fig. 3;
MATH.md §2).

Gradient descent (full batch; mini-batch as an option) on a fixed dataset (x_i, y_i), i = 1…n,
y_i = T(x_i) + ξ_i with ξ_i ~ N(0, τ²), for the student f(x; θ) = v1 tanh(w1 x) + v2 tanh(w2 x),
θ = (w1, w2, v1, v2) — paper 001's 4-D quenched map with training error

    L(θ) = s · (1/n) Σ (f(x_i; θ) − y_i)²,    s = ``loss_scale`` (½ in MATH.md; the code
                                               released with paper 001 uses s = 1),

and generalisation error R(θ) = ∫ (f(x; θ) − T(x))² ρ(x) dx, ρ = N(0, 1), by deterministic
quadrature (:func:`engine.quadrature.half_gauss_rule`, checked against QUADPACK in the tests).

Besides the run (:func:`train`) the module locates the overfitting point precisely
(:func:`refine_minimum`: Levenberg–Marquardt from the GD end point, then Newton), gives the
Hessian of L in closed form (:func:`hessian`) and its eigenvalues along the path, and measures
distances to the singular region Θ̄_{0→2}(0) ∪ Θ̄_{1→2}(O_1) and to the optimal region (the
embedding of T in Θ_2), up to the symmetries (swap the neurons; flip the sign of a (w_i, v_i)
pair) — which is how the plateau / near-optimal / overfitting stretches are annotated.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from numba import njit
from scipy import optimize

from . import schema
from ._kernels import _JIT, _choose, _count, _positive, _seed, _teacher_id, _theta_array
from ._vecmath import normals, stream_key, vtanh
from .fa import DIVERGENCE_THRESHOLD, OPTIMAL_POINTS, batch_indices, population_loss
from .fa import teacher as fa_teacher

__all__ = ["train", "make_dataset", "generalization_error", "training_error", "hessian",
           "refine_minimum", "one_neuron_optimum", "canonical", "distance_to_optimal",
           "distance_to_singular", "annotate", "record_steps", "RELEASED_THETA0"]

#: released initial condition of paper 001's code, order (w1, w2, v1, v2)
RELEASED_THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])
RELEASED_THETA0.flags.writeable = False

_S_OF_X, _S_OF_XI, _S_OF_BATCH = 50, 51, 52  # random-stream tags (fa 0–5, escape 31, linreg 40s)
# 'reassoc' lets LLVM vectorise the four gradient sums over the data (the order of the additions
# then depends on the vector width: same machine, same bits); NaN/inf semantics are kept —
# no 'nnan'/'ninf' — so divergence is still seen.
_FAST = {"reassoc", "contract", "nsz"}
MAX_STEPS = 50_000_000
MAX_DATA = 100_000
MAX_RECORDS = 20_000


# ---------------------------------------------------------------------------------------------
# data and errors
# ---------------------------------------------------------------------------------------------
def make_dataset(n_data: int = 100, label_noise: float = 0.2, teacher: str = "2tanh",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x_i ~ N(0, 1), y_i = T(x_i) + τ ξ_i (paper 001 §4.1). The ξ_i do not depend on τ, so
    τ = 0 and τ = 0.2 from one seed share x and the direction of the noise (Fig. 3 a/b)."""
    n = _count(n_data, "n_data", 1)
    if n > MAX_DATA:
        raise ValueError(f"n_data must be ≤ {MAX_DATA:,}; got {n:,}.")
    tau = _positive(label_noise, "label_noise", allow_zero=True)
    if tau > 100:
        raise ValueError(f"label_noise must be ≤ 100; got {tau}.")
    seed = _seed(seed)
    x = normals(stream_key(seed, _S_OF_X, 0), 0, n)
    xi = normals(stream_key(seed, _S_OF_XI, 0), 0, n)
    return x, fa_teacher(x, teacher) + tau * xi


def teacher_values(x, teacher: str = "2tanh") -> np.ndarray:
    """T(x) elementwise (exact labels: the τ = 0 twin of a dataset)."""
    return fa_teacher(x, teacher)


def generalization_error(theta, teacher: str = "2tanh") -> np.ndarray:
    """R(θ) = E_x[(f(x; θ) − T(x))²], x ~ N(0, 1) (MATH.md §2: no ½), θ (..., 4) → (...)."""
    return 2.0 * population_loss(theta, 1.0, teacher)


def _data(x, y):
    """Validated private copies of the data: the engine never writes into, nor keeps a view
    of, its caller's arrays — which may be read-only (``app.state.released_dataset``), and a
    read-only array would also give the kernels a type they cannot write mini-batches from."""
    x = np.array(x, dtype=float, copy=True).ravel()
    y = np.array(y, dtype=float, copy=True).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("x and y must be non-empty and of equal length.")
    if x.size > MAX_DATA:
        raise ValueError(f"at most {MAX_DATA:,} data points.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite.")
    return x, y


def _residuals(theta, x, y):
    """θ (..., 4) flattened to (R, 4), tanh(w_i x) and the residuals h = f − y, all (R, n)."""
    x, y = _data(x, y)
    flat = np.asarray(theta, dtype=float).reshape(-1, 4)
    t1, t2 = np.tanh(flat[:, :1] * x), np.tanh(flat[:, 1:2] * x)
    return x, flat, t1, t2, flat[:, 2:3] * t1 + flat[:, 3:4] * t2 - y


def training_error(theta, x, y, loss_scale: float = 0.5) -> np.ndarray:
    """L(θ) = s · mean (f(x_i; θ) − y_i)², θ (..., 4) → (...)."""
    *_, h = _residuals(theta, x, y)
    return (loss_scale * np.mean(h * h, axis=1)).reshape(np.shape(theta)[:-1])


def gradient(theta, x, y, loss_scale: float = 0.5) -> np.ndarray:
    """∇L(θ) in closed form, θ (..., 4) → (..., 4)."""
    th = np.asarray(theta, dtype=float)
    x, flat, t1, t2, h = _residuals(th, x, y)
    c = 2.0 * loss_scale / x.size
    g = np.stack([flat[:, 2] * np.sum(x * h * (1 - t1 * t1), axis=1),
                  flat[:, 3] * np.sum(x * h * (1 - t2 * t2), axis=1),
                  np.sum(t1 * h, axis=1), np.sum(t2 * h, axis=1)], axis=-1)
    return (c * g).reshape(th.shape)


def hessian(theta, x, y, loss_scale: float = 0.5) -> np.ndarray:
    """Hessian of L in closed form: 2s · mean(∇f ∇fᵀ + (f − y) ∇²f); θ (..., 4) → (..., 4, 4)."""
    th = np.asarray(theta, dtype=float)
    x, flat, t1, t2, h = _residuals(th, x, y)
    v1, v2 = flat[:, 2:3], flat[:, 3:4]
    s1, s2 = 1 - t1 * t1, 1 - t2 * t2
    grad_f = np.stack([v1 * x * s1, v2 * x * s2, t1, t2], axis=1)  # (R, 4, n)
    H = np.einsum("rin,rjn->rij", grad_f, grad_f)
    H[:, 0, 0] += np.sum(h * v1 * x * x * (-2 * t1 * s1), axis=1)
    H[:, 1, 1] += np.sum(h * v2 * x * x * (-2 * t2 * s2), axis=1)
    c1, c2 = np.sum(h * x * s1, axis=1), np.sum(h * x * s2, axis=1)
    H[:, 0, 2] += c1
    H[:, 2, 0] += c1
    H[:, 1, 3] += c2
    H[:, 3, 1] += c2
    return (2.0 * loss_scale / x.size * H).reshape(th.shape[:-1] + (4, 4))


def positive_count(eigenvalues, rel_tol: float = 1e-9) -> np.ndarray:
    """Number of eigenvalues above ``rel_tol`` × the largest |eigenvalue| (…, 4) → (…).

    The tolerance only absorbs rounding: directions that are exactly flat (e.g. along the
    optimal region for τ = 0) count as zero; the small but genuine curvatures that label noise
    gives them (~10⁻⁴ λ_max for n = 100) count with their sign."""
    ev = np.asarray(eigenvalues, dtype=float)
    scale = np.max(np.abs(ev), axis=-1, keepdims=True)
    return np.sum(ev > rel_tol * scale, axis=-1)


# ---------------------------------------------------------------------------------------------
# the GD kernel
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _tanh_pair(xb, w1, w2, t1, t2):
    """t1 = tanh(w1 x), t2 = tanh(w2 x): an elementwise loop LLVM vectorises. Kept out of the
    'reassoc' functions: reassociation would undo the rounding trick inside vexpm1."""
    for i in range(xb.size):
        t1[i] = vtanh(w1 * xb[i])
        t2[i] = vtanh(w2 * xb[i])


@njit(fastmath=_FAST, **_JIT)
def _sums(xb, yb, t1, t2, v1, v2):
    """The four gradient sums Σ x h (1 − t1²), Σ x h (1 − t2²), Σ t1 h, Σ t2 h (vectorised)."""
    g1 = 0.0
    g2 = 0.0
    g3 = 0.0
    g4 = 0.0
    for i in range(xb.size):
        h = v1 * t1[i] + v2 * t2[i] - yb[i]
        g1 += xb[i] * h * (1.0 - t1[i] * t1[i])
        g2 += xb[i] * h * (1.0 - t2[i] * t2[i])
        g3 += t1[i] * h
        g4 += t2[i] * h
    return g1, g2, g3, g4


@njit(**_JIT)
def _gd(x, y, theta0, lr, loss_scale, n_steps, step0, B, key, rec_steps, rec_theta):
    """GD (B ≥ n) or mini-batch SGD from θ at step ``step0`` to ``step0 + n_steps``; θ_t into
    rec_theta[k] for every t = rec_steps[k] in range. Returns (θ, exit step or −1).
    Cancellation happens between calls (:func:`train` runs in chunks)."""
    n = x.size
    full = B >= n
    nb = n if full else B
    idx = np.arange(nb)
    perm = np.arange(n)
    xb, yb = (x, y) if full else (np.empty(nb), np.empty(nb))
    t1 = np.empty(nb)
    t2 = np.empty(nb)
    w1, w2, v1, v2 = theta0[0], theta0[1], theta0[2], theta0[3]
    c = lr * 2.0 * loss_scale / nb
    k = 0
    while k < rec_steps.size and rec_steps[k] < step0:
        k += 1
    for t in range(step0, step0 + n_steps):
        if k < rec_steps.size and rec_steps[k] == t:
            rec_theta[k, 0], rec_theta[k, 1], rec_theta[k, 2], rec_theta[k, 3] = w1, w2, v1, v2
            k += 1
        if not full:
            _choose(key, t * B, n, B, idx, perm)
            for q in range(nb):
                xb[q] = x[idx[q]]
                yb[q] = y[idx[q]]
        _tanh_pair(xb, w1, w2, t1, t2)
        g1, g2, g3, g4 = _sums(xb, yb, t1, t2, v1, v2)
        w1, w2, v1, v2 = w1 - c * v1 * g1, w2 - c * v2 * g2, v1 - c * g3, v2 - c * g4
        if not (abs(w1) <= DIVERGENCE_THRESHOLD and abs(w2) <= DIVERGENCE_THRESHOLD
                and abs(v1) <= DIVERGENCE_THRESHOLD and abs(v2) <= DIVERGENCE_THRESHOLD):
            return np.array([w1, w2, v1, v2]), t + 1
    t = step0 + n_steps
    if k < rec_steps.size and rec_steps[k] == t:
        rec_theta[k, 0], rec_theta[k, 1], rec_theta[k, 2], rec_theta[k, 3] = w1, w2, v1, v2
    return np.array([w1, w2, v1, v2]), -1


def run_batches(n_data: int, batch_size: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """The mini-batch indices (n_steps, batch_size) :func:`train` uses (for independent checks)."""
    return batch_indices(n_data, batch_size, n_steps, seed=seed, stream=_S_OF_BATCH)


def record_steps(n_steps: int, record="log", n_log: int = 400) -> np.ndarray:
    """Steps at which θ is recorded: 'log' (0 and ~``n_log`` log-spaced steps), an int k
    (every k steps) or an explicit list; always including 0 and ``n_steps``."""
    T = _count(n_steps, "n_steps")
    if isinstance(record, str):
        if record != "log":
            raise ValueError("record must be 'log', a whole number k, or a list of steps.")
        steps = np.round(np.geomspace(1, max(T, 1), n_log)).astype(np.int64) if T else []
    elif np.ndim(record) == 0:
        k = _count(record, "record", 1)
        steps = np.arange(0, T + 1, k, dtype=np.int64)
    else:
        steps = np.asarray(record, dtype=float)
        if not (np.all(np.isfinite(steps)) and np.all(steps == np.round(steps))
                and np.all((steps >= 0) & (steps <= T))):
            raise ValueError(f"recorded steps must be whole numbers in [0, {T}].")
        steps = steps.astype(np.int64)
    out = np.unique(np.concatenate([[0, T], np.asarray(steps, dtype=np.int64)]))
    if out.size > MAX_RECORDS:
        raise ValueError(f"at most {MAX_RECORDS:,} recorded steps; got {out.size:,}.")
    return out


def train(x, y, theta0, lr, n_steps, teacher: str = "2tanh", loss_scale: float = 0.5,
          record="log", *, batch_size: int | None = None, seed: int = 0, hessian_path: bool = True,
          chunk_steps: int | None = None, progress=None, cancel=None,
          on_partial=None) -> xr.Dataset:
    """Gradient descent on the dataset (x, y) from θ0 (paper 001 §4's 4-D map).

    Returns an ``xr.Dataset`` over ``step`` (recorded steps, the last one ``n_steps``) with
    ``train_error`` L (with ``loss_scale``), ``generalization_error`` R (MATH.md §2),
    ``theta`` (step, param) and — with ``hessian_path`` — ``hessian_eigenvalues`` (step, eig)
    of L and ``n_positive`` (how many exceed 10⁻⁹ × the largest |eigenvalue|).
    ``batch_size``: None = full batch; B < n = mini-batch SGD, B distinct points per step from
    ``seed``. A run that diverges (|θ_i| > 10⁸, inf or NaN) stops: ``attrs['diverged_at']`` is
    the step (−1 if never) and later records are NaN. ``progress(done, total)`` is called
    between chunks of ``chunk_steps``, ``on_partial(ds)`` with the records so far (L and R,
    no Hessian) for streaming views; ``cancel()`` true stops with ``RuntimeError``.
    """
    x, y = _data(x, y)
    th0 = _theta_array(theta0, "theta0").ravel()
    if th0.size != 4:
        raise ValueError("theta0 must be one parameter vector (w1, w2, v1, v2).")
    lr = _positive(lr, "lr")
    s = _positive(loss_scale, "loss_scale")
    T = _count(n_steps, "n_steps")
    if T > MAX_STEPS:
        raise ValueError(f"n_steps must be ≤ {MAX_STEPS:,}; got {T:,}.")
    _teacher_id(teacher)  # an unknown teacher is rejected here, before any work
    B = x.size if batch_size is None else _count(batch_size, "batch_size", 1)
    seed = _seed(seed)
    steps = record_steps(T, record)
    rec = np.full((steps.size, 4), np.nan)
    key = stream_key(seed, _S_OF_BATCH, 0)
    chunk = T if chunk_steps is None else max(_count(chunk_steps, "chunk_steps", 1), 1)
    theta, done, exit_step = th0.copy(), 0, -1
    while done < T or T == 0:
        if cancel is not None and cancel():
            raise RuntimeError("cancelled")
        m = min(chunk, T - done)
        theta, exit_step = _gd(x, y, theta, lr, s, m, done, B, key, steps, rec)
        done += m
        if progress is not None:
            progress(done, T)
        if exit_step != -1 or T == 0:
            break
        if on_partial is not None and done < T:
            upto = steps <= done
            on_partial(_assemble(steps[upto], rec[upto], x, y, s, teacher, False,
                                 dict(teacher=teacher, n_steps=done, partial=1)))
    diverged_at = int(exit_step) if exit_step >= 0 else -1
    if diverged_at >= 0:
        rec[steps >= diverged_at] = np.nan
    return _assemble(steps, rec, x, y, s, teacher, hessian_path, dict(
        lr=lr, n_steps=T, teacher=teacher, loss_scale=s, n_data=x.size,
        batch_size=B if B < x.size else "full", seed=seed, theta0=th0.tolist(),
        diverged_at=diverged_at, model="fukumizu_amari_dataset_paper001"))


def _assemble(steps, rec, x, y, s, teacher, hessian_path, inputs) -> xr.Dataset:
    """The Dataset of recorded θ with L, R and (optionally) the Hessian spectrum."""
    ok = np.all(np.isfinite(rec), axis=1)
    L = np.full(steps.size, np.nan)
    L[ok] = training_error(rec[ok], x, y, s)
    R = np.full(steps.size, np.nan)
    R[ok] = generalization_error(rec[ok], teacher)
    data = {"train_error": (("step",), L), "generalization_error": (("step",), R),
            "theta": (("step", "param"), rec)}
    coords = {"step": steps, "param": list(schema.PARAM_NAMES)}
    if hessian_path:
        ev = np.full((steps.size, 4), np.nan)
        if ok.any():
            ev[ok] = np.linalg.eigvalsh(hessian(rec[ok], x, y, s))
        data["hessian_eigenvalues"] = (("step", "eig"), ev)
        data["n_positive"] = (("step",), np.where(ok, positive_count(np.nan_to_num(ev)), -1))
        coords["eig"] = np.arange(4)
    return schema.dataset(data, coords, inputs, kind="overfit_train")


# ---------------------------------------------------------------------------------------------
# special points and regions
# ---------------------------------------------------------------------------------------------
def refine_minimum(x, y, theta, loss_scale: float = 0.5, newton_steps: int = 3) -> dict:
    """The critical point of L near ``theta`` (e.g. the GD end point): Levenberg–Marquardt on
    the residuals f(x_i) − y_i, then Newton steps with the exact Hessian. Returns ``theta``,
    ``grad_norm``, ``eigenvalues`` (of the Hessian of L) and ``train_error``."""
    x, y = _data(x, y)
    th = _theta_array(theta).ravel()

    def resid(p):
        return p[2] * np.tanh(p[0] * x) + p[3] * np.tanh(p[1] * x) - y

    def jac(p):
        t1, t2 = np.tanh(p[0] * x), np.tanh(p[1] * x)
        return np.stack([p[2] * x * (1 - t1 * t1), p[3] * x * (1 - t2 * t2), t1, t2], axis=1)

    sol = optimize.least_squares(resid, th, jac=jac, method="lm", xtol=1e-15, ftol=1e-15,
                                 gtol=1e-15, max_nfev=10_000)
    p = sol.x
    for _ in range(newton_steps):
        g = gradient(p, x, y, loss_scale)
        try:
            p = p - np.linalg.solve(hessian(p, x, y, loss_scale), g)
        except np.linalg.LinAlgError:
            break
    ev = np.linalg.eigvalsh(hessian(p, x, y, loss_scale))
    return dict(theta=p, grad_norm=float(np.linalg.norm(gradient(p, x, y, loss_scale))),
                eigenvalues=ev, train_error=float(training_error(p, x, y, loss_scale)))


def one_neuron_optimum(x, y) -> np.ndarray:
    """(w°, v°) minimising mean (v tanh(w x) − y)², w° ≥ 0: the point O_1 of paper 001 §4."""
    x, y = _data(x, y)
    best = None
    for w0 in (0.3, 1.0, 3.0):
        t = np.tanh(w0 * x)
        v0 = float(t @ y / (t @ t))
        sol = optimize.least_squares(lambda p: p[1] * np.tanh(p[0] * x) - y, [w0, v0],
                                     method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
        if best is None or sol.cost < best.cost:
            best = sol
    w, v = best.x
    return np.array([abs(w), v * np.sign(w) if w != 0 else v])


_SWAP = np.array([1, 0, 3, 2])


def _images(theta) -> np.ndarray:
    """The 8 images of θ (..., 4) under the symmetry group: (..., 8, 4)."""
    th = np.asarray(theta, dtype=float)
    out = []
    for swap in (False, True):
        t = th[..., _SWAP] if swap else th
        for s1 in (1, -1):
            for s2 in (1, -1):
                out.append(t * np.array([s1, s2, s1, s2]))
    return np.stack(out, axis=-2)


def canonical(theta) -> np.ndarray:
    """Representative of θ's symmetry class: w1, w2 ≥ 0 (flipping (w_i, v_i)), then w1 ≤ w2
    (swapping the neurons; ties broken by v). Two points are the same network iff their
    canonical forms agree."""
    th = np.array(theta, dtype=float)
    neg1, neg2 = th[..., 0] < 0, th[..., 1] < 0
    th[..., [0, 2]] *= np.where(neg1, -1.0, 1.0)[..., None]
    th[..., [1, 3]] *= np.where(neg2, -1.0, 1.0)[..., None]
    swap = (th[..., 0] > th[..., 1]) | ((th[..., 0] == th[..., 1]) & (th[..., 2] > th[..., 3]))
    th[swap] = th[swap][..., _SWAP]
    return th


def _affine_distance(theta, pieces) -> np.ndarray:
    """min over pieces (A, b) of the distance from θ (..., 4) to {A θ = b}."""
    th = np.asarray(theta, dtype=float)
    best = np.full(th.shape[:-1], np.inf)
    for A, b in pieces:
        A = np.atleast_2d(np.asarray(A, dtype=float))
        r = th @ A.T - np.asarray(b, dtype=float)
        G = np.linalg.inv(A @ A.T)
        best = np.minimum(best, np.sqrt(np.einsum("...i,ij,...j->...", r, G, r)))
    return best


def _embedding_pieces(w: float, v: float):
    """Affine pieces of {θ : f(·; θ) = v tanh(w ·)} in Θ_2 (one orientation of the neurons)."""
    e = np.eye(4)
    return [
        (np.array([e[0], e[1], e[2] + e[3]]), [w, w, v]),  # w1 = w2 = w, v1 + v2 = v
        (np.array([e[0], e[2], e[3]]), [w, v, 0.0]),  # neuron 2 silent: v2 = 0
        (np.array([e[0], e[2], e[1]]), [w, v, 0.0]),  # neuron 2 dead: w2 = 0
    ]


_ZERO_PIECES = [
    (np.array([[0, 0, 1, 0], [0, 0, 0, 1]]), [0, 0]),  # v1 = v2 = 0
    (np.array([[1, 0, 0, 0], [0, 1, 0, 0]]), [0, 0]),  # w1 = w2 = 0
    (np.array([[0, 0, 1, 0], [0, 1, 0, 0]]), [0, 0]),  # v1 = 0, w2 = 0
    (np.array([[1, -1, 0, 0], [0, 0, 1, 1]]), [0, 0]),  # w1 = w2, v1 = −v2
]


def distance_to_singular(theta, w1_opt: np.ndarray) -> np.ndarray:
    """Distance from θ (..., 4) to Θ̄_{0→2}(0) ∪ Θ̄_{1→2}(O_1), O_1 = (w°, v°) = ``w1_opt``,
    minimised over the symmetry images of θ."""
    imgs = _images(theta)
    pieces = _ZERO_PIECES + _embedding_pieces(float(w1_opt[0]), float(w1_opt[1]))
    return np.min(_affine_distance(imgs, pieces), axis=-1)


def distance_to_optimal(theta, teacher: str = "2tanh") -> np.ndarray:
    """Distance from θ (..., 4) to the optimal region {R = 0}: the embedding of T = 2 tanh x in
    Θ_2 (lines and planes), or the 8 isolated minima of paper 000's two-neuron teacher."""
    imgs = _images(theta)
    if _teacher_id(teacher) == 0.0:
        return np.min(_affine_distance(imgs, _embedding_pieces(1.0, 2.0)), axis=-1)
    pts = np.asarray(OPTIMAL_POINTS, dtype=float)
    d = np.linalg.norm(np.asarray(theta, dtype=float)[..., None, :] - pts, axis=-1)
    return np.min(d, axis=-1)


#: the stage codes of :func:`annotate`
STAGES = ("transit", "plateau", "near-optimal", "overfitting")


def annotate(ds: xr.Dataset, x, y, radius: float = 0.25) -> xr.Dataset:
    """Label every recorded step of a :func:`train` run (by priority):

    * 'overfitting' — within ``radius`` of the run's end point (up to symmetries), after the
      minimum of R, when R has risen since (R_end > 1.2 R_min) and the end point is not itself
      within ``radius`` of the optimal region: the approach to the overfitting attractor;
    * 'near-optimal' — within ``radius`` of the optimal region;
    * 'plateau' — within ``radius`` of the singular region Θ̄_{0→2}(0) ∪ Θ̄_{1→2}(O_1);
    * 'transit' otherwise.

    Adds ``stage`` (codes into :data:`STAGES`), the two distances and
    ``attrs['one_neuron_optimum']`` (O₁ = (w°, v°)).
    """
    th = ds.theta.values
    teacher = ds.attrs["teacher"]
    ok = np.all(np.isfinite(th), axis=1)
    d_opt = np.full(th.shape[0], np.nan)
    d_sing = np.full(th.shape[0], np.nan)
    d_opt[ok] = distance_to_optimal(th[ok], teacher)
    o1 = one_neuron_optimum(x, y)
    d_sing[ok] = distance_to_singular(th[ok], o1)
    stage = np.zeros(th.shape[0], dtype=np.int8)
    stage[ok & (d_sing < radius)] = 1
    stage[ok & (d_opt < radius)] = 2
    valid = np.flatnonzero(ok)
    if valid.size:
        R = ds.generalization_error.values
        k_min, k_end = valid[np.argmin(R[valid])], valid[-1]
        if d_opt[k_end] >= radius and R[k_end] > 1.2 * R[k_min]:
            near_end = np.linalg.norm(canonical(th) - canonical(th[k_end]), axis=-1) < radius
            after = np.arange(th.shape[0]) > k_min
            stage[ok & near_end & after] = 3
    out = ds.copy()
    for name, arr in (("stage", stage), ("distance_optimal", d_opt), ("distance_singular", d_sing)):
        out[name] = (("step",), arr, schema.attrs(name))
    out.attrs["one_neuron_optimum"] = o1.tolist()
    return out

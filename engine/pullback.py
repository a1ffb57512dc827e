"""Finite-time pullback attractors of the online SGD flow (paper 000 §3, Fig. 4, Appendix C).

Fix ONE noise realisation {x_t}; start many initial conditions uniformly in [−1, 1]⁴ at time
−τ_pb and evolve them all with the same inputs up to time 0. The cloud at time 0 approximates
the random (pullback) attractor as τ_pb grows. With the engine's counter-based noise the input
at time −k is input number ``horizon − k`` of the shared stream, so clouds for different τ_pb
see the same realisation (nested pullback), exactly as in the paper.

A path is *trapped* when its distance to M_wv is below a threshold; paper 000 reports about
20 % trapped at σ² = 1, τ_pb = 10⁵. The distance is √(r² + s²) with r = (w1 − w2)/2 and
s = (v1 − v2)/2 (eq. 19), taken to the NEAREST copy of M_wv: f is unchanged by swapping the
neurons and by flipping the sign of one neuron's pair (w_i, v_i), so M_wv = {w1 = w2, v1 = v2}
has the mirror {w1 = −w2, v1 = −v2}, and a trapped share counts every copy (MATH.md §1,
"Symmetries and the degenerate families").
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import xarray as xr

from . import schema
from ._kernels import _count, _positive, _seed
from .fa import run_ensemble, uniform_initial

__all__ = ["pullback_cloud", "pullback_clouds", "distance_to_mwv", "nearest_mwv_point",
           "Cancelled"]

#: the time origin: inputs x_t for t = −horizon … −1 are shared stream numbers 0 … horizon − 1
HORIZON = 100_000


class Cancelled(Exception):
    """Raised when a long computation is cancelled through its ``cancel`` callback."""


def _mwv_copies(theta):
    """Nearest points (w, v) and distances √(r² + s²) for both copies of M_wv."""
    theta = np.asarray(theta, dtype=float)
    if theta.shape[-1:] != (4,):
        raise ValueError("theta must have a last axis of length 4: (w1, w2, v1, v2).")
    w1, w2, v1, v2 = (theta[..., i] for i in range(4))
    plus, minus = 0.5 * (w1 + w2), 0.5 * (w1 - w2)
    vplus, vminus = 0.5 * (v1 + v2), 0.5 * (v1 - v2)
    # M_wv = {w1 = w2, v1 = v2}: point (w, w, v, v) with (w, v) = the means, distance from the
    # half-differences; the mirror {w1 = −w2, v1 = −v2}: point (w, −w, v, −v), roles swapped
    return (plus, vplus, np.hypot(minus, vminus)), (minus, vminus, np.hypot(plus, vplus))


def distance_to_mwv(theta: np.ndarray) -> np.ndarray:
    """Distance of theta to the nearest copy of M_wv (paper 000 eq. 19; MATH.md §1).

    min(√(r² + s²), √(r′² + s′²)) with r = (w1 − w2)/2, s = (v1 − v2)/2 (the distance to
    M_wv = {w1 = w2, v1 = v2}, eq. 19) and r′ = (w1 + w2)/2, s′ = (v1 + v2)/2 (the distance to
    its mirror {w1 = −w2, v1 = −v2}). f, and SGD, are unchanged by swapping the neurons and by
    flipping the sign of one neuron's pair (w_i, v_i), so MATH.md decides that "distance to
    M_wv" means the distance to the nearest copy; the result is invariant under that group of
    order 8.

    Parameters
    ----------
    theta : array_like, shape (..., 4)
        Points (w1, w2, v1, v2).

    Returns
    -------
    numpy.ndarray of float64, shape (...)
    """
    (_, _, d), (_, _, d_mirror) = _mwv_copies(theta)
    return np.minimum(d, d_mirror)


def nearest_mwv_point(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest point of M_wv to theta, as (w, v) on the 2-D map of eqs. 31–32 of paper 000.

    Of the two copies of M_wv (MATH.md §1: {w1 = w2, v1 = v2} and its mirror
    {w1 = −w2, v1 = −v2}) the nearer one is taken, as in :func:`distance_to_mwv`. Its nearest
    point is (w, w, v, v) with (w, v) = ((w1 + w2)/2, (v1 + v2)/2) on M_wv, or (w, −w, v, −v)
    with (w, v) = ((w1 − w2)/2, (v1 − v2)/2) on the mirror; (w, v) is then folded by the
    symmetry (w, v) → (−w, −v) (both neurons' signs flipped) to w ≥ 0. On a tie the copy
    M_wv = {w1 = w2, v1 = v2} is used.

    Parameters
    ----------
    theta : array_like, shape (..., 4)
        Points (w1, w2, v1, v2).

    Returns
    -------
    w, v, distance : numpy.ndarray of float64, each of shape (...)
        The folded coordinates on M_wv and :func:`distance_to_mwv` (paper 000 eq. 19).
    """
    (w, v, d), (w_m, v_m, d_m) = _mwv_copies(theta)
    mirror = d_m < d
    w, v, d = np.where(mirror, w_m, w), np.where(mirror, v_m, v), np.where(mirror, d_m, d)
    flip = np.where(w < 0, -1.0, 1.0)
    return w * flip, v * flip, d


def pullback_cloud(sigma2: float, pullback_time: int, lr: float = 0.1, n_points: int = 100_000,
                   distance: float = 0.1, teacher: str = "paper000", seed: int = 0,
                   chunk_steps: int = 2_000,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, *, first: int = 0) -> xr.Dataset:
    """The pullback cloud at time 0 of paths started at −``pullback_time``.

    Runs in chunks of ``chunk_steps``: ``progress(done, total)`` is called after each, and
    the run stops with :class:`Cancelled` as soon as ``cancel()`` returns true.

    ``first`` computes paths ``first … first + n_points − 1`` of the cloud only: every path
    sees the same shared noise and its own initial condition, so clouds computed in pieces and
    joined by :func:`combine_clouds` equal the cloud computed at once, bit for bit.

    Returns an ``xr.Dataset`` with ``cloud`` (trajectory, param), ``distance`` (trajectory)
    and the scalar ``trapped_fraction`` (distance < ``distance``).
    """
    tau = _count(pullback_time, "pullback_time", 1)
    if tau > HORIZON:
        raise ValueError(f"pullback_time must be at most {HORIZON:,}.")
    n = _count(n_points, "n_points", 1)
    d = _positive(distance, "distance")
    seed = _seed(seed)
    first = _count(first, "first", 0)
    theta = uniform_initial(first + n, 1.0, seed)[first:]
    exit_step = np.full(n, -1)
    done = 0
    chunk = _count(chunk_steps, "chunk_steps", 1)
    while done < tau:
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled after {done:,} of {tau:,} steps")
        k = min(chunk, tau - done)
        ds = run_ensemble(theta, lr, sigma2, k, teacher=teacher, shared_noise=True,
                          record_every=k, seed=seed, start_step=HORIZON - tau + done, loss=False)
        theta = ds.theta_final.values
        exit_step = np.where(exit_step < 0, ds.exit_step.values, exit_step)
        done += k
        if progress is not None:
            progress(done, tau)
    dist = distance_to_mwv(theta)
    data = {
        "cloud": (("trajectory", "param"), theta),
        "distance": (("trajectory",), dist),
        "exit_step": (("trajectory",), exit_step),
        "trapped_fraction": ((), np.mean(dist < d)),
    }
    coords = {"trajectory": np.arange(first, first + n), "param": np.array(schema.PARAM_NAMES)}
    inputs = dict(sigma2=float(sigma2), pullback_time=tau, lr=float(lr), n_points=n,
                  distance=d, teacher=teacher, seed=seed, horizon=HORIZON)
    ds = schema.dataset(data, coords, inputs, kind="pullback_cloud")
    if first:
        ds.attrs["first_path"] = first
    return ds


def combine_clouds(parts: list[xr.Dataset]) -> xr.Dataset:
    """Join pieces of one cloud (``first`` = 0, k, 2k, …; see :func:`pullback_cloud`) into the
    cloud of all their paths: equal to computing it at once."""
    if not parts:
        raise ValueError("no pieces to combine")
    parts = sorted(parts, key=lambda p: int(p.trajectory.values[0]))
    out = xr.concat([p.drop_vars("trapped_fraction") for p in parts], dim="trajectory",
                    data_vars="minimal", coords="minimal", compat="override",
                    combine_attrs="override")
    if not np.array_equal(out.trajectory.values, np.arange(out.sizes["trajectory"])):
        raise ValueError("the pieces do not cover paths 0 … n − 1 exactly once")
    out["trapped_fraction"] = ((), np.mean(out.distance.values < out.attrs["distance"]),
                               parts[0].trapped_fraction.attrs)
    out.attrs = {k: v for k, v in out.attrs.items() if k != "first_path"}
    out.attrs["n_points"] = int(out.sizes["trajectory"])
    return out


def pullback_clouds(sigma2: float, pullback_times=(1_000, 10_000, 30_000, 100_000), **kwargs) -> xr.Dataset:
    """:func:`pullback_cloud` for several pullback times (same noise), along ``pullback_time``."""
    parts = [pullback_cloud(sigma2, t, **kwargs) for t in pullback_times]
    out = xr.concat(parts, dim="pullback_time", combine_attrs="drop_conflicts")
    out = out.assign_coords(pullback_time=("pullback_time", np.asarray(pullback_times, dtype=np.int64),
                                           {"long_name": schema.DIMS["pullback_time"][0],
                                            "units": schema.DIMS["pullback_time"][1]}))
    out.attrs["kind"] = "pullback_clouds"
    return out

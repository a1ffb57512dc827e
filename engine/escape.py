"""Escape times from the degenerate subspace M_wv (paper 000 §4.2, Fig. 5; MATH.md §1c).

The 2-D random map on M_wv (eqs. 31–32) starts from (w, v) uniform in (0, 2]² with independent
noise per trajectory; the escape time is the first step with |w| > 2 or |v| > 2. Runs are
capped at ``max_steps``: a trajectory still inside is *censored* and its time recorded as the
cap. Per σ² we report the censored fraction, the restricted mean E[min(T, cap)] — the mean
itself when nothing is censored, otherwise only a lower bound of it (flagged, never presented
as the mean) — with a 95 % confidence interval, and the median (NaN when at least half are
censored: it is then beyond the cap).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import schema
from ._kernels import _count, _positive, _seed
from ._vecmath import stream_key, uniforms
from .fa import run_reduced

__all__ = ["escape_times", "summarise"]

_S_ESCAPE_INIT = 31  # random-stream tag of the initial conditions


def initial_conditions(n: int, seed: int) -> np.ndarray:
    """(n, 2) starting points (w, v), uniform in (0, 2]² (paper 000 §4.2)."""
    u = uniforms(stream_key(_seed(seed), _S_ESCAPE_INIT, 0), 0, 2 * n).reshape(n, 2)
    return 2.0 - 2.0 * u  # u ∈ [0, 1) → (0, 2]


def summarise(times: np.ndarray, censored: np.ndarray, cap: int) -> dict[str, float]:
    """Censoring-aware summary of escape times (see the module docstring)."""
    t = np.minimum(np.asarray(times, dtype=float), cap)
    n = t.size
    frac = float(np.mean(censored))
    mean = float(t.mean())
    half = 1.96 * float(t.std(ddof=1)) / np.sqrt(n) if n > 1 else np.nan
    median = float(np.median(t)) if frac < 0.5 else np.nan
    return dict(censored_fraction=frac, mean_time=mean, mean_ci_low=mean - half,
                mean_ci_high=mean + half, mean_is_lower_bound=frac > 0, median_time=median)


def escape_times(sigma2, lr: float = 0.1, batch_size: int = 1, n_trajectories: int = 1000,
                 max_steps: int = 100_000, seed: int = 0, *, progress=None, cancel=None) -> xr.Dataset:
    """Escape times from [−2, 2]² of the 2-D map on M_wv for each σ² in ``sigma2``.

    Returns an ``xr.Dataset`` over (``sigma2``, ``trajectory``) with ``escape_time`` (equal to
    ``max_steps`` where censored) and ``censored``, and over ``sigma2`` the summaries
    ``censored_fraction``, ``mean_time`` (restricted mean; a lower bound where
    ``mean_is_lower_bound``), ``mean_ci_low``, ``mean_ci_high`` and ``median_time``.
    ``progress(done, total)`` is called after each σ²; ``cancel()`` true stops with
    ``RuntimeError``.
    """
    s2 = np.atleast_1d(np.asarray(sigma2, dtype=float))
    if s2.ndim != 1 or s2.size == 0:
        raise ValueError("sigma2 must be a scalar or a non-empty 1-D array.")
    for v in s2:
        _positive(v, "sigma2")
    lr = _positive(lr, "lr")
    n = _count(n_trajectories, "n_trajectories", 1)
    cap = _count(max_steps, "max_steps", 1)
    seed = _seed(seed)
    wv0 = initial_conditions(n, seed)
    times = np.empty((s2.size, n), dtype=np.int64)
    cens = np.empty((s2.size, n), dtype=bool)
    for i, v in enumerate(s2):
        if cancel is not None and cancel():
            raise RuntimeError("cancelled")
        ds = run_reduced(wv0, lr, float(v), cap, batch_size=batch_size, record_every=cap,
                         seed=seed, bound=2.0)
        exit_step = ds.exit_step.values
        cens[i] = exit_step < 0
        times[i] = np.where(cens[i], cap, exit_step)
        if progress is not None:
            progress(i + 1, s2.size)
    summ = [summarise(times[i], cens[i], cap) for i in range(s2.size)]
    data = {
        "escape_time": (("sigma2", "trajectory"), times),
        "censored": (("sigma2", "trajectory"), cens),
        **{k: (("sigma2",), np.array([d[k] for d in summ])) for k in summ[0]},
    }
    inputs = dict(lr=lr, batch_size=batch_size, n_trajectories=n, max_steps=cap, seed=seed,
                  model="fukumizu_amari_reduced")
    return schema.dataset(data, {"sigma2": s2, "trajectory": np.arange(n)}, inputs,
                          kind="escape_times")

"""The one place that names every dimension, coordinate and variable of SGD Atlas Datasets.

Every public engine function returns an ``xr.Dataset`` built with :func:`dataset`, so that
each variable and coordinate carries ``long_name`` and ``units`` (``"1"`` when dimensionless)
and the Dataset carries its inputs, seed and engine version in ``attrs``: a cached file
explains itself.  The app checks Datasets with :func:`require` and says what is missing.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr

from . import __version__

#: dims → (long_name, units) of their coordinate
DIMS: dict[str, tuple[str, str]] = {
    "trajectory": ("trajectory", "1"),
    "step": ("SGD step", "1"),
    "param": ("parameter", "1"),
    "sample": ("data point", "1"),
    "w": ("w = w1 = w2 on M_wv", "1"),
    "v": ("v = v1 = v2 on M_wv", "1"),
    "x": ("input x", "1"),
    "pullback_time": ("pullback time τ_pb", "steps"),
    "lr": ("η (λ in paper 002)", "1"),
    "mu": ("μ, signal fraction of the labels", "1"),
    "sigma2": ("σ², input variance", "1"),
    "c": ("c = threshold loss / L(θ*)", "1"),
    "run": ("independent SGD run", "1"),
    "chain": ("independent SGD chain", "1"),
    "draw": ("SGD step of the stationary sample", "steps"),
    "component": ("component of θ ∈ R^d", "1"),
    "eig": ("eigenvalue index (ascending)", "1"),
}

#: variables → (long_name, units)
VARIABLES: dict[str, tuple[str, str]] = {
    "theta": ("parameters θ = (w1, w2, v1, v2)", "1"),
    "theta_final": ("parameters after the last step (or at exit)", "1"),
    "theta_init": ("initial parameters", "1"),
    "loss": ("expected loss E_x[½(f(x;θ) − T(x))²]", "1"),
    "train_loss": ("training loss (1/2n) Σ (f(x_i;θ) − y_i)²", "1"),
    "exit_step": ("step at which the trajectory left the box or diverged (−1: never)", "1"),
    "exit_reason": ("why the trajectory stopped: 0 running, 1 left the box, 2 diverged", "1"),
    "data_x": ("training inputs x_i", "1"),
    "data_y": ("training labels y_i = T(x_i) + ξ_i", "1"),
    "pi_small_lr": ("π = P_x[μ+ ≤ 0] (attracting for small η)", "1"),
    "pi_finite_lr": ("P_x[|1 + η μ±| < 1 for both] (attracting at this η)", "1"),
    "lyapunov": ("top Lyapunov exponent of Π (I + η J(x_t))", "1/step"),
    "lyapunov_se": ("standard error of the Lyapunov exponent", "1/step"),
    "valley": ("valley curve C: v*(w; σ²)", "1"),
    "mu_minus": ("μ−(x; w, v)", "1"),
    "mu_plus_mean": ("E_x[μ+(x; w, v)]", "1"),
    "mu_minus_mean": ("E_x[μ−(x; w, v)]", "1"),
    "mu_plus": ("μ+(x; w, v)", "1"),
    "density": ("ρ(x), density of N(0, σ²)", "1"),
    "cloud": ("pullback cloud θ(0) of paths started at −τ_pb", "1"),
    "distance": ("distance to M_wv, √(r² + s²) with r = (w1 − w2)/2, s = (v1 − v2)/2", "1"),
    "trapped_fraction": ("fraction of paths within the distance threshold of M_wv", "1"),
    "lyap_minus": ("Λ− = E log|1 − ηχ| (w − u)", "1/step"),
    "lyap_plus": ("Λ+ = E log|1 + ηχ| (w + u)", "1/step"),
    "lyap_minus_se": ("uncertainty of Λ− (quadrature or Monte Carlo)", "1/step"),
    "lyap_plus_se": ("uncertainty of Λ+ (quadrature or Monte Carlo)", "1/step"),
    "l2_stable": ("E[(1 − ηχ)²] < 1 (mean-square stability of w − u)", "1"),
    "phase": ("phase of paper 002 Fig. 2: Ia, Ib, II, III, IV", "1"),
    "log_m": ("log|m_t/m_0|, m = w − u", "1"),
    "log_h": ("log|h_t/h_0|, h = w + u", "1"),
    "exp_minus": ("(1/T) log|m_T/m_0| (empirical Λ−)", "1/step"),
    "exp_plus": ("(1/T) log|h_T/h_0| (empirical Λ+)", "1/step"),
    "escape_time": ("first step with |w| > 2 or |v| > 2 (the cap where censored)", "steps"),
    "censored": ("not yet escaped (or passed the threshold) at the step cap", "1"),
    "censored_fraction": ("fraction of runs censored at the cap", "1"),
    "mean_time": ("restricted mean time E[min(T, cap)]", "steps"),
    "mean_ci_low": ("95 % confidence bound (low) of the restricted mean", "steps"),
    "mean_ci_high": ("95 % confidence bound (high) of the restricted mean", "steps"),
    "mean_is_lower_bound": ("censoring: the restricted mean only bounds the mean from below", "1"),
    "median_time": ("median time (NaN when at least half are censored)", "steps"),
    "mean_time_se": ("standard error of the restricted mean", "steps"),
    "passage_time": ("first step with L(θ_t) ≥ c·L(θ*) (the cap where censored)", "steps"),
    "diverged": ("the run diverged (loss inf/NaN or above 1e8)", "1"),
    "log_loss_ratio": ("log(L(θ)/L(θ*)) of a stationary sample", "1"),
    "theta_sample": ("stationary sample of θ", "1"),
    "phi_chain": ("exponent φ fitted to one chain", "1"),
    "phi": ("exponent φ of P(θ) ∝ L(θ)^−φ (maximum likelihood, all chains)", "1"),
    "phi_se": ("standard error of φ (from the spread across chains)", "1"),
    "phi_theory": ("φ = 1 + B/(η h*) (paper 003 eq. 17)", "1"),
    "variance": ("stationary E|θ − θ*|²/d of the samples", "1"),
    "variance_exact": ("exact stationary E(θ − θ*)² of discrete SGD (d = 1)", "1"),
    "train_error": ("training error L = s · mean (f(x_i) − y_i)²", "1"),
    "generalization_error": ("generalisation error R = E_x (f(x) − T(x))², x ~ N(0, 1)", "1"),
    "hessian_eigenvalues": ("eigenvalues of the Hessian of L", "1"),
    "n_positive": ("number of positive Hessian eigenvalues (> 1e-9 × the largest)", "1"),
    "stage": ("stage: 0 transit, 1 plateau, 2 near-optimal, 3 overfitting", "1"),
    "distance_optimal": ("distance to the optimal region (up to symmetries)", "1"),
    "distance_singular": ("distance to the singular region (up to symmetries)", "1"),
}

#: the reasons coded in ``exit_reason``
EXIT_NONE, EXIT_BOX, EXIT_DIVERGED = 0, 1, 2

PARAM_NAMES = ("w1", "w2", "v1", "v2")


def attrs(name: str) -> dict[str, str]:
    """``long_name`` and ``units`` of variable ``name`` (for variables added after :func:`dataset`)."""
    return _attrs(VARIABLES, name)


def _attrs(table: Mapping[str, tuple[str, str]], name: str) -> dict[str, str]:
    long_name, units = table[name]
    return {"long_name": long_name, "units": units}


def _canonical_attr(value: Any) -> Any:
    """netCDF-storable attribute value (None → "none", bools → ints)."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def dataset(
    data_vars: Mapping[str, tuple[tuple[str, ...], np.ndarray]],
    coords: Mapping[str, np.ndarray],
    inputs: Mapping[str, Any],
    kind: str,
) -> xr.Dataset:
    """Build a schema-conforming Dataset.

    Parameters
    ----------
    data_vars
        ``name -> (dims, array)``; names must be in :data:`VARIABLES`.
    coords
        ``dim -> values``; dims must be in :data:`DIMS`.
    inputs
        The model inputs and seed; stored in ``attrs`` with the engine version.
    kind
        What the Dataset is (e.g. ``"fa_ensemble"``); stored as ``attrs["kind"]``.
    """
    ds = xr.Dataset(
        {name: (dims, arr, _attrs(VARIABLES, name)) for name, (dims, arr) in data_vars.items()},
        coords={dim: (dim, np.asarray(val), _attrs(DIMS, dim)) for dim, val in coords.items()},
    )
    ds.attrs = {k: _canonical_attr(v) for k, v in inputs.items()}
    ds.attrs["kind"] = kind
    ds.attrs["engine_version"] = __version__
    return ds


def require(ds: xr.Dataset, *names: str) -> None:
    """Raise ``ValueError`` naming the variables a consumer needs but ``ds`` lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(
            f"Dataset of kind {ds.attrs.get('kind', '?')!r} lacks {', '.join(missing)}; "
            "it was made by an incompatible engine version — clear the cache and recompute."
        )

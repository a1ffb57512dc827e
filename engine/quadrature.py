"""Deterministic Gaussian expectations E[g(x)], x ~ N(0, σ²), for even integrands.

tanh(wx) has poles on the imaginary axis at x = i(2k+1)π/(2w), closest to x = 0, so a plain
Gauss–Hermite rule converges slowly when |w|σ is large (MATH.md §2 warns of a 0.5 % error at 80
nodes).  We integrate over u = x/σ ∈ [0, 10] (tail mass beyond 10 is 1.5e-23) with composite
Gauss–Legendre on panels graded geometrically towards 0, so every panel is short compared with its
distance to the poles.  Accuracy is checked against ``scipy.integrate.quad`` (adaptive
QUADPACK) through the expectations built on this rule: the population loss in
``tests/test_fa.py`` (``test_population_loss_equals_adaptive_quadrature``), the
generalisation error in ``tests/test_overfit.py``
(``test_generalization_error_equals_adaptive_quadrature``) and the μ± moments in
``tests/test_stability.py`` (``test_mu_moments_equal_adaptive_quadrature``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["half_gauss_rule"]


@lru_cache(maxsize=64)
def _standard_rule(n_panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, n_panels)])
    t, wt = np.polynomial.legendre.leggauss(order)
    a, b = edges[:-1, None], edges[1:, None]
    u = (0.5 * (b - a) * t + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * wt).ravel()
    # density of |Z| for Z ~ N(0, 1): 2 φ(u) on u ≥ 0
    w = w * 2.0 * np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)
    u.flags.writeable = False
    w.flags.writeable = False
    return u, w


def half_gauss_rule(sigma2: float, n_panels: int = 16, order: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x_k > 0 and weights c_k with Σ c_k g(x_k) ≈ E[g(x)], x ~ N(0, σ²), for even g.

    Returns read-only float64 arrays of length ``n_panels * order``.
    """
    u, w = _standard_rule(int(n_panels), int(order))
    return np.sqrt(float(sigma2)) * u, w

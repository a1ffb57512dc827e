"""Lyapunov exponents at the Type-II saddle (paper 002, Proposition 1; MATH.md §3).

Issue 4's engine part; its page, the phases page (app/pages/phases.py), is tested in
tests/test_phases_view.py and tests/browser/test_phases_page.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate

from engine import saddle as sd


@pytest.mark.parametrize("a,b", [(1.0, 0.5), (0.3, 2.0), (-2.0, 0.1), (5.0, 0.2), (1e-3, 1.0),
                                 (0.0, 1.0), (3.0, 0.0), (-40.0, 1.0)])
def test_log_abs_normal_mean_equals_quadrature(a, b):
    if b == 0:
        ref = np.log(abs(a))
    else:
        ref = integrate.quad(lambda z: np.log(abs(a + b * z)) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                             -40, 40, points=[-a / b], limit=400, epsabs=1e-14)[0]
    assert sd.log_abs_normal_mean(a, b) == pytest.approx(ref, abs=1e-11)


def _reference_s1(eta, mu, sign):
    """Adaptive quadrature over x of E[log|1 ∓ ηχ| | x] (S = 1, N = ∞)."""
    def f(x):
        a = 1 - sign * eta * mu * x * x
        b = 2 * eta * (1 - mu) * abs(x)
        return sd.log_abs_normal_mean(a, b) * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    pts = [p for p in [1 / (2 * eta * (1 - mu) + 1e-300), np.sqrt(1 / (eta * mu)) if mu else 99] if p < 40]
    return 2 * integrate.quad(f, 0, 40, points=pts, limit=1000, epsabs=1e-13)[0]


@pytest.mark.parametrize("eta,mu", [(1.0, 0.3), (5.0, 0.06), (0.3, 0.9), (2.0, 0.99), (0.01, 0.0),
                                    (10.0, 0.5), (0.5, 0.999)])
def test_infinite_n_s1_within_its_reported_error(eta, mu):
    ds = sd.lyapunov_exponents(eta, mu)
    for sign, var in ((1, "lyap_minus"), (-1, "lyap_plus")):
        err = abs(float(ds[var][0, 0]) - _reference_s1(eta, mu, sign))
        assert err <= float(ds[var + "_se"][0, 0]) + 1e-9


@pytest.mark.parametrize("S", [2, 8])
def test_infinite_n_batches_agree_with_long_monte_carlo(S):
    rng = np.random.default_rng(S)
    R = 400_000
    x = rng.standard_normal((R, S))
    eps = 2 * rng.standard_normal((R, S))
    for eta, mu in [(0.5, 0.3), (2.0, 0.06)]:
        chi = np.mean(x * (mu * x + (1 - mu) * eps), axis=1)
        ds = sd.lyapunov_exponents(eta, mu, batch_size=S)
        for sign, var in ((1, "lyap_minus"), (-1, "lyap_plus")):
            v = np.log(np.abs(1 - sign * eta * chi))
            mc, se = v.mean(), v.std() / np.sqrt(R)
            assert abs(float(ds[var][0, 0]) - mc) < 4 * se + float(ds[var + "_se"][0, 0])


def test_limits_of_the_phase_diagram():
    """MATH.md §3 / paper 002: μ = 1 at small η learns (Ia); μ = 0 at small η collapses (III)."""
    ds = sd.lyapunov_exponents([0.01, 0.05], [0.0, 1.0])
    assert list(ds.phase.values[:, 0]) == ["III", "III"]
    assert list(ds.phase.values[:, 1]) == ["Ia", "Ia"]


def test_phase_table():
    lm = np.array([-1, -1, 1, -1, 1])
    lp = np.array([1, 1, -1, -1, 1])
    l2 = np.array([True, False, True, True, False])
    assert list(sd.phase_label(lm, lp, l2)) == ["Ia", "Ib", "II", "III", "IV"]


def test_l2_boundary_is_the_second_moment_criterion():
    rng = np.random.default_rng(1)
    x, eps = rng.standard_normal(2_000_000), 2 * rng.standard_normal(2_000_000)
    mu = 0.4
    chi = x * (mu * x + (1 - mu) * eps)
    edge = 2 * mu / (mu**2 + 2 * mu**2 + 4 * (1 - mu) ** 2)  # η < 2E[χ]/E[χ²]
    for eta in (0.8 * edge, 1.2 * edge):
        ds = sd.lyapunov_exponents(eta, mu)
        assert bool(ds.l2_stable[0, 0]) == (np.mean((1 - eta * chi) ** 2) < 1)


def test_finite_n_s1_is_the_exact_average():
    x, eps = sd.make_dataset(24, seed=3)
    lr, mu = np.array([0.1, 1.0, 3.0]), np.array([0.0, 0.06, 0.7])
    ds = sd.lyapunov_exponents(lr, mu, n_data=24, seed=3)
    for i, eta in enumerate(lr):
        for j, m in enumerate(mu):
            chi = x * (m * x + (1 - m) * eps)
            assert float(ds.lyap_minus[i, j]) == pytest.approx(np.mean(np.log(np.abs(1 - eta * chi))), rel=1e-12)
            assert float(ds.lyap_plus[i, j]) == pytest.approx(np.mean(np.log(np.abs(1 + eta * chi))), rel=1e-12)
    assert np.all(ds.lyap_minus_se.values == 0)


def test_finite_n_batches_agree_with_all_batches():
    """S = 2 of N = 6: Monte Carlo over batches vs the exact mean over all 15 batches."""
    x, eps = sd.make_dataset(6, seed=5)
    ds = sd.lyapunov_exponents([0.5, 2.0], [0.2, 0.8], batch_size=2, n_data=6, seed=5, n_batches=20_000)
    for i, eta in enumerate([0.5, 2.0]):
        for j, m in enumerate([0.2, 0.8]):
            chis = [np.mean(x[list(c)] * (m * x[list(c)] + (1 - m) * eps[list(c)]))
                    for c in itertools.combinations(range(6), 2)]
            exact = np.mean(np.log(np.abs(1 - eta * np.array(chis))))
            assert abs(float(ds.lyap_minus[i, j]) - exact) < 4 * float(ds.lyap_minus_se[i, j])


@pytest.mark.parametrize("eta,mu", [(0.5, 0.5), (0.3, 0.0), (2.0, 0.06)])
def test_simulation_agrees_with_theory(eta, mu):
    sim = sd.simulate_saddle(eta, mu, n_runs=400, n_steps=2000, seed=2)
    th = sd.lyapunov_exponents(eta, mu)
    for emp, var in ((sim.exp_minus.values, "lyap_minus"), (sim.exp_plus.values, "lyap_plus")):
        assert abs(emp.mean() - float(th[var][0, 0])) < 5 * emp.std() / np.sqrt(emp.size) + 1e-3
        if abs(float(th[var][0, 0])) > 0.02:  # away from the boundary the verdict agrees
            assert np.mean(np.sign(emp) == np.sign(float(th[var][0, 0]))) > 0.9


def test_bad_input():
    with pytest.raises(ValueError, match="mu"):
        sd.lyapunov_exponents(0.1, 1.5)
    with pytest.raises(ValueError, match="lr"):
        sd.lyapunov_exponents(-0.1, 0.5)
    with pytest.raises(ValueError, match="cannot exceed"):
        sd.lyapunov_exponents(0.1, 0.5, batch_size=5, n_data=3)


def test_random_product_equals_plain_numpy_and_changes_sign():
    """Fig. 2 right of paper 002: θ ← (I − λĤ)θ, Ĥ = diag(0.1, −0.1) + M + Mᵀ (App. A.2)."""
    from engine._vecmath import normals, stream_key

    lam, T = 0.3, 50
    ds = sd.random_product_lyapunov([lam], n_runs=3, max_steps=T, seed=4)
    ref = []
    for r in range(3):
        z = normals(stream_key(4, 21, r), 0, 2 + 4 * T)
        th = np.array([np.cos(np.arctan2(z[1], z[0])), np.sin(np.arctan2(z[1], z[0]))])
        logn = 0.0
        for t in range(T):
            a, b, c, d = z[2 + 4 * t: 6 + 4 * t]
            H = np.array([[0.1 + 2 * a, b + c], [b + c, -0.1 + 2 * d]])
            th = th - lam * H @ th
            logn += np.log(np.linalg.norm(th))
            th /= np.linalg.norm(th)
        ref.append(logn / T)
    assert float(ds.lyapunov[0]) == pytest.approx(np.mean(ref), rel=1e-10)
    curve = sd.random_product_lyapunov([0.001, 0.2, 1.0], n_runs=400, max_steps=3000)
    lyap, se = curve.lyapunov.values, curve.lyapunov_se.values
    assert lyap[0] > 3 * se[0] and lyap[1] < -3 * se[1] and lyap[2] > 3 * se[2]

"""μ± stability maps, π(w, v), valley curve and Lyapunov exponents (paper 000 §3.2, Fig. 3)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from engine import stability as st
from engine._vecmath import normals, stream_key
from engine.fa import teacher_numpy

RNG = np.random.default_rng(3)


def g(x, w, v, teacher="paper000"):
    """Eq. (34): the 2-D map on M_wv is (w, v) + η g."""
    t = np.tanh(w * x)
    h = 2 * v * t - teacher_numpy(x, teacher)
    return np.stack([-h * v * x * (1 - t * t), -h * t])


def fd_eigs(x, w, v, teacher="paper000", h=1e-6):
    jw = (g(x, w + h, v, teacher) - g(x, w - h, v, teacher)) / (2 * h)
    jv = (g(x, w, v + h, teacher) - g(x, w, v - h, teacher)) / (2 * h)
    J = np.stack([jw, jv], axis=-1)  # rows: components of g, cols: d/dw, d/dv
    return np.linalg.eigvals(np.moveaxis(J, 0, -2)).real


def appendix_b(x, w, v):
    """Eqs. (B.2)–(B.5) of paper 000, transcribed literally (paper-000 teacher)."""
    T = teacher_numpy(x)
    c, sh = np.cosh(w * x), np.sinh(w * x)
    A = -1 + (1 + 2 * v**2 * x**2 - v * x**2 * np.tanh(w * x) * T) / c**2 - 3 * v**2 * x**2 / c**4
    C = (8 * v**2 * (2 + np.cosh(2 * w * x)) * sh**2 - v * (6 * np.sinh(2 * w * x)
         + np.sinh(4 * w * x)) * T + 2 * c**2 * T**2)
    B = 32 * x**2 * c**2 * C + (-1 + 16 * v**2 * x**2 - 8 * v**2 * x**2 * np.cosh(2 * w * x)
                                + np.cosh(4 * w * x) + 4 * v * x**2 * np.sinh(2 * w * x) * T) ** 2
    r = np.sqrt(B) / (8 * c**4)
    return A - r, A + r


@pytest.mark.parametrize("teacher", ["paper000", "paper001"])
def test_mu_pm_equals_eigenvalues_of_a_finite_difference_jacobian(teacher):
    x, w, v = RNG.normal(0, 1.5, 300), RNG.uniform(-2, 2, 300), RNG.uniform(-2, 2, 300)
    lo, hi = st.mu_pm(x, w, v, teacher)
    ref = np.sort(fd_eigs(x, w, v, teacher), axis=-1)
    np.testing.assert_allclose(lo, ref[:, 0], atol=1e-7)
    np.testing.assert_allclose(hi, ref[:, 1], atol=1e-7)
    assert np.all(lo <= hi)


def test_appendix_b_closed_form_agrees():
    """B.2–B.5 (the correct closed form, MATH.md §1a) agree with our symmetric-J form."""
    x, w, v = RNG.normal(0, 1, 300), RNG.uniform(0, 2, 300), RNG.uniform(0, 2, 300)
    lo, hi = st.mu_pm(x, w, v)
    blo, bhi = appendix_b(x, w, v)
    np.testing.assert_allclose(lo, blo, atol=1e-9)
    np.testing.assert_allclose(hi, bhi, atol=1e-9)


def test_mu_pm_is_even_in_x_and_broadcasts():
    x = np.linspace(0, 5, 101)
    lo, hi = st.mu_pm(x, 0.5, 0.5)
    np.testing.assert_array_equal(st.mu_pm(-x, 0.5, 0.5)[0], lo)
    np.testing.assert_array_equal(st.mu_pm(-x, 0.5, 0.5)[1], hi)
    lo2, hi2 = st.mu_pm(x[:, None], np.array([0.5, 1.0]), 0.5)
    assert lo2.shape == (101, 2)
    np.testing.assert_array_equal(lo2[:, 0], lo)


def dense_pi(w, v, sigma2, lr=None, n=1_000_000):
    """Independent method: midpoint rule of the indicator times the half-normal density."""
    s = np.sqrt(sigma2)
    u = (np.arange(n) + 0.5) * (10.0 / n)
    lo, hi = st.mu_pm(s * u, w, v)
    ok = hi <= 0 if lr is None else (hi < 0) & (lo > -2 / lr)
    return np.sum(ok * 2 * np.exp(-u * u / 2) / np.sqrt(2 * np.pi)) * (10.0 / n)


@pytest.mark.parametrize("sigma2", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("lr", [None, 0.5, 2.0])
def test_pi_equals_an_independent_integration(sigma2, lr):
    for w, v in [(0.5, 0.5), (0.593, 0.0402), (1.5, 0.3), (0.2, 1.7)]:
        assert st.attracting_probability(w, v, sigma2, lr) == pytest.approx(
            dense_pi(w, v, sigma2, lr), abs=1e-4)


def test_fig3_claims():
    """Paper 000 Fig. 3: (½, ½) is a saddle for most x at σ² = 0.1 and attracting for a
    sizeable fraction at σ² = 1; the attracting region of π over [0, 2]² disappears at 0.1."""
    assert st.attracting_probability(0.5, 0.5, 0.1) < 0.02
    assert st.attracting_probability(0.5, 0.5, 1.0) > 0.3
    strong = st.attracting_map(1.0, n=40).pi_small_lr
    weak = st.attracting_map(0.1, n=40).pi_small_lr
    assert float(strong.max()) > 0.5 and float((strong > 0.3).mean()) > 0.05
    assert float(weak.max()) < 0.5 * float(strong.max())
    assert float((weak > 0.3).mean()) < 0.2 * float((strong > 0.3).mean())


def test_finite_eta_criterion_is_stricter_and_tends_to_pi():
    W, V = np.meshgrid(np.linspace(0.1, 2, 15), np.linspace(0.1, 2, 15))
    small = st.attracting_probability(W, V, 1.0)
    assert np.all(st.attracting_probability(W, V, 1.0, lr=1.0) <= small + 1e-12)
    np.testing.assert_allclose(st.attracting_probability(W, V, 1.0, lr=1e-6), small, atol=1e-9)


@pytest.mark.parametrize("sigma2", [0.1, 1.0])
def test_valley_curve_is_the_minimiser_of_the_erf_averaged_potential(sigma2):
    """A.4–A.6 against quadrature: v* = E[φ(wx) T̃(x)] / (2 E[φ(wx)²]), φ(z) = erf(z/√2),
    T̃ = 2φ(x) − φ(4x) (the erf approximation of the teacher)."""
    s = np.sqrt(sigma2)
    phi = lambda z: special.erf(z / np.sqrt(2))  # noqa: E731
    rho = lambda x: np.exp(-x * x / (2 * sigma2)) / np.sqrt(2 * np.pi * sigma2)  # noqa: E731
    for w in (0.3, 0.8, 1.6):
        num = integrate.quad(lambda x: phi(w * x) * (2 * phi(x) - phi(4 * x)) * rho(x), -12 * s, 12 * s)[0]
        den = integrate.quad(lambda x: phi(w * x) ** 2 * rho(x), -12 * s, 12 * s)[0]
        assert st.valley_curve(w, sigma2) == pytest.approx(num / (2 * den), rel=1e-7)


def test_lyapunov_equals_a_plain_numpy_product():
    w, v, sigma2, lr, T = 0.5, 0.5, 1.0, 0.1, 3000
    lam, se = st.lyapunov(w, v, sigma2, lr, n_steps=T, n_replicas=3, seed=2)
    ref = []
    for r in range(3):
        x = np.sqrt(sigma2) * normals(stream_key(2, 16, r), 0, 100 + T)
        a, b, d = st.jacobian(x, w, v)
        u = np.array([1.0, 1.0]) / np.sqrt(2)
        acc = 0.0
        for t in range(100 + T):
            u = u + lr * np.array([a[t] * u[0] + b[t] * u[1], b[t] * u[0] + d[t] * u[1]])
            nrm = np.linalg.norm(u)
            if t >= 100:
                acc += np.log(nrm)
            u /= nrm
        ref.append(acc / T)
    assert lam == pytest.approx(np.mean(ref), rel=1e-9)
    assert se == pytest.approx(np.std(ref, ddof=1) / np.sqrt(3), rel=1e-6)


def test_lyapunov_confidence_interval_covers_a_long_run():
    lam, se = st.lyapunov(0.5, 0.5, 1.0, 0.1, n_steps=1000, n_replicas=16, seed=0)
    long, long_se = st.lyapunov(0.5, 0.5, 1.0, 0.1, n_steps=40_000, n_replicas=16, seed=1)
    assert abs(lam - long) < 4 * np.hypot(se, long_se)
    assert long < 0 and long + 4 * long_se < 0  # (½, ½) is probabilistically stable at σ² = 1


def test_map_dataset_follows_the_schema():
    ds = st.attracting_map(1.0, lr=0.1, n=8, lyapunov_steps=200)
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
    assert ds.pi_small_lr.dims == ("w", "v") and ds.sizes == {"w": 8, "v": 8}
    assert np.all((ds.pi_small_lr >= 0) & (ds.pi_small_lr <= 1))
    with pytest.raises(ValueError, match="sigma2"):
        st.attracting_probability(0.5, 0.5, -1.0)


def test_mu_moments_equal_adaptive_quadrature():
    ds = st.attracting_map(1.0, n=3, moments=True)
    for i, w in enumerate(ds.w.values):
        for j, v in enumerate(ds.v.values):
            dens = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi)  # noqa: E731
            hi = integrate.quad(lambda x: st.mu_pm(x, w, v)[1] * dens(x), -12, 12, limit=200)[0]
            lo = integrate.quad(lambda x: st.mu_pm(x, w, v)[0] * dens(x), -12, 12, limit=200)[0]
            assert float(ds.mu_plus_mean[i, j]) == pytest.approx(hi, abs=1e-8)
            assert float(ds.mu_minus_mean[i, j]) == pytest.approx(lo, abs=1e-8)

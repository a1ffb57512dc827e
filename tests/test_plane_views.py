"""Parameter-plane views built headlessly: the optimal sets of the live-trajectories planes and
the trapped-cluster markers of the pullback cloud (paper 000 Figs. 4; paper 001 §4)."""

from __future__ import annotations

import types

import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from bokeh.models import ColumnDataSource

from app.figures import live
from app.figures.stability import RASTER, cloud_columns
from engine import pullback

hv.extension("bokeh")

PLANES = (((0, 1), ("w1", "w2")), ((2, 3), ("v1", "v2")))
X = np.linspace(-8.0, 8.0, 801)  # inputs on which two functions of x are compared


def _parts(teacher, ij, labels):
    """(segments (m, 4), points (k, 2)) of the optimal set as the plane's columns draw them."""
    key = "w" if ij == (0, 1) else "v"
    cols = live.plane_columns(np.zeros((1, 1, 4)), key, teacher)
    lines = cols[f"live-{key}-optimal-lines"]
    points = cols[f"live-{key}-optimal-points"]
    seg = np.stack([lines[c] for c in ("x0", "y0", "x1", "y1")], axis=1) if len(lines["x0"]) \
        else np.empty((0, 4))
    return seg, np.stack([points["x"], points["y"]], axis=1)


# -- 1. the planes' columns: the same layers for both teachers, tails and heads -----------------
@pytest.mark.parametrize("key", ["w", "v"])
def test_plane_columns_have_the_same_layers_for_both_teachers(key):
    hist = np.random.default_rng(0).uniform(-1, 1, (3, 12, 4))
    a = live.plane_columns(hist, key, "paper000")
    b = live.plane_columns(hist, key, "paper001")
    # a teacher switch replaces data, never adds or drops a layer (no stale renderer is left)
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}
    sources = {s.name for s in live.plane_figure(key).select(type=ColumnDataSource)}
    assert sources == set(a)  # every column set has its source in the figure, and no other


@pytest.mark.parametrize("key", ["w", "v"])
def test_plane_tails_fade_in_and_heads_are_the_last_finite_points(key):
    ij = live.PLANES[key][0]
    hist = np.random.default_rng(1).normal(size=(4, 30, 4))
    hist[1, -3:] = np.nan  # trajectory 1 stopped three records ago (diverged)
    cols = live.plane_columns(hist, key, "paper000", tail=10)
    seg, heads = cols[f"live-{key}-segments"], cols[f"live-{key}-heads"]
    labels = live.PLANES[key][1]
    last = np.array([hist[r, -1 if r != 1 else -4, list(ij)] for r in range(4)])
    np.testing.assert_array_equal(np.stack([heads[labels[0]], heads[labels[1]]], axis=1), last)
    # 9 segments between the last 10 records of each, minus the 3 touching the NaN records
    assert len(seg["x0"]) == 4 * 9 - 3
    for r in range(4):  # older segments are fainter; the newest is opaque
        fade = seg["fade"][seg["color"] == r]
        assert np.all(np.diff(fade) > 0) and fade[0] >= 0.08
        if r != 1:
            assert fade[-1] == 1.0
    first = seg["color"] == 0  # segment k joins records k and k+1 of the tail
    np.testing.assert_array_equal(seg["x0"][first][1:], seg["x1"][first][:-1])


@pytest.mark.parametrize("ij, labels", PLANES)
def test_paper000_optimal_set_is_the_eight_points_of_eq9(ij, labels):
    seg, pts = _parts("paper000", ij, labels)
    assert seg.shape == (0, 4)  # no lines for the two-neuron teacher
    theta = np.array([(1, 4, 2, -1), (-1, 4, -2, -1), (1, -4, 2, 1), (-1, -4, -2, 1),
                      (4, 1, -1, 2), (4, -1, -1, -2), (-4, 1, 1, 2), (-4, -1, 1, -2)], float)
    # paper 000 eq. (9); each is a global minimum: f(x; θ) = 2tanh(x) − tanh(4x) exactly
    for t in theta:
        f = t[2] * np.tanh(t[0] * X) + t[3] * np.tanh(t[1] * X)
        np.testing.assert_allclose(f, 2 * np.tanh(X) - np.tanh(4 * X), atol=1e-14)
    np.testing.assert_array_equal(sorted(map(tuple, pts)), sorted(map(tuple, theta[:, list(ij)])))


def _on_lines(p: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Distance of each point p (k, 2) to the nearest of the segments (m, 4)."""
    a, b = seg[:, :2], seg[:, 2:]
    d = b - a
    t = np.clip(np.einsum("kmi,mi->km", p[:, None, :] - a, d) / np.einsum("mi,mi->m", d, d), 0, 1)
    q = a + t[..., None] * d
    return np.min(np.linalg.norm(p[:, None, :] - q, axis=2), axis=1)


def _rms(f: np.ndarray) -> float:
    """RMS distance of f(x) to the paper-001 teacher 2tanh(x) on the grid X."""
    return float(np.sqrt(np.mean((f - 2 * np.tanh(X)) ** 2)))


def _best_fit(basis: list[np.ndarray]) -> float:
    """RMS residual of the least-squares fit of 2tanh(x) by the given functions of x."""
    a = np.stack(basis, axis=1)
    return _rms(a @ np.linalg.lstsq(a, 2 * np.tanh(X), rcond=None)[0])


def _random_optima(rng, n: int) -> np.ndarray:
    """Members of the optimal set of the paper-001 teacher T(x) = 2tanh(x), from each family:
    w1 = w2 = s, v1 + v2 = 2s; w1 = −w2 = s, v1 − v2 = 2s; one neuron (s, 2s) and the other
    silent (v = 0 with any w, or w = 0 with any v); and the same with the neurons swapped."""
    out = []
    for _ in range(n):
        s, a = rng.choice([-1.0, 1.0]), rng.uniform(-4, 4)
        kind = rng.integers(4)
        theta = [(s, s, a, 2 * s - a), (s, -s, a, a - 2 * s), (s, a, 2 * s, 0.0),
                 (s, 0.0, 2 * s, a)][kind]
        if rng.random() < 0.5:  # swap the neurons
            theta = (theta[1], theta[0], theta[3], theta[2])
        out.append(theta)
    return np.array(out)


@pytest.mark.parametrize("ij, labels", PLANES)
def test_paper001_optimal_set_is_exactly_the_drawn_lines(ij, labels):
    seg, pts = _parts("paper001", ij, labels)
    assert len(seg) > 0 and len(pts) == 0
    assert len(seg) == (4 if ij == (0, 1) else 8)  # w_i = ±1; v1 ± v2 = ±2 and v_i = ±2
    # the lines reach past every side of the plot's window
    lo, hi = np.min(seg[:, [0, 2]]), np.max(seg[:, [0, 2]])
    assert lo <= -20 and hi >= 20 and np.min(seg[:, [1, 3]]) <= -20 and np.max(seg[:, [1, 3]]) >= 20
    # complete: every optimum projects onto a drawn line
    theta = _random_optima(np.random.default_rng(1), 400)
    w1, w2, v1, v2 = (theta[:, [k]] for k in range(4))
    f = v1 * np.tanh(w1 * X) + v2 * np.tanh(w2 * X)
    np.testing.assert_allclose(f, np.broadcast_to(2 * np.tanh(X), f.shape), atol=1e-13)
    assert np.max(_on_lines(theta[:, list(ij)], seg)) < 1e-9
    # sound: every point of a drawn line (inside the window) is the projection of an optimum
    t = np.linspace(0, 1, 2001)[:, None]
    for x0, y0, x1, y1 in seg:
        p = np.hstack([x0 + t * (x1 - x0), y0 + t * (y1 - y0)])
        p = p[np.all(np.abs(p) <= 5, axis=1)][::25]
        for a, b in p:
            if ij == (0, 1):  # fixed (w1, w2): best (v1, v2) by linear least squares
                res = _best_fit([np.tanh(a * X), np.tanh(b * X)])
            else:  # fixed (v1, v2): an optimum needs w_i ∈ {−1, 0, 1} (|w_i| ∉ {0, 1} ⇒ v_i = 0)
                res = min(_rms(a * np.tanh(w1 * X) + b * np.tanh(w2 * X))
                          for w1 in (-1, 0, 1) for w2 in (-1, 0, 1))
            assert res < 1e-12, (a, b)
    # and a point off the lines is not optimal
    off = np.array([[0.5, 2.7]]) if ij == (0, 1) else np.array([[0.5, 0.7]])
    assert _on_lines(off, seg)[0] > 0.1


# -- 2. trapped clusters of the pullback cloud are marked ---------------------------------------
SYNC = np.array([0.283, 0.283, 0.876, 0.876])  # paper 000 σ² = 1, η = 0.1: the trapped point
MIRROR = np.array([0.283, -0.283, 0.876, -0.876])


def _synthetic_cloud(seed: int = 0) -> xr.Dataset:
    """A cloud shaped like :func:`engine.pullback.pullback_cloud`'s: 30 % of the paths on
    SYNC, 15 % on −SYNC, 20 % on the mirror image MIRROR (on the mirror copy of M_wv, far from
    M_wv itself), 10 % on −MIRROR, the rest spread uniformly over [−1, 1]⁴, and one diverged
    path. Distances are the engine's: to the nearest copy of M_wv (MATH.md §1). The spread
    paths keep 0.3 away from the four centres, so no stray falls inside a cluster's ring."""
    rng = np.random.default_rng(seed)
    centres = np.array([SYNC, -SYNC, MIRROR, -MIRROR])
    spread = rng.uniform(-1, 1, (1_000, 4))
    spread = spread[np.linalg.norm(spread[:, None] - centres, axis=2).min(axis=1) > 0.3][:249]
    parts = [SYNC + 1e-3 * rng.standard_normal((300, 4)),
             -SYNC + 1e-3 * rng.standard_normal((150, 4)),
             MIRROR + 1e-3 * rng.standard_normal((200, 4)),
             -MIRROR + 1e-3 * rng.standard_normal((100, 4)),
             spread, np.full((1, 4), np.nan)]
    cloud = np.vstack(parts)
    return xr.Dataset(
        {"cloud": (("trajectory", "param"), cloud),
         "distance": (("trajectory",), pullback.distance_to_mwv(cloud))},
        coords={"trajectory": np.arange(len(cloud)), "param": ["w1", "w2", "v1", "v2"]},
        attrs={"pullback_time": 100_000, "sigma2": 1.0, "lr": 0.1})


class _Rings:
    """One projection's rings, from the columns of :func:`app.figures.stability.cloud_columns`."""

    def __init__(self, columns: dict):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["share"])

    def array(self, names):
        return np.column_stack([np.asarray(self.columns[n], float) for n in names]).reshape(-1, len(names))

    def dimension_values(self, name):
        return np.asarray(self.columns[name])


def _markers(ds, trapped_distance=0.1):
    columns = cloud_columns(ds, trapped_distance)
    image = columns["stab-cloud-image"]["image"][0]
    assert image.shape == (RASTER, RASTER) and image.dtype == np.uint32 and image.any()
    return _Rings(columns["stab-cloud-rings-w"]), _Rings(columns["stab-cloud-rings-v"])


def test_trapped_clusters_are_marked_at_their_centres_with_their_share():
    ds = _synthetic_cloud()
    w, v = _markers(ds)
    for layer, cols in ((w, [0, 1]), (v, [2, 3])):
        xy = layer.array(["θ1", "θ2"])
        share = layer.dimension_values("share")
        order = np.argsort(-share)
        # four clusters trapped near a copy of M_wv, each ringed (the mirror copy counts,
        # MATH.md §1); the scattered trapped strays make no marker
        assert len(xy) == 4
        np.testing.assert_allclose(xy[order], [SYNC[cols], MIRROR[cols], -SYNC[cols], -MIRROR[cols]],
                                   atol=5e-4)
        np.testing.assert_allclose(share[order], [30.0, 20.0, 15.0, 10.0])  # % of all 1,000 paths
        np.testing.assert_array_equal(layer.dimension_values("paths")[order], [300, 200, 150, 100])
        size = layer.dimension_values("size")[order]
        assert size[3] >= 12 and np.all(np.diff(size) < 0)  # visible, and growing with the share


def test_no_marker_without_trapped_paths_and_threshold_is_followed():
    ds = _synthetic_cloud()
    ds = ds.assign(distance=ds.distance + 1.0)  # nothing within reach of M_wv
    w, v = _markers(ds)
    assert len(w) == 0 and len(v) == 0
    # the threshold is the page's: at 1e-3 only part of each 1e-3-scattered cluster counts
    ds = _synthetic_cloud()
    w, _ = _markers(ds, trapped_distance=1e-3)
    d = ds.distance.values
    expected = [100 * np.sum(d[a:b] < 1e-3) / 1000 for a, b in ((0, 300), (450, 650), (300, 450), (650, 750))]
    assert 3 < expected[3] < expected[2] < expected[1] < expected[0] < 30
    np.testing.assert_allclose(np.sort(w.dimension_values("share"))[::-1], expected)


def test_markers_on_a_real_cloud_match_its_trapped_fraction():
    """A small real pullback cloud (paper 000 Fig. 4, σ² = 1, η = 0.1): the paths trapped near
    M_wv sit on ±(w, w, v, v) and ±(w, −w, v, −v), and the markers' shares add up to the
    trapped fraction."""
    ds = pullback.pullback_cloud(1.0, 30_000, lr=0.1, n_points=1_000, seed=0)
    frac = 100 * float(np.mean(ds.distance.values < 0.1))
    assert frac > 20
    w, v = _markers(ds)
    assert len(w) == 4  # the four images of one point (MATH.md §1), each ringed
    share = w.dimension_values("share")
    assert abs(share.sum() - frac) < 0.2 * frac
    xy = w.array(["θ1", "θ2"])
    # two on the diagonal (M_wv), two on the anti-diagonal (its mirror), ± each other
    on_diagonal = np.abs(xy[:, 0] - xy[:, 1]) < 0.1
    assert on_diagonal.sum() == 2
    np.testing.assert_allclose(np.abs(xy[~on_diagonal, 0] + xy[~on_diagonal, 1]), 0, atol=0.1)
    np.testing.assert_allclose(xy[on_diagonal].sum(axis=0), 0, atol=0.1)
    np.testing.assert_allclose(xy[~on_diagonal].sum(axis=0), 0, atol=0.1)
    np.testing.assert_allclose(np.abs(v.array(["θ1", "θ2"])), 0.88, atol=0.1)


# -- 3. the step plots draw their records evenly in log(step) ---------------------------------
def test_step_plots_draw_at_most_k_records_spread_evenly_in_log_step():
    steps = np.concatenate([[0], np.arange(1, 1201) * 50])  # a long run: records uniform in steps
    keep = live.display_records(steps, k=240)
    assert steps[keep[0]] == 50 and keep[-1] == steps.size - 1  # first and last record drawn
    assert keep.size <= 241 and np.all(np.diff(keep) > 0)
    gaps = np.diff(np.log(steps[keep]))
    target = np.log(steps[-1] / steps[1]) / 239
    # each gap in log(step) is the target's, or one record's where the records are sparser
    assert gaps.max() <= target + np.diff(np.log(steps[1:])).max() + 1e-12
    short = np.arange(0, 100) * 10  # fewer records than k: every one at step > 0 is drawn
    np.testing.assert_array_equal(live.display_records(short, k=240), np.arange(1, 100))
    # the drawn lines are the run's values at exactly those records, one NaN break each
    rng = np.random.default_rng(2)
    ds = xr.Dataset({"loss": (("trajectory", "step"), rng.uniform(0.1, 1, (3, steps.size))),
                     "theta": (("trajectory", "step", "param"), rng.normal(size=(3, steps.size, 4)))},
                    coords={"step": steps})
    cols = live.loss_columns(ds)["live-loss-lines"]
    y = cols["y"].reshape(3, keep.size + 1)
    np.testing.assert_array_equal(y[:, :-1], ds.loss.values[:, keep])
    assert np.isnan(y[:, -1]).all()
    med = live.loss_columns(ds)["live-loss-median"]
    np.testing.assert_array_equal(med["y"], np.median(ds.loss.values[:, keep], axis=0))
    deg = live.degeneration_columns(ds)["live-deg-w"]["y"].reshape(3, keep.size + 1)[:, :-1]
    np.testing.assert_array_equal(deg, np.abs(ds.theta.values[:, keep, 0] - ds.theta.values[:, keep, 1]))


def test_the_cloud_raster_puts_each_projection_where_its_paths_are_in_its_colour():
    """All paths on SYNC: the (w1, w2) projection is one red spot at (0.283, 0.283), the
    (v1, v2) one a blue spot at (0.876, 0.876), on [−5, 5]² with row 0 at the bottom (Bokeh's
    ``image_rgba``); elsewhere the raster is transparent."""
    from app.figures.stability import CLOUD_RANGE, cloud_raster

    image = cloud_raster(np.tile(SYNC, (500, 1)))
    rgba = image.view(np.uint8).reshape(RASTER, RASTER, 4)

    def pixel(x, y):
        scale = RASTER / (CLOUD_RANGE[1] - CLOUD_RANGE[0])
        return rgba[int((y - CLOUD_RANGE[0]) * scale), int((x - CLOUD_RANGE[0]) * scale)]

    red, blue = pixel(0.283, 0.283), pixel(0.876, 0.876)
    assert red[3] > 0 and red[0] > 200 and red[2] < 100  # #d62728
    assert blue[3] > 0 and blue[2] > 150 and blue[0] < 100  # #1f77b4
    assert pixel(-3, 3)[3] == 0 and pixel(3, -3)[3] == 0
    assert (rgba[..., 3] > 0).sum() < 0.001 * RASTER**2  # two small spots, nothing else


def test_the_stability_map_columns_place_every_cell_at_its_w_and_v():
    """The map's image is the Dataset's (v, w) grid: cell k of w is centred at w[k] (the image
    spans half a cell beyond the first and last centres), the colour variable falls back to
    the π map while only it is in, λ's colours are symmetric about 0, and the valley curve C
    is kept inside the window [0, 2]²."""
    from app.figures.stability import map_columns
    from engine import stability as st

    ds = st.attracting_map(sigma2=1.0, lr=0.1, n=12, lyapunov_steps=40, lyapunov_replicas=2,
                           seed=0, moments=True)
    cols, settings = map_columns(ds, "lyapunov")
    img = cols["stab-map-image"]
    np.testing.assert_array_equal(img["image"][0], np.where(np.isfinite(ds.lyapunov.values.T),
                                                            ds.lyapunov.values.T, np.nan))
    dw = ds.w.values[1] - ds.w.values[0]
    centres = img["x"][0] + img["dw"][0] * (np.arange(ds.w.size) + 0.5) / ds.w.size
    np.testing.assert_allclose(centres, ds.w.values, atol=1e-12)
    assert img["dw"][0] == pytest.approx(ds.w.size * dw)
    assert settings["low"] == -settings["high"] > -np.inf and settings["title"] == "λ (per step)"
    valley = cols["stab-map-valley"]
    assert np.all((valley["v"] >= 0) & (valley["v"] <= 2)) and len(valley["w"]) > 0
    only_pi = ds[["pi_small_lr", "valley"]]
    _, fallback = map_columns(only_pi, "lyapunov")  # λ asked while only the π map is in
    assert fallback["title"] == "π = P[μ+ ≤ 0]" and (fallback["low"], fallback["high"]) == (0, 1)


def test_a_click_on_the_stability_map_picks_the_point_and_redraws_mu():
    """Bokeh's tap event on the map (the Panel page's callback) sets (w, v), clamped to the
    window; μ±(x) is redrawn for it from the closed form (engine.stability.mu_pm)."""
    from app.pages.stability import StabilityPage
    from engine import stability as st

    page = StabilityPage(query={"resolution": "10", "pullback_points": "1000",
                                "pullback_time": "1000"})
    try:
        page._on_tap_event(types.SimpleNamespace(x=1.25, y=2.7))
        assert (page.state.w0, page.state.v0) == (1.25, 2.0)
        src = page._mu_fig.select_one({"name": "stab-mu-curves"}).data
        lo, hi = st.mu_pm(np.asarray(src["x"]), 1.25, 2.0)
        np.testing.assert_allclose(src["mu_plus"], hi)
        np.testing.assert_allclose(src["mu_minus"], lo)
        assert page._mu_fig.title.text.startswith("μ±(x; w = 1.25, v = 2.00)")
        marker = page._map_fig.select_one({"name": "stab-map-marker"}).data
        assert (marker["w"], marker["v"]) == ([1.25], [2.0])
    finally:
        page.cleanup()

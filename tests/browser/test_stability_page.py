"""The stability page in a real browser (issue 3's browser acceptance tests)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PI_SUM = """() => { for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (m.data && m.data.image && m.data.pi_finite_lr) {
        let s = 0; for (const v of m.data.image[0]) if (Number.isFinite(v)) s += v; return s; } }
    return null; }"""
MU_CURVES = """() => { const out = []; for (const doc of Bokeh.documents) {
    const m = doc.get_model_by_name('stab-mu-curves');
    if (m && m.data.x && m.data.x.length > 500) out.push(Array.from(m.data.mu_plus).slice(0, 400)); }
    return out; }"""


def _open(probe, url):
    page = probe.page
    page.goto(url)
    page.wait_for_function("() => location.search.includes('page=stability')", timeout=60_000)
    page.wait_for_function(f"() => ({PI_SUM})() > 0", timeout=60_000)  # the map has arrived
    page.wait_for_function(f"() => ({MU_CURVES})().length > 0", timeout=60_000)  # and μ±(x)
    return page


def test_stability_page_renders_and_click_picks_the_point(server, probe):
    page = _open(probe, server + "?page=stability&pullback_points=2000&pullback_time=1000")
    before = page.evaluate(MU_CURVES)
    assert before
    assert page.get_by_text("(w, v) = (0.500, 0.500)").count() == 1
    boxes = [page.locator("canvas").nth(i).bounding_box() for i in range(page.locator("canvas").count())]
    plots = sorted({(b["x"], b["y"], b["width"], b["height"]) for b in boxes if b and b["width"] > 200},
                   key=lambda b: (b[1], b[0]))
    x, y, w, h = plots[1]  # first row: μ± plot, then the π map
    page.mouse.click(x + 0.45 * w, y + 0.3 * h)
    page.wait_for_function("() => !location.search.includes('w0=0.5&')", timeout=10_000)
    page.wait_for_timeout(1000)
    assert page.get_by_text("(w, v) = (0.500, 0.500)").count() == 0  # the point moved
    after = page.evaluate(MU_CURVES)
    assert any(c not in before for c in after)  # and μ±(x) was redrawn for it
    assert probe.errors == [] and probe.external == []


def test_lower_sigma2_shrinks_the_attracting_region(server, probe):
    page = _open(probe, server + "?page=stability&sigma2=1&pullback_points=1000&pullback_time=1000")
    strong = page.evaluate(PI_SUM)
    box = page.locator("input").nth(1)  # σ² is the second editable slider of the sidebar
    assert box.input_value() == "1"
    box.fill("0.1")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('sigma2=0.1')", timeout=10_000)
    page.wait_for_function(f"() => ({PI_SUM})() < {0.5 * strong}", timeout=60_000)
    weak = page.evaluate(PI_SUM)
    assert weak < 0.5 * strong  # paper 000 Fig. 3 right: the dark region disappears at 0.1
    page.wait_for_function("() => document.querySelector('body') !== null")
    assert probe.errors == []


def test_pullback_cloud_shows_its_trapped_fraction(server, probe):
    """The fraction shown is the engine's: the share of the cloud's paths (the same link
    values through :func:`engine.pullback.pullback_cloud`) nearer than the threshold to
    M_wv, to the one decimal shown."""
    import numpy as np

    from engine import pullback

    link = dict(sigma2=1.0, lr=0.1, seed=3, pullback_points=3000, pullback_time=1000,
                trapped_distance=0.15)
    page = _open(probe, server + "?page=stability&" + "&".join(f"{k}={v}" for k, v in link.items()))
    page.wait_for_selector("#trapped-fraction", timeout=60_000)
    shown = page.locator("#trapped-fraction").inner_text()
    ds = pullback.pullback_cloud(link["sigma2"], link["pullback_time"], lr=link["lr"],
                                 n_points=link["pullback_points"], seed=link["seed"])
    want = float(np.mean(ds.distance.values < link["trapped_distance"]))
    assert 0 < want < 1  # (a fraction of 0 or 1 would not tell a wrong threshold apart)
    assert shown == f"{100 * want:.1f} %", (shown, want)
    assert probe.errors == []


#: the trapped-cluster rings of the pullback cloud: [share %, marker size in px] per ring, of
#: the renderers on screen (a replaced plot's models may linger in the document for a while)
TRAPPED_RINGS = """() => { const out = [];
    for (const v of Bokeh.index.query((v) => v.model instanceof Bokeh.Models.GlyphRenderer)) {
        const r = v.model, data = r.data_source && r.data_source.data;
        if (!r.glyph || !r.glyph.size || !data || !data.share || !r.visible) continue;  // not the labels
        const size = r.glyph.size, field = size && size.field;
        Array.from(data.share).forEach((s, i) => out.push(
            [s, field ? data[field][i] : (size && size.value !== undefined ? size.value : size)])); }
    return out; }"""


def test_trapped_cluster_of_the_pullback_cloud_is_marked(server, probe):
    # σ² = 1, η = 0.1 (paper 000 Fig. 4): after τ_pb = 10⁴ about 40 % of the paths are
    # trapped near M_wv or its mirror copy
    page = _open(probe, server + "?page=stability&sigma2=1&lr=0.1&pullback_points=1000"
                                 "&pullback_time=10000")
    page.wait_for_selector("#trapped-fraction", timeout=60_000)
    frac = float(page.locator("#trapped-fraction").inner_text().rstrip(" %"))
    assert frac > 0
    try:
        # rings drawn, each with its size (not a plot caught halfway through a redraw, whose
        # glyphs may for a moment carry another layer's fixed size)
        page.wait_for_function(f"() => {{ const r = ({TRAPPED_RINGS})(); return r.length > 0 && "
                               f"r.every(([s, z]) => Number.isFinite(s) && z >= 12); }}",
                               timeout=30_000)
    except Exception:
        pass  # the assertion below says what is missing
    rings = page.evaluate(TRAPPED_RINGS)
    assert rings, "no marker shows where the trapped paths are"
    assert all(size >= 12 for _, size in rings), rings
    assert 0.5 * frac <= sum(s for s, _ in rings) / 2 <= frac + 0.1  # a (w) and a (v) ring each
    assert probe.errors == []


def test_the_point_opens_in_live_trajectories(server, probe):
    page = _open(probe, server + "?page=stability&sigma2=0.7&lr=0.05&pullback_points=1000&pullback_time=1000")
    page.get_by_text("Open in live trajectories").click()
    page.wait_for_function("() => location.search.includes('page=trajectories') && "
                           "location.search.includes('n_data=')", timeout=60_000)
    for q in ("sigma2=0.7", "lr=0.05", "start=point", "w0=0.5", "v0=0.5"):
        assert q in page.url
    page.get_by_role("button", name="Step").click()
    probe.wait_steps(500)
    assert probe.step_count() == 500
    assert probe.errors == []

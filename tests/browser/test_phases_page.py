"""The phase-diagram page of paper 002 in a real browser (issue 4's browser tests)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PHASE_SUM = """() => { let best = null;
    for (const doc of Bokeh.documents) for (const m of doc.all_models) {
        if (m.data && m.data.image && m.data.lyap_minus) {
            let s = 0; for (const v of m.data.image[0]) if (Number.isFinite(v)) s += v; best = s; } }
    return best; }"""


def _open(probe, url):
    page = probe.page
    page.goto(url)
    page.wait_for_function("() => location.search.includes('page=phases')", timeout=60_000)
    page.wait_for_function(f"() => ({PHASE_SUM})() !== null", timeout=90_000)
    return page


def test_phase_map_renders_and_follows_s(server, probe):
    page = _open(probe, server + "?page=phases&resolution=48")
    before = page.evaluate(PHASE_SUM)
    box = page.locator("input").nth(0)  # S, the first editable slider of the sidebar
    box.fill("16")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('batch_size=16')", timeout=10_000)
    page.wait_for_function(f"() => ({PHASE_SUM})() !== {before}", timeout=60_000)
    assert probe.errors == [] and probe.external == []


def test_clicking_a_cell_simulates_it(server, probe):
    page = _open(probe, server + "?page=phases&resolution=32")
    assert page.get_by_text("Theory: phase").count() == 1
    boxes = [page.locator("canvas").nth(i).bounding_box() for i in range(page.locator("canvas").count())]
    plots = sorted({(b["x"], b["y"], b["width"], b["height"]) for b in boxes if b and b["width"] > 200},
                   key=lambda b: (b[1], b[0]))
    x, y, w, h = plots[0]  # the λ–μ map is the first plot
    page.mouse.click(x + 0.2 * w, y + 0.85 * h)  # small η, small μ
    page.wait_for_function("() => !location.search.includes('lr=0.5&')", timeout=10_000)
    page.wait_for_timeout(1500)
    assert page.get_by_text("simulation (200 runs").count() == 1
    assert page.get_by_text("saddle SGD at η = 0.5,").count() == 0  # the simulation moved
    assert probe.errors == []

"""The overfitting page in a real browser (issue 6: the page renders; changing τ changes the curves)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

CURVE_SUM = """() => { let s = 0; for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (m.data && m.data['error']) for (const v of m.data['error']) if (isFinite(v)) s += v; return s; }"""


def test_tau_changes_the_curves(server, probe):
    page = probe.page
    page.goto(server + "?page=overfit&n_steps=20000&n_data=40&compare_clean=false")
    page.wait_for_selector("#overfit-done", timeout=90_000)
    probe.wait_drawn()
    page.wait_for_timeout(500)
    before = page.evaluate(CURVE_SUM)
    assert before > 0
    box = page.locator("input").first  # τ, the first control of the sidebar
    box.fill("0.6")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('label_noise=0.6')", timeout=30_000)
    page.wait_for_selector("#overfit-done", timeout=90_000)
    page.wait_for_function(f"() => Math.abs(({CURVE_SUM})() - {before}) > 1e-6", timeout=30_000)
    assert page.get_by_text("R is smallest").count() >= 1
    assert probe.errors == [] and probe.external == []

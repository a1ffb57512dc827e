"""The overfitting page in a real browser (issue 6: the page renders; changing τ changes the curves)."""

from __future__ import annotations

import pytest

from .conftest import enter_value, results_probe, shown_then_recomputed

pytestmark = pytest.mark.browser

CURVE_SUM = """() => { let s = 0; for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (m.data && m.data['error']) for (const v of m.data['error']) if (isFinite(v)) s += v; return s; }"""
#: the data points of the learning curves drawn now, and the opacity of the frame of plots
RESULTS = results_probe("error", "atlas-results")


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


def test_the_released_preset_completes(server, probe):
    """The dataset released with paper 001 (its preset once failed for every run): both runs
    finish, the plots have their curves, no failure is reported."""
    page = probe.page
    page.goto(server + "?page=overfit&preset=released")
    page.wait_for_selector("#overfit-done", timeout=300_000)
    assert "complete: 2 runs" in page.locator("#overfit-done").inner_text()
    probe.wait_drawn()
    page.wait_for_function(f"() => ({CURVE_SUM})() > 0", timeout=30_000)
    assert page.get_by_text("R is smallest").count() == 2  # both runs' summaries
    assert page.get_by_text("failed").count() == 0
    assert probe.errors == [] and probe.external == []


def test_recomputing_keeps_the_previous_curves_dimmed(server, probe):
    """A τ change: the old curves stay on screen, dimmed, until the new run's first partial
    result replaces them at full opacity — never an empty plot in between."""
    page = probe.page
    # the plots sampled every 20 ms from the moment τ is sent until the new run is shown
    samples = shown_then_recomputed(
        probe, server + "?page=overfit&n_steps=2000000&n_data=300&compare_clean=false&seed=3",
        RESULTS, lambda p: enter_value(p, "label_noise", "0.55"), "overfit-done")
    dimmed = [s for s in samples if s["opacity"] < 1]
    assert dimmed, "the plots were never dimmed while recomputing"
    assert all(s["opacity"] == pytest.approx(0.4) for s in dimmed)
    assert min(s["points"] for s in samples) > 0  # the old curves stayed until replaced
    last_dim = max(i for i, s in enumerate(samples) if s["opacity"] < 1)
    assert samples[-1]["opacity"] == 1 and last_dim < len(samples) - 1
    assert page.get_by_text("R is smallest").count() >= 1
    assert probe.errors == [] and probe.external == []

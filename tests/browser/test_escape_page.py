"""The escape-time page in a real browser (issue 5's browser test: a reduced curve completes)."""

from __future__ import annotations

import re

import pytest

from .conftest import enter_value, results_probe, shown_then_recomputed

pytestmark = pytest.mark.browser

#: the σ² points drawn now, and the opacity of the Fig. 5 tab's frame of plots
FIG5 = results_probe("σ²", "atlas-fig5-results")
#: every text the power-law tab's status line shows, from the start of the page
STATUS_LOG = """window.__statuses = [];
setInterval(() => {
    if (!window.Bokeh || !Bokeh.index) return;
    for (const v of Bokeh.index.query((v) => typeof v.model.text === 'string'
                                            && v.model.text.includes('curves and points'))) {
        if (window.__statuses[window.__statuses.length - 1] !== v.model.text)
            window.__statuses.push(v.model.text); } }, 20);"""


def test_a_reduced_curve_completes(server, probe):
    page = probe.page
    page.goto(server + "?page=escape&n_trajectories=30&max_steps=3000&n_sigma2=4")
    page.wait_for_function("() => location.search.includes('page=escape')", timeout=60_000)
    page.wait_for_selector("#escape-done", timeout=90_000)
    assert "complete: 4" in page.locator("#escape-done").inner_text()
    probe.wait_drawn()
    n = page.evaluate("""() => { let n = 0; for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (m.data && m.data['σ²'] && m.data['σ²'].length) n += m.data['σ²'].length; return n; }""")
    assert n >= 4  # the points are behind the plots
    assert probe.errors == [] and probe.external == []


def test_the_power_law_tab_from_a_link(server, probe):
    """Paper 003 Fig. 3 opened by a link: both plots fill in and the lists survive in the URL."""
    page = probe.page
    page.goto(server + "?page=escape&view=powerlaw&fp_runs=20&fp_dims=1,2&phi_chains=2"
              "&phi_samples=200&phi_lrs=0.1&phi_batches=1,2")
    page.wait_for_selector("#powerlaw-done", timeout=90_000)
    assert "complete: 4" in page.locator("#powerlaw-done").inner_text()
    probe.wait_drawn()
    assert page.get_by_text("d = 2: slope").count() >= 1  # legend of the t_p plot
    page.wait_for_function("() => location.search.includes('view=powerlaw')", timeout=20_000)
    assert "fp_dims" in page.evaluate("() => decodeURIComponent(location.search)")
    assert probe.errors == [] and probe.external == []


def test_the_power_law_tab_estimates_the_time_left(server, probe):
    """While the tab computes, the status says how long is left once a task is done."""
    page = probe.page
    page.goto(server + "?page=escape&view=powerlaw&fp_runs=300&fp_dims=1,2,3&phi_chains=8"
              "&phi_samples=4000&phi_lrs=0.1&phi_batches=1,2&pl_seed=7")
    page.wait_for_selector("#powerlaw-done", timeout=120_000)
    probe.wait_drawn()
    page.evaluate(f"() => {{ {STATUS_LOG} }}")
    box = page.locator(".atlas-pl_seed input").first  # a new seed: five new tasks
    box.fill("8")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('pl_seed=8')", timeout=30_000)
    page.wait_for_selector("#powerlaw-done", state="detached", timeout=30_000)
    page.wait_for_selector("#powerlaw-done", timeout=120_000)
    statuses = page.evaluate("() => window.__statuses")
    estimates = [s for s in statuses if re.fullmatch(
        r"[1-4] of 5 curves and points done · about \d+ (s|min) left", s)]
    assert estimates, "\n".join(statuses)
    assert not any("left" in s for s in statuses if "0 of 5" in s)  # nothing to go on yet
    assert probe.errors == [] and probe.external == []


def test_a_recomputed_curve_keeps_the_previous_points_dimmed(server, probe):
    """A new seed: the previous σ² points stay, dimmed, until the first new point arrives."""
    samples = shown_then_recomputed(
        probe, server + "?page=escape&n_trajectories=60&max_steps=3000&n_sigma2=4&seed=5",
        FIG5, lambda p: enter_value(p, "seed", "6"), "escape-done")
    assert any(s["opacity"] < 1 for s in samples), "the plots were never dimmed"
    assert min(s["points"] for s in samples) > 0  # the old points stayed until replaced
    assert samples[-1]["opacity"] == 1
    assert probe.errors == [] and probe.external == []

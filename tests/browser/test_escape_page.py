"""The escape-time page in a real browser (issue 5's browser test: a reduced curve completes)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


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

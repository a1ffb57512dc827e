"""The page scrolls under the mouse wheel and a finger; no plot captures them until asked
(issue 15, item 5: the wheel over the phase map zoomed it into an empty frame, and a swipe
over a plot panned it instead of scrolling a phone's page)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

#: every Bokeh plot of the page: its title, active drag/scroll tools and x range
PLOTS = """() => [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].map((v) => {
    const tb = v.model.toolbar, r = v.el.getBoundingClientRect();
    return {title: v.model.title ? v.model.title.text : '',
            drag: tb.active_drag ? tb.active_drag.type : (tb.active_drag === 'auto' ? 'auto' : null),
            scroll: tb.active_scroll ? tb.active_scroll.type : (tb.active_scroll === 'auto' ? 'auto' : null),
            wheel: tb.tools.some((t) => t.type === 'WheelZoomTool'),
            x0: v.model.x_range.start, x1: v.model.x_range.end,
            left: r.left, top: r.top, width: r.width, height: r.height}; })"""

#: how far the page has scrolled, whichever element of the template scrolls
SCROLLED = """() => window.scrollY + [...document.querySelectorAll('*')].reduce(
    (a, e) => a + e.scrollTop, 0)"""

#: where the template's (sticky) header ends
HEADER_BOTTOM = """() => { const h = document.querySelector('#header, nav.navbar, header');
    return h ? h.getBoundingClientRect().bottom : 0; }"""

PAGES = {
    "trajectories": "?page=trajectories",
    "stability": "?page=stability&resolution=20&pullback_points=1000&pullback_time=1000",
    "phases": "?page=phases&resolution=24",
    "escape": "?page=escape&preset=quick&n_trajectories=20&max_steps=2000&n_sigma2=3",
    "overfit": "?page=overfit&n_steps=20000",
}


def _drawn(page, at_least: int):
    page.wait_for_function(f"() => window.Bokeh && ({PLOTS})().length >= {at_least}",
                           timeout=90_000)
    page.wait_for_selector(".atlas-drawing", state="detached", timeout=90_000)
    page.wait_for_timeout(500)
    return page.evaluate(PLOTS)


@pytest.mark.parametrize("slug", list(PAGES))
def test_no_plot_has_an_active_wheel_or_drag_tool(server, probe, slug):
    page = probe.page
    page.goto(server + PAGES[slug])
    plots = _drawn(page, 2)
    assert plots
    for p in plots:
        assert p["drag"] is None and p["scroll"] is None, p
    assert any(p["wheel"] for p in plots)  # the toolbar still offers wheel zoom
    assert probe.errors == [] and probe.external == []


def test_the_wheel_over_the_phase_map_scrolls_the_page_until_the_map_is_clicked(server, probe):
    page = probe.page
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(server + PAGES["phases"])
    plots = _drawn(page, 3)
    phase_map = next(p for p in plots if p["title"].startswith("λ–μ"))
    assert page.evaluate(SCROLLED) == 0
    x = phase_map["left"] + phase_map["width"] / 2
    y = phase_map["top"] + phase_map["height"] / 2
    assert y < 720, "the map is on the first screen"
    page.mouse.move(x, y)
    page.mouse.wheel(0, 120)
    page.wait_for_timeout(600)
    assert page.evaluate(SCROLLED) > 0  # the page scrolled…
    after = next(p for p in page.evaluate(PLOTS) if p["title"].startswith("λ–μ"))
    assert (after["x0"], after["x1"]) == (phase_map["x0"], phase_map["x1"])  # …not the map
    # a click on the map arms its wheel zoom (and picks that cell, as a click always does)
    visible_top = max(after["top"], page.evaluate(HEADER_BOTTOM))
    page.mouse.click(x, (visible_top + after["top"] + after["height"]) / 2)
    page.wait_for_timeout(300)
    armed = next(p for p in page.evaluate(PLOTS) if p["title"].startswith("λ–μ"))
    assert armed["scroll"] == "WheelZoomTool"
    assert probe.errors == []

"""The map and curve pages in class mode (``/class?page=<slug>``, app/classpages.py, issue 17)
in a real browser: each page built once and served as static HTML, its views drawn from
``/api/view``; 0 console errors, 0 requests off the server, a click on each map updates its
detail view, a class link's locks hold, a long computation shows progress and can be cancelled."""

from __future__ import annotations

import math
import random

import pytest

from .conftest import PageProbe

pytestmark = pytest.mark.browser

#: small links that finish in seconds (the page's every view)
LINKS = {
    "stability": "resolution=16&pullback_time=1000&pullback_points=2000",
    "phases": "resolution=16",
    "escape": "n_trajectories=30&max_steps=3000&n_sigma2=4",
    "overfit": "n_steps=20000&n_data=40&compare_clean=false",
}
POWERLAW = ("fp_runs=20&fp_dims=1,2&phi_chains=2&phi_samples=200&phi_lrs=0.1&phi_batches=1,2"
            "&fp_max_steps=100000")

#: where a click lands: the page fraction (fx, fy) of the named figure's frame, from its left
#: and its bottom
FRAME_POINT = """([name, fx, fy]) => {
    const v = [...Bokeh.index.query((v) => v.model.name === name)][0];
    const r = v.el.getBoundingClientRect(), b = v.frame.bbox;
    return {x: r.left + b.left + fx * b.width, y: r.top + b.top + (1 - fy) * b.height}; }"""


def class_url(server: str, slug: str, query: str = "") -> str:
    return server.rsplit("/app", 1)[0] + f"/class?page={slug}" + (f"&{query}" if query else "")


class ClassPageProbe(PageProbe):
    def open(self, url: str, views=None):
        """Open the page and wait until ``views`` (default: every view the page asked for on
        opening) are drawn."""
        self.page.goto(url)
        self.page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0",
                                    timeout=60_000)
        self.wait_views(views)
        return self.page

    def wait_views(self, views=None, state="done", timeout: float = 120.0):
        names = views or self.page.evaluate(
            "() => Object.keys(JSON.parse(document.getElementById('atlas-config').textContent).views)"
            ".filter((w) => { const c = JSON.parse(document.getElementById('atlas-config').textContent);"
            " const t = c.when[w]; return !t || String(c.values[t[0]]) === t[1]; })")
        for what in names:
            key = "".join(p.capitalize() if i else p for i, p in enumerate(what.replace("-", "_").split("_")))
            self.page.wait_for_function(
                f"() => document.body.dataset['{key}Drawn'] === '{state}'", timeout=1000 * timeout)

    def click_frame(self, figure: str, fx: float, fy: float) -> None:
        at = self.page.evaluate(FRAME_POINT, [figure, fx, fy])
        self.page.mouse.click(at["x"], at["y"])

    def html(self, element_id: str) -> str:
        return self.page.locator(f"#{element_id}").inner_text()

    def title(self, figure: str) -> str:
        return self.page.evaluate(
            f"() => Bokeh.documents[0].get_model_by_name('{figure}').title.text")


@pytest.fixture
def cpage(browser):
    p = ClassPageProbe(browser)
    yield p
    p.close()


@pytest.mark.parametrize("slug", sorted(LINKS))
def test_each_page_renders_offline_without_console_errors(server, cpage, slug):
    page = cpage.open(class_url(server, slug, LINKS[slug]))
    page.wait_for_timeout(500)
    n_plots = page.evaluate(
        "() => [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].length")
    assert n_plots >= 2
    assert cpage.n_points() > 20, "the views' columns were not drawn"
    assert cpage.errors == []
    assert cpage.external == [], "classrooms are offline: everything must be served locally"
    assert f"page={slug}" in page.url  # the validated values are written into the URL


def test_stability_a_click_on_the_map_picks_the_point(server, cpage):
    """Click at 3/4 of the map's width and 1/10 of its height: (w, v) ≈ (1.5, 0.2) on [0, 2]²;
    μ±(x) is redrawn for it, the point's π and λ are computed for it, and the URL keeps it."""
    page = cpage.open(class_url(server, "stability", LINKS["stability"]))
    assert "(w, v) = (0.500, 0.500)" in cpage.html("stab-point")
    cpage.click_frame("stab-fig-map", 0.75, 0.1)
    page.wait_for_function("() => document.getElementById('stab-point').textContent.includes('(1.5')",
                           timeout=30_000)
    cpage.wait_views(["point", "mu"])
    text = cpage.html("stab-point")
    w, v = (float(x) for x in text.split("(w, v) = (")[1].split(")")[0].split(","))
    assert abs(w - 1.5) < 0.03 and abs(v - 0.2) < 0.03
    assert "λ =" in text and "computing" not in text
    assert cpage.title("stab-fig-mu").startswith(f"μ±(x; w = {w:.2f}, v = {v:.2f})")
    assert f"w0={w:g}" in page.url.replace("%2C", ",") or f"w0={round(w, 4)}" in page.url
    assert cpage.errors == []


def test_stability_a_class_links_locks_hold(server, cpage):
    """``lock=sigma2,w0&hide=advanced``: σ² and w cannot be changed — their boxes are disabled,
    a click on the map moves only v —, the advanced controls are hidden, the note says so."""
    page = cpage.open(class_url(server, "stability",
                                LINKS["stability"] + "&sigma2=0.5&lock=sigma2,w0&hide=advanced"))
    assert page.locator("#ctl-sigma2").is_disabled() and page.locator("#ctl-w0").is_disabled()
    assert not page.locator("#ctl-lr").is_disabled()
    assert "σ²" in page.locator("#lock-note").inner_text()
    assert not page.locator(".atlas-resolution").is_visible()
    assert not page.locator(".atlas-seed").is_visible()
    cpage.click_frame("stab-fig-map", 0.3, 0.9)  # (the legend sits top right)
    page.wait_for_function("() => document.getElementById('stab-point').textContent.includes('0.500, 1.')",
                           timeout=30_000)
    assert page.locator("#ctl-w0").input_value() == "0.5"
    assert page.locator("#ctl-sigma2").input_value() == "0.5"
    assert "lock=sigma2%2Cw0" in page.url or "lock=sigma2,w0" in page.url
    assert cpage.errors == []


def test_stability_a_long_cloud_shows_progress_and_cancels(server, cpage):
    seed = random.randint(10**6, 10**7)  # never in any cache
    page = cpage.open(class_url(server, "stability",
                                f"resolution=16&pullback_time=100000&pullback_points=100000&seed={seed}"),
                      views=["maps", "mu"])
    box = page.locator('[data-progress="cloud"]')
    page.wait_for_function(
        "() => document.querySelector('[data-progress=\"cloud\"]').dataset.state === 'running'",
        timeout=30_000)
    assert "computing" in box.locator(".status").inner_text()
    box.locator(".cancel").click()
    page.wait_for_function(
        "() => document.querySelector('[data-progress=\"cloud\"]').dataset.state === 'cancelled'",
        timeout=10_000)
    assert box.locator(".resume").is_visible()
    assert cpage.errors == []


def _source(page, name: str, column: str) -> list:
    return page.evaluate(f"() => Array.from(Bokeh.documents[0].get_model_by_name('{name}')"
                         f".data['{column}'] || [])")


def test_escape_the_tab_and_the_lists_of_choices(server, cpage):
    """The power-law tab from the menu: its curves are asked for only then, one per checked
    d; unchecking d = 2 leaves one curve (paper 003 Fig. 3b), and the URL follows."""
    page = cpage.open(class_url(server, "escape", LINKS["escape"] + "&" + POWERLAW))
    assert page.locator('[data-progress="powerlaw"]').is_hidden()
    assert page.locator('[data-progress="powerlaw"]').get_attribute("data-state") is None
    page.locator("#ctl-view").select_option("powerlaw")
    cpage.wait_views(["powerlaw"])
    assert page.locator('[data-progress="curve"]').is_hidden()
    assert len(_source(page, "escape-passage-d1-points", "c")) > 0
    assert len(_source(page, "escape-passage-d2-points", "c")) > 0
    assert "slope" in cpage.html("escape-pl-summary")
    page.locator('[data-list="fp_dims"] input[value="2"]').uncheck()
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('escape-passage-d2-points')"
                           ".data.c.length === 0", timeout=60_000)
    assert len(_source(page, "escape-passage-d1-points", "c")) > 0
    assert "fp_dims=1&" in page.url and "view=powerlaw" in page.url
    assert cpage.errors == []


def test_overfit_a_change_of_tau_redraws_the_curves(server, cpage):
    """τ = 0.2 → 0: the learning curves are those of the other run (the noisy labels learnt or
    not): R at the end differs, and the legend says τ = 0."""
    page = cpage.open(class_url(server, "overfit", LINKS["overfit"]))
    before = _source(page, "overfit-curves-R0", "error")
    assert len(before) > 10
    page.locator("#ctl-label_noise").fill("0")
    page.locator("#ctl-label_noise").dispatch_event("change")
    page.wait_for_function("() => (Bokeh.documents[0].get_model_by_name('overfit-curves-R0')"
                           ".data.label || [])[0] === 'R, τ = 0'", timeout=60_000)
    cpage.wait_views(["runs"])
    after = _source(page, "overfit-curves-R0", "error")
    assert after[-1] != before[-1]
    assert "label_noise=0" in page.url
    assert cpage.errors == []


#: the phase code (0 … 4: Ia, Ib, II, III, IV) of the λ–μ map's cell at (log10 η, μ)
PHASE_AT = """([x, y]) => { const d = Bokeh.documents[0].get_model_by_name('phases-map-image').data;
    const img = d.image[0], [ny, nx] = img.shape;
    const i = Math.floor((x - d.x[0]) / d.dw[0] * nx), j = Math.floor((y - d.y[0]) / d.dh[0] * ny);
    return img[j * nx + i]; }"""


def test_phases_a_click_on_the_map_simulates_that_cell(server, cpage):
    """A click at (log10 η, μ) ≈ (−1.7, 0.9): the × moves there, the saddle is simulated there,
    and the verdict's theoretical phase is the map's colour at that cell (Prop. 1 of paper 002)."""
    page = cpage.open(class_url(server, "phases", LINKS["phases"]))
    cpage.click_frame("phases-fig-map", 0.1, 0.9)  # the window is log10 η ∈ [−2, 1], μ ∈ [0, 1]
    page.wait_for_function("() => !/[?&]lr=0.5(&|$)/.test(location.search)", timeout=10_000)
    cpage.wait_views(["cell", "marker"])
    lr, mu = (float(page.evaluate(f"() => new URLSearchParams(location.search).get('{k}')"))
              for k in ("lr", "mu"))
    assert abs(math.log10(lr) + 1.7) < 0.05 and abs(mu - 0.9) < 0.03
    marker = {k: _source(page, "phases-map-marker", k) for k in ("x", "y")}
    assert abs(marker["x"][0] - math.log10(lr)) < 1e-3 and abs(marker["y"][0] - mu) < 1e-3
    assert cpage.title("phases-fig-sim").startswith(f"saddle SGD at η = {lr:.3g}, μ = {mu:.3f}")
    code = page.evaluate(PHASE_AT, [math.log10(lr), mu])
    phase = ["Ia", "Ib", "II", "III", "IV"][int(code)]
    assert f"Theory: phase {phase} " in cpage.html("phases-verdict")
    assert cpage.errors == []


def test_phases_a_box_zoom_recomputes_the_region(server, cpage):
    """Drag the box-zoom tool over the middle of the map: the map is computed again for that
    region (its image spans the box), and the URL keeps the region."""
    page = cpage.open(class_url(server, "phases", LINKS["phases"]))
    box = page.locator(".bk-tool-icon-box-zoom").first
    if box.count() == 0:  # (the toolbar lives in the plot's shadow DOM)
        box = page.get_by_title("Box Zoom").first
    box.click()
    a = page.evaluate(FRAME_POINT, ["phases-fig-map", 0.3, 0.3])
    b = page.evaluate(FRAME_POINT, ["phases-fig-map", 0.6, 0.7])
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move((a["x"] + b["x"]) / 2, (a["y"] + b["y"]) / 2, steps=5)
    page.mouse.move(b["x"], b["y"], steps=5)
    page.mouse.up()
    page.wait_for_function("() => new URLSearchParams(location.search).has('log_lr_range')",
                           timeout=10_000)
    cpage.wait_views(["map"])
    lo, hi = (float(v) for v in page.evaluate(
        "() => new URLSearchParams(location.search).get('log_lr_range')").split(","))
    assert abs(lo - (-2 + 0.3 * 3)) < 0.1 and abs(hi - (-2 + 0.6 * 3)) < 0.1
    image = {k: _source(page, "phases-map-image", k)[0] for k in ("x", "dw")}
    assert abs(image["x"] - lo) < 0.05 and abs(image["x"] + image["dw"] - hi) < 0.05
    assert cpage.errors == []


@pytest.mark.parametrize("slug", sorted(LINKS))
def test_each_pages_locks_and_hidden_controls_hold(server, cpage, slug):
    """``lock=<the first control>&hide=advanced`` on every page: the locked control is disabled
    with its value kept and the note names it; every advanced control is hidden."""
    from app.classpages import fields_of, page_class, spec

    first = spec(slug).sections[0][2][0]
    advanced = [f for f in page_class(slug).advanced if f in fields_of(slug)]
    page = cpage.open(class_url(server, slug, LINKS[slug] + f"&lock={first}&hide=advanced"))
    assert page.locator(f"#ctl-{first}").is_disabled()
    assert page.locator("#lock-note").is_visible()
    assert advanced and all(not page.locator(f".atlas-{f}").is_visible() for f in advanced)
    assert f"lock={first}" in page.url and "hide=advanced" in page.url
    assert cpage.errors == []

"""The live page's class mode (``/class?page=trajectories&…``, app/classmode.py) in a real
browser: the page built once and served as static HTML, its frames from ``/api/live/frame``."""

from __future__ import annotations

import math
import re
import time

import pytest

from .conftest import PageProbe

pytestmark = pytest.mark.browser

#: the page's first frame is drawn: the API named its run (the netCDF link carries the name)
#: and the five Bokeh plots have views
FIRST_FRAME = """() => { const a = document.getElementById('export-nc');
    return !!(a && /[?&]run=[0-9a-f]{32}/.test(a.getAttribute('href') || '')
        && window.Bokeh && Bokeh.documents.length > 0
        && [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].length >= 5); }"""

#: the trajectories' heads on both planes, by source name (works on the Panel page too)
HEADS = """() => { const out = {};
    for (const doc of Bokeh.documents) for (const key of ['w', 'v']) {
        const src = doc.get_model_by_name('live-' + key + '-heads');
        if (src && !out[key]) out[key] = Object.fromEntries(
            Object.entries(src.data).map(([k, v]) => [k, Array.from(v)])); }
    return out; }"""

WHERE_TITLE = "Bokeh.documents[0].get_model_by_name('live-fig-where').title.text"
#: the π map's image as Bokeh's Image glyph needs it (a 2-D NDArray): its shape, else null
#: ([2, 2] is the "computing…" placeholder)
WHERE_IMAGE_SHAPE = """() => { const img = Bokeh.documents[0].get_model_by_name('live-where-image').data.image[0];
    return img && img.dimension === 2 ? Array.from(img.shape) : null; }"""

N_PLOTS = "() => [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].length"


def class_url(server: str, query: str = "") -> str:
    """The class mode's address: ``/class`` beside the server's ``/app``."""
    return server.rsplit("/app", 1)[0] + "/class?page=trajectories" + (f"&{query}" if query else "")


class ClassProbe(PageProbe):
    """A :class:`PageProbe` on the class page (no ``.atlas-drawing``, its frame comes from the API)."""

    def open(self, url: str):
        self.page.goto(url)
        self.wait_first_frame()
        return self.page

    def wait_first_frame(self, timeout: float = 60.0) -> None:
        self.page.wait_for_function(FIRST_FRAME, timeout=1000 * timeout)

    def step(self, to: int) -> None:
        """Press Step and wait for the counter to read ``to``."""
        self.page.locator("#step").click()
        self.page.wait_for_function(
            f"() => document.getElementById('step-count').textContent.replace(/,/g, '') === '{to}'",
            timeout=30_000)

    def heads(self) -> dict:
        return self.page.evaluate(HEADS)

    def alert(self) -> str:
        return self.page.locator("#alert").inner_text()


@pytest.fixture
def cprobe(browser):
    p = ClassProbe(browser)
    yield p
    p.close()


def _close(a: dict, b: dict, rel: float = 1e-6) -> bool:
    if a.keys() != b.keys():
        return False
    for key, cols in a.items():
        if cols.keys() != b[key].keys():
            return False
        for col, x in cols.items():
            y = b[key][col]
            if len(x) != len(y) or not all(math.isclose(p, q, rel_tol=rel, abs_tol=1e-30)
                                           for p, q in zip(x, y)):
                return False
    return True


# -- 1 ---------------------------------------------------------------------------------------------
def test_class_page_renders_offline_without_console_errors(server, cprobe):
    page = cprobe.open(class_url(server))
    page.wait_for_timeout(500)  # late requests (the π map) and late errors
    assert "SGD Atlas" in page.title()
    assert page.evaluate(N_PLOTS) >= 5
    play = page.locator("#play")
    assert play.evaluate("(el) => el.tagName") == "BUTTON"
    assert "Play" in play.inner_text()
    assert cprobe.step_count() == 0
    assert cprobe.errors == []
    assert cprobe.external == [], "classrooms are offline: everything must be served locally"


# -- 2 ---------------------------------------------------------------------------------------------
def test_play_runs_and_pauses(server, cprobe):
    page = cprobe.open(class_url(server, "steps_per_frame=300&frame_ms=100"))
    before = cprobe.heads()
    assert len(before["w"]["w1"]) > 0
    page.locator("#play").click()
    page.wait_for_function("() => document.getElementById('play').textContent.includes('Pause')",
                           timeout=5_000)
    cprobe.wait_steps(900, timeout=30)
    page.locator("#play").click()
    page.wait_for_function("() => document.getElementById('play').textContent.includes('Play')",
                           timeout=10_000)
    assert cprobe.step_count() >= 900
    assert cprobe.heads() != before, "the trajectories' heads did not move"
    assert "lr=" in page.url and "steps_per_frame=300" in page.url
    assert cprobe.errors == []


# -- 3 ---------------------------------------------------------------------------------------------
def test_a_link_reproduces_its_run_and_matches_the_panel_page(server, browser):
    query = "sigma2=0.5&lr=0.05&seed=3&n_trajectories=5&steps_per_frame=250"
    runs, errors = [], []
    for _ in range(2):
        p = ClassProbe(browser)
        try:
            p.open(class_url(server, query))
            p.step(250)
            assert p.step_count() == 250
            runs.append(p.heads())
            errors += p.errors
        finally:
            p.close()
    assert len(runs[0]["w"]["w1"]) == 5
    assert runs[0] == runs[1], "the same link gave two different runs"

    panel = PageProbe(browser)
    try:
        page = panel.open(server + "?" + query)
        page.get_by_role("button", name="Step").click()
        panel.wait_steps(250)
        assert panel.step_count() == 250
        panel.page.wait_for_timeout(500)  # the draw after the counter
        theirs = page.evaluate(HEADS)
    finally:
        panel.close()
    assert _close(runs[0], theirs), f"class mode {runs[0]} != Panel page {theirs}"
    assert errors == []  # (the link's σ² is not the page's default: its π map is fetched)


# -- 4 ---------------------------------------------------------------------------------------------
def test_moving_eta_mid_run_continues_and_sigma2_restarts(server, cprobe):
    page = cprobe.open(class_url(server, "steps_per_frame=250"))
    cprobe.step(250)
    box = page.locator("#ctl-lr")
    box.fill("0.12")
    box.press("Enter")  # the change event
    page.wait_for_function("() => document.getElementById('events').textContent.includes('η → 0.12')",
                           timeout=15_000)
    assert "lr=0.12" in page.url
    assert cprobe.step_count() == 250  # not restarted by the change
    cprobe.step(500)  # continued from 250
    assert re.search(r"step 250: η → 0\.12", page.locator("#events").inner_text())

    box = page.locator("#ctl-sigma2")
    box.fill("0.5")
    box.press("Enter")
    page.wait_for_function("() => document.getElementById('alert').textContent.includes('restarted')",
                           timeout=15_000)
    assert cprobe.step_count() == 0
    assert "restarted" in cprobe.alert()
    assert "sigma2=0.5" in page.url
    # the "where am I" π map follows σ²: its image and title come from /api/live/pi
    deadline = time.time() + 15
    while "σ² = 0.5" not in page.evaluate(WHERE_TITLE) and time.time() < deadline:
        page.wait_for_timeout(200)
    assert "σ² = 0.5" in page.evaluate(WHERE_TITLE), page.evaluate(WHERE_TITLE)
    shape = page.evaluate(WHERE_IMAGE_SHAPE)
    assert shape is not None, "the π map's image is not a 2-D array Bokeh's Image glyph can draw"
    assert min(shape) > 2, "the π map is still the placeholder"
    assert cprobe.errors == []


# -- 5 ---------------------------------------------------------------------------------------------
def test_out_of_range_link_is_clamped_with_a_notice(server, cprobe):
    page = cprobe.open(class_url(server, "lr=1e6&n_trajectories=1e9&batch_size=abc"))
    page.wait_for_selector("#alert", state="visible", timeout=10_000)
    text = cprobe.alert()
    assert "clamped" in text and "not a number" in text, text
    assert "lr=10&" in page.url + "&" and "n_trajectories=100&" in page.url + "&", page.url
    assert "Traceback" not in page.content()
    assert cprobe.errors == []


def test_link_text_is_never_rendered_as_html(server, cprobe):
    dialogs = []
    cprobe.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    payload = "<img src=x onerror=alert(1)>"
    page = cprobe.open(class_url(server, f"teacher={payload}&preset={payload}"))
    page.wait_for_selector("#alert", state="visible", timeout=10_000)
    page.wait_for_timeout(1000)
    assert dialogs == []
    assert page.locator("img").count() == 0
    assert "not one of the choices" in cprobe.alert()  # shown as text, escaped
    assert "Traceback" not in page.content()


# -- 6 ---------------------------------------------------------------------------------------------
def test_a_teachers_link_locks_and_hides(server, cprobe):
    page = cprobe.open(class_url(server, "lock=lr,sigma2&hide=advanced,nav"))
    page.wait_for_selector("#lock-note", state="visible", timeout=10_000)
    for name in ("lr", "sigma2"):
        assert page.locator(f"[data-param={name}]").is_disabled(), name
        assert page.locator(f"[data-slider={name}]").is_disabled(), name
    note = page.locator("#lock-note").inner_text()
    assert "η" in note and "σ²" in note, note
    assert page.locator("[data-param=batch_size]").is_enabled()
    assert page.locator(".atlas-seed").is_hidden()
    headings = page.locator("section.group h4")
    for title in ("Start", "Animation"):
        assert headings.filter(has_text=re.compile(f"^{title}$")).is_hidden(), title
    assert headings.filter(has_text=re.compile("^Model$")).is_visible()
    assert "lock=lr%2Csigma2" in page.url or "lock=lr,sigma2" in page.url
    assert cprobe.errors == []
    assert page.locator(".atlas-nav").get_attribute("hidden") is not None  # marked hidden …
    assert page.locator(".atlas-nav").is_hidden(), "hide=nav: the page list is still shown"  # … and not shown


# -- 7 ---------------------------------------------------------------------------------------------
def test_divergence_pauses_and_says_so(server, cprobe):
    page = cprobe.open(class_url(server, "preset=diverge"))
    page.locator("#play").click()
    page.wait_for_selector("#alert.danger", state="visible", timeout=30_000)
    page.wait_for_function("() => document.getElementById('play').textContent.includes('Play')",
                           timeout=10_000)  # it paused itself
    assert "blew up" in cprobe.alert()
    step = cprobe.step_count()
    page.wait_for_timeout(600)
    assert cprobe.step_count() == step  # and stays paused
    assert cprobe.errors == []


# -- 8 ---------------------------------------------------------------------------------------------
def test_netcdf_export_and_copy_link(server, context, tmp_path):
    import xarray as xr

    page, errors, external = context
    page.goto(class_url(server, "steps_per_frame=100&n_trajectories=3"))
    page.wait_for_function(FIRST_FRAME, timeout=60_000)
    page.locator("#step").click()
    page.wait_for_function("() => document.getElementById('step-count').textContent === '100'",
                           timeout=30_000)
    with page.expect_download(timeout=30_000) as dl:
        page.locator("#export-nc").click()
    assert dl.value.suggested_filename.endswith(".nc")
    path = tmp_path / "run.nc"
    dl.value.save_as(path)
    with xr.open_dataset(path, engine="h5netcdf", group="trajectories") as ds:
        assert "theta" in ds
        assert ds.theta.sizes.get("trajectory", ds.theta.shape[0]) == 3
        assert "class?page=trajectories" in ds.attrs.get("sgd_atlas_link", "")

    page.locator("#copy-link").click()
    page.wait_for_function("() => document.getElementById('copy-link').textContent === 'Link copied'",
                           timeout=5_000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert "class?page=trajectories" in copied and "steps_per_frame=100" in copied
    assert errors == [] and external == []


# -- 9 ---------------------------------------------------------------------------------------------
def test_choosing_a_preset_opens_its_class_page(server, cprobe):
    page = cprobe.open(class_url(server))
    page.locator("#preset").select_option("p000-s1")
    page.wait_for_url(re.compile(r"/class\?page=trajectories&preset=p000-s1"), timeout=15_000)
    cprobe.wait_first_frame()
    assert "paper 000, σ² = 1.0 (strong degeneration)" in page.locator("#prompt").inner_text()
    assert page.locator("#preset").input_value() == "p000-s1"
    assert "sigma2=1" in page.url and "steps_per_frame=500" in page.url
    assert cprobe.errors == []


# -- 10 --------------------------------------------------------------------------------------------
def test_a_phone_gets_the_class_page_at_its_width(server, phone):
    from .conftest import PLOT_RECTS

    page, errors = phone
    page.goto(class_url(server))
    page.wait_for_function(FIRST_FRAME, timeout=60_000)
    assert page.evaluate("() => window.innerWidth") == 390
    assert page.locator("#sidebar").is_hidden()  # folded: ☰ opens it
    widths = page.evaluate(PLOT_RECTS)
    assert len(widths) >= 5
    assert all(w >= 300 and left < 60 for left, w in widths), widths
    page.locator("#menu").click()
    assert page.locator("#sidebar").is_visible()
    assert errors == []


# -- 11 --------------------------------------------------------------------------------------------
N_WAVE = 20


def test_a_wave_of_twenty_pages(server, browser):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    errors, external = [], []

    def watch(page):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(
            ("http://127.0.0.1", "data:", "blob:")) else None)
        return page

    try:
        pages = [watch(ctx.new_page()) for _ in range(N_WAVE)]
        t0 = time.perf_counter()
        for page in pages:
            page.goto(class_url(server), wait_until="commit", timeout=60_000)
        for page in pages:
            page.wait_for_function(FIRST_FRAME, timeout=120_000)
        seconds = time.perf_counter() - t0
        pages[-1].wait_for_timeout(1000)  # late requests and errors
        assert all(p.evaluate(N_PLOTS) >= 5 for p in pages)
        assert errors == []
        assert external == []
        print(f"{N_WAVE} class pages drawn their first frame in {seconds:.2f} s")
    finally:
        ctx.close()


def test_about_and_the_gallery_are_static_class_pages(server, context):
    """The class mode's gallery: its pictures load, a live-page card's class link opens the
    live class page; About's text is there and its navigation reaches the gallery; nothing
    leaves the server and the console stays clean."""
    page, errors, external = context
    base = server.rsplit("/app", 1)[0]
    page.goto(base + "/class?page=gallery")
    page.wait_for_selector(".atlas-card[data-preset='p000-s1']", timeout=30_000)
    page.wait_for_function("() => [...document.images].length >= 3 && [...document.images]"
                           ".every((i) => i.complete && i.naturalWidth > 0)", timeout=30_000)
    page.locator(".atlas-card[data-preset='p000-s1'] a.atlas-class").click()
    page.wait_for_selector("button#play", timeout=30_000)
    assert "page=trajectories" in page.url and "preset=p000-s1" in page.url
    page.goto(base + "/class?page=about")
    assert page.locator("h2", has_text="What this is").count() == 1
    assert page.locator("main table").count() == 1
    page.locator("nav.atlas-nav a", has_text="Presets gallery").click()
    page.wait_for_selector(".atlas-card", timeout=30_000)
    assert errors == [] and external == []

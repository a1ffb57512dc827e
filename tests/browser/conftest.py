"""Serve the dashboard on 127.0.0.1 and drive it with Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import free_port, wait_serving

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SGD_ATLAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-3d-apis", "--no-first-run", "--disable-component-update"]


@pytest.fixture(scope="session")
def server():
    """``panel serve app`` on a free loopback port; yields the app's base URL."""
    # compile the numba kernels into their disk cache first, so no page waits for LLVM
    subprocess.run([sys.executable, "-m", "engine.warmup"], cwd=ROOT, check=True, timeout=900)
    port = free_port()
    log = open(ROOT / "test-artifacts" / "server.log", "w") if (ROOT / "test-artifacts").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "app", "--address", "127.0.0.1", "--port", str(port),
         "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness", "--num-procs", "1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    if not wait_serving(f"http://127.0.0.1:{port}", proc, 120):
        proc.kill()
        pytest.fail("panel serve did not come up (see test-artifacts/server.log)")
    yield f"http://127.0.0.1:{port}/app"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (the test command does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageProbe:
    """A Playwright page that records console errors and requests leaving 127.0.0.1."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._on_request)

    def _on_request(self, req):
        host = req.url.split("/")[2] if "://" in req.url else ""
        if not (host.startswith("127.0.0.1") or host.startswith("localhost") or req.url.startswith(("data:", "blob:"))):
            self.external.append(req.url)

    def open(self, url: str):
        self.page.goto(url)
        self.page.wait_for_selector("#step-count", timeout=60_000)
        self.page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
        # the page's onload hook writes the validated state into the URL: then it is live
        self.page.wait_for_function("() => location.search.includes('page=')", timeout=60_000)
        self.wait_drawn()
        self.page.wait_for_timeout(1000)
        return self.page

    def wait_drawn(self, timeout: float = 60.0) -> None:
        """Until every plot is drawn: plots come after the page's frame, through the server's
        draw queue (:class:`app.jobs.DrawQueue`), so a finished computation may be shown
        before its plot exists in the browser."""
        self.page.wait_for_selector(".atlas-drawing", state="detached", timeout=1000 * timeout)

    def wait_steps(self, at_least: int, timeout: float = 30.0) -> None:
        """Poll the step counter until it reaches ``at_least`` (or ``timeout`` seconds pass)."""
        deadline = time.time() + timeout
        while self.step_count() < at_least and time.time() < deadline:
            self.page.wait_for_timeout(200)

    def step_count(self) -> int:
        return int(self.page.locator("#step-count").inner_text().replace(",", ""))

    def n_points(self) -> int:
        """Total number of data entries in every ColumnDataSource of the page."""
        return self.page.evaluate("""() => { let n = 0;
            for (const doc of Bokeh.documents) for (const m of doc.all_models) {
                if (m.data && typeof m.data === 'object' && !(m.data instanceof Array)) {
                    for (const v of Object.values(m.data)) {
                        if (v && v.length !== undefined) {
                            n += (v.length && v[0] && v[0].length !== undefined && typeof v[0] !== 'string')
                                ? Array.from(v).reduce((a, x) => a + x.length, 0) : v.length; } } } }
            return n; }""")

    def heads(self) -> list:
        """The (x, y) data of the trajectory heads in both planes (HoloViews names the colour
        column ``color``)."""
        return self.page.evaluate("""() => { const out = [];
            for (const doc of Bokeh.documents) for (const m of doc.all_models) {
                if (m.data && m.data.color && (m.data.w1 || m.data.v1)) {
                    const k = m.data.w1 ? ['w1', 'w2'] : ['v1', 'v2'];
                    out.push([Array.from(m.data[k[0]]), Array.from(m.data[k[1]])]); } }
            return out.sort(); }""")

    def close(self):
        self.page.close()


@pytest.fixture
def probe(browser):
    p = PageProbe(browser)
    yield p
    p.close()


def results_probe(column: str, frame_class: str) -> str:
    """JS returning ``{points, opacity}``: how many data points of ``column`` the visible
    glyphs of the page's plots hold now, and the opacity of the frame (CSS class
    ``frame_class``) that holds those plots (dimmed while a recomputation has shown nothing)."""
    return f"""() => {{ let n = 0;
    for (const v of Bokeh.index.query((v) => v.model.glyph !== undefined && v.model.visible)) {{
        const data = v.model.data_source && v.model.data_source.data;
        if (data && data['{column}']) n += data['{column}'].length; }}
    const frame = [...Bokeh.index.query((v) => (v.model.css_classes || []).includes("{frame_class}"))];
    const opacity = frame.length ? parseFloat(getComputedStyle(frame[0].el).opacity) : null;
    return {{points: n, opacity: opacity}}; }}"""


def enter_value(page, parameter: str, value: str) -> None:
    """Type ``value`` into the number box of ``parameter``'s widget (CSS class
    ``atlas-<parameter>``), press Enter, and wait until the URL carries it."""
    box = page.locator(f".atlas-{parameter} input").first
    box.fill(value)
    box.press("Enter")
    page.wait_for_function(f"() => location.search.includes('{parameter}={value}')",
                           timeout=30_000)


def recompute_sampled(page, probe_js: str, change, done_id: str) -> list[dict]:
    """Samples of ``probe_js`` (a JS function returning a dict) every 20 ms from just before
    ``change(page)`` until the recomputation it starts has finished (``#done_id`` detached,
    then back) and the results are at full opacity again."""
    page.evaluate(f"() => {{ window.__samples = []; window.__sampler = setInterval("
                  f"() => window.__samples.push(({probe_js})()), 20); }}")
    change(page)
    page.wait_for_selector(f"#{done_id}", state="detached", timeout=30_000)  # the new run …
    page.wait_for_selector(f"#{done_id}", timeout=120_000)  # … has finished
    page.wait_for_function(f"() => ({probe_js})().opacity === 1", timeout=30_000)
    return page.evaluate("() => { clearInterval(window.__sampler); return window.__samples; }")


def shown_then_recomputed(probe, url: str, probe_js: str, change, done_id: str) -> list[dict]:
    """Open ``url``, wait until its computation is done (``#done_id``), drawn and showing
    points at full opacity, then :func:`recompute_sampled` for ``change``: the samples of the
    dimming tests of the escape and overfitting pages."""
    page = probe.page
    page.goto(url)
    page.wait_for_selector(f"#{done_id}", timeout=120_000)
    probe.wait_drawn()
    page.wait_for_function(f"() => ({probe_js})().points > 0", timeout=30_000)
    assert page.evaluate(probe_js)["opacity"] == 1
    return recompute_sampled(page, probe_js, change, done_id)


@pytest.fixture
def context(browser):
    """(page, console errors, requests leaving 127.0.0.1) of a fresh browser context that
    accepts downloads and may use the clipboard."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True,
                              permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    errors, external = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(
        ("http://127.0.0.1", "data:", "blob:")) else None)
    yield page, errors, external
    ctx.close()


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")

#: JS: [left, width] of every visible Bokeh plot of the page
PLOT_RECTS = """() => [...Bokeh.index.query((v) =>
    v.model instanceof Bokeh.Models.Plot)].map((v) => v.el.getBoundingClientRect())
    .filter((r) => r.width > 0).map((r) => [r.left, r.width])"""


@pytest.fixture
def phone(browser):
    """(page, console errors) of a 390×844 touch context with a phone's user agent."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=IPHONE,
                              is_mobile=True, has_touch=True)
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page, errors
    ctx.close()

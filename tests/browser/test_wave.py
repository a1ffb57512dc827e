"""Twenty browsers open the dashboard at once (issue 8): all render, none logs a console error,
and no request leaves the server — a stock Panel app under this load fetched its CSS from the
HoloViz CDN, which an offline classroom cannot reach."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
N_PAGES = 20
RENDERED = """() => window.Bokeh && Bokeh.documents.length > 0 &&
    [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].length >= 5 &&
    location.search.includes('n_trajectories=')"""


async def _wave(url: str) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        async def one(i: int) -> dict:
            ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
            page = await ctx.new_page()
            out = {"errors": [], "external": [], "rendered": False}
            page.on("console", lambda m: out["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            page.on("request", lambda r: out["external"].append(r.url) if not r.url.startswith(
                ("http://127.0.0.1", "data:", "blob:")) else None)
            t0 = time.perf_counter()
            await page.goto(url, wait_until="commit", timeout=300_000)
            await page.wait_for_function(RENDERED, timeout=300_000)
            out["rendered"], out["seconds"] = True, time.perf_counter() - t0
            await page.wait_for_timeout(2000)  # late requests (stylesheets of later updates)
            await ctx.close()
            return out

        try:
            return await asyncio.gather(*[one(i) for i in range(N_PAGES)])
        finally:
            await browser.close()


def test_twenty_pages_open_at_once(server):
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps a loop in this thread
        results = pool.submit(asyncio.run, _wave(server + "?page=trajectories")).result()
    assert sum(r["rendered"] for r in results) == N_PAGES
    assert [e for r in results for e in r["errors"]] == []
    assert [u for r in results for u in r["external"]] == []
    print(f"{N_PAGES} pages rendered; slowest {max(r['seconds'] for r in results):.1f} s")

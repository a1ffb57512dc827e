"""``sgd-atlas serve --procs 2`` in a real browser: two server processes behind the sticky
proxy (app/proxy.py), each browser kept on one of them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.support import free_port, wait_serving

from .conftest import ROOT, PageProbe
from .test_class_mode import ClassProbe

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def procs_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve",
                             "--procs", "2", "--port", str(port), "--no-disk-cache"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    if not wait_serving(base, proc, 300):
        proc.kill()
        pytest.fail("sgd-atlas serve --procs 2 did not come up")
    yield base
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _stats(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/atlas-proxy", timeout=10) as r:
        return json.loads(r.read())["processes"]


def test_each_browser_stays_on_one_process(procs_server, browser):
    """Four students on the live Panel page and two on its class mode, each in a browser of
    their own: the pages are spread over both processes, each Panel page's websocket reaches
    the process that built the page (one document per page: as many websockets as pages, per
    process), Play runs on every page, the class-mode runs are found by their process, with 0
    console errors and 0 requests off the server."""
    before = _stats(procs_server)
    probes = [PageProbe(browser) for _ in range(4)]
    classes = [ClassProbe(browser) for _ in range(2)]
    try:
        for p in probes:
            p.open(f"{procs_server}/app?page=trajectories&steps_per_frame=100")
        for c in classes:
            c.open(f"{procs_server}/class?page=trajectories&steps_per_frame=100&frame_ms=100")
        for p in probes:
            p.page.get_by_role("button", name="▶ Play").click()
        for c in classes:
            c.page.locator("#play").click()
        for p in probes + classes:
            p.wait_steps(300, timeout=60)
            assert p.step_count() >= 300
        for c in classes:  # each step came from its run, held by its own process
            assert "no longer on the server" not in c.alert()
        after = _stats(procs_server)
        pages = [a["pages"] - b["pages"] for a, b in zip(after, before)]
        sockets = [a["websockets"] - b["websockets"] for a, b in zip(after, before)]
        assert pages == sockets and sum(pages) == 4 and min(pages) >= 1
        assert sum(a["class_pages"] - b["class_pages"] for a, b in zip(after, before)) == 2
        for p in probes + classes:
            assert p.errors == [] and p.external == []
    finally:
        for p in probes + classes:
            p.close()

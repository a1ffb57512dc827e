"""Exports and sharing in a real browser: netCDF and PNG downloads, the copy-link button, a
teacher's locked/hidden link, and the presets gallery."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app import ncio
from app.presets import load_presets

pytestmark = pytest.mark.browser
QUICK = "?page=escape&preset=quick&n_trajectories=30&max_steps=3000&n_sigma2=4"


def test_downloads_and_copy_link(server, context):
    page, errors, external = context
    page.goto(server + QUICK)
    page.wait_for_selector("#escape-done", timeout=90_000)
    page.wait_for_function("() => location.search.includes('n_sigma2=4')", timeout=20_000)

    with page.expect_download(timeout=30_000) as dl:
        page.get_by_role("button", name="Data (netCDF)").click()
    assert dl.value.suggested_filename == "sgd-atlas-escape.nc"
    groups = ncio.read_groups(dl.value.path())
    fig5 = groups["fig5"]
    assert fig5.sizes["sigma2"] == 4 and fig5.attrs["n_trajectories"] == 30
    assert "n_sigma2=4" in fig5.attrs["sgd_atlas_link"]  # the link that reproduces it
    assert np.all(np.isfinite(fig5.mean_time.values))

    with page.expect_download(timeout=30_000) as dl:
        page.get_by_role("button", name="Plots (PNG)").click()
    assert dl.value.suggested_filename == "sgd-atlas-escape.png"
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(open(dl.value.path(), "rb").read())).convert("L"))
    assert img.shape[0] > 300 and img.shape[1] > 600  # both plots, as laid out on screen
    assert img.std() > 10  # not a blank canvas

    page.get_by_role("button", name="Copy link").click()
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.length > 0)",
                           timeout=10_000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.url and "n_sigma2=4" in copied
    assert errors == [] and external == []


def test_a_class_link_locks_and_hides(server, context):
    page, errors, external = context
    page.goto(server + QUICK + "&lock=lr,nope&hide=advanced,nav")
    page.wait_for_selector("#escape-done", timeout=90_000)
    assert page.locator(".atlas-nav").is_hidden()
    assert page.get_by_text("this page has no control called 'nope'").count() == 1
    assert page.get_by_text("trajectories per σ²").filter(visible=True).count() == 0  # advanced
    assert page.get_by_text("S (batch size)").first.is_visible()  # a lesson control
    lr = page.locator("input[disabled]")
    assert lr.count() >= 1  # the locked η
    # the teacher's options survive in the link the students are given
    page.wait_for_function("() => location.search.includes('lock=')", timeout=20_000)
    assert "hide=advanced" in page.evaluate("() => decodeURIComponent(location.search)")
    assert errors == [] and external == []


def test_the_gallery_opens_a_preset(server, context):
    page, errors, external = context
    page.goto(server + "?page=gallery")
    page.wait_for_selector(".atlas-card", timeout=60_000)
    n_presets = sum(len(v) for v in load_presets().values())
    assert page.locator(".atlas-card").count() == n_presets
    page.locator(".atlas-card[data-preset='quick'] a.atlas-open").click()
    page.wait_for_selector("#escape-done", timeout=120_000)
    assert "preset=quick" in page.url and "page=escape" in page.url
    assert page.get_by_text("quick look (200 trajectories").count() >= 1
    assert errors == [] and external == []


def test_the_gallerys_class_link_opens_the_class_mode(server, context):
    """The contract of issue 16: a class link is ``/class?page=<slug>&…``; the live page's
    opens its class mode (a page whose Play is a plain ``<button>``), the others their page."""
    page, errors, external = context
    page.goto(server + "?page=gallery")
    page.wait_for_selector(".atlas-card", timeout=60_000)
    href = page.locator(".atlas-card[data-preset='p000-s1'] a.atlas-class").get_attribute("href")
    assert href.startswith("class?") and "page=trajectories" in href and "hide=advanced" in href
    page.locator(".atlas-card[data-preset='p000-s1'] a.atlas-class").click()
    page.wait_for_function("() => location.pathname.endsWith('/class')", timeout=30_000)
    page.wait_for_selector("button#play", timeout=30_000)
    assert "Play" in page.locator("button#play").inner_text()
    page.wait_for_function("() => location.search.includes('sigma2=1')", timeout=30_000)
    assert page.locator(".atlas-seed").is_hidden()  # hide=advanced holds in the class mode
    assert errors == [] and external == []

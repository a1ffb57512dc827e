"""Presets, links and a teacher's locks in a real browser (issue 15, items 2 and 9)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from app import ncio

pytestmark = pytest.mark.browser


def _query(url: str) -> dict:
    return dict(parse_qsl(urlsplit(url).query))


def _wait_synced(page) -> None:
    """Until the live page has written its validated values into the URL (it is live)."""
    page.wait_for_function("() => location.search.includes('frame_ms=')", timeout=60_000)
    page.wait_for_timeout(500)


def _choose_preset(page, title: str, preset_id: str) -> None:
    page.locator(".bk-input-group select").first.select_option(label=title)
    page.wait_for_function(f"() => location.search.includes('preset={preset_id}')",
                           timeout=20_000)
    page.wait_for_timeout(1500)  # the page's values reach the URL


def test_a_preset_chosen_after_another_equals_its_fresh_link(server, browser):
    """The issue's sequence: "paper 001 teacher, τ = 0.2", then "paper 000, σ² = 1.0" — the
    projector must show what the students' fresh ``?preset=p000-s1`` shows: same values in
    the URL and the same starting points."""
    from .conftest import PageProbe

    fresh = PageProbe(browser)
    fresh.open(server + "?page=trajectories&preset=p000-s1")
    fresh.page.wait_for_function("() => location.search.includes('start=')", timeout=20_000)
    expected = _query(fresh.page.url), fresh.heads()
    fresh.close()

    probe = PageProbe(browser)
    page = probe.open(server + "?page=trajectories")
    _choose_preset(page, "paper 001 teacher, τ = 0.2", "p001-tau02")
    page.wait_for_function("() => location.search.includes('start=point')", timeout=20_000)
    _choose_preset(page, "paper 000, σ² = 1.0 (strong degeneration)", "p000-s1")
    page.wait_for_function("() => location.search.includes('start=box')", timeout=20_000)
    probe.wait_drawn()
    page.wait_for_timeout(1000)
    assert _query(page.url) == expected[0]
    assert probe.heads() == expected[1]
    assert probe.errors == []
    probe.close()


def test_copy_link_says_so_and_links_carry_no_float_artefacts(server, context):
    page, errors, external = context
    page.goto(server + "?page=trajectories&w0=1.200000158019822&lr=0.25118873255775953")
    _wait_synced(page)
    query = _query(page.url)
    assert (query["w0"], query["lr"]) == ("1.2", "0.2512")
    button = page.locator(".atlas-copy-link button")
    button.click()
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.length > 0)",
                           timeout=10_000)
    assert button.inner_text().strip() == "Link copied"
    assert page.evaluate("() => navigator.clipboard.readText()") == page.url
    page.wait_for_timeout(2500)
    assert button.inner_text().strip() == "Copy link"  # and back
    assert errors == [] and external == []


def test_exports_carry_a_link_that_opens_anywhere(server, context):
    page, errors, external = context
    page.goto(server + "?page=trajectories&sigma2=0.5")
    _wait_synced(page)
    with page.expect_download(timeout=30_000) as dl:
        page.get_by_role("button", name="Data (netCDF)").click()
    link = ncio.read_groups(dl.value.path())["trajectories"].attrs["sgd_atlas_link"]
    assert link.startswith(server + "?") and "sigma2=0.5" in link
    assert errors == [] and external == []


def test_a_teacher_link_explains_its_locks_and_hides_empty_sections(server, context):
    page, errors, external = context
    page.goto(server + "?page=trajectories&lock=lr&hide=advanced")
    _wait_synced(page)
    assert page.get_by_text(re.compile(r"Fixed by your teacher's link: η \(learning rate\)\.")
                            ).is_visible()
    for heading in ("Start", "Animation"):  # every control under them is advanced
        assert page.get_by_role("heading", name=heading, exact=True).filter(
            visible=True).count() == 0
    assert page.get_by_role("heading", name="Model", exact=True).first.is_visible()
    # a student picks the divergence preset (η = 2.5): η stays, and the page says so once
    _choose_preset(page, "too large η: divergence", "diverge")
    assert "lr=0.1&" in page.url
    assert page.get_by_text("fixed by this lesson's link").count() == 1
    assert errors == [] and external == []


"""The live-trajectories page in a real browser (issue 2's browser acceptance tests)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_page_renders_offline_without_console_errors(server, probe):
    page = probe.open(server)
    assert "SGD Atlas" in page.title() or "SGD Atlas" in page.content()
    assert page.locator("canvas").count() >= 4  # the four plots
    assert probe.step_count() == 0
    assert probe.errors == []
    assert probe.external == [], "classrooms are offline: everything must be served locally"


def test_play_advances_the_counter_and_adds_points(server, probe):
    page = probe.open(server + "?steps_per_frame=300&frame_ms=100")
    before = probe.n_points()
    page.get_by_role("button", name="▶ Play").click()
    probe.wait_steps(600)
    page.get_by_role("button", name=re.compile("Pause")).click()
    assert probe.step_count() >= 600
    assert probe.n_points() > before
    assert probe.errors == []


def test_moving_the_eta_slider_changes_the_run(server, probe):
    page = probe.open(server + "?steps_per_frame=200")
    page.get_by_role("button", name="Step").click()
    probe.wait_steps(200)
    assert probe.step_count() == 200
    handle = page.locator(".noUi-handle").first  # η is the first slider of the sidebar
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 15, y, steps=5)
    page.mouse.up()  # the slider is throttled: the value is sent on release
    # η moved up, and the URL follows
    page.wait_for_function(r"() => /[?&]lr=0\.1(0[1-9]|[1-9])/.test(location.search)", timeout=10_000)
    assert not re.search(r"lr=0\.1\d{4,}", page.url), "a slider's float32 tail is not kept"
    assert page.get_by_text(re.compile(r"η → 0\.1\d+ at step 200")).count() >= 1
    page.get_by_role("button", name="Step").click()
    probe.wait_steps(400)
    assert probe.step_count() == 400  # the run continued, it did not restart
    assert page.get_by_text(re.compile(r"step 200: η → 0\.1\d+")).count() >= 1


def test_a_link_reproduces_its_parameters_and_run(server, browser):
    from .conftest import PageProbe

    url = server + "?sigma2=0.5&lr=0.05&seed=3&n_trajectories=5&steps_per_frame=250"
    runs = []
    for _ in range(2):
        p = PageProbe(browser)
        page = p.open(url)
        values = [page.locator("input").nth(i).input_value() for i in range(2)]
        assert values == ["0.05", "0.5"]
        for q in ("sigma2=0.5", "lr=0.05", "seed=3", "n_trajectories=5"):
            assert q in page.url
        page.get_by_role("button", name="Step").click()
        p.wait_steps(250)
        assert p.step_count() == 250
        runs.append(p.heads())
        assert p.errors == []
        p.close()
    assert runs[0] and runs[0] == runs[1]


def test_out_of_range_link_is_clamped_with_a_notice(server, probe):
    page = probe.open(server + "?lr=1e6&sigma2=-5&batch_size=abc&n_trajectories=1e9&page=trajectories")
    assert page.get_by_text(re.compile("clamped to 10")).count() >= 1
    assert page.get_by_text(re.compile("not a number")).count() >= 1
    assert "lr=10" in page.url and "n_trajectories=100" in page.url
    assert "Traceback" not in page.content()
    assert probe.errors == []


def test_unknown_page_falls_back_with_a_notice(server, probe):
    page = probe.open(server + "?page=../../etc/passwd")
    assert page.get_by_text(re.compile("There is no page")).count() >= 1
    assert probe.errors == []


def test_link_text_is_never_rendered_as_html(server, probe):
    dialogs = []
    probe.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    payload = "<img src=x onerror=alert(1)>"
    page = probe.open(server + "?teacher=" + payload + "&preset=" + payload + "&n_data=" + payload)
    page.wait_for_timeout(1000)
    assert dialogs == []
    assert page.get_by_text(re.compile("not one of the choices")).count() >= 1
    assert page.locator("img[src=x]").count() == 0


#: the dotted lines drawn on the (w1, w2) and (v1, v2) planes: [plane, model type, shown?]
PLANE_DOTTED = """() => { const out = [];
    const dotted = (d) => { if (d && d.value !== undefined) d = d.value;  // glyphs: a value spec
        return d === 'dotted' || JSON.stringify(d) === '[2,4]'; };
    const shown = (r) => { if (!r.visible) return false;
        const src = r.data_source; if (!src) return true;
        return Object.values(src.data).some((v) => v && v.length > 0); };
    for (const doc of Bokeh.documents) for (const p of doc.all_models) {
        const title = p.title && p.title.text;
        if (!title || !/\\((w1, w2|v1, v2)\\) plane/.test(title)) continue;
        for (const r of [...p.renderers, ...p.center]) {
            const style = r.glyph || r;
            if (style.line_dash !== undefined && dotted(style.line_dash))
                out.push([title, r.glyph ? r.glyph.type : r.type, shown(r)]); } }
    return out; }"""


def test_switching_the_teacher_back_leaves_no_stale_optimal_lines(server, probe):
    page = probe.open(server + "?page=trajectories")
    teacher = page.locator(".atlas-teacher select")
    # paper 001's teacher 2tanh(x): its optimal set is drawn as dotted lines on both planes
    teacher.select_option(index=1)
    page.wait_for_function("() => location.search.includes('teacher=paper001')", timeout=10_000)
    page.wait_for_function(f"() => new Set(({PLANE_DOTTED})().filter((d) => d[2])"
                           ".map((d) => d[0])).size == 2", timeout=30_000)
    # back to paper 000: its optimal set is eight points, and 2tanh's lines must be gone
    teacher.select_option(index=0)
    page.wait_for_function("() => location.search.includes('teacher=paper000')", timeout=10_000)
    try:
        page.wait_for_function(f"() => ({PLANE_DOTTED})().every((d) => !d[2])", timeout=15_000)
    except Exception:
        pass  # the assertion below shows what is left
    left = [d for d in page.evaluate(PLANE_DOTTED) if d[2]]
    assert left == [], f"stale optimal-set lines of paper 001 still drawn: {left}"
    assert probe.errors == []


def test_sessions_are_independent(server, browser):
    from .conftest import PageProbe

    a, b = PageProbe(browser), PageProbe(browser)
    pa = a.open(server + "?steps_per_frame=100")
    pb = b.open(server + "?steps_per_frame=100")
    pa.get_by_role("button", name="Step").click()
    a.wait_steps(100)
    assert a.step_count() == 100 and b.step_count() == 0
    box = pa.locator("input").nth(1)  # σ² of session a
    box.fill("0.5")
    box.press("Enter")
    pa.wait_for_function("() => location.search.includes('sigma2=0.5')")
    assert "sigma2=0.1" in pb.url and pb.locator("input").nth(1).input_value() == "0.1"
    a.close()
    b.close()


def test_a_phone_gets_the_page_at_its_width(server, phone):
    """390×844 with a phone's user agent: the sidebar starts folded, the page is laid out at
    the phone's width (no 980 px desktop canvas), and the plots wrap into one column at
    nearly the full width instead of a 2 × 2 grid squeezed beside the sidebar."""
    from .conftest import PLOT_RECTS

    page, errors = phone
    page.goto(server + "?page=trajectories")
    page.wait_for_function("() => location.search.includes('frame_ms=')", timeout=60_000)
    page.wait_for_selector(".atlas-drawing", state="detached", timeout=60_000)
    assert page.evaluate("() => window.innerWidth") == 390
    assert page.locator(".atlas-nav").is_hidden()  # folded: the toggle opens it
    widths = page.evaluate(PLOT_RECTS)
    assert len(widths) >= 4
    assert all(w >= 300 and left < 60 for left, w in widths), widths
    assert errors == []

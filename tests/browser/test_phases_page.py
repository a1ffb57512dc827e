"""The phase-diagram page of paper 002 in a real browser (issue 4's browser tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

#: Sum of the phase codes of the λ–μ map's image (null until it is drawn).
PHASE_SUM = """() => { for (const v of Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)) {
        if (!(v.model.title && v.model.title.text.startsWith("λ–μ"))) continue;
        for (const r of v.model.renderers) {
            const d = r.data_source && r.data_source.data;
            if (d && d.image && d.image.length) {
                let s = 0; for (const x of d.image[0]) if (Number.isFinite(x)) s += x; return s; } } }
    return null; }"""


def _open(probe, url):
    page = probe.page
    page.goto(url, timeout=120_000)  # a first visit builds the page on a busy 2-core machine
    page.wait_for_function("() => location.search.includes('page=phases')", timeout=60_000)
    page.wait_for_function(f"() => ({PHASE_SUM})() !== null", timeout=90_000)
    return page


def test_phase_map_renders_and_follows_s(server, probe):
    page = _open(probe, server + "?page=phases&resolution=48")
    before = page.evaluate(PHASE_SUM)
    box = page.locator("input").nth(0)  # S, the first editable slider of the sidebar
    box.fill("16")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('batch_size=16')", timeout=10_000)
    page.wait_for_function(f"() => ({PHASE_SUM})() !== {before}", timeout=60_000)
    assert probe.errors == [] and probe.external == []


def test_clicking_a_cell_simulates_it(server, probe):
    page = _open(probe, server + "?page=phases&resolution=32")
    assert page.get_by_text("Theory: phase").count() == 1
    boxes = [page.locator("canvas").nth(i).bounding_box() for i in range(page.locator("canvas").count())]
    plots = sorted({(b["x"], b["y"], b["width"], b["height"]) for b in boxes if b and b["width"] > 200},
                   key=lambda b: (b[1], b[0]))
    x, y, w, h = plots[0]  # the λ–μ map is the first plot
    page.mouse.click(x + 0.2 * w, y + 0.85 * h)  # small η, small μ
    page.wait_for_function("() => !location.search.includes('lr=0.5&')", timeout=10_000)
    page.wait_for_timeout(1500)
    assert page.get_by_text("simulation (200 runs").count() == 1
    assert page.get_by_text("saddle SGD at η = 0.5,").count() == 0  # the simulation moved
    assert probe.errors == []


#: The λ–μ map's frame on the screen and its data ranges, from the plot's Bokeh view.
MAP_FRAME = """() => { for (const v of Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)) {
        const m = v.model;
        if (!(m.title && m.title.text.startsWith("λ–μ"))) continue;
        const r = v.el.getBoundingClientRect(), f = v.frame.bbox;
        return {left: r.left + f.left, top: r.top + f.top, width: f.width, height: f.height,
                x: [m.x_range.start, m.x_range.end], y: [m.y_range.start, m.y_range.end]}; }
    return null; }"""

#: (x, y) of the black × (the clicked cell), from its ColumnDataSource.
MARKER = """() => { for (const doc of Bokeh.documents) for (const m of doc.all_models) {
        if (m.glyph && m.data_source && m.glyph.marker && m.glyph.marker.value === "x") {
            const d = m.data_source.data;
            return [Array.from(d[m.glyph.x.field]), Array.from(d[m.glyph.y.field])]; } }
    return null; }"""


def test_marker_follows_the_clicked_cell(server, probe):
    """Clicking a cell moves the × there (it used to stay where the map was first drawn)."""
    page = _open(probe, server + "?page=phases&resolution=32")
    probe.wait_drawn()
    frame = page.evaluate(MAP_FRAME)
    assert page.evaluate(MARKER) == [[pytest.approx(float(np.log10(0.5)))], [0.5]]
    target = (-1.5, 0.15)  # small η, small μ: far from the default η = 0.5, μ = 0.5
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    page.mouse.click(frame["left"] + (target[0] - x0) / (x1 - x0) * frame["width"],
                     frame["top"] + (y1 - target[1]) / (y1 - y0) * frame["height"])
    cell = (3.0 / 32, 1.0 / 32)  # the default range is log10 η ∈ [−2, 1], μ ∈ [0, 1]
    page.wait_for_function(f"""() => {{ const m = ({MARKER})();
        return m && Math.abs(m[0][0] - ({target[0]})) < {cell[0]}
                 && Math.abs(m[1][0] - ({target[1]})) < {cell[1]}; }}""", timeout=20_000)
    page.wait_for_function("() => !location.search.includes('lr=0.5&')", timeout=10_000)
    assert probe.errors == []


#: Boxes of elements anywhere in the page, through Panel's shadow roots.
BOXES = """() => {
    const all = [], walk = (root) => { for (const e of root.querySelectorAll("*")) {
        all.push(e); if (e.shadowRoot) walk(e.shadowRoot); } };
    walk(document);
    const box = (e) => { const r = e.getBoundingClientRect();
        return {x: r.left, y: r.top, w: r.width, h: r.height}; };
    const visible = (b) => b.w > 0 && b.h > 0;
    const table = all.filter((e) => e.tagName === "TABLE" && e.textContent.includes("simulation (200 runs"));
    const theory = all.filter((e) => e.tagName === "P" && e.textContent.startsWith("Theory: phase"));
    const drawing = all.filter((e) => e.classList && e.classList.contains("atlas-drawing"));
    const plots = [...Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)].map(
        (v) => ({...box(v.el), title: v.model.title ? v.model.title.text : ""}));
    return {verdict: [...table, ...theory].map(box).filter(visible),
            drawing: drawing.map(box).filter(visible), plots: plots.filter(visible)}; }"""

#: Installed before the page loads: on every animation frame, whether a "drawing…" placeholder
#: covers the theory/simulation table (while the plots are still coming).
WATCH_LOADING = """() => {
    window.__atlasLoading = {frames: 0, together: 0, overlaps: []};
    const step = () => {
        if (window.Bokeh && Bokeh.index) {
            const b = (%s)();
            const w = window.__atlasLoading;
            w.frames += 1;
            if (b.drawing.length && b.verdict.length) w.together += 1;
            for (const d of b.drawing) for (const t of b.verdict)
                if (d.x < t.x + t.w - 1 && t.x < d.x + d.w - 1 && d.y < t.y + t.h - 1 && t.y < d.y + d.h - 1)
                    w.overlaps.push([d, t]);
        }
        requestAnimationFrame(step);
    };
    requestAnimationFrame(step); }""" % BOXES


def _overlap(a, b, tol=1.0):
    return (a["x"] < b["x"] + b["w"] - tol and b["x"] < a["x"] + a["w"] - tol
            and a["y"] < b["y"] + b["h"] - tol and b["y"] < a["y"] + a["h"] - tol)


@pytest.mark.parametrize("size", [(1366, 768), (1280, 720), (1500, 1000), (390, 844)])
def test_nothing_overlaps_the_simulation_table(server, browser, size):
    """At common laptop sizes, a large screen and a phone, neither the plots nor the "drawing…"
    placeholders cover the theory/simulation table or each other (Fig. 2 right used to be
    drawn over it at 1366×768)."""
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.add_init_script(f"({WATCH_LOADING})()")
        page.goto(server + "?page=phases&resolution=32", timeout=120_000)
        if width < 600:  # a phone: the sidebar is closed to see the page (its ☰ button)
            page.wait_for_selector("#sidebar-toggle", timeout=60_000)
            page.click("#sidebar-toggle")
        page.wait_for_function("() => location.search.includes('page=phases')", timeout=60_000)
        page.wait_for_selector(".atlas-drawing", state="detached", timeout=90_000)
        page.wait_for_function(f"() => ({PHASE_SUM})() !== null", timeout=90_000)
        page.wait_for_function(f"() => ({BOXES})().plots.length === 4", timeout=90_000)
        page.wait_for_timeout(1500)  # let the last plots lay out
        artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
        if artifacts.is_dir():
            page.screenshot(path=str(artifacts / f"phases-{width}x{height}.png"), full_page=True)
        loading = page.evaluate("() => window.__atlasLoading")
        assert loading["frames"] > 0 and loading["overlaps"] == [], loading["overlaps"][:3]
        boxes = page.evaluate(BOXES)
        assert len(boxes["verdict"]) == 2 and len(boxes["plots"]) == 4
        for p in boxes["plots"]:  # every plot drawn at a usable size, inside the window
            assert p["w"] >= 250 and p["h"] >= 200 and p["x"] + p["w"] <= width + 1, p
        items = boxes["verdict"] + boxes["plots"]
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                assert not _overlap(a, b), (a, b)
        assert errors == []
    finally:
        page.close()


#: The rows of the hover tooltip shown now, as {label: value}.
TOOLTIP = """() => { const all = [], walk = (root) => { for (const e of root.querySelectorAll("*")) {
        all.push(e); if (e.shadowRoot) walk(e.shadowRoot); } };
    walk(document);
    const cls = (e, c) => e.classList && e.classList.contains(c);
    const labels = all.filter((e) => cls(e, "bk-tooltip-row-label")).map((e) => e.textContent.trim());
    const values = all.filter((e) => cls(e, "bk-tooltip-row-value")).map((e) => e.textContent.trim());
    return Object.fromEntries(labels.map((l, i) => [l.replace(/:$/, ""), values[i]])); }"""

#: The phase code of the λ–μ map's cell at data point (x, y), from the Image's own data.
CODE_AT = """([x, y]) => { for (const v of Bokeh.index.query((v) => v.model instanceof Bokeh.Models.Plot)) {
        if (!(v.model.title && v.model.title.text.startsWith("λ–μ"))) continue;
        for (const r of v.model.renderers) {
            const d = r.data_source && r.data_source.data;
            if (!(d && d.image && d.image.length)) continue;
            const img = d.image[0], [ny, nx] = img.shape;
            const i = Math.floor((x - d.x[0]) / d.dw[0] * nx), j = Math.floor((y - d.y[0]) / d.dh[0] * ny);
            return img[j * nx + i]; } }
    return null; }"""


def test_hover_names_the_phase_and_the_exponents(server, probe):
    """Hovering a cell shows its phase by name (as coloured) and Λ± with their errors."""
    page = _open(probe, server + "?page=phases&resolution=32")
    probe.wait_drawn()
    frame = page.evaluate(MAP_FRAME)
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    for target in ((-1.5, 0.85), (-0.6, 0.1), (0.8, 0.5)):  # (log10 η, μ): green, blue, red
        page.mouse.move(frame["left"] + (target[0] - x0) / (x1 - x0) * frame["width"],
                        frame["top"] + (y1 - target[1]) / (y1 - y0) * frame["height"])
        page.wait_for_function(f"() => ({TOOLTIP})().phase !== undefined", timeout=10_000)
        rows = page.evaluate(TOOLTIP)
        code = page.evaluate(CODE_AT, list(target))
        assert rows["phase"] == ["Ia", "Ib", "II", "III", "IV"][int(code)], (target, rows)
        assert {"Λ− (w − u)", "Λ+ (w + u)"} <= set(rows), rows
        assert " ± " in rows["Λ− (w − u)"] and " ± " in rows["Λ+ (w + u)"], rows
        assert not any("lyap" in k or "(0 Ia" in k for k in rows), rows
        page.mouse.move(5, 5)  # leave the plot: the tooltip goes
        page.wait_for_function(f"() => ({TOOLTIP})().phase === undefined", timeout=10_000)
    assert probe.errors == []

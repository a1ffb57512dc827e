"""The phase-diagram page's plots built headlessly (no server): the clicked-cell marker and the
hover of the λ–μ and λ–S maps (paper 002, Prop. 1; Figs. 8, 9)."""

from __future__ import annotations

import json
import shutil
import subprocess

import holoviews as hv
import numpy as np
import pytest
from bokeh.models import CustomJSHover, HoverTool

from app.pages.phases import PhasesPage
from engine import saddle
from tests.support import wait_until

hv.extension("bokeh")


def _wait(cond, timeout=120.0):
    wait_until(cond, timeout)


@pytest.fixture(scope="module")
def page():
    """A page at a coarse resolution, with its λ–μ and λ–S maps computed."""
    p = PhasesPage(query={"resolution": "12"})
    try:
        _wait(lambda: p._map_ds is not None and p._s_ds is not None)
        yield p
    finally:
        p.cleanup()


def _hover(plot) -> HoverTool:
    tools = [t for t in plot.select({"type": HoverTool}) if t.tooltips]
    assert len(tools) == 1, tools
    return tools[0]


def _run_formatter(fmt: CustomJSHover, values) -> list[str]:
    """Run a CustomJSHover's code in Node as BokehJS calls it (its ``args`` by name, then
    ``value``, ``format``, ``special_vars``)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is needed to run the hover formatter's JavaScript")
    names = list(fmt.args)
    script = (f"const f = new Function({json.dumps([*names, 'value', 'format', 'special_vars'])[1:-1]}, "
              f"{json.dumps(fmt.code)});\n"
              f"const args = {json.dumps([fmt.args[n] for n in names])};\n"
              f"console.log(JSON.stringify({json.dumps(values)}.map("
              f"(v) => f(...args, v === null ? NaN : v, '', {{}}))));")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("which", ["lambda_mu", "lambda_S"])
def test_map_hover_names_the_phase_and_the_exponents(page, which):
    """The hover reads "phase: III" and "Λ− (w − u)", not a code legend or variable names."""
    element = page._map_plot(page._map_ds) if which == "lambda_mu" else page._s_pane.object
    hover = _hover(hv.render(element))
    labels = [label for label, _ in hover.tooltips]
    text = repr(hover.tooltips)
    assert "phase" in labels
    assert any(label.startswith("Λ− (w − u)") for label in labels)
    assert any(label.startswith("Λ+ (w + u)") for label in labels)
    assert "lyap_minus" not in text and "lyap_plus" not in text and "(0 Ia, 1 Ib" not in text
    if which == "lambda_mu":  # the map carries the uncertainty of Λ± (paper 002, Prop. 1)
        assert "±" in dict(hover.tooltips)["Λ− (w − u)"]
    field = dict(hover.tooltips)["phase"]
    assert field.endswith("{custom}")
    fmt = hover.formatters[field[: -len("{custom}")]]
    assert isinstance(fmt, CustomJSHover)
    assert _run_formatter(fmt, [0, 1, 2, 3, 4, 3.0, None]) == [*saddle.PHASES, "III", "–"]


def test_hover_phase_codes_are_the_plotted_phases(page):
    """The colour code of every cell is the index of its phase in ``saddle.PHASES``, which the
    hover formatter turns back into the name."""
    ds = page._map_ds
    img = page._map_plot(ds)
    img = img.get(0) if isinstance(img, hv.Overlay) else img  # the DynamicMap's first frame
    if isinstance(img, hv.DynamicMap):
        img = img[()].get(0)
    x, y, codes = (img.dimension_values(i) for i in range(3))  # per cell, any orientation
    lr = ds.lr.values[np.abs(np.log10(ds.lr.values)[None, :] - x[:, None]).argmin(1)]
    mu = ds.mu.values[np.abs(ds.mu.values[None, :] - y[:, None]).argmin(1)]
    expected = [str(ds.phase.sel(lr=a, mu=b).item()) for a, b in zip(lr, mu)]
    assert len(expected) == ds.phase.size
    assert [saddle.PHASES[int(c)] for c in codes] == expected


def test_marker_follows_the_clicked_cell_without_redrawing_the_map(page):
    """A click moves the × to the clicked (log10 η, μ) in the drawn plot; the map itself is
    neither recomputed nor replaced."""
    element = page._map_plot(page._map_ds)
    plot = hv.renderer("bokeh").get_plot(element)
    ds = page._map_ds
    page._map_pane.object = element
    before = page._map_pane.object
    x, y = float(np.log10(ds.lr.values[2])), float(ds.mu.values[9])
    try:
        page._on_tap(x=x, y=y)
        s = page.state  # the state may tidy the clicked values (a few significant digits)
        assert s.lr == pytest.approx(10.0**x, rel=1e-3) and s.mu == pytest.approx(y, abs=1e-3)
        markers = [r for r in plot.state.renderers if getattr(r.glyph, "marker", None) == "x"]
        assert len(markers) == 1
        data, glyph = markers[0].data_source.data, markers[0].glyph
        assert list(data[glyph.x]) == pytest.approx([np.log10(s.lr)])
        assert list(data[glyph.y]) == pytest.approx([s.mu])
        assert page._map_ds is ds and page._map_pane.object is before
    finally:
        page.state.param.update(lr=0.5, mu=0.5)


def test_a_click_simulates_the_cell_in_the_background(page, monkeypatch):
    """A click on a cell never runs the engine on the server's event loop (here: the calling
    thread): the simulation and Λ± of the cell are cached tasks of a background job; their
    results, labelled by the values they were computed for, reach the plot, the verdict and
    the page's export (issue 16)."""
    import threading

    from app import sweeps

    threads = []  # (thread, task kinds) of every computation through the state's tasks
    real = sweeps.run_tasks

    def spy(tasks, *args, **kwargs):
        threads.append((threading.get_ident(), [t[0] for t in tasks]))
        return real(tasks, *args, **kwargs)

    monkeypatch.setattr(sweeps, "run_tasks", spy)
    ds = page._map_ds
    x, y = float(np.log10(ds.lr.values[4])), float(ds.mu.values[3])

    def title():
        return str(page._sim_pane.object.opts.get().kwargs.get("title", ""))

    try:
        page._on_tap(x=x, y=y)
        lr, mu = page.state.lr, page.state.mu
        _wait(lambda: f"saddle SGD at η = {lr:.3g}, μ = {mu:.3f}," in title())
        cell = [t for t, kinds in threads if "saddle_simulation" in kinds]
        assert cell and threading.get_ident() not in cell
        sim = page.export_datasets()["cell_simulation"]
        assert (float(sim.attrs["lr"]), float(sim.attrs["mu"])) == (lr, mu)
        assert "Theory: phase" in page._verdict.object and f"η = {lr:.3g}" in page._verdict.object
    finally:
        page.state.param.update(lr=0.5, mu=0.5)

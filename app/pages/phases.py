"""Phase diagrams of SGD at a Type-II saddle: Proposition 1 of paper 002 (Figs. 2, 8, 9).

λ–μ map (S, N, seed) and λ–S map (μ) of the phases Ia, Ib, II, III, IV from Λ± (with their
uncertainty on hover), the Λ = 0 boundaries and the L2 boundary; clicking a cell simulates the
saddle SGD there and sets the empirical verdict beside the theoretical one; box-zoom recomputes
the visible region; the Lyapunov exponent of a 2-D random matrix product against η (Fig. 2
right). Computations are shared (:mod:`app.compute`): in the background, through the shared
cache, with progress and cancel for the maps.
"""

from __future__ import annotations

import panel as pn
import param

from ..compute import Follower
from ..figures import apply_view
from ..figures.phases import (HTML_IDS, MAP_HEIGHT, MEANING, PHASE_COLORS, PLOT_HEIGHT, VIEWS,
                              figures, tap_values, view, zoom_values)
from ..jobs import session_scheduler
from ..state import PhaseParams, join_along
from .base import Page, cell, flow
from .progress import ProgressView

SLUG = "phases"
TITLE = "Phase diagrams (paper 002)"
FIELDS = ("batch_size", "n_data", "seed", "mu_for_s", "resolution", "lr", "mu")
RANGES = ("log_lr_range", "mu_range")  # set by presets and box-zoom, not kept in the URL
#: what each computation's tasks are made of (app.state.computations): a change recomputes
INPUTS = {"map": ("batch_size", "n_data", "seed", "resolution", "log_lr_range", "mu_range"),
          "s_map": ("mu_for_s", "log_lr_range"),
          "cell": ("lr", "mu", "batch_size", "n_data", "seed")}


class PhasesPage(Page):
    """λ–μ and λ–S phase diagrams, the saddle simulation at a clicked cell, Fig. 2 right (plain
    Bokeh figures of :mod:`app.figures.phases`, drawn by its views)."""

    slug = SLUG
    advanced = ("resolution", "seed")
    default_prompt = ("Colours are the phases of Proposition 1: green = w − u → 0 (learning), "
                      "blue = collapse to the saddle, orange = incorrect learning, red = unstable. "
                      "Hover for Λ± ± error; click a cell to simulate SGD there; box-zoom to "
                      "recompute at higher resolution.")
    state = param.ClassSelector(class_=PhaseParams)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("state", PhaseParams())
        super().__init__(query=query, **params)
        if query:
            self.apply_query(query)
        schedule = session_scheduler(pn.state.curdoc)
        self._s_job, self._fig2_job, self._sim_job = (Follower(schedule) for _ in range(3))
        self._map_ds = self._s_ds = self._fig2_ds = None
        self._cell: dict = {}  # the clicked cell's simulation and theory
        self._build()
        s = self.state
        s.param.watch(lambda *e: self._request_map(), list(INPUTS["map"]))
        s.param.watch(lambda *e: self._request_s_map(), list(INPUTS["s_map"]))
        s.param.watch(lambda *e: self._simulate(), list(INPUTS["cell"]))
        s.param.watch(lambda *e: self._draw("marker"), list(VIEWS["marker"]))
        self._request_map()
        self._request_s_map()
        self._request_fig2()
        self._simulate()

    def targets(self):
        return [(self.state, FIELDS)]

    def preset_targets(self):
        return [(self.state, FIELDS + RANGES)]

    def export_datasets(self):
        return {"lambda_mu": self._map_ds, "lambda_S": self._s_ds, "fig2_right": self._fig2_ds,
                **self._cell}

    def cleanup(self) -> None:
        for job in (self._map_view, self._s_job, self._fig2_job, self._sim_job):
            job.close()

    # -- computations ------------------------------------------------------------------------
    def _request_map(self):
        self._map_view.run(self.computation("map"))

    def _request_s_map(self):
        self._s_job.follow(self.computation("s_map"), self._on_s_map, self._on_error)

    def _request_fig2(self):
        self._fig2_job.follow(self.computation("fig2"), self._on_fig2, self._on_error)

    def _simulate(self):
        """The clicked cell's simulation and theory: cached tasks in the background (a click
        used to run them on the server's event loop, holding every other session)."""
        self._sim_job.follow(self.computation("cell"), self._on_cell, self._on_error)

    def _on_error(self, exc):
        self.add_notice("A computation failed; change a parameter to retry.")

    # -- drawing: the views of app.figures.phases -------------------------------------------
    def _draw(self, what: str, results=None) -> None:
        """Apply the view ``what`` of ``results`` to the figures, its HTML to its panes."""
        shown = view(what, results, {"state": self.state})
        apply_view(self._figs, shown)
        for element_id, text in shown.get("html", {}).items():
            self._html[element_id].object = text

    def _on_map(self, results):
        """The λ–μ map (Figs. 8, 9 of paper 002) with the Λ = 0 and L2 boundaries; the × of the
        clicked cell is its own view and follows ``state.lr``/``state.mu`` without redrawing."""
        if results:
            self._map_ds = results[0]
            self._draw("map", results)

    def _on_s_map(self, results):
        self._s_ds = join_along(results, "batch_size")
        self._draw("s_map", results)

    def _on_fig2(self, results):
        self._fig2_ds = results[0]
        self._draw("fig2", results)

    def _on_cell(self, results):
        """The cell's paths and the verdict, labelled by the values they were computed for."""
        self._cell = dict(zip(("cell_simulation", "cell_theory"), results))
        self._draw("cell", results)

    # -- clicks and zooms ----------------------------------------------------------------------
    def _on_tap_event(self, event) -> None:  # a click on the λ–μ map (Bokeh's Tap event)
        self._on_tap(x=event.x, y=event.y)

    def _on_tap(self, x=None, y=None):
        """A click at (log₁₀ η, μ) on the λ–μ map: that cell is simulated."""
        if x is None or y is None:
            return
        self.state.param.update(tap_values("phases-fig-map", x, y))

    def _on_ranges_event(self, event) -> None:  # pan, zoom or reset of the λ–μ map
        self._on_range(x_range=(event.x0, event.x1), y_range=(event.y0, event.y1))

    def _on_range(self, x_range=None, y_range=None):
        """A new region of the λ–μ map (log₁₀ η, μ): computed at full resolution, unless it is
        the region shown already (:func:`app.figures.phases.zoom_values`)."""
        if x_range is None or y_range is None:
            return
        s = self.state
        ranges = zoom_values("phases-fig-map", *x_range, *y_range,
                             current={"log_lr_range": s.log_lr_range, "mu_range": s.mu_range})
        if ranges is not None:
            s.param.update(ranges)

    def _on_reset_view(self, event):
        self.state.param.update(log_lr_range=PhaseParams.param.log_lr_range.default,
                                mu_range=PhaseParams.param.mu_range.default)

    def _build(self):
        self._figs = figures()
        self._figs["map"].on_event("tap", self._on_tap_event)
        self._figs["map"].on_event("rangesupdate", self._on_ranges_event)
        # fixed heights, full width: a pane that stretched in height shared the window's
        # height with its neighbours and was drawn over the table below it
        plot = dict(sizing_mode="stretch_width", height=PLOT_HEIGHT, min_height=PLOT_HEIGHT)
        self._map_pane = pn.pane.Bokeh(self._figs["map"], sizing_mode="stretch_width",
                                       height=MAP_HEIGHT, min_height=MAP_HEIGHT)
        self._s_pane = pn.pane.Bokeh(self._figs["s"], **plot)
        self._fig2_pane = pn.pane.Bokeh(self._figs["fig2"], **plot)
        self._sim_pane = pn.pane.Bokeh(self._figs["sim"], **plot)
        self._verdict = pn.pane.HTML("", sizing_mode="stretch_width")
        self._html = {HTML_IDS["cell"]: self._verdict}
        for what in ("map", "s_map", "fig2", "cell"):  # "computing…" until the results arrive
            self._draw(what)
        self._draw("marker")
        self._map_view = ProgressView(self._on_map, "λ–μ map", "phase-map-done")
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._reset_view = pn.widgets.Button(name="Reset view", width=110)
        self._reset_view.on_click(self._on_reset_view)
        self._preset_select = self.preset_selector(self._on_preset)
        self._widgets = pn.Param(
            self.state, parameters=["batch_size", "n_data", "seed", "resolution", "mu_for_s"],
            show_name=False,
            widgets={"batch_size": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "resolution": {"type": pn.widgets.IntSlider, "throttled": True},
                     "mu_for_s": {"type": pn.widgets.EditableFloatSlider, "throttled": True},
                     "seed": pn.widgets.IntInput})
        self._sync_alert()

    @property
    def sidebar(self):
        legend = "\n".join(f"- <span style='color:{c}'>■</span> **{p}**: {MEANING[p]}"
                           for p, c in PHASE_COLORS.items())
        return pn.Column(self._preset_select, self._widgets, self._reset_view,
                         pn.pane.Markdown("#### Phases\n" + legend + "\n\nBlack line: Λ− = 0; "
                                          "white dashed: Λ+ = 0; purple dotted: L2 boundary."),
                         sizing_mode="stretch_width")

    def __panel__(self):
        """Two rows of two columns (the map | the simulation and its table; the λ–S map | Fig. 2
        right) that wrap into one column when the page is narrower than two plots."""
        map_cell = cell(self.deferred(self._map_pane))
        self._map_view.dim = map_cell  # dimmed while it recomputes
        return pn.Column(
            pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width"),
            self._alert,
            self._map_view.controls,
            flow(map_cell,
                 cell(self.deferred(self._sim_pane), self._verdict)),
            flow(cell(self.deferred(self._s_pane)), cell(self.deferred(self._fig2_pane))),
            sizing_mode="stretch_width",
        )

"""Why noise traps SGD near M_wv: μ± stability maps (paper 000 Fig. 3) and pullback
attractors (Fig. 4).

Left: μ+(x) and μ−(x) at the chosen (w, v) with the input density ρ(x). Right: a map over
(w, v) ∈ [0, 2]² of π = P[μ+ ≤ 0], of its finite-η version, or of the top Lyapunov exponent of
the linearised random map, with the valley curve C; click it to choose (w, v). Below: the
pullback cloud of 10⁵ paths driven by one noise realisation, drawn with datashader
(:mod:`app.figures.stability`: a plain Bokeh figure, the class mode's too).

Maps, clouds and the chosen point's values are shared computations (:mod:`app.compute`) with
progress and cancel, through the shared cache: coming back to the page is instant, and a second
student with the same link follows the same computation.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..compute import Follower
from ..figures import apply_view
from ..figures.stability import TAP_BOUNDS, figures, view
from ..jobs import session_scheduler
from ..state import StabilityParams
from .base import Page, flow
from .progress import ProgressView

SLUG = "stability"
TITLE = "Stability maps & pullback attractors"
FIELDS = ("sigma2", "lr", "w0", "v0", "color_by", "resolution", "pullback_time",
          "pullback_points", "trapped_distance", "seed")
MAP_FIELDS = ("sigma2", "lr", "resolution", "seed")
CLOUD_FIELDS = ("sigma2", "lr", "pullback_time", "pullback_points", "seed")
EXPLAIN = (
    "**π** is the probability that a random input makes (w, v) attracting for small η "
    "(μ+ ≤ 0, paper 000 eq. 38); the **finite-η** map also needs |1 + ημ−| < 1. "
    "**λ** is the top Lyapunov exponent of the random products of I + ηJ(x_t) at the point: "
    "λ < 0 means a small displacement from (w, v) shrinks almost surely. π counts *how often* "
    "a step contracts, λ weighs *how much* every step contracts or expands — a point can have "
    "π < ½ and still λ < 0.")


class StabilityPage(Page):
    """μ± against x, the π / Lyapunov map over M_wv, and pullback clouds."""

    slug = SLUG
    advanced = ("resolution", "seed", "pullback_points", "trapped_distance")
    default_prompt = ("Click the map to pick a point (w, v) of the degenerate subspace M_wv; the "
                      "left plot shows for which inputs x it attracts (μ+ ≤ 0). Pick a preset to "
                      "reproduce Figs. 3 and 4 of paper 000.")
    state = param.ClassSelector(class_=StabilityParams)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("state", StabilityParams())
        super().__init__(query=query, **params)
        if query:
            self.apply_query(query)
        self._point_job = Follower(session_scheduler(pn.state.curdoc))
        self._map_ds = self._cloud_ds = self._point_ds = None
        self._build()
        s = self.state
        s.param.watch(lambda *e: self._request_map(), list(MAP_FIELDS))
        s.param.watch(lambda *e: self._request_cloud(), list(CLOUD_FIELDS))
        s.param.watch(lambda *e: self._redraw_map(), ["color_by"])
        s.param.watch(lambda *e: self._redraw_point(), ["w0", "v0", "sigma2", "lr"])
        s.param.watch(lambda *e: self._request_point(), ["seed"])
        s.param.watch(lambda *e: self._redraw_cloud(), ["trapped_distance"])
        self._request_map()
        self._request_cloud()
        self._request_point()

    # -- outside input -----------------------------------------------------------------------
    def targets(self):
        return [(self.state, FIELDS)]

    def export_datasets(self):
        return {"stability_map": self._map_ds, "pullback_cloud": self._cloud_ds,
                "point": self._point_ds}

    def cleanup(self) -> None:
        for job in (self._map_view, self._cloud_view, self._point_job):
            job.close()

    # -- computations ------------------------------------------------------------------------
    def _request_map(self) -> None:
        self._map_view.run(self.computation("maps"))

    def _on_maps(self, results):
        """The π map as soon as it is in (cheap), then the full map (π, its finite-η version
        and λ) replacing it."""
        if results:
            self._map_ds = results[-1]
            self._redraw_map()

    def _request_cloud(self) -> None:
        self._cloud_view.run(self.computation("cloud"))

    def _on_cloud(self, results):
        if results:
            self._cloud_ds = results[0]
            self._redraw_cloud()

    def _on_error(self, exc):
        self.add_notice(f"The computation failed: {exc}")

    # -- drawing: the views of app.figures.stability, the class mode's too --------------------
    def _draw(self, what: str, ds) -> dict:
        v = view(what, None if ds is None else [ds], {"state": self.state})
        apply_view(self._figs, v)
        for key, text in v.get("html", {}).items():
            self._html[key].object = text
        return v

    def _redraw_map(self):
        """The map of ``color_by`` (the π map while only it is in), C and its legend."""
        self._draw("maps", self._map_ds)

    def _redraw_point(self):
        """μ±(x) at once (a closed form); π, its finite-η version and λ at the point as a
        cached task in the background (a click used to run them on the server's loop)."""
        self._draw_point()
        self._request_point()

    def _draw_point(self) -> None:
        """μ±(x) at the chosen point (a closed form) and its × on the map."""
        self._draw("mu", None)

    def _request_point(self):
        """π, its finite-η version and λ at the point, followed in the background; "computing…"
        until they arrive (drawn after any result of an earlier point: ``on_start``)."""
        self._point_job.follow(self.computation("point"), self._on_point, self._on_error,
                               on_start=lambda: self._draw("point", None))

    def _on_point(self, results):
        self._point_ds = results[0]
        self._draw("point", self._point_ds)

    def _redraw_cloud(self):
        """The cloud, its rings and its trapped fraction."""
        if self._cloud_ds is not None:
            self._draw("cloud", self._cloud_ds)

    def _on_tap_event(self, event) -> None:  # a click on the map (Bokeh's Tap event)
        self._on_tap(x=event.x, y=event.y)

    def _on_tap(self, x=None, y=None):
        if x is None or y is None:
            return
        self.state.param.update(w0=float(np.clip(x, *TAP_BOUNDS["w0"])),
                                v0=float(np.clip(y, *TAP_BOUNDS["v0"])))

    def _build(self) -> None:
        s = self.state
        self._figs = figures()
        self._mu_fig, self._map_fig, self._cloud_fig = (self._figs[k] for k in ("mu", "map", "cloud"))
        self._map_fig.on_event("tap", self._on_tap_event)
        self._map_pane = pn.pane.Bokeh(self._map_fig, sizing_mode="stretch_width", min_height=330)
        self._cloud_pane = pn.pane.Bokeh(self._cloud_fig, sizing_mode="stretch_width",
                                         min_height=420)
        self._mu_pane = pn.pane.Bokeh(self._mu_fig, sizing_mode="stretch_width", min_height=330)
        self._point_md = pn.pane.HTML("")
        self._trapped = pn.pane.HTML("", styles={"flex": "1 1 300px", "font-size": "1.4em"})
        self._html = {"stab-point": self._point_md, "stab-trapped": self._trapped}
        self._draw_point()
        self._redraw_map()  # "not computed yet" until the first map arrives
        self._map_view = ProgressView(self._on_maps, "maps", "map-done")
        self._cloud_view = ProgressView(self._on_cloud, "pullback cloud", "cloud-done")
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
        slider = {"type": pn.widgets.EditableFloatSlider, "throttled": True}
        self._widgets = pn.Param(
            s, parameters=["sigma2", "lr", "color_by", "resolution"], show_name=False,
            widgets={"sigma2": dict(slider, format="0.[0000]"), "lr": dict(slider, format="0.[0000]"),
                     "resolution": {"type": pn.widgets.IntSlider, "throttled": True}})
        self._point_widgets = pn.Param(
            s, parameters=["w0", "v0"], show_name=False,
            widgets={"w0": dict(slider, format="0.[000]"), "v0": dict(slider, format="0.[000]")})
        self._cloud_widgets = pn.Param(
            s, parameters=["pullback_time", "pullback_points", "trapped_distance", "seed"],
            show_name=False,
            widgets={"pullback_points": {"type": pn.widgets.IntSlider, "throttled": True},
                     "trapped_distance": dict(slider, format="0.[000]"),
                     "seed": pn.widgets.IntInput})
        self._sync_alert()

    @property
    def sidebar(self):
        return pn.Column(self._preset_select, pn.pane.Markdown("#### Maps"), self._widgets,
                         pn.pane.Markdown("#### Point"), self._point_widgets,
                         pn.pane.Markdown("#### Pullback attractor"), self._cloud_widgets,
                         sizing_mode="stretch_width")

    def __panel__(self):
        # dimmed while they recompute: the frames (a HoloViews pane's own styles cannot be set)
        map_cell = self.plot_cell(self._map_pane, 340)
        cloud = self.deferred(self._cloud_pane, height=440, sizing_mode="stretch_width")
        self._map_view.dim, self._cloud_view.dim = map_cell, cloud
        return pn.Column(  # rows that wrap into one column on a narrow screen
            pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width"),
            self._alert,
            self._map_view.controls,
            flow(self.plot_cell(self._mu_pane, 340), map_cell),
            self._point_md,
            pn.pane.Markdown(EXPLAIN, styles={"color": "#555"}),
            pn.FlexBox(self._cloud_view.controls, self._trapped, align_items="center",
                       sizing_mode="stretch_width"),
            cloud,
            sizing_mode="stretch_width",
        )

"""Escape times: optimal noise (paper 000 Fig. 5) and power-law escape (paper 003 Fig. 3).

Two tabs, each computed only while shown. Fig. 5: τ* against σ²; the curve fills in
progressively — each σ² is one cached computation — with a progress bar, an estimate of the
time left and a cancel button; a recomputation leaves the previous results on screen, dimmed,
until its first new one arrives.
Where trajectories hit the step cap the restricted mean is only a lower bound: it is drawn as
an upward triangle and never joined to the curve of true means. Fig. 3 (linear regression of
paper 003 §5.3.1): mean first-passage time t_p against c = L/L* per dimension d with the theory
slope B/(ηh*) + 1 − d/2, and the stationary exponent φ against B per η with φ = 1 + B/(ηh*).
The plots are plain Bokeh figures defined once in :mod:`app.figures.escape` (the class mode's
too): whatever arrives is drawn by applying that module's view of the results.
"""

from __future__ import annotations

import panel as pn
import param
import xarray as xr

from ..figures import apply_view
from ..figures import escape as figs
from ..state import EscapeParams, PowerLawParams
from .base import Page, flow
from .progress import ProgressView

SLUG = "escape"
FIELDS = ("lr", "batch_size", "n_trajectories", "max_steps", "n_sigma2", "seed")
PL_FIELDS = PowerLawParams.FP_FIELDS + PowerLawParams.PHI_FIELDS + ("pl_seed",)
VIEWS = ("fig5", "powerlaw")


class EscapePage(Page):
    """τ* against σ² on log–log axes with confidence bands and the censored fraction; t_p
    against c per d and φ against B per η (paper 003)."""

    slug = SLUG
    advanced = ("n_trajectories", "max_steps", "n_sigma2", "seed", "fp_n_data", "fp_runs", "fp_c_max",
                "fp_max_steps", "phi_chains", "phi_samples", "pl_seed")
    default_prompt = ("Mean escape time τ* from M_wv against the input variance σ²: too little "
                      "noise and too much noise both trap SGD; in between there is an optimal "
                      "noise level (paper 000 Fig. 5). The second tab: SGD noise proportional "
                      "to the loss makes escape a power law of the loss ratio (paper 003 Fig. 3).")
    state = param.ClassSelector(class_=EscapeParams)
    powerlaw = param.ClassSelector(class_=PowerLawParams)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("state", EscapeParams())
        params.setdefault("powerlaw", PowerLawParams())
        super().__init__(query=query, **params)
        if query:
            self.apply_query(query)
        self._points: list[xr.Dataset] = []
        self._pl: dict = {"fp": [], "phi": []}
        self._pl_results: list[xr.Dataset] = []
        self._job = ProgressView(self._show_points, "σ² values", "escape-done")
        self._pl_job = ProgressView(self._show_pl, "curves and points", "powerlaw-done")
        self._stale = {"fig5": True, "powerlaw": True}
        self._build()
        self.state.param.watch(lambda *e: self._changed("fig5"), list(FIELDS))
        self.powerlaw.param.watch(lambda *e: self._changed("powerlaw"), list(PL_FIELDS))
        self.state.param.watch(self._on_view, "view")
        self._refresh_view()

    def targets(self):
        return [(self.state, FIELDS + ("view",)), (self.powerlaw, PL_FIELDS)]

    def export_datasets(self):
        # results of the previous parameters (dimmed while recomputing) are left out: the
        # export carries the current link
        pl = [] if self._pl_job.stale else [*self._pl["fp"], *self._pl["phi"]]
        curves = {PowerLawParams.group(ds): ds for ds in pl}
        return {"fig5": None if self._job.stale else self._table(), **curves}

    def cleanup(self) -> None:
        self._job.close()
        self._pl_job.close()

    # --- which tab computes ------------------------------------------------------------------
    def _changed(self, view):
        self._stale[view] = True
        self._refresh_view()

    def _on_view(self, event):
        self._tabs.active = VIEWS.index(event.new)
        self._refresh_view()

    def _on_tab(self, event):
        if isinstance(event.new, int) and 0 <= event.new < len(VIEWS):
            self.state.view = VIEWS[event.new]

    def _refresh_view(self):
        """Compute the shown tab if its inputs changed since it was last computed."""
        view = self.state.view
        if self._stale[view]:
            self._stale[view] = False
            (self._request if view == "fig5" else self._pl_request)()

    # --- paper 000, Fig. 5 --------------------------------------------------------------------
    def _request(self):
        self._job.run(self.computation("curve"))

    def _show_points(self, points):
        self._points = points
        self._redraw()

    def _redraw(self):
        apply_view(self._figs, figs.view("curve", self._points, self.states()))

    def _table(self):
        return figs.curve_table(self._points)

    # --- paper 003, Fig. 3 --------------------------------------------------------------------
    def _pl_request(self):
        self._pl_job.run(self.computation("powerlaw"))

    def _show_pl(self, results):
        self._pl_results = list(results)
        fp, phi = figs.split_powerlaw(results)
        self._pl = {"fp": fp, "phi": phi}
        self._pl_redraw()

    def _pl_redraw(self):
        shown = figs.view("powerlaw", self._pl_results, self.states())
        apply_view(self._figs, shown)
        self._pl_table.object = shown["html"][figs.SUMMARY_ID]

    # --- layout -------------------------------------------------------------------------------
    def _build(self):
        # the figures of app.figures.escape (the class mode's too), drawn empty until results come
        self._figs = figs.figures()
        for what in figs.VIEWS:
            apply_view(self._figs, figs.view(what, [], self.states()))
        self._plot, self._cens, self._tp_plot, self._phi_plot = (
            pn.pane.Bokeh(self._figs[k], sizing_mode="stretch_width", min_height=h)
            for k, h in (("curve", 380), ("censored", 200), ("passage", 380), ("phi", 380)))
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
        self._pl_table = pn.pane.HTML("", sizing_mode="stretch_width")
        list_widget = {"type": pn.widgets.MultiChoice}
        self._pl_widgets = pn.Param(
            self.powerlaw, parameters=list(PL_FIELDS), show_name=False,
            widgets={"fp_lr": {"type": pn.widgets.EditableFloatSlider, "throttled": True},
                     "fp_batch_size": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "fp_runs": {"type": pn.widgets.IntSlider, "throttled": True},
                     "fp_c_max": {"type": pn.widgets.FloatSlider, "throttled": True},
                     "phi_chains": {"type": pn.widgets.IntSlider, "throttled": True},
                     "phi_samples": {"type": pn.widgets.IntSlider, "throttled": True},
                     "fp_dims": list_widget, "phi_lrs": list_widget, "phi_batches": list_widget,
                     "pl_seed": pn.widgets.IntInput})
        # each tab's results, dimmed by its job while a recomputation has not shown anything yet
        self._job.dim = pn.Column(self.deferred(self._plot), self.deferred(self._cens),
                                  css_classes=["atlas-results", "atlas-fig5-results"],
                                  sizing_mode="stretch_width", margin=0)
        self._pl_job.dim = pn.Column(
            flow(self.plot_cell(self._tp_plot, 380), self.plot_cell(self._phi_plot, 380)),
            self._pl_table, css_classes=["atlas-results", "atlas-powerlaw-results"],
            sizing_mode="stretch_width", margin=0)
        self._tabs = pn.Tabs(
            ("Optimal noise (paper 000, Fig. 5)", pn.Column(
                self._job.controls, self._job.dim, sizing_mode="stretch_width")),
            ("Power-law escape (paper 003, Fig. 3)", pn.Column(
                self._pl_job.controls, self._pl_job.dim, sizing_mode="stretch_width")),
            active=VIEWS.index(self.state.view), dynamic=False, sizing_mode="stretch_width")
        self._tabs.param.watch(self._on_tab, "active")
        self._widgets = pn.Param(
            self.state, parameters=list(FIELDS), show_name=False,
            widgets={"lr": {"type": pn.widgets.EditableFloatSlider, "throttled": True},
                     "batch_size": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "n_trajectories": {"type": pn.widgets.IntSlider, "throttled": True},
                     "max_steps": {"type": pn.widgets.IntSlider, "throttled": True},
                     "n_sigma2": {"type": pn.widgets.IntSlider, "throttled": True},
                     "seed": pn.widgets.IntInput})
        self._sync_alert()

    @property
    def sidebar(self):
        return pn.Column(self._preset_select,
                         pn.pane.Markdown("**Optimal noise (paper 000)**"), self._widgets,
                         pn.pane.Markdown("**Power-law escape (paper 003)**"), self._pl_widgets,
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width"),
            self._alert,
            self._tabs,
            sizing_mode="stretch_both",
        )

"""Overfitting under label noise: the saddle–saddle–attractor path (paper 001 §4, Fig. 3).

Learning curves L and R against the step (log–log) with the plateau, near-optimal and
overfitting stretches shaded; the orbits in the (w1, w2) and (v1, v2) planes with the singular
region (dark grey), the optimal region (light grey) and the overfitting point (red star); the
number of positive Hessian eigenvalues along the path. The τ = 0 twin on the same inputs is
drawn dashed (Fig. 3 a beside b). The figures are plain Bokeh, defined once in
:mod:`app.figures.overfit` (the class mode's too); this page applies their views. Runs stream
while they compute, with progress, an estimate of the time left and cancel; a recomputation
leaves the previous curves on screen, dimmed, until its first partial result replaces them.
"""

from __future__ import annotations

import panel as pn
import param

from ..figures import apply_view
from ..figures.overfit import HTML_IDS, VIEWS, figures, view
from ..state import OverfitParams
from .base import Page, flow
from .progress import ProgressView

SLUG = "overfit"


class OverfitPage(Page):
    """Learning curves, orbits and Hessian counts of GD on a noisy dataset (paper 001)."""

    slug = SLUG
    advanced = ("seed", "n_steps", "batch_size", "dataset")
    default_prompt = ("GD on n noisy points first stalls near the singular region (plateau), "
                      "then slows down near the optimal region where R is smallest, and finally "
                      "learns the noise: L keeps falling while R rises, and θ settles on the "
                      "overfitting point (paper 001 Fig. 3). Move τ to see the last stage appear.")
    state = param.ClassSelector(class_=OverfitParams)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("state", OverfitParams())
        super().__init__(query=query, **params)
        if query:
            self.apply_query(query)
        self._runs: list = []
        self._build()
        self._job = ProgressView(self._show, "runs", "overfit-done", dim=self._results)
        self.state.param.watch(lambda *e: self._request(), list(OverfitParams.FIELDS))
        self.state.param.watch(lambda *e: self._apply("regions", None), list(VIEWS["regions"]))
        self._request()

    def targets(self):
        return [(self.state, OverfitParams.FIELDS)]

    def export_datasets(self):
        if self._job.stale:  # the previous parameters' runs: not what the link computes
            return {}
        return dict(zip((t.name for t in self.state.tasks()), self._runs))

    def cleanup(self) -> None:
        self._job.close()

    def _request(self):
        s = self.state
        steps, notice = s.capped_steps()
        if notice:
            self.add_notice(notice)
        self._job.run(self.computation("runs"), streaming=True)

    def _show(self, runs):
        """The runs computed so far (the last one may be a streamed partial run)."""
        self._runs = runs
        self._apply("runs", runs)

    def _apply(self, what: str, results) -> None:
        """Draw the view ``what`` (:func:`app.figures.overfit.view`): the figures' sources,
        ranges and the text beside them."""
        v = view(what, results, {"state": self.state})
        apply_view(self._figs, v)
        for element, text in v.get("html", {}).items():
            self._html[element].object = text

    @property
    def _summary(self) -> pn.pane.HTML:
        """The runs' summaries (HTML): what the tests read."""
        return self._html["overfit-summary"]

    # --- layout -------------------------------------------------------------------------------
    def _build(self):
        self._figs = figures()
        self._panes = {k: pn.pane.Bokeh(f, sizing_mode="stretch_width", min_height=f.height)
                       for k, f in self._figs.items()}
        note = {"color": "#555", "font-size": "0.9em"}
        self._html = {element: pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                            styles={} if element == "overfit-summary" else note)
                      for element in HTML_IDS}
        self._apply("regions", None)
        self._apply("runs", [])
        # dimmed by the job while a recomputation has not shown anything yet
        self._results = pn.Column(
            self.deferred(self._panes["curves"], height=360, sizing_mode="stretch_width"),
            self._html["overfit-stage-key"],
            flow(self.plot_cell(self._panes["w"], 330), self.plot_cell(self._panes["v"], 330)),
            self._html["overfit-region-key"],
            self.deferred(self._panes["count"], height=220, sizing_mode="stretch_width"),
            self._html["overfit-hessian-note"], self._html["overfit-summary"],
            css_classes=["atlas-results"], sizing_mode="stretch_both", margin=0)
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
        self._widgets = pn.Param(
            self.state, parameters=list(OverfitParams.FIELDS), show_name=False,
            widgets={"label_noise": {"type": pn.widgets.EditableFloatSlider, "throttled": True},
                     "n_data": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "lr": {"type": pn.widgets.EditableFloatSlider, "throttled": True},
                     "seed": pn.widgets.IntInput})
        self._sync_alert()

    @property
    def sidebar(self):
        return pn.Column(self._preset_select, self._widgets, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width"),
            self._alert, self._job.controls, self._results, sizing_mode="stretch_both")

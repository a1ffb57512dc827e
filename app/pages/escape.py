"""Escape time from the degenerate subspace against the input noise (paper 000 Fig. 5).

The curve fills in progressively — each σ² is one cached computation — with a progress bar and
a cancel button. Where trajectories hit the step cap the restricted mean is only a lower bound:
it is drawn as an upward triangle and never joined to the curve of true means.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr

from engine import escape

from ..cache import get_cache
from ..jobs import JobSlot, session_scheduler
from ..state import EscapeParams
from .base import Page

SLUG = "escape"
FIELDS = ("lr", "batch_size", "n_trajectories", "max_steps", "n_sigma2", "seed")


class EscapePage(Page):
    """τ* against σ² on log–log axes with confidence bands and the censored fraction."""

    slug = SLUG
    default_prompt = ("Mean escape time τ* from M_wv against the input variance σ²: too little "
                      "noise and too much noise both trap SGD; in between there is an optimal "
                      "noise level (paper 000 Fig. 5).")
    state = param.ClassSelector(class_=EscapeParams)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("state", EscapeParams())
        super().__init__(query=query, **params)
        if query:
            self.apply_query(query)
        self._job = JobSlot(session_scheduler(pn.state.curdoc), self._on_progress)
        self._points: list[xr.Dataset] = []
        self._build()
        self.state.param.watch(lambda *e: self._request(), list(FIELDS))
        self._request()

    def targets(self):
        return [(self.state, FIELDS)]

    def cleanup(self) -> None:
        self._job.close()

    def _request(self):
        s = self.state
        inputs = [s.point_inputs(v) for v in s.sigma2_values()]
        self._points = []
        self._redraw()
        self._bar.value, self._bar.visible, self._cancel.disabled = 0, True, False
        self._status.object = "computing…"

        def work(ctx):
            done = []  # every report carries all points so far (reports may be throttled)
            for i, kw in enumerate(inputs):
                ctx.check()
                done.append(get_cache().get_or_compute(
                    "escape_times", kw,
                    lambda kw=kw: escape.escape_times(**kw, cancel=lambda: ctx.cancelled)))
                ctx.progress(i + 1, len(inputs), list(done))
            return done

        self._job.submit(work, self._on_done, self._on_error)

    def _on_progress(self, done, total, points):
        self._points = points
        self._redraw()
        self._bar.value = int(100 * done / total)
        self._status.object = f"{done} of {total} σ² values"

    def _on_done(self, points):
        self._points = points
        self._redraw()
        self._bar.visible, self._cancel.disabled = False, True
        self._status.object = f'<span id="escape-done">complete: {len(points)} σ² values</span>'

    def _on_cancel(self, event):
        self._job.cancel()
        self._bar.visible, self._cancel.disabled = False, True
        self._status.object = "Cancelled; change a parameter to compute again."

    def _on_error(self, exc):
        self._bar.visible = False
        self.add_notice("The computation failed; change a parameter to retry.")

    def _redraw(self):
        self._plot.object = self._curve()
        self._cens.object = self._censored_plot()

    def _table(self):
        if not self._points:
            return None
        ds = xr.concat(self._points, dim="sigma2").sortby("sigma2")
        return ds

    def _curve(self):
        ds = self._table()
        # explicit ranges: auto-ranging on log axes from the first (empty) frame goes wrong
        opts = dict(logx=True, logy=True, responsive=True, min_height=380, xlabel="σ²",
                    ylabel="mean escape time τ* (steps)", title="escape time from M_wv (Fig. 5)",
                    xlim=(0.0015, 1.4), ylim=(10.0, 3.0 * self.state.max_steps), framewise=True)
        if ds is None:
            return hv.Curve([], "σ²", "τ*").opts(**opts)
        s2 = ds.sigma2.values
        m, lo, hi = ds.mean_time.values, ds.mean_ci_low.values, ds.mean_ci_high.values
        lb = ds.mean_is_lower_bound.values.astype(bool)
        exact = ~lb
        layers = [
            hv.Area((s2[exact], np.maximum(lo[exact], 1), hi[exact]), "σ²", ["low", "high"],
                    label="95 % CI").opts(alpha=0.25, color="#1f77b4"),
            hv.Curve((s2[exact], m[exact]), "σ²", "τ*", label="mean (nothing censored)").opts(
                color="#1f77b4", line_width=2),
            hv.Scatter((s2[exact], m[exact]), "σ²", "τ*").opts(color="#1f77b4", size=7),
            hv.Scatter((s2[lb], m[lb]), "σ²", "τ*", label="lower bound (censored)").opts(
                color="#d62728", marker="triangle", size=10),
            hv.HLine(self.state.max_steps).opts(color="#888", line_dash="dashed"),
        ]
        opts["ylim"] = (max(0.3 * float(np.nanmin(np.where(exact, lo, m))), 1.0), 3.0 * self.state.max_steps)
        if exact.any():
            i = np.flatnonzero(exact)[np.argmin(m[exact])]
            layers.append(hv.VLine(s2[i]).opts(color="#2ca02c", line_dash="dotted"))
            layers.append(hv.Text(s2[i], max(m[i] / 3, 1), f" minimum at σ² = {s2[i]:.3g}",
                                  halign="left").opts(color="#2ca02c"))
        return hv.Overlay(layers).opts(**opts, legend_position="top_left")

    def _censored_plot(self):
        ds = self._table()
        opts = dict(logx=True, responsive=True, min_height=200, ylim=(0, 1.05), xlabel="σ²",
                    ylabel="censored fraction", title="fraction still inside at the step cap",
                    xlim=(0.0015, 1.4), framewise=True)
        if ds is None:
            return hv.Curve([], "σ²", "censored").opts(**opts)
        return hv.Curve((ds.sigma2.values, ds.censored_fraction.values), "σ²", "censored").opts(
            color="#d62728", line_width=2, **opts) * hv.Scatter(
            (ds.sigma2.values, ds.censored_fraction.values), "σ²", "censored").opts(color="#d62728")

    def _build(self):
        self._plot = pn.pane.HoloViews(self._curve(), sizing_mode="stretch_width", min_height=380)
        self._cens = pn.pane.HoloViews(self._censored_plot(), sizing_mode="stretch_width", min_height=200)
        self._bar = pn.indicators.Progress(value=0, max=100, width=300)
        self._status = pn.pane.HTML("")
        self._cancel = pn.widgets.Button(name="Cancel", button_type="warning", width=90)
        self._cancel.on_click(self._on_cancel)
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
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
        return pn.Column(self._preset_select, self._widgets, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width"),
            self._alert,
            pn.Row(self._bar, self._cancel, self._status),
            self._plot, self._cens,
            sizing_mode="stretch_both",
        )

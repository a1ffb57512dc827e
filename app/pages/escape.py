"""Escape times: optimal noise (paper 000 Fig. 5) and power-law escape (paper 003 Fig. 3).

Two tabs, each computed only while shown. Fig. 5: τ* against σ²; the curve fills in
progressively — each σ² is one cached computation — with a progress bar, an estimate of the
time left and a cancel button; a recomputation leaves the previous results on screen, dimmed,
until its first new one arrives.
Where trajectories hit the step cap the restricted mean is only a lower bound: it is drawn as
an upward triangle and never joined to the curve of true means. Fig. 3 (linear regression of
paper 003 §5.3.1): mean first-passage time t_p against c = L/L* per dimension d with the theory
slope B/(ηh*) + 1 − d/2, and the stationary exponent φ against B per η with φ = 1 + B/(ηh*).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr

from engine import linreg

from ..state import EscapeParams, PowerLawParams
from .base import Page
from .progress import ProgressView

SLUG = "escape"
FIELDS = ("lr", "batch_size", "n_trajectories", "max_steps", "n_sigma2", "seed")
PL_FIELDS = PowerLawParams.FP_FIELDS + PowerLawParams.PHI_FIELDS + ("pl_seed",)
VIEWS = ("fig5", "powerlaw")
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _pm(value: float, err: float) -> str:
    """"12.10 ± 0.44", or "—" where there is no estimate (too few points, divergence)."""
    return f"{value:.2f} ± {err:.2f}" if np.isfinite(value) and np.isfinite(err) else "—"


class EscapePage(Page):
    """τ* against σ² on log–log axes with confidence bands and the censored fraction."""

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

    # --- paper 003, Fig. 3 --------------------------------------------------------------------
    def _pl_request(self):
        self._pl_job.run(self.computation("powerlaw"))

    def _show_pl(self, results):
        self._pl = {"fp": [ds for ds in results if ds.attrs["kind"] == "first_passage"],
                    "phi": [ds for ds in results if ds.attrs["kind"] == "stationary_exponent"]}
        self._pl_redraw()

    def _pl_redraw(self):
        self._tp_plot.object = self._passage_plot()
        self._phi_plot.object = self._phi_plot_obj()
        self._pl_table.object = self._pl_summary()

    def _passage_plot(self):
        p = self.powerlaw
        c = p.thresholds()
        opts = dict(logx=True, logy=True, responsive=True, min_height=380,
                    xlabel="c = L(θ_s) / L(θ*)", ylabel="mean first-passage time t_p (steps)",
                    title=f"first passage from θ* (Fig. 3b): η = {p.fp_lr:g}, B = {p.fp_batch_size}",
                    xlim=(c[0] / 1.03, c[-1] * 1.03), ylim=(1.0, 3.0 * p.fp_max_steps),
                    framewise=True, legend_position="top_left")
        layers = [hv.Curve([], "c", "t_p")]
        for k, ds in enumerate(self._pl["fp"]):
            col = COLORS[k % len(COLORS)]
            cs, m, se = ds.c.values, ds.mean_time.values, ds.mean_time_se.values
            lb = ds.mean_is_lower_bound.values.astype(bool)
            d = ds.attrs["dim"]
            fit, fit_se, th = ds.attrs["fitted_slope"], ds.attrs["fitted_slope_se"], ds.attrs["theory_slope"]
            fit_txt = f"{fit:.1f} ± {fit_se:.1f}" if np.isfinite(fit) else "—"
            ok = ~lb
            layers += [
                hv.ErrorBars((cs[ok], m[ok], 1.96 * se[ok]), "c", ["t_p", "err"]).opts(color=col),
                hv.Curve((cs[ok], m[ok]), "c", "t_p",
                         label=f"d = {d}: slope {fit_txt} (theory {th:.2f})").opts(color=col, line_width=2),
                hv.Scatter((cs[ok], m[ok]), "c", "t_p").opts(color=col, size=6),
                hv.Scatter((cs[lb], m[lb]), "c", "t_p").opts(color=col, marker="triangle", size=9),
            ]
            # the theory slope through the points of the fit (intercept by least squares)
            use = linreg.fit_points(cs, {v: ds[v].values for v in ("mean_time", "mean_is_lower_bound")},
                                    ds.attrs["fit_from"])
            if use.sum() >= 2:
                a = np.mean(np.log(m[use]) - th * np.log(cs[use]))
                xs = cs[use]
                layers.append(hv.Curve((xs, np.exp(a + th * np.log(xs))), "c", "t_p").opts(
                    color=col, line_dash="dashed", line_width=1.5))
        layers.append(hv.HLine(p.fp_max_steps).opts(color="#888", line_dash="dotted"))
        return hv.Overlay(layers).opts(**opts)

    def _phi_plot_obj(self):
        p = self.powerlaw
        bs = np.array(p.phi_batches, dtype=float)
        opts = dict(logy=True, responsive=True, min_height=380, xlabel="B (batch size)",
                    ylabel="exponent φ of P(θ) ∝ L(θ)^−φ",
                    title="stationary exponent (Fig. 3a, d = 1, N = 10⁵); dashed: 1 + B/(ηh*)",
                    xlim=(0, bs.max() + 1), ylim=(1.0, 2.0 * (1 + bs.max() / min(p.phi_lrs))),
                    framewise=True, legend_position="top_left")
        layers = [hv.Curve([], "B", "φ")]
        by_lr: dict[float, list] = {}
        for ds in self._pl["phi"]:
            by_lr.setdefault(ds.attrs["lr"], []).append(ds)
        for k, lr in enumerate(sorted(by_lr)):
            col = COLORS[k % len(COLORS)]
            pts = sorted(by_lr[lr], key=lambda ds: ds.attrs["batch_size"])
            b = np.array([ds.attrs["batch_size"] for ds in pts], dtype=float)
            phi = np.array([float(ds.phi) for ds in pts])
            se = np.array([float(ds.phi_se) for ds in pts])
            h = pts[0].attrs["h_star"]
            ok = np.isfinite(phi) & np.isfinite(se)
            bb = np.linspace(min(bs.min(), 1), bs.max(), 50)
            layers += [
                hv.Curve((bb, 1 + bb / (lr * h)), "B", "φ").opts(color=col, line_dash="dashed"),
                hv.ErrorBars((b[ok], phi[ok], 1.96 * se[ok]), "B", ["φ", "err"]).opts(color=col),
                hv.Scatter((b[ok], phi[ok]), "B", "φ", label=f"η = {lr:g}").opts(color=col, size=8),
            ]
        return hv.Overlay(layers).opts(**opts)

    def _pl_summary(self) -> str:
        rows = []
        for ds in self._pl["fp"]:
            a = ds.attrs
            cens = float(ds.censored_fraction.max())
            rows.append(f"| first passage, d = {a['dim']} | h* = {a['h_star']:.3f} | "
                        f"{_pm(a['fitted_slope'], a['fitted_slope_se'])} | {a['theory_slope']:.2f} | "
                        f"{100 * cens:.0f} % censored at the largest c |")
        for ds in self._pl["phi"]:
            a = ds.attrs
            div = int(ds.diverged.sum())
            note = (f"{div} of {a['n_chains']} chains diverged: no stationary law"
                    if div else "none diverged")
            rows.append(f"| φ at η = {a['lr']:g}, B = {a['batch_size']} | h* = {a['h_star']:.3f} | "
                        f"{_pm(float(ds.phi), float(ds.phi_se))} | {float(ds.phi_theory):.2f} | "
                        f"{note} |")
        if not rows:
            return ""
        head = ("| measurement | data | measured (slope or φ) | theory | censored / diverged |\n"
                "|---|---|---|---|---|\n")
        return head + "\n".join(rows) + (
            "\n\nSlopes are fitted over the upper half of the c range (uncensored points); the "
            "dashed lines have the theory slope. Beyond eq. 17, discrete steps lower φ at large "
            "η (the paper notes the departure at η = 1).")

    # --- layout -------------------------------------------------------------------------------
    def _build(self):
        self._plot = pn.pane.HoloViews(self._curve(), sizing_mode="stretch_width", min_height=380)
        self._cens = pn.pane.HoloViews(self._censored_plot(), sizing_mode="stretch_width", min_height=200)
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
        self._tp_plot = pn.pane.HoloViews(self._passage_plot(), sizing_mode="stretch_width",
                                          min_height=380)
        self._phi_plot = pn.pane.HoloViews(self._phi_plot_obj(), sizing_mode="stretch_width",
                                           min_height=380)
        self._pl_table = pn.pane.Markdown("", sizing_mode="stretch_width")
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
            pn.Row(self.deferred(self._tp_plot), self.deferred(self._phi_plot),
                   sizing_mode="stretch_width"),
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

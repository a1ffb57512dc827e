"""Overfitting under label noise: the saddle–saddle–attractor path (paper 001 §4, Fig. 3).

Learning curves L and R against the step (log–log) with the plateau, near-optimal and
overfitting stretches shaded; the orbits in the (w1, w2) and (v1, v2) planes with the singular
region (dark grey), the optimal region (light grey) and the overfitting point (red star); the
number of positive Hessian eigenvalues along the path. The τ = 0 twin on the same inputs is
drawn dashed (Fig. 3 a beside b). Runs stream while they compute, with progress, an estimate
of the time left and cancel; a recomputation leaves the previous curves on screen, dimmed, until
its first partial result replaces them.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param

from engine import overfit

from ..state import OverfitParams
from .base import Page
from .progress import ProgressView

SLUG = "overfit"
STAGE_COLORS = {1: "#9e9e9e", 2: "#8fd18f", 3: "#f3a6a6"}
NOISY, CLEAN = "#1f77b4", "#ff7f0e"


def _stretches(steps: np.ndarray, stage: np.ndarray):
    """(first step, last step, code) of each run of equal non-zero stage codes."""
    out, start = [], 0
    for i in range(1, stage.size + 1):
        if i == stage.size or stage[i] != stage[start]:
            if stage[start] != 0:
                out.append((steps[start], steps[i - 1], int(stage[start])))
            start = i
    return out


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
        self._runs = runs
        self._curves.object = self._curve_plot()
        self._orbits.object = self._orbit_plots()
        self._count.object = self._count_plot()
        self._summary.object = self._summary_text()

    # --- plots --------------------------------------------------------------------------------
    def _labelled(self):
        """(dataset, label, colour, dash) per run shown."""
        out = []
        for k, ds in enumerate(self._runs):
            clean = k == 1
            tau = "0" if clean else ("≈ 0.2 (released)" if self.state.dataset == "released"
                                     else f"{self.state.label_noise:g}")
            out.append((ds, f"τ = {tau}", CLEAN if clean else NOISY, "dashed" if clean else "solid"))
        return out

    def _curve_plot(self):
        T = self.state.capped_steps()[0]
        opts = dict(logx=True, logy=True, responsive=True, min_height=360, xlabel="step",
                    ylabel="error", title="learning curves: L (training), R (generalisation)",
                    xlim=(1, 1.5 * T), framewise=True, legend_position="bottom_left")
        layers = [hv.Curve([], "step", "error")]
        main = self._runs[0] if self._runs else None
        if main is not None and "stage" in main:
            for a, b, code in _stretches(main.step.values, main.stage.values):
                layers.append(hv.VSpan(max(a, 1), max(b, 1)).opts(color=STAGE_COLORS[code], alpha=0.25))
        lows = []
        for ds, label, col, dash in self._labelled():
            st = ds.step.values
            keep = st >= 1
            L, R = ds.train_error.values[keep], ds.generalization_error.values[keep]
            lows += [np.nanmin(L[L > 0]) if np.any(L > 0) else 1, np.nanmin(R[R > 0]) if np.any(R > 0) else 1]
            layers += [
                hv.Curve((st[keep], L), "step", "error", label=f"L, {label}").opts(
                    color=col, line_dash=dash, line_width=2),
                hv.Curve((st[keep], R), "step", "error", label=f"R, {label}").opts(
                    color="#d62728" if dash == "solid" else "#e8a0a0", line_dash=dash, line_width=2),
            ]
        if lows:
            opts["ylim"] = (max(min(lows) / 3, 1e-12), 5.0)
        else:
            opts["ylim"] = (1e-5, 5.0)
        return hv.Overlay(layers).opts(**opts)

    def _region_lines(self, plane: str, lim: float):
        """Singular (dark grey) and optimal (light grey) regions projected on a plane."""
        dark, light = dict(color="#555", line_width=1.5), dict(color="#bbb", line_width=4)
        grid = np.array([-lim, lim])
        out = []
        main = self._runs[0] if self._runs else None
        w_o, v_o = (main.attrs["one_neuron_optimum"] if main is not None and
                    "one_neuron_optimum" in main.attrs else (1.0, 2.0))
        teacher = self.state.teacher if self.state.dataset == "generated" else "2tanh"
        if plane == "w":
            # f ≡ 0 (w1 = w2 = 0, w1 = ±w2) and the embedding of O_1 (w_i = ±w°)
            out += [hv.Curve((grid, s * grid)).opts(**dark) for s in (1, -1)]
            out += [hv.HLine(0).opts(**dark), hv.VLine(0).opts(**dark)]
            out += [hv.HLine(s * w_o).opts(**dark, line_dash="dotted") for s in (1, -1)]
            out += [hv.VLine(s * w_o).opts(**dark, line_dash="dotted") for s in (1, -1)]
            if teacher == "2tanh":
                out += [hv.HLine(s).opts(**light) for s in (1, -1)] + [hv.VLine(s).opts(**light) for s in (1, -1)]
            else:
                pts = overfit.OPTIMAL_POINTS
                out.append(hv.Scatter((pts[:, 0], pts[:, 1])).opts(color="#bbb", size=14))
        else:
            out += [hv.Curve((grid, -grid)).opts(**dark), hv.HLine(0).opts(**dark), hv.VLine(0).opts(**dark)]
            out += [hv.Curve((grid, s * v_o - grid)).opts(**dark, line_dash="dotted") for s in (1, -1)]
            if teacher == "2tanh":
                out += [hv.Curve((grid, s * 2 - grid)).opts(**light) for s in (1, -1)]
                out += [hv.HLine(s * 2).opts(**light) for s in (1, -1)] + [hv.VLine(s * 2).opts(**light) for s in (1, -1)]
            else:
                pts = overfit.OPTIMAL_POINTS
                out.append(hv.Scatter((pts[:, 2], pts[:, 3])).opts(color="#bbb", size=14))
        return out

    def _orbit_plots(self):
        panels = []
        for plane, (i, j), names in (("w", (0, 1), ("w1", "w2")), ("v", (2, 3), ("v1", "v2"))):
            lim = 2.5
            layers = self._region_lines(plane, 6.0)
            for ds, label, col, dash in reversed(self._labelled()):
                th = ds.theta.values
                ok = np.all(np.isfinite(th), axis=1)
                if ok.any():
                    lim = max(lim, 1.15 * float(np.max(np.abs(th[ok][:, [i, j]]))))
                layers.append(hv.Path([th[ok][:, [i, j]]], list(names), label=label).opts(
                    color=col, line_dash=dash, line_width=2))
                if ok.any():
                    layers.append(hv.Scatter((th[ok][:1, i], th[ok][:1, j]), names[0], names[1]).opts(
                        color=col, size=7, marker="circle"))
                ref = ds.attrs.get("refined_theta")
                if ref is not None and dash == "solid" and "stage" in ds and int(ds.stage.values[-1]) == 3:
                    layers.append(hv.Scatter(([ref[i]], [ref[j]]), names[0], names[1]).opts(
                        color="#d62728", marker="star", size=18))
            lim = min(lim, 6.0)
            panels.append(hv.Overlay(layers).opts(
                responsive=True, min_height=330, aspect=None, xlim=(-lim, lim), ylim=(-lim, lim),
                xlabel=names[0], ylabel=names[1], show_legend=False, framewise=True,
                title=f"orbit in the ({names[0]}, {names[1]}) plane"))
        return hv.Layout(panels).cols(2)

    def _count_plot(self):
        T = self.state.capped_steps()[0]
        opts = dict(logx=True, responsive=True, min_height=220, xlabel="step",
                    ylabel="positive eigenvalues", ylim=(-0.2, 4.3), xlim=(1, 1.5 * T),
                    title="Hessian of L: number of positive eigenvalues along the path",
                    framewise=True, show_legend=False)
        layers = [hv.Curve([], "step", "count")]
        for ds, label, col, dash in self._labelled():
            if "n_positive" not in ds:
                continue
            st = ds.step.values
            keep = (st >= 1) & (ds.n_positive.values >= 0)
            layers.append(hv.Curve((st[keep], ds.n_positive.values[keep]), "step", "count",
                                   label=label).opts(color=col, line_dash=dash, line_width=2,
                                                     interpolation="steps-post"))
        return hv.Overlay(layers).opts(**opts)

    def _summary_text(self) -> str:
        if not self._runs:
            return ""
        lines = []
        for ds, label, _, _ in self._labelled():
            a = ds.attrs
            if a.get("partial"):
                lines.append(f"**{label}**: running… {a['n_steps']:,} steps so far.")
                continue
            if a.get("diverged_at", -1) >= 0:
                lines.append(f"**{label}**: diverged at step {a['diverged_at']:,} — η is too large "
                             "for this landscape (the curves stop there).")
                continue
            R = ds.generalization_error.values
            k = int(np.nanargmin(R))
            parts = [f"**{label}**: R is smallest ({R[k]:.3g}) at step {int(ds.step[k]):,}; "
                     f"at the end L = {ds.train_error.values[-1]:.4g}, R = {R[-1]:.3g}."]
            stages = {int(s) for s in ds.stage.values} if "stage" in ds else set()
            names = [overfit.STAGES[c] for c in (1, 2, 3) if c in stages]
            if names:
                parts.append("Stages seen: " + ", ".join(names) + ".")
            if "refined_theta" in a:
                th = overfit.canonical(np.array(a["refined_theta"]))
                ev = np.array(a["refined_eigenvalues"])
                kind = ("an attractor (all 4 eigenvalues > 0)" if np.all(ev > 1e-9 * ev.max())
                        else f"not a strict minimum ({int(overfit.positive_count(ev))} positive)")
                parts.append(
                    f"End point refined (Levenberg–Marquardt + Newton): w = ({th[0]:.6f}, "
                    f"{th[1]:.6f}), v = ({th[2]:.6f}, {th[3]:.6f}), |∇L| = "
                    f"{a['refined_grad_norm']:.1e}, Hessian eigenvalues "
                    f"{', '.join(f'{e:.3g}' for e in ev)}: {kind}.")
            lines.append(" ".join(parts))
        lines.append("Shading (solid run): grey = plateau (near the singular region), green = "
                     "near-optimal, red = overfitting. Grey lines in the orbits: dark = singular "
                     "region (dotted: the embedding of the one-neuron fit O₁), light = optimal "
                     "region. Paper 001 counts 1 positive eigenvalue near the optimal region; on "
                     "the region itself the Hessian is exactly rank 2 for τ = 0, and that is what "
                     "the count shows.")
        return "\n\n".join(lines)

    # --- layout -------------------------------------------------------------------------------
    def _build(self):
        self._curves = pn.pane.HoloViews(self._curve_plot(), sizing_mode="stretch_width", min_height=360)
        self._orbits = pn.pane.HoloViews(self._orbit_plots(), sizing_mode="stretch_width", min_height=340)
        self._count = pn.pane.HoloViews(self._count_plot(), sizing_mode="stretch_width", min_height=220)
        self._summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        # dimmed by the job while a recomputation has not shown anything yet
        self._results = pn.Column(
            *map(self.deferred, (self._curves, self._orbits, self._count)), self._summary,
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

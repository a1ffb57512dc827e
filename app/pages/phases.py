"""Phase diagrams of SGD at a Type-II saddle: Proposition 1 of paper 002 (Figs. 2, 8, 9).

λ–μ map (S, N, seed) and λ–S map (μ) of the phases Ia, Ib, II, III, IV from Λ± (with their
uncertainty on hover), the Λ = 0 boundaries and the L2 boundary; clicking a cell simulates the
saddle SGD there and sets the empirical verdict beside the theoretical one; box-zoom recomputes
the visible region; the Lyapunov exponent of a 2-D random matrix product against η (Fig. 2
right). Computations are shared (:mod:`app.compute`): in the background, through the shared
cache, with progress and cancel for the maps.
"""

from __future__ import annotations

from urllib.parse import urlencode

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import CustomJSHover
from holoviews.streams import Params, RangeXY, Tap

from engine import saddle

from ..compute import Follower
from ..jobs import session_scheduler
from ..state import LOG2_S, S_VALUES, PhaseParams, join_along
from .base import Page, cell, flow
from .progress import ProgressView

SLUG = "phases"
TITLE = "Phase diagrams (paper 002)"
FIELDS = ("batch_size", "n_data", "seed", "mu_for_s", "resolution", "lr", "mu")
RANGES = ("log_lr_range", "mu_range")  # set by presets and box-zoom, not kept in the URL
PHASE_COLORS = {"Ia": "#2ca02c", "Ib": "#98df8a", "II": "#ff7f0e", "III": "#1f77b4", "IV": "#d62728"}
PHASE_CODE = {p: i for i, p in enumerate(saddle.PHASES)}
MEANING = {"Ia": "correct learning, also stable in mean square",
           "Ib": "correct learning in probability, not in mean square",
           "II": "stable but incorrect learning", "III": "collapse to the saddle (low rank)",
           "IV": "completely unstable"}
MAP_HEIGHT, PLOT_HEIGHT = 420, 320  # fixed plot heights: the page scrolls instead of squeezing
#: The phase maps' hover names the phase of its colour code (the Image's values are numbers).
PHASE_NAME_JS = ("const i = Math.round(value);\n"
                 "return Number.isFinite(value) && i >= 0 && i < names.length ? names[i] : '–';")
#: Value dimensions of the phase maps: the colour (phase code) first, then what hover shows.
PHASE_DIM = hv.Dimension("phase_code", label="phase")
LAMBDA_DIMS = {"lyap_minus": hv.Dimension("Lambda_minus", label="Λ− (w − u)"),
               "lyap_minus_se": hv.Dimension("Lambda_minus_se", label="Λ− standard error"),
               "lyap_plus": hv.Dimension("Lambda_plus", label="Λ+ (w + u)"),
               "lyap_plus_se": hv.Dimension("Lambda_plus_se", label="Λ+ standard error")}


def _codes(phase: np.ndarray) -> np.ndarray:
    out = np.zeros(phase.shape)
    for p, c in PHASE_CODE.items():
        out[phase == p] = c
    return out


def _hover_opts(cell: list[tuple[str, str]]) -> dict:
    """Hover of a phase map: the phase by name (Prop. 1 of paper 002), the cell's ``cell``
    tooltips, then Λ− (of w − u) and Λ+ (of w + u) ± their standard errors."""
    lam = [(LAMBDA_DIMS[v].label, f"@{{{LAMBDA_DIMS[v].name}}}{{%+.4f}} ± "
                                  f"@{{{LAMBDA_DIMS[v + '_se'].name}}}{{%.1e}}")
           for v in ("lyap_minus", "lyap_plus")]
    printf = {f"@{{{d.name}}}": "printf" for d in LAMBDA_DIMS.values()} | {"@{η}": "printf"}
    return dict(
        tools=["hover"], hover_tooltips=[(PHASE_DIM.label, "@image{custom}"), *cell, *lam],
        hover_formatters={"@image": CustomJSHover(args={"names": list(saddle.PHASES)},
                                                  code=PHASE_NAME_JS)} | printf)


class PhasesPage(Page):
    """λ–μ and λ–S phase diagrams, the saddle simulation at a clicked cell, Fig. 2 right."""

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
        s.param.watch(lambda *e: self._request_map(),
                      ["batch_size", "n_data", "seed", "resolution", "log_lr_range", "mu_range"])
        s.param.watch(lambda *e: self._request_s_map(), ["mu_for_s", "log_lr_range"])
        s.param.watch(lambda *e: self._simulate(), ["lr", "mu", "batch_size", "n_data", "seed"])
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
        tasks = self.computation("s_map")
        lr = tasks[0].inputs["lr"]
        self._s_job.follow(tasks, lambda cols: self._on_s_map((lr, cols)), self._on_error)

    def _request_fig2(self):
        self._fig2_job.follow(self.computation("fig2"), lambda r: self._on_fig2(r[0]),
                              self._on_error)

    def _on_error(self, exc):
        self.add_notice("A computation failed; change a parameter to retry.")

    # -- drawing -----------------------------------------------------------------------------
    def _on_map(self, results):
        if not results:
            return
        self._map_ds = ds = results[0]
        self._map_pane.object = self._map_plot(ds)

    def _map_plot(self, ds):
        """The λ–μ map (Figs. 8, 9 of paper 002) with the Λ = 0 and L2 boundaries, and the ×
        of the clicked cell, which follows ``state.lr``/``state.mu`` without redrawing the map.

        Hover names the cell's phase and gives Λ± ± their errors. The Tap and RangeXY streams
        are on the Image itself: a Tap on a DynamicMap inside an overlay receives no clicks in
        HoloViews 1.23."""
        x = np.log10(ds.lr.values)
        y = ds.mu.values
        shape = (y.size, x.size)
        vd = {
            PHASE_DIM: _codes(ds.phase.values).T,
            "η": np.broadcast_to(ds.lr.values[None, :], shape),
            hv.Dimension("mu", label="μ (cell centre)"): np.broadcast_to(y[:, None], shape),
            "S": np.full(shape, float(ds.attrs["batch_size"])),
            **{LAMBDA_DIMS[v]: ds[v].values.T for v in LAMBDA_DIMS},
        }
        vd = {k: np.where(np.isfinite(v), v, np.nan) for k, v in vd.items()}
        img = hv.Image((x, y, *vd.values()), kdims=["log10 η", "μ"], vdims=list(vd)).opts(
            cmap=list(PHASE_COLORS.values()), clim=(-0.5, 4.5), color_levels=5, colorbar=False,
            responsive=True, height=MAP_HEIGHT,
            title=f"λ–μ phase diagram (S = {ds.attrs['batch_size']}, N = "
                  f"{'∞' if ds.attrs['n_data'] == 'none' else ds.attrs['n_data']})",
            **_hover_opts([("η", "@{η}{%.3g}"), ("μ", "@{mu}{0.000}"), ("S", "@{S}")]))
        # for the Λ = 0 contours
        lm = hv.Image((x, y, vd[LAMBDA_DIMS["lyap_minus"]]), kdims=["log10 η", "μ"])
        lp = hv.Image((x, y, vd[LAMBDA_DIMS["lyap_plus"]]), kdims=["log10 η", "μ"])
        layers = [img,
                  hv.operation.contours(lm, levels=[0.0]).opts(color="black", line_width=1.5),
                  hv.operation.contours(lp, levels=[0.0]).opts(color="white", line_width=1.5,
                                                              line_dash="dashed")]
        # the L2 boundary E[(1 − ηχ)²] = 1, for any N and S, from the Dataset's l2_stable
        l2 = hv.Image((x, y, ds.l2_stable.values.T.astype(float)), kdims=["log10 η", "μ"])
        layers.append(hv.operation.contours(l2, levels=[0.5]).relabel("L2 boundary").opts(
            color="#9467bd", line_width=2.5, line_dash="dotted", show_legend=True))
        self._tap = Tap(source=img)
        self._tap.add_subscriber(self._on_tap)
        self._range = RangeXY(source=img)
        self._range.add_subscriber(self._on_range)
        return (hv.Overlay(layers) * self._marker_dmap).opts(hv.opts.Overlay(
            xlim=(x[0] - 0.5 * (x[1] - x[0]), x[-1] + 0.5 * (x[1] - x[0])),
            ylim=(y[0] - 0.5 * (y[1] - y[0]), y[-1] + 0.5 * (y[1] - y[0])),
            legend_position="bottom_right"))

    @staticmethod
    def _marker(lr, mu):
        """The clicked cell: a black × at (log10 η, μ)."""
        return hv.Points([(np.log10(lr), mu)], ["log10 η", "μ"]).opts(
            color="black", marker="x", size=14, line_width=3)

    def _on_tap(self, x=None, y=None):
        if x is None or y is None:
            return
        self.state.param.update(lr=float(np.clip(10.0 ** x, 1e-4, 100.0)),
                                mu=float(np.clip(y, 0.0, 1.0)))

    def _on_range(self, x_range=None, y_range=None):
        if x_range is None or y_range is None:
            return
        s = self.state
        lo, hi = (max(-4.0, x_range[0]), min(2.0, x_range[1]))
        m0, m1 = (max(0.0, y_range[0]), min(1.0, y_range[1]))
        if hi - lo < 1e-3 or m1 - m0 < 1e-4:
            return
        # only a real zoom (not the initial range report) recomputes
        if abs(lo - s.log_lr_range[0]) + abs(hi - s.log_lr_range[1]) + abs(m0 - s.mu_range[0]) + abs(m1 - s.mu_range[1]) > 0.02:
            s.param.update(log_lr_range=(lo, hi), mu_range=(m0, m1))

    def _on_reset_view(self, event):
        self.state.param.update(log_lr_range=PhaseParams.param.log_lr_range.default,
                                mu_range=PhaseParams.param.mu_range.default)

    def _on_s_map(self, result):
        lr, cols = result
        self._s_ds = join_along(cols, "batch_size")
        by_s = dict(zip(S_VALUES, cols))
        rows = [by_s[int(S)] for S in np.round(2.0**LOG2_S).astype(int)]
        x = np.log10(lr)
        fields = {
            PHASE_DIM: np.stack([_codes(c.phase.values[:, 0]) for c in rows]),
            "η": np.broadcast_to(lr[None, :], (len(rows), x.size)),
            "S": np.stack([np.full(x.size, c.attrs["batch_size"], dtype=float) for c in rows]),
            **{LAMBDA_DIMS[v]: np.stack([c[v].values[:, 0] for c in rows]) for v in LAMBDA_DIMS},
        }
        fields = {k: np.where(np.isfinite(v), v, np.nan) for k, v in fields.items()}
        kd = ["log10 η", "log2 S"]
        img = hv.Image((x, LOG2_S, *fields.values()), kdims=kd, vdims=list(fields)).opts(
            cmap=list(PHASE_COLORS.values()), clim=(-0.5, 4.5), color_levels=5,
            **_hover_opts([("η", "@{η}{%.3g}"), ("S", "@{S}")]))
        l2 = np.stack([c.l2_stable.values[:, 0] for c in rows]).astype(float)
        lm, lp = fields[LAMBDA_DIMS["lyap_minus"]], fields[LAMBDA_DIMS["lyap_plus"]]
        layers = [img,
                  hv.operation.contours(hv.Image((x, LOG2_S, lm), kdims=kd),
                                        levels=[0.0]).opts(color="black", line_width=1.5),
                  hv.operation.contours(hv.Image((x, LOG2_S, lp), kdims=kd),
                                        levels=[0.0]).opts(color="white", line_width=1.5, line_dash="dashed"),
                  hv.operation.contours(hv.Image((x, LOG2_S, l2), kdims=kd), levels=[0.5]).opts(
                      color="#9467bd", line_width=2.5, line_dash="dotted")]
        self._s_pane.object = hv.Overlay(layers).opts(
            responsive=True, height=PLOT_HEIGHT,
            title=f"λ–S phase diagram (μ = {self.state.mu_for_s:g}, N = ∞)")

    def _on_fig2(self, ds):
        self._fig2_ds = ds
        lr, lam, se = ds.lr.values, ds.lyapunov.values, ds.lyapunov_se.values
        sign = np.sign(lam)
        cross = [float(np.sqrt(lr[i] * lr[i + 1])) for i in range(lr.size - 1) if sign[i] != sign[i + 1]]
        layers = [hv.Curve((lr, lam), "η (λ)", "Λ").opts(color="black", line_width=2),
                  hv.ErrorBars((lr, lam, 1.96 * se), "η (λ)", ["Λ", "err"]),
                  hv.HLine(0).opts(color="#888", line_dash="dashed")]
        layers += [hv.VLine(c).opts(color="#d62728", line_dash="dotted") for c in cross]
        self._fig2_pane.object = hv.Overlay(layers).opts(
            logx=True, responsive=True, height=PLOT_HEIGHT,
            title="Fig. 2 right: Λ of Π(I − ηĤ_t); dotted: Λ = 0")  # short: fits 440 px

    def _simulate(self):
        """The clicked cell's simulation and theory: cached tasks in the background (a click
        used to run them on the server's event loop, holding every other session)."""
        tasks = self.computation("cell")
        self._sim_job.follow(tasks, self._on_cell, self._on_error)

    def _on_cell(self, results):
        self._cell = dict(zip(("cell_simulation", "cell_theory"), results))
        sim, th = results
        # labelled by the values it was computed for (the state may have moved on since)
        lr, mu, S = float(sim.attrs["lr"]), float(sim.attrs["mu"]), int(sim.attrs["batch_size"])
        steps = sim.step.values
        m0, h0 = 0.5, 1.5  # w = 1, u = 0.5
        show = slice(0, 12)
        paths = []
        for name, logv, base, color in (("log|w − u|", sim.log_m.values, m0, "#1f77b4"),
                                        ("log|w + u|", sim.log_h.values, h0, "#d62728")):
            ys = np.log(base) + logv[show]
            ys = np.where(np.isfinite(ys), ys, np.nan)
            x = np.concatenate([np.r_[steps, np.nan] for _ in range(ys.shape[0])])
            yy = np.concatenate([np.r_[row, np.nan] for row in ys])
            paths.append(hv.Curve((x, yy), "step", "log |·|", label=name).opts(color=color, alpha=0.5))
        self._sim_pane.object = hv.Overlay(paths).opts(
            responsive=True, height=PLOT_HEIGHT, legend_position="top_left",
            title=f"saddle SGD at η = {lr:.3g}, μ = {mu:.3f}, S = {S}")
        lines = []
        for label, emp, var in (("Λ− (w − u)", sim.exp_minus.values, "lyap_minus"),
                                ("Λ+ (w + u)", sim.exp_plus.values, "lyap_plus")):
            t, e = float(th[var][0, 0]), float(th[var + "_se"][0, 0])
            shrink = float(np.mean(emp < 0))
            lines.append(f"| {label} | {t:+.4f} ± {e:.1e} | {emp.mean():+.4f} ± "
                         f"{emp.std() / np.sqrt(emp.size):.1e} | {100 * shrink:.0f} % |")
        phase = str(th.phase.values[0, 0])
        link = "?" + urlencode({"page": "trajectories", "lr": round(lr, 6), "batch_size": S})
        self._verdict.object = (
            f"**Theory: phase {phase}** — {MEANING[phase]}.  "
            f"[▶ η = {lr:.3g}, S = {S} in live trajectories]({link})\n\n"
            "| | theory | simulation (200 runs × 1000 steps) | runs that shrink |\n|---|---|---|---|\n"
            + "\n".join(lines))

    def _build(self):
        self._marker_dmap = hv.DynamicMap(self._marker, streams=[Params(self.state, ["lr", "mu"])])
        # fixed heights, full width: a pane that stretched in height shared the window's
        # height with its neighbours and was drawn over the table below it
        plot = dict(sizing_mode="stretch_width", height=PLOT_HEIGHT, min_height=PLOT_HEIGHT)
        self._map_pane = pn.pane.HoloViews(hv.Overlay([hv.Curve([])]), sizing_mode="stretch_width",
                                           height=MAP_HEIGHT, min_height=MAP_HEIGHT)
        self._s_pane = pn.pane.HoloViews(hv.Curve([]), **plot)
        self._fig2_pane = pn.pane.HoloViews(hv.Curve([]), **plot)
        self._sim_pane = pn.pane.HoloViews(hv.Curve([]), **plot)
        self._map_view = ProgressView(self._on_map, "λ–μ map", "phase-map-done")
        self._verdict = pn.pane.Markdown("", sizing_mode="stretch_width")
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

"""Live SGD trajectories of the Fukumizu–Amari model (paper 000 §3; paper 001 §4).

The view turns the state of a :class:`~app.state.TrajectoryRun` into HoloViews elements streamed
through one ``Pipe``: each frame sends the decimated history, never every SGD step.  The engine
runs in a worker thread (its kernels release the GIL) and the results are applied back on the
session's event loop, so a frame never blocks other sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews import dim
from holoviews.streams import Pipe

from engine import fa
from engine.pullback import nearest_mwv_point

from .. import sweeps
from ..cache import get_cache
from ..jobs import JobSlot, session_scheduler
from ..state import LIVE_PARAMS, RESTART_PARAMS, EnsembleParams, StabilityParams, TrajectoryRun
from .base import Page, cell, flow
from .stability import valley_curve

log = logging.getLogger(__name__)
TITLE = "Live trajectories"
SLUG = "trajectories"
MODEL_FIELDS = ("lr", "sigma2", "batch_size", "label_noise", "teacher", "n_data",
                "n_trajectories", "seed")
START_FIELDS = ("start", "w0", "v0", "spread")
RUN_FIELDS = ("steps_per_frame", "frame_ms")
WHERE_TEXT = ("**Where am I?** Each orange dot is a trajectory's nearest point on the "
              "degenerate subspace M_wv (w1 = w2, v1 = v2, or its mirror copy w1 = −w2, "
              "v1 = −v2: the same network), drawn on the stability page's map "
              "of π, the fraction of inputs for which that point attracts (paper 000, Fig. 3 "
              "right; dark = attracting). Hover a dot for its distance to M_wv: dots that "
              "settle in the dark region near the red valley curve C with a shrinking distance "
              "are being trapped by the noise.")
TAIL = 120  # recorded points drawn per trajectory in the parameter planes
FLOOR = 1e-16  # log axes: exact zeros are drawn at this value
W_COLOR, V_COLOR = "#d62728", "#1f77b4"  # paper 000 Fig. 4: w red, v blue


def _finite(a: np.ndarray) -> np.ndarray:
    """Copy with ±inf replaced by NaN (Bokeh cannot serialise inf; NaN breaks a line)."""
    a = np.array(a, dtype=float)
    a[~np.isfinite(a)] = np.nan
    return a


OPTIMAL_LABEL = "optimal set Θ*"  # one legend entry for the lines and the points of either teacher
REACH = 100.0  # half-length of the optimal-set lines: far past any window a student zooms to


def _optimal_lines(teacher: str, ij: tuple[int, int]) -> np.ndarray:
    """Segments (x0, y0, x1, y1) of the optimal set's lines on a plane (none for paper 000)."""
    if teacher == "paper000":
        return np.empty((0, 4))
    r = REACH
    if ij == (0, 1):  # w_i = ±1
        return np.array([(c, -r, c, r) for c in (-1, 1)] + [(-r, c, r, c) for c in (-1, 1)], float)
    # v1 + v2 = ±2, v1 − v2 = ±2, v_i = ±2
    return np.array([(-r, c + r, r, c - r) for c in (-2, 2)] + [(-r, -r - c, r, r - c) for c in (-2, 2)]
                    + [(c, -r, c, r) for c in (-2, 2)] + [(-r, c, r, c) for c in (-2, 2)], float)


def optimal_set(teacher: str, ij: tuple[int, int], labels: tuple[str, str]) -> hv.Overlay:
    """The global minima projected on a parameter plane: one Segments layer (its lines) and one
    Points layer (its isolated points), for either teacher.

    Paper-000 teacher: the eight points Θ* of eq. (9), no lines. Paper-001 teacher 2tanh(x): a
    set — w1 = w2 = ±1 with v1 + v2 = ±2, w1 = −w2 = ±1 with v1 − v2 = ±2, or one neuron at
    (±1, ±2) with the other silent (v = 0 with any w, or w = 0 with any v) — drawn as its lines
    w_i = ±1 and v1 ± v2 = ±2, v_i = ±2, no isolated points.

    The layers, their types and labels are the same for both teachers: the planes are
    DynamicMaps, and a frame without a layer of the previous one would leave that layer's
    renderer on the plot (a teacher switch must replace data, not add or drop layers).
    """
    lines = _optimal_lines(teacher, ij)
    points = fa.OPTIMAL_POINTS[:, list(ij)] if teacher == "paper000" else np.empty((0, 2))
    # the plane's own axis names (not x0, y0): Panel links the axes of plots that share them
    ends = [f"{labels[0]} end", f"{labels[1]} end"]
    return hv.Overlay([
        hv.Segments(lines, kdims=[*labels, *ends], label=OPTIMAL_LABEL).opts(
            color="#9a9a9a", line_width=2, line_dash="dotted"),
        hv.Points(points, kdims=list(labels), label=OPTIMAL_LABEL).opts(
            color="#9a9a9a", size=11, marker="diamond", line_color="#555"),
    ])


def plane_elements(hist_theta: np.ndarray, ij: tuple[int, int], labels: tuple[str, str],
                   tail: int = TAIL, teacher: str = "paper000") -> hv.Overlay:
    """(θ_i, θ_j) plane: diagonal, optimal set, fading tails and the heads of the trajectories."""
    i, j = ij
    n = hist_theta.shape[0]
    pts = _finite(hist_theta[:, -tail:, :])
    k = pts.shape[1]
    x0, y0 = pts[:, :-1, i], pts[:, :-1, j]
    x1, y1 = pts[:, 1:, i], pts[:, 1:, j]
    age = np.broadcast_to(0.08 + 0.92 * (np.arange(1, k) / max(k - 1, 1)) ** 2, x0.shape)
    traj = np.broadcast_to(np.arange(n)[:, None].astype(str), x0.shape)
    ok = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
    seg = {"x0": x0[ok], "y0": y0[ok], "x1": x1[ok], "y1": y1[ok], "trajectory": traj[ok],
           "fade": age[ok]}
    last = np.full((n, 2), np.nan)
    for r in range(n):  # the last finite point of each trajectory
        good = np.flatnonzero(np.isfinite(pts[r, :, i]) & np.isfinite(pts[r, :, j]))
        if good.size:
            last[r] = pts[r, good[-1], [i, j]]
    heads = {labels[0]: last[:, 0], labels[1]: last[:, 1], "trajectory": np.arange(n).astype(str)}
    cmap = "Category10" if n <= 10 else "Category20"
    return (
        hv.Slope(1, 0).opts(color="#888", line_dash="dashed", line_width=1)
        * optimal_set(teacher, ij, labels)
        * hv.Segments(seg, kdims=["x0", "y0", "x1", "y1"], vdims=["trajectory", "fade"]).opts(
            color="trajectory", cmap=cmap, alpha=dim("fade"), line_width=2)
        * hv.Points(heads, kdims=list(labels), vdims=["trajectory"]).opts(
            color="trajectory", cmap=cmap, size=8, line_color="white", show_legend=False)
    ).opts(xlabel=labels[0], ylabel=labels[1])


def _lines(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All trajectories as one polyline with NaN breaks (one cheap Bokeh Line, not a
    MultiLine of many HoloViews paths); step 0 is dropped for the log axis."""
    keep = steps > 0
    n, k = values.shape[0], int(keep.sum())
    x = np.full((n, k + 1), np.nan)
    y = np.full((n, k + 1), np.nan)
    x[:, :k] = steps[keep]
    y[:, :k] = values[:, keep]
    return x.ravel(), y.ravel()


class TrajectoriesPage(Page):
    """Play, pause, single-step and reset an ensemble of SGD runs and watch it live."""

    slug = SLUG
    advanced = ("n_trajectories", "seed", "start", "w0", "v0", "spread", "steps_per_frame",
                "frame_ms")
    default_prompt = ("Press **Play** to run SGD; move η or τ while it runs (the change is "
                      "marked), or pick a preset for a guided experiment.")
    run = param.ClassSelector(class_=TrajectoryRun)

    def __init__(self, query: dict | None = None, **params):
        params.setdefault("run", TrajectoryRun(model=EnsembleParams()))
        super().__init__(query=query, **params)
        self._generation = 0  # bumps on every change that makes an in-flight chunk stale
        self._task: asyncio.Task | None = None
        self._callback = None
        self._doc = pn.state.curdoc
        if query:
            self.apply_query(query)
        self.run.model.param.watch(self._stale, list(LIVE_PARAMS + RESTART_PARAMS))
        self.run.param.watch(self._on_frame_ms, "frame_ms")
        self._pipe = Pipe(data=self._snapshot())
        self._drawn_resets = self.run.resets
        self._pi_ds = None
        # the π map has its own stream: its arrival redraws the inset only, not all five plots
        self._pi_pipe = Pipe(data=None).rename(data="pi")
        self._pi_job = JobSlot(session_scheduler(self._doc))
        self._request_pi()  # before the plots are built: a cached map is drawn at once
        self._build()
        self.run.model.param.watch(lambda *e: self._request_pi(), ["sigma2", "teacher"])

    # -- outside input -----------------------------------------------------------------------
    def targets(self):
        return [(self.run.model, MODEL_FIELDS + START_FIELDS), (self.run, RUN_FIELDS)]

    def apply_query(self, query: dict) -> None:
        super().apply_query(query)
        self.run.reset()  # a fresh start with the link's values, without "restarted" notices

    # -- running -----------------------------------------------------------------------------
    def _stale(self, *events) -> None:
        """A parameter changed: an in-flight chunk is stale. If the run restarted, redraw
        everything; a live change of η or τ only adds a line to the list of changes (the
        plots mark it on the next frame) — a slider drag costs milliseconds, not a redraw."""
        self._generation += 1
        if self.run.resets != self._drawn_resets:
            self._push()
        else:
            self._counter.object = self._counter_html()
            self._events.object = self._events_md()
            self._sync_alert()

    def _on_frame_ms(self, event) -> None:
        if self._callback is not None:
            self._callback.period = event.new

    def _start_frame(self) -> None:
        """Periodic callback (synchronous, so Bokeh's document lock is released at once):
        start one frame's work as a task unless the previous frame is still computing."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self.step_once())

    async def step_once(self, attempts: int = 3) -> bool:
        """Compute one frame in a worker thread, then apply it on the session's event loop.

        If the parameters changed while it computed, the result is stale: it is dropped and
        the frame recomputed with the new values (so a Step click is never lost).
        """
        try:
            return await self._step_once(attempts)
        except Exception as exc:  # never a traceback in the browser, never a silent stop
            self._schedule(self._fail, exc)
            return False

    async def _step_once(self, attempts: int) -> bool:
        self._spinner.value = True
        for _ in range(attempts):
            generation, step = self._generation, self.run.step
            work = self.run.prepare()
            if work is None:
                self._schedule(self._stopped)
                return False
            try:
                chunk = await asyncio.to_thread(work.compute)
            except Exception as exc:  # never a traceback in the browser
                self._schedule(self._fail, exc)
                return False
            if generation == self._generation and step == self.run.step:
                self._schedule(self._apply, work, chunk)
                return True
        self._schedule(self._idle)
        return False

    def _schedule(self, fn, *args) -> None:
        """Run ``fn`` on the session's event loop with the document lock held."""
        doc = self._doc
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(lambda: fn(*args))
        else:
            fn(*args)

    def _idle(self) -> None:
        self._spinner.value = False

    def _stopped(self) -> None:
        self._spinner.value = False
        self._play.value = False
        self._push()

    def _apply(self, work, chunk) -> None:
        self._spinner.value = False
        if work.kwargs["start_step"] != self.run.step:
            return
        self.run.apply(work, chunk)
        self._push()
        if self.run.diverged and self._play.value:
            self._play.value = False

    def _fail(self, exc) -> None:
        log.exception("frame failed", exc_info=exc)
        self._spinner.value = False
        self._play.value = False
        self.run.message = ("This frame could not be computed; the run is paused. Try a smaller "
                            "η or reset (details are in the server log).")
        self._push()

    def _on_play(self, event) -> None:
        if event.new:
            if self.run.diverged:
                self.run.diverged = False  # continue with the trajectories still running
                self.run.message = ""
            self._play.name = "❚❚ Pause"
            self._callback = pn.state.add_periodic_callback(self._start_frame, period=self.run.frame_ms)
        else:
            self._play.name = "▶ Play"
            self._stop_callback()

    def _stop_callback(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def _on_step(self, event) -> None:
        self._play.value = False
        self._start_frame()

    def export_datasets(self):
        return {"trajectories": self.run.to_dataset()}

    def cleanup(self) -> None:
        """Stop the animation and drop in-flight work when the browser session ends."""
        self._pi_job.close()
        self._stop_callback()
        if self._task is not None:
            self._task.cancel()

    def _on_reset(self, event) -> None:
        self._play.value = False
        self._notices.clear()
        self._generation += 1
        self.run.reset("Reset: new start from step 0 with the same seed.")
        self._push()

    def _on_preset(self, event) -> None:
        if not event.new:
            return
        self._play.value = False
        super()._on_preset(event)
        self.run.reset()  # a fresh run with the preset, without "restarted" notices
        self._push()

    # -- "where am I": the stability page's π map, shared through the cache ---------------------
    def _request_pi(self) -> None:
        """The π map of the stability page at this σ² (its default resolution and seed: the
        very cache entry that page computes, so whichever page comes first serves the other)."""
        m = self.run.model
        self._pi_job.cancel()
        if m.teacher != "paper000":
            self._show_pi(None)
            return
        task = StabilityParams(sigma2=m.sigma2).pi_map_task()
        ds = get_cache().lookup(task.kind, task.inputs, disk=False)
        if ds is not None:  # another session or page has computed it: no job, no wait
            self._show_pi(ds)
            return
        self._show_pi(None)
        self._pi_job.submit(lambda ctx: sweeps.run_tasks([task])[0], self._on_pi)

    def _on_pi(self, ds) -> None:
        if float(ds.attrs["sigma2"]) == float(self.run.model.sigma2):
            self._show_pi(ds)

    def _show_pi(self, ds) -> None:
        """Draw the inset on ``ds`` (None: the map is not available or not computed yet)."""
        if ds is self._pi_ds:
            return
        self._pi_ds = ds
        if hasattr(self, "_views"):  # built: redraw the inset (only it listens to this stream)
            self.when_connected(lambda: self._pi_pipe.send(ds))
        else:  # nothing listens yet: the inset is first drawn with this
            self._pi_pipe.send(ds)

    def _where(self, data, ds=None):
        """Each trajectory's nearest point of M_wv — of the nearer copy, {w1 = w2, v1 = v2} or
        its mirror {w1 = −w2, v1 = −v2} (MATH.md §1) — folded by the symmetry (w, v) → (−w, −v),
        on π = P[μ+ ≤ 0] (paper 000 eq. 38, Fig. 3 right): see
        :func:`engine.pullback.nearest_mwv_point`, the stability page's definition."""

        opts = dict(responsive=True, min_height=300, xlim=(0, 2), ylim=(0, 2), framewise=True)
        # the same four layers on every frame (a DynamicMap must keep its structure)
        if ds is None:
            w_grid = v_grid = np.linspace(0.01, 1.99, 2)
            pi, valley = np.full((2, 2), np.nan), np.full(2, np.nan)
            other = data["teacher"] != "paper000"
            text = "π map for the paper 000 teacher only" if other else "computing the π map…"
            missing = "paper 000 teacher only" if other else "not computed yet"
            title = "where am I on M_wv"
        else:
            w_grid, v_grid = ds.w.values, ds.v.values
            pi, valley = _finite(ds.pi_small_lr.values.T), ds.valley.values
            text, title, missing = "", None, "outside this window"
        img = hv.Image((w_grid, v_grid, pi), kdims=["w", "v"], vdims=["π"]).opts(
            cmap="Greys", clim=(0, 1), colorbar=True, clabel="π = P[μ+ ≤ 0]")
        curve = valley_curve(w_grid, valley, missing)
        theta = data["theta"][:, -1, :] if data["theta"].shape[1] else np.empty((0, 4))
        t = theta[np.all(np.isfinite(theta), axis=1)]
        w, v, dist = nearest_mwv_point(t)
        points = hv.Points((w, v, dist), ["w", "v"], ["distance to M_wv"],
                           label="trajectories (projected)").opts(
            color="#ff7f0e", size=9, line_color="black", tools=["hover"])
        if title is None:
            inside = int(np.sum((w >= 0) & (w <= 2) & (v >= 0) & (v <= 2)))
            title = (f"where am I: π map of the stability page, σ² = "
                     f"{float(ds.attrs['sigma2']):.3g} ({inside} of {len(w)} inside)")
        return hv.Overlay([img, curve, points, hv.Text(1, 1, text)]).opts(
            hv.opts.Overlay(title=title, legend_position="top_right", **opts))

    # -- drawing -----------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        r = self.run
        return {
            "step": r.hist_step.copy(),
            "theta": _finite(r.hist_theta),
            "loss": _finite(r.hist_loss),
            "events": list(r.events),
            "teacher": r.model.teacher,
            "train_loss": _finite(r.hist_train_loss) if r.hist_train_loss is not None else None,
        }

    def _push(self) -> None:
        self._drawn_resets = self.run.resets
        # one reference recomputation of the document for the whole redraw
        with (self._doc.models.freeze() if self._doc is not None else contextlib.nullcontext()):
            self._send(self._snapshot())
            self._counter.object = self._counter_html()
            self._events.object = self._events_md()
            self._sync_alert()

    def _send(self, snapshot: dict) -> None:
        """New data for the plots, once the browser has the page (see ``when_connected``)."""
        self.when_connected(lambda: self._pipe.send(snapshot))

    def _plane_w(self, data):
        return plane_elements(data["theta"], (0, 1), ("w1", "w2"), teacher=data["teacher"]).opts(
            title="(w1, w2) plane", xlim=(-5, 5), ylim=(-5, 5))

    def _plane_v(self, data):
        return plane_elements(data["theta"], (2, 3), ("v1", "v2"), teacher=data["teacher"]).opts(
            title="(v1, v2) plane", xlim=(-3, 3), ylim=(-3, 3))

    def _event_lines(self, events):
        return [hv.VLine(max(s, 1)).opts(color="#ff7f0e", line_dash="dotted", line_width=2)
                for s, _ in events]

    def _loss(self, data):
        steps, loss = data["step"], np.maximum(data["loss"], FLOOR)
        keep = steps > 0
        med = np.full(keep.sum(), np.nan)
        if loss.shape[0] and keep.any():
            with np.errstate(all="ignore"):
                med = np.nanmedian(np.where(np.isfinite(loss[:, keep]), loss[:, keep], np.nan), axis=0) \
                    if np.isfinite(loss[:, keep]).any() else med
        train = []
        if data["train_loss"] is not None:
            tl = np.maximum(data["train_loss"], FLOOR)
            train = [hv.Curve(_lines(steps, tl), "step", "loss", label="training loss L").opts(
                color="#2ca02c", alpha=0.5, framewise=True)]
        layers = [
            hv.Curve(_lines(steps, loss), "step", "loss", label="expected loss").opts(
                color="#555", alpha=0.35, framewise=True),
            *train,
            hv.Curve((steps[keep], med), "step", "loss", label="median").opts(
                color="black", line_width=3, framewise=True),
            *self._event_lines(data["events"]),
        ]
        title = ("expected loss E[½(f − T)²] (grey), training loss (green)" if train
                 else "expected loss E[½(f − T)²]")
        return hv.Overlay(layers).opts(title=title, logx=True, logy=True,
                                       framewise=True, xlabel="step", ylabel="loss")

    def _degeneration(self, data):
        steps, th = data["step"], data["theta"]
        r = np.maximum(np.abs(th[:, :, 0] - th[:, :, 1]), FLOOR)
        s = np.maximum(np.abs(th[:, :, 2] - th[:, :, 3]), FLOOR)
        layers = [
            hv.Curve(_lines(steps, r), "step", "distance", label="|w1 − w2|").opts(
                color=W_COLOR, alpha=0.45, framewise=True),
            hv.Curve(_lines(steps, s), "step", "distance", label="|v1 − v2|").opts(
                color=V_COLOR, alpha=0.45, framewise=True),
            *self._event_lines(data["events"]),
        ]
        return hv.Overlay(layers).opts(title="distance to M_wv: |w1 − w2| (red), |v1 − v2| (blue)",
                                       logx=True, logy=True, legend_position="bottom_left",
                                       framewise=True, xlabel="step", ylabel="|w1 − w2|, |v1 − v2|")

    def _counter_html(self) -> str:
        r = self.run
        stopped = r.model.n_trajectories - r.n_running
        extra = f" · {stopped} stopped" if stopped else ""
        if r.capped:
            extra += f" · capped at {r.capped:,} steps/frame (work limit)"
        return (f'<div class="step-counter" style="font-size:1.6em;font-weight:600">'
                f'step <span id="step-count">{r.step:,}</span></div>'
                f'<div style="color:#666">{r.n_running} running{extra}</div>')

    def _events_md(self) -> str:
        if not self.run.events:
            return ""
        return "**Changes during the run** (dotted lines)\n\n" + "\n".join(
            f"- step {s:,}: {t}" for s, t in self.run.events[-8:])

    def _sync_alert(self) -> None:
        if not hasattr(self, "_alert"):
            return
        texts = list(self._notices)
        if self.run.message:
            texts.append(self.run.message)
        self._alert.object = self.notices_markdown([self.run.message])
        self._alert.alert_type = "danger" if self.run.diverged else (
            "warning" if self._notices else "info")
        self._alert.visible = bool(texts)

    def _build(self) -> None:
        opts = dict(responsive=True, min_height=300, tools=["hover"])
        # Plain functions, not this Parameterized's methods: HoloViews would otherwise also
        # redraw every plot whenever any parameter of the page changes (a slider move cost a
        # full redraw of five plots — 0.1 s of the server's loop per student).
        def on_pipe(method):
            return lambda data: method(data)

        self._views = {
            "w": hv.DynamicMap(on_pipe(self._plane_w), streams=[self._pipe]).opts(
                hv.opts.Overlay(**opts, legend_position="top_left")),
            "v": hv.DynamicMap(on_pipe(self._plane_v), streams=[self._pipe]).opts(
                hv.opts.Overlay(**opts, legend_position="top_left")),
            "loss": hv.DynamicMap(on_pipe(self._loss), streams=[self._pipe]).opts(
                hv.opts.Overlay(**opts)),
            "deg": hv.DynamicMap(on_pipe(self._degeneration), streams=[self._pipe]).opts(
                hv.opts.Overlay(**opts)),
            "where": hv.DynamicMap(lambda data, pi: self._where(data, pi),
                                   streams=[self._pipe, self._pi_pipe]),
        }
        self._play = pn.widgets.Toggle(name="▶ Play", button_type="primary", width=110)
        self._play.param.watch(self._on_play, "value")
        self._step_btn = pn.widgets.Button(name="Step", width=80)
        self._step_btn.on_click(self._on_step)
        self._reset_btn = pn.widgets.Button(name="Reset", width=80, button_type="warning")
        self._reset_btn.on_click(self._on_reset)
        self._spinner = pn.indicators.LoadingSpinner(value=False, size=24, name="",
                                                     sizing_mode="fixed", width=24, height=24)
        self._counter = pn.pane.HTML(self._counter_html(), margin=(0, 10), sizing_mode="fixed",
                                     width=190)
        self._events = pn.pane.Markdown(self._events_md())
        self._alert = pn.pane.Alert("", alert_type="info", visible=False)
        self._preset_select = self.preset_selector(self._on_preset)
        self._prompt = pn.pane.Markdown(self.prompt_markdown, sizing_mode="stretch_width")
        slider = {"type": pn.widgets.EditableFloatSlider, "throttled": True}
        self._model_widgets = pn.Param(
            self.run.model, parameters=list(MODEL_FIELDS), show_name=False,
            widgets={"lr": dict(slider, format="0.[0000]"), "sigma2": dict(slider, format="0.[0000]"),
                     "label_noise": slider,
                     "batch_size": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "n_trajectories": {"type": pn.widgets.EditableIntSlider, "throttled": True},
                     "seed": pn.widgets.IntInput},
        )
        self._start_widgets = pn.Param(
            self.run.model, parameters=list(START_FIELDS), show_name=False,
            widgets={"w0": dict(slider, format="0.[00]"), "v0": dict(slider, format="0.[00]"),
                     "spread": dict(slider, format="0.[000]")})
        self._run_widgets = pn.Param(self.run, parameters=list(RUN_FIELDS), show_name=False,
                                     widgets={"steps_per_frame": {"type": pn.widgets.EditableIntSlider},
                                              "frame_ms": {"type": pn.widgets.IntSlider}})
        self._sync_alert()

    @property
    def sidebar(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._preset_select,
            pn.pane.Markdown("#### Model"),
            self._model_widgets,
            pn.pane.Markdown("#### Start"),
            self._start_widgets,
            pn.pane.Markdown("#### Animation"),
            self._run_widgets,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        controls = pn.FlexBox(self._play, self._step_btn, self._reset_btn, self._spinner,
                              flex_wrap="wrap", align_items="center")
        plots = [self.plot_cell(self._views[k], 320) for k in ("w", "v", "loss", "deg")]
        return pn.Column(  # rows of two that wrap into one column on a narrow screen
            flow(cell(controls, basis=380), cell(self._counter, basis=190, min_width=190),
                 cell(self._prompt, basis=260)),
            self._alert,
            flow(*plots[:2]),
            flow(*plots[2:]),
            flow(self.plot_cell(self._views["where"], 340, basis=520),
                 cell(pn.pane.Markdown(WHERE_TEXT), basis=300)),
            self._events,
            sizing_mode="stretch_width",
        )

"""Live SGD trajectories of the Fukumizu–Amari model (paper 000 §3; paper 001 §4).

The plots are the figures of :mod:`app.figures.live` (plain Bokeh, shared with the class mode):
each frame sets their sources' columns from the run's Dataset, the decimated history, never
every SGD step. The engine runs in a worker thread (its kernels release the GIL) and the results
are applied back on the session's event loop, so a frame never blocks other sessions.
"""

from __future__ import annotations

import asyncio
import logging

import panel as pn
import param

from ..cache import get_cache
from ..figures.live import (WHERE_TEXT, live_columns, live_figures, loss_title, pi_columns,
                            set_columns)
from ..compute import Follower
from ..jobs import session_scheduler
from ..state import (LIVE_ADVANCED, LIVE_MODEL_FIELDS, LIVE_PARAMS, LIVE_RUN_FIELDS,
                     LIVE_START_FIELDS, RESTART_PARAMS, EnsembleParams,
                     TrajectoryRun)
from .base import Page, cell, flow

log = logging.getLogger(__name__)
TITLE = "Live trajectories"
SLUG = "trajectories"
MODEL_FIELDS, START_FIELDS, RUN_FIELDS = LIVE_MODEL_FIELDS, LIVE_START_FIELDS, LIVE_RUN_FIELDS


class TrajectoriesPage(Page):
    """Play, pause, single-step and reset an ensemble of SGD runs and watch it live."""

    slug = SLUG
    advanced = LIVE_ADVANCED
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
        self._figures = live_figures()
        self._drawn_resets = -1
        self._pi_ds, self._pi_teacher = False, None  # nothing drawn yet (None: no map)
        self._pi_job = Follower(session_scheduler(self._doc))
        self._build()
        self._push()
        self._request_pi()  # a cached map is drawn at once
        self.run.model.param.watch(lambda *e: self._request_pi(), ["sigma2", "teacher"])

    # -- outside input -----------------------------------------------------------------------
    def targets(self):
        return [(self.run.model, MODEL_FIELDS + START_FIELDS), (self.run, RUN_FIELDS)]

    def states(self):
        return {"model": self.run.model}

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
        task, = self.computation("where")
        ds = get_cache().lookup(task.kind, task.inputs, disk=False)
        if ds is not None:  # another session or page has computed it: no job, no wait
            self._show_pi(ds)
            return
        self._show_pi(None)
        self._pi_job.follow([task], self._on_pi)

    def _on_pi(self, results) -> None:
        ds = results[0]
        if float(ds.attrs["sigma2"]) == float(self.run.model.sigma2):
            self._show_pi(ds)

    def _show_pi(self, ds) -> None:
        """Draw the inset's π map ``ds`` (None: not available or not computed yet); the
        trajectories' points are drawn with every frame."""
        teacher = self.run.model.teacher  # (without a map, its note depends on the teacher)
        if ds is self._pi_ds and teacher == self._pi_teacher:
            return
        self._pi_ds, self._pi_teacher = ds, teacher
        columns, title = pi_columns(ds, teacher)
        set_columns(self._figures, columns, {"where": title})

    # -- drawing -----------------------------------------------------------------------------
    def _push(self) -> None:
        """Redraw: every figure's columns from the run's Dataset, the counter and the notices
        (in one reference recomputation of the document)."""
        self._drawn_resets = self.run.resets
        ds = self.run.to_dataset()
        set_columns(self._figures, live_columns(ds), {"loss": loss_title(ds)})
        self._counter.object = self._counter_html()
        self._events.object = self._events_md()
        self._sync_alert()

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
        self._views = {k: pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=fig.height)
                       for k, fig in self._figures.items()}
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
        # Sent with the page, not through the draw queue (:meth:`Page.plot_cell`): plain Bokeh
        # figures cost little to send, and a deferred figure's sources, updated by a Step
        # pressed before the queue reached them, came to the browser as references it did
        # not know ("reference p3040 isn't known", 1 in 8 fresh pages in a browser test)
        plots = [cell(self._views[k], basis=420) for k in ("w", "v", "loss", "deg")]
        return pn.Column(  # rows of two that wrap into one column on a narrow screen
            flow(cell(controls, basis=380), cell(self._counter, basis=190, min_width=190),
                 cell(self._prompt, basis=260)),
            self._alert,
            flow(*plots[:2]),
            flow(*plots[2:]),
            flow(cell(self._views["where"], basis=520),
                 cell(pn.pane.Markdown(WHERE_TEXT), basis=300)),
            self._events,
            sizing_mode="stretch_width",
        )

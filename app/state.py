"""GUI-free state: every model parameter declared once, and the live-run state machine.

Hard ``bounds`` are where the mathematics (and the server's budget) is valid; ``softbounds`` are
the slider range; ``doc`` is the tooltip.  Views generate widgets from these declarations.
Nothing here imports panel, holoviews or bokeh, and nothing here is module-level mutable state:
each browser session builds its own objects.
"""

from __future__ import annotations

import numpy as np
import param
import xarray as xr

from engine import fa, schema

from .cache import get_cache

TEACHER_LABELS = {
    "2tanh(x) − tanh(4x)  (paper 000)": "paper000",
    "2tanh(x)  (paper 001)": "paper001",
}
DATASET_SIZES = {"∞ (online: fresh x every step)": 0, **{f"{n}": n for n in
                 (3, 10, 30, 100, 300, 1000, 10_000)}}


class ModelParams(param.Parameterized):
    """Parameters of SGD on the Fukumizu–Amari model (symbols as in ../shared/MATH.md)."""

    lr = param.Number(
        0.1, bounds=(1e-5, 10.0), softbounds=(0.001, 1.0), step=0.001, label="η (learning rate)",
        doc="Learning rate η of SGD: θ ← θ − η · mean-batch gradient.")
    sigma2 = param.Number(
        0.1, bounds=(1e-4, 100.0), softbounds=(0.001, 2.0), step=0.001, label="σ² (input variance)",
        doc="Variance of the inputs, x ~ N(0, σ²). Paper 000 contrasts σ² = 0.1 and 1.")
    batch_size = param.Integer(
        1, bounds=(1, 1024), softbounds=(1, 64), label="S (batch size)",
        doc="Samples averaged per SGD step; S = 1 is online learning (paper 000).")
    label_noise = param.Number(
        0.0, bounds=(0.0, 10.0), softbounds=(0.0, 1.0), step=0.01, label="τ (label noise)",
        doc="Std of the label noise: y = T(x) + ξ, ξ ~ N(0, τ²) (paper 001).")
    teacher = param.Selector(
        default="paper000", objects=TEACHER_LABELS, label="teacher T(x)",
        doc="The target function the student v1 tanh(w1 x) + v2 tanh(w2 x) learns.")
    n_data = param.Selector(
        default=0, objects=DATASET_SIZES, label="N (dataset size)",
        doc="∞: fresh samples every step. A number: a fixed dataset of N points drawn once "
            "from the seed (with its label noise); S ≥ N is full-batch gradient descent.")
    seed = param.Integer(
        0, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed",
        doc="Seeds the initial conditions, the dataset and the SGD noise: same seed, same run.")

    def engine_kwargs(self) -> dict:
        """The keyword arguments of :func:`engine.fa.run_ensemble` these values stand for."""
        return dict(lr=self.lr, sigma2=self.sigma2, batch_size=self.batch_size,
                    label_noise=self.label_noise, teacher=self.teacher,
                    n_data=self.n_data or None, seed=self.seed)


class EnsembleParams(ModelParams):
    """A model plus how many trajectories to run side by side."""

    n_trajectories = param.Integer(
        8, bounds=(1, 100), softbounds=(1, 40), label="trajectories",
        doc="Number of SGD runs from different initial conditions, uniform in [−1, 1]⁴.")


#: parameters that can change mid-run (marked on the plots); every other one restarts the run
LIVE_PARAMS = ("lr", "label_noise")
RESTART_PARAMS = ("sigma2", "batch_size", "teacher", "n_data", "seed", "n_trajectories")
SYMBOLS = {"lr": "η", "label_noise": "τ", "sigma2": "σ²", "batch_size": "S",
           "teacher": "teacher", "n_data": "N", "seed": "seed", "n_trajectories": "trajectories"}


class TrajectoryRun(param.Parameterized):
    """A live ensemble run that advances in chunks and keeps a decimated history for plots.

    Chunks go through the shared cache (keyed by the canonical inputs, the start step and the
    starting state), so replaying a run, or 30 students opening the same link, computes once.
    Because the engine's noise is counter based, a run advanced in chunks of any size is
    bit-identical to one long run with the same parameters.
    """

    model = param.ClassSelector(class_=EnsembleParams, doc="The parameters of the run.")
    steps_per_frame = param.Integer(
        100, bounds=(1, 20_000), softbounds=(1, 5_000), label="steps per frame",
        doc="SGD steps computed between two redraws (independent of the redraw rate).")
    frame_ms = param.Integer(
        200, bounds=(50, 2_000), softbounds=(50, 1_000), label="redraw every (ms)",
        doc="Time between redraws while playing.")
    step = param.Integer(0, bounds=(0, None), doc="SGD steps taken so far.")
    message = param.String("", doc="The latest notice for the user (plain sentence).")
    diverged = param.Boolean(False, doc="Some trajectory's loss blew up (NaN/inf or huge θ).")

    max_history = 1200  # recorded points kept per trajectory (older ones are thinned)
    points_per_frame = 8

    def __init__(self, **params):
        params.setdefault("model", EnsembleParams())
        super().__init__(**params)
        self.events: list[tuple[int, str]] = []
        self._live_values = {k: getattr(self.model, k) for k in LIVE_PARAMS}
        self.model.param.watch(self._on_model_change, list(LIVE_PARAMS + RESTART_PARAMS))
        self.reset()

    # -- state transitions -------------------------------------------------------------------
    def reset(self, reason: str = "") -> None:
        """Restart from step 0 with fresh initial conditions from the seed."""
        m = self.model
        self.theta = fa.uniform_initial(m.n_trajectories, 1.0, m.seed)
        self.exit_step = np.full(m.n_trajectories, -1, dtype=np.int64)
        self.exit_reason = np.zeros(m.n_trajectories, dtype=np.int8)
        self.hist_step = np.zeros(1, dtype=np.int64)
        self.hist_theta = self.theta[:, None, :].copy()
        self.hist_loss = fa.population_loss(self.theta, m.sigma2, m.teacher)[:, None]
        self.events = []
        self._live_values = {k: getattr(m, k) for k in LIVE_PARAMS}
        self.diverged = False
        self.step = 0
        self.message = reason

    def _on_model_change(self, *events) -> None:
        names = {e.name for e in events}
        restart = names & set(RESTART_PARAMS)
        if "label_noise" in names and m_has_dataset(self.model):
            restart.add("label_noise")  # the label noise is part of a fixed dataset
        if restart:
            what = ", ".join(SYMBOLS[n] for n in sorted(restart))
            self.reset(f"{what} changed: the run restarted from step 0 "
                       "(this changes the data SGD sees).")
            return
        for name in names:
            value = getattr(self.model, name)
            if value == self._live_values.get(name):
                continue
            text = f"{SYMBOLS[name]} → {value:.4g}"
            if self.events and self.events[-1][0] == self.step and self.events[-1][1].startswith(SYMBOLS[name]):
                self.events[-1] = (self.step, text)  # a drag of the slider is one change
            else:
                self.events.append((self.step, text))
            self._live_values[name] = value
            if self.step > 0:
                self.message = f"{text} at step {self.step:,}; the run continues from here."

    def prepare(self, n_steps: int | None = None) -> "ChunkWork | None":
        """The next chunk of work (None when every trajectory has stopped).

        Split from :meth:`apply` so the view can compute in a worker thread and apply the
        result on its event loop; this object is not touched by ``compute``.
        """
        n = int(self.steps_per_frame if n_steps is None else n_steps)
        n = int(np.clip(n, 1, self.param.steps_per_frame.bounds[1]))
        alive = np.flatnonzero(self.exit_step < 0)
        if alive.size == 0:
            self.message = "Every trajectory has stopped; press reset to start again."
            return None
        kwargs = dict(self.model.engine_kwargs(), n_steps=n, start_step=self.step,
                      record_every=max(1, n // self.points_per_frame), trajectory_ids=alive)
        return ChunkWork(self.theta[alive].copy(), alive, kwargs)

    def apply(self, work: "ChunkWork", chunk: xr.Dataset) -> None:
        """Append a computed chunk to the run (on the thread that owns this state)."""
        schema.require(chunk, "theta", "theta_final", "loss", "exit_step", "exit_reason")
        if work.kwargs["start_step"] != self.step:
            raise ValueError("stale chunk: the run moved on since it was prepared")
        self._append(chunk, work.alive)

    def advance(self, n_steps: int | None = None) -> xr.Dataset | None:
        """Take ``n_steps`` (default ``steps_per_frame``) SGD steps of the trajectories still
        running, in the calling thread; returns the engine's chunk."""
        work = self.prepare(n_steps)
        if work is None:
            return None
        chunk = work.compute()
        self.apply(work, chunk)
        return chunk

    def _append(self, chunk: xr.Dataset, alive: np.ndarray) -> None:
        n_rec = chunk.sizes["step"] - 1
        self.theta[alive] = chunk.theta_final.values
        self.exit_step[alive] = chunk.exit_step.values
        self.exit_reason[alive] = chunk.exit_reason.values
        rec = np.full((self.theta.shape[0], n_rec, 4), np.nan)
        rec[alive] = chunk.theta.values[:, 1:]
        loss = np.full((self.theta.shape[0], n_rec), np.nan)
        loss[alive] = chunk.loss.values[:, 1:]
        self.hist_step = np.concatenate([self.hist_step, chunk.step.values[1:]])
        self.hist_theta = np.concatenate([self.hist_theta, rec], axis=1)
        self.hist_loss = np.concatenate([self.hist_loss, loss], axis=1)
        self._thin()
        self.step = int(chunk.step.values[-1])
        newly = alive[chunk.exit_reason.values == schema.EXIT_DIVERGED]
        if newly.size:
            self.diverged = True
            first = int(self.exit_step[newly].min())
            m = self.model
            self.message = (
                f"Loss blew up at step {first:,} for {newly.size} of {m.n_trajectories} "
                f"trajectories: η = {m.lr:.3g} is above the stability edge for σ² = "
                f"{m.sigma2:.3g} (and S = {m.batch_size}). The run paused; lower η and press "
                "play, or reset.")

    def _thin(self) -> None:
        """Keep at most ``max_history`` points: halve the older part, keep the recent tail."""
        k = self.hist_step.size
        if k <= self.max_history:
            return
        recent = self.max_history // 4
        keep = np.concatenate([np.arange(0, k - recent, 2), np.arange(k - recent, k)])
        self.hist_step = self.hist_step[keep]
        self.hist_theta = self.hist_theta[:, keep]
        self.hist_loss = self.hist_loss[:, keep]

    @property
    def n_running(self) -> int:
        return int((self.exit_step < 0).sum())


class ChunkWork:
    """One chunk of a live run: the inputs, and a ``compute`` safe to call from any thread."""

    def __init__(self, theta0: np.ndarray, alive: np.ndarray, kwargs: dict):
        self.theta0, self.alive, self.kwargs = theta0, alive, kwargs

    def compute(self) -> xr.Dataset:
        """The chunk, from the shared cache or the engine (which releases the GIL)."""
        return get_cache().get_or_compute(
            "fa_ensemble", dict(self.kwargs, theta0=self.theta0),
            lambda: fa.run_ensemble(self.theta0, **self.kwargs))


def m_has_dataset(model: ModelParams) -> bool:
    return bool(model.n_data)

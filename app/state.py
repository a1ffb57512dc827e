"""GUI-free state: every model parameter declared once, and the live-run state machine.

Hard ``bounds`` are where the mathematics (and the server's budget) is valid; ``softbounds`` are
the slider range; ``doc`` is the tooltip.  Views generate widgets from these declarations.
Nothing here imports panel, holoviews or bokeh, and nothing here is module-level mutable state:
each browser session builds its own objects.
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import param
import xarray as xr

from engine import escape, fa, linreg, overfit, saddle, schema, stability

from . import sweeps
from .cache import get_cache


class Task(NamedTuple):
    """One expensive, cached result: ``fn(**inputs)`` stored under ``(kind, inputs)``.

    ``name`` is its place in an export (a netCDF group); tasks that share a name and a
    ``concat`` dimension are points of one curve and are joined along it (:func:`assemble`).
    Pages, the command line and the presets prewarm all compute through these.
    """

    kind: str
    inputs: dict
    fn: Callable[..., xr.Dataset]
    name: str
    concat: str | None = None


def assemble(pairs: list[tuple[Task, xr.Dataset]]) -> dict[str, xr.Dataset]:
    """``{name: Dataset}`` for an export: points of one curve joined along their dimension."""
    groups: dict[str, list[tuple[Task, xr.Dataset]]] = {}
    for task, ds in pairs:
        if ds is not None:
            groups.setdefault(task.name, []).append((task, ds))
    out = {}
    for name, items in groups.items():
        dim = items[0][0].concat
        if dim is None or len(items) == 1:
            out[name] = items[-1][1]
        else:
            out[name] = join_along([ds for _, ds in items], dim)
    return out


def join_along(datasets: list[xr.Dataset], dim: str) -> xr.Dataset:
    """Points of one curve joined along ``dim`` (taken from each one's attrs when it is not a
    coordinate, e.g. the batch size S of a λ–S column), sorted; differing attrs dropped."""
    parts = [ds if dim in ds.coords else ds.assign_coords({dim: [ds.attrs[dim]]}) for ds in datasets]
    # xarray's defaults are changing (FutureWarning): stated, every variable gains ``dim``
    return xr.concat(parts, dim=dim, data_vars="all", coords="different", compat="equals",
                     join="outer", combine_attrs="drop_conflicts").sortby(dim)


def tidy(value, step=None, digits: int = 4):
    """``value`` rounded to the precision its control offers: the decimals of ``step``, and
    never fewer than ``digits`` significant digits (so η = 0.00012 survives a step of
    0.001). A slider sends float32 artefacts (w0 = 1.200000158019822) and a click on a log
    axis 10^x (η = 0.25118873255775953); links and exports then carried them."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        return value
    x = float(value)
    if x == 0 or not math.isfinite(x):
        return value
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if step:
        decimals = max(decimals, -Decimal(repr(float(step))).normalize().as_tuple().exponent)
    return round(x, min(max(decimals, 0), 15))


class Number(param.Number):
    """``param.Number`` whose values are stored :func:`tidy` — from a slider, a click, a link
    or a preset alike, so the URL and the exported attrs read 1.2, not 1.200000158019822."""

    def __set__(self, obj, val):
        super().__set__(obj, tidy(val, self.step))


TEACHER_LABELS = {
    "2tanh(x) − tanh(4x)  (paper 000)": "paper000",
    "2tanh(x)  (paper 001)": "paper001",
}
DATASET_SIZES = {"∞ (online: fresh x every step)": 0, **{f"{n}": n for n in
                 (3, 10, 30, 100, 300, 1000, 10_000)}}


class InputParams(param.Parameterized):
    """η, σ² and the seed: shared by every page of the Fukumizu–Amari model."""

    lr = Number(
        0.1, bounds=(1e-5, 10.0), softbounds=(0.001, 1.0), step=0.001, label="η (learning rate)",
        doc="Learning rate η of SGD: θ ← θ − η · mean-batch gradient.")
    sigma2 = Number(
        0.1, bounds=(1e-4, 100.0), softbounds=(0.001, 2.0), step=0.001, label="σ² (input variance)",
        doc="Variance of the inputs, x ~ N(0, σ²). Paper 000 contrasts σ² = 0.1 and 1.")
    seed = param.Integer(
        0, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed", precedence=10,
        doc="Seeds the initial conditions, the dataset and the SGD noise: same seed, same run.")


class ModelParams(InputParams):
    """Parameters of SGD on the Fukumizu–Amari model (symbols as in ../shared/MATH.md)."""

    batch_size = param.Integer(
        1, bounds=(1, 1024), softbounds=(1, 64), label="S (batch size)",
        doc="Samples averaged per SGD step; S = 1 is online learning (paper 000).")
    label_noise = Number(
        0.0, bounds=(0.0, 10.0), softbounds=(0.0, 1.0), step=0.01, label="τ (label noise)",
        doc="Std of the label noise: y = T(x) + ξ, ξ ~ N(0, τ²) (paper 001).")
    teacher = param.Selector(
        default="paper000", objects=TEACHER_LABELS, label="teacher T(x)",
        doc="The target function the student v1 tanh(w1 x) + v2 tanh(w2 x) learns.")
    n_data = param.Selector(
        default=0, objects=DATASET_SIZES, label="N (dataset size)",
        doc="∞: fresh samples every step. A number: a fixed dataset of N points drawn once "
            "from the seed (with its label noise); S ≥ N is full-batch gradient descent.")
    def engine_kwargs(self) -> dict:
        """The keyword arguments of :func:`engine.fa.run_ensemble` these values stand for."""
        return dict(lr=self.lr, sigma2=self.sigma2, batch_size=self.batch_size,
                    label_noise=self.label_noise, teacher=self.teacher,
                    n_data=self.n_data or None, seed=self.seed)


class EnsembleParams(ModelParams):
    """A model plus how many trajectories to run side by side."""

    n_trajectories = param.Integer(
        8, bounds=(1, 100), softbounds=(1, 40), label="trajectories",
        doc="Number of SGD runs from different initial conditions.")
    start = param.Selector(
        default="box", objects={"uniform in [−1, 1]⁴": "box", "near a point (w0, w0, v0, v0) of M_wv": "point"},
        label="initial conditions",
        doc="Where the trajectories start: spread over the box [−1, 1]⁴ (paper 000 Fig. 4), or "
            "close to one point of the degenerate subspace M_wv (w1 = w2, v1 = v2).")
    w0 = Number(0.5, bounds=(-5.0, 5.0), softbounds=(-2.0, 2.0), step=0.01, label="w0",
                doc="w1 = w2 of the starting point on M_wv (with 'near a point').")
    v0 = Number(0.5, bounds=(-5.0, 5.0), softbounds=(-2.0, 2.0), step=0.01, label="v0",
                doc="v1 = v2 of the starting point on M_wv (with 'near a point').")
    spread = Number(0.05, bounds=(0.0, 1.0), softbounds=(0.0, 0.5), step=0.005,
                    label="spread",
                    doc="Half-width of the uniform perturbation of each coordinate around "
                        "the starting point; 0 starts exactly on M_wv, where SGD stays.")

    def tasks(self, n_steps: int = 10_000, n_records: int = 200) -> list[Task]:
        """The whole ensemble run for ``n_steps`` (the command line's trajectories dataset)."""
        n_steps = int(np.clip(n_steps, 1, 10_000_000))
        inputs = dict(self.engine_kwargs(), theta0=self.initial_conditions(), n_steps=n_steps,
                      record_every=max(1, n_steps // max(int(n_records), 1)))
        return [Task("fa_ensemble", inputs, fa.run_ensemble, "trajectories")]

    def initial_conditions(self) -> np.ndarray:
        """(n_trajectories, 4) starting points drawn from the seed."""
        if self.start == "point":
            centre = np.array([self.w0, self.w0, self.v0, self.v0])
            if self.spread == 0:
                return np.tile(centre, (self.n_trajectories, 1))
            return centre + fa.uniform_initial(self.n_trajectories, self.spread, self.seed)
        return fa.uniform_initial(self.n_trajectories, 1.0, self.seed)


#: the live page's parameters: the model, the start, the animation (its sidebar's three groups,
#: its links and presets, the class mode's API); and those a teacher's ``hide=advanced`` hides
LIVE_MODEL_FIELDS = ("lr", "sigma2", "batch_size", "label_noise", "teacher", "n_data",
                     "n_trajectories", "seed")
LIVE_START_FIELDS = ("start", "w0", "v0", "spread")
LIVE_RUN_FIELDS = ("steps_per_frame", "frame_ms")
LIVE_ADVANCED = ("n_trajectories", "seed", "start", "w0", "v0", "spread", "steps_per_frame",
                 "frame_ms")

#: parameters that can change mid-run (marked on the plots); every other one restarts the run
LIVE_PARAMS = ("lr", "label_noise")
RESTART_PARAMS = ("sigma2", "batch_size", "teacher", "n_data", "seed", "n_trajectories", "start",
                  "w0", "v0", "spread")
SYMBOLS = {"lr": "η", "label_noise": "τ", "sigma2": "σ²", "batch_size": "S",
           "teacher": "teacher", "n_data": "N", "seed": "seed", "n_trajectories": "trajectories",
           "start": "initial conditions", "w0": "w0", "v0": "v0", "spread": "spread"}


#: what a restarting parameter changes, for the notice that says why the run restarted
DATA_PARAMS = ("sigma2", "batch_size", "teacher", "n_data", "label_noise")
START_PARAMS = ("n_trajectories", "start", "w0", "v0", "spread")


def restart_reason(names) -> str:
    """The notice for a restart caused by changing ``names``: which values changed, and
    whether that changes the data SGD sees, where the trajectories start, or (the seed)
    both."""
    names = set(names)
    what = ", ".join(SYMBOLS[n] for n in sorted(names))
    data = bool(names & set(DATA_PARAMS)) or "seed" in names
    start = bool(names & set(START_PARAMS)) or "seed" in names
    why = ("this changes the data SGD sees and where the trajectories start" if data and start
           else "this changes the data SGD sees" if data
           else "this changes where the trajectories start")
    return f"{what} changed: the run restarted from step 0 ({why})."


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
    #: per-sample gradient evaluations one frame may cost (≈ 0.1–0.3 s): steps per frame ×
    #: trajectories × batch size is capped so that no link can buy minutes of CPU
    work_budget = 5_000_000

    def __init__(self, _snapshot: dict | None = None, **params):
        params.setdefault("model", EnsembleParams())
        super().__init__(**params)
        self.events: list[tuple[int, str]] = []
        self._live_values = {k: getattr(self.model, k) for k in LIVE_PARAMS}
        self.model.param.watch(self._on_model_change, list(LIVE_PARAMS + RESTART_PARAMS))
        if _snapshot is None:
            self.reset()
        else:  # :meth:`restore`: the state is the snapshot's, no fresh start to compute first
            self._load(_snapshot)

    # -- state transitions -------------------------------------------------------------------
    def reset(self, reason: str = "") -> None:
        """Restart from step 0 with fresh initial conditions from the seed."""
        m = self.model
        self.theta = m.initial_conditions()
        self.exit_step = np.full(m.n_trajectories, -1, dtype=np.int64)
        self.exit_reason = np.zeros(m.n_trajectories, dtype=np.int8)
        self.hist_step = np.zeros(1, dtype=np.int64)
        self.hist_theta = self.theta[:, None, :].copy()
        self.hist_loss = fa.population_loss(self.theta, m.sigma2, m.teacher)[:, None]
        self.hist_train_loss = None  # filled from the chunks when the dataset is fixed
        self.events = []
        self._live_values = {k: getattr(m, k) for k in LIVE_PARAMS}
        self.diverged = False
        self.capped = 0
        self.step = 0
        self.resets = getattr(self, "resets", -1) + 1  # views compare it: new data to draw?
        self.message = reason

    def _on_model_change(self, *events) -> None:
        names = {e.name for e in events}
        restart = names & set(RESTART_PARAMS)
        if "label_noise" in names and m_has_dataset(self.model):
            restart.add("label_noise")  # the label noise is part of a fixed dataset
        if restart:
            self.reset(restart_reason(restart))
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
        m = self.model
        per_step = alive.size * (min(m.batch_size, m.n_data) if m.n_data else m.batch_size)
        cap = max(1, self.work_budget // per_step)
        if n > cap:
            n = cap
            self.capped = cap
        else:
            self.capped = 0
        kwargs = dict(self.model.engine_kwargs(), n_steps=n, start_step=self.step,
                      record_every=max(1, n // self.points_per_frame), trajectory_ids=alive)
        return ChunkWork(self.theta[alive].copy(), alive, kwargs)

    def apply(self, work: "ChunkWork", chunk: xr.Dataset) -> None:
        """Append a computed chunk to the run (on the thread that owns this state)."""
        schema.require(chunk, "theta", "theta_final", "loss", "exit_step", "exit_reason")
        if work.kwargs["start_step"] != self.step:
            raise ValueError("stale chunk: the run moved on since it was prepared")
        self._append(chunk, work.alive)

    def advance(self, n_steps: int | None = None, cache: bool = True) -> xr.Dataset | None:
        """Take ``n_steps`` (default ``steps_per_frame``) SGD steps of the trajectories still
        running, in the calling thread; returns the engine's chunk (through the shared cache
        unless ``cache`` is False)."""
        work = self.prepare(n_steps)
        if work is None:
            return None
        chunk = work.compute(cache=cache)
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
        if "train_loss" in chunk:
            tl = np.full((self.theta.shape[0], chunk.sizes["step"]), np.nan)
            tl[alive] = chunk.train_loss.values
            if self.hist_train_loss is None:  # first chunk: its initial record too
                self.hist_train_loss = np.full((self.theta.shape[0], self.hist_step.size - n_rec - 1),
                                               np.nan)
                self.hist_train_loss = np.concatenate([self.hist_train_loss, tl], axis=1)
            else:
                self.hist_train_loss = np.concatenate([self.hist_train_loss, tl[:, 1:]], axis=1)
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
        if self.hist_train_loss is not None:
            self.hist_train_loss = self.hist_train_loss[:, keep]

    _STATE = ("theta", "exit_step", "exit_reason", "hist_step", "hist_theta", "hist_loss",
              "hist_train_loss")

    def snapshot(self) -> dict:
        """The run as plain values and arrays (no watchers, so no reference cycle: a store of
        snapshots frees an evicted one at once, where stored runs waited for a full garbage
        collection). :meth:`restore` makes a run of it again."""
        m = self.model
        return {"model": {n: getattr(m, n) for n in m.param if n != "name"},
                "run": {n: getattr(self, n) for n in ("steps_per_frame", "frame_ms", "step",
                                                      "message", "diverged")},
                "arrays": {n: getattr(self, n) for n in self._STATE},
                "events": list(self.events), "live": dict(self._live_values),
                "capped": self.capped, "resets": self.resets}

    @classmethod
    def restore(cls, snap: dict) -> "TrajectoryRun":
        """A run from :meth:`snapshot` (its arrays copied: the snapshot may be shared)."""
        return cls(_snapshot=snap, model=EnsembleParams(**snap["model"]),
                   **{k: snap["run"][k] for k in ("steps_per_frame", "frame_ms")})

    def _load(self, snap: dict) -> None:
        for name, value in snap["arrays"].items():
            setattr(self, name, None if value is None else value.copy())
        self.events, self._live_values = list(snap["events"]), dict(snap["live"])
        self.capped, self.resets = snap["capped"], snap["resets"]
        with param.parameterized.discard_events(self):
            self.param.update(**{k: snap["run"][k] for k in ("step", "message", "diverged")})

    def copy(self) -> "TrajectoryRun":
        """An independent copy (model, history, changes and flags)."""
        return self.restore(self.snapshot())

    def nbytes(self) -> int:
        """Memory held by the history (what a store of runs budgets)."""
        arrays = (self.theta, self.hist_step, self.hist_theta, self.hist_loss, self.hist_train_loss)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def n_running(self) -> int:
        return int((self.exit_step < 0).sum())

    def to_dataset(self) -> xr.Dataset:
        """The run so far as shown (the decimated history), for a download: θ and the
        expected loss per trajectory and recorded step, exit steps, and the live changes of
        η/τ as ``attrs['events']``."""
        m = self.model
        data = {"theta": (("trajectory", "step", "param"), self.hist_theta),
                "loss": (("trajectory", "step"), self.hist_loss),
                "exit_step": (("trajectory",), self.exit_step),
                "exit_reason": (("trajectory",), self.exit_reason)}
        if self.hist_train_loss is not None:
            data["train_loss"] = (("trajectory", "step"), self.hist_train_loss)
        coords = {"trajectory": np.arange(m.n_trajectories), "step": self.hist_step,
                  "param": np.array(schema.PARAM_NAMES)}
        inputs = dict(m.engine_kwargs(), n_trajectories=m.n_trajectories, start=m.start,
                      w0=m.w0, v0=m.v0, spread=m.spread)
        ds = schema.dataset(data, coords, inputs, kind="live_run")
        ds.attrs["events"] = [[int(k), text] for k, text in self.events]
        return ds


class ChunkWork:
    """One chunk of a live run: the inputs, and a ``compute`` safe to call from any thread."""

    def __init__(self, theta0: np.ndarray, alive: np.ndarray, kwargs: dict):
        self.theta0, self.alive, self.kwargs = theta0, alive, kwargs

    def compute(self, cache: bool = True) -> xr.Dataset:
        """The chunk, from the shared cache or the engine (which releases the GIL). The class
        mode passes ``cache=False``: it shares whole states itself, and every chunk of every
        student written to the disk cache cost 30 ms a frame and filled the memory budget
        with chunks nobody asks for twice."""
        if not cache:
            return fa.run_ensemble(self.theta0, **self.kwargs)
        return get_cache().get_or_compute(
            "fa_ensemble", dict(self.kwargs, theta0=self.theta0),
            lambda: fa.run_ensemble(self.theta0, **self.kwargs))


class StabilityParams(InputParams):
    """The stability page: μ± and π on M_wv (paper 000 Fig. 3) and pullback clouds (Fig. 4)."""

    sigma2 = Number(default=1.0)
    w0 = Number(0.5, bounds=(0.0, 2.0), step=0.01, label="w (on M_wv)",
                doc="w = w1 = w2 of the point whose μ±(x) are plotted; click the map to pick.")
    v0 = Number(0.5, bounds=(0.0, 2.0), step=0.01, label="v (on M_wv)",
                doc="v = v1 = v2 of the point whose μ±(x) are plotted; click the map to pick.")
    color_by = param.Selector(
        default="pi_small_lr",
        objects={"π = P[μ+ ≤ 0] (small η)": "pi_small_lr",
                 "P[|1 + ημ±| < 1] (at this η)": "pi_finite_lr",
                 "Lyapunov exponent λ": "lyapunov"},
        label="colour the map by",
        doc="π counts the inputs for which the point attracts (paper 000 eq. 38); the finite-η "
            "version also asks |1 + ημ−| < 1; λ < 0 means the linearised random map contracts "
            "almost surely.")
    resolution = param.Integer(
        100, bounds=(10, 200), softbounds=(20, 200), label="map resolution",
        doc="Grid points per axis of the maps over [0, 2]² (the Lyapunov map costs ∝ resolution²).")
    pullback_time = param.Selector(
        default=10_000, objects={"10³": 1_000, "10⁴": 10_000, "3·10⁴": 30_000, "10⁵": 100_000},
        label="τ_pb (pullback time)",
        doc="How long before time 0 the paths start (paper 000 Fig. 4). Not the label noise τ.")
    pullback_points = param.Integer(
        100_000, bounds=(1_000, 100_000), softbounds=(1_000, 100_000), step=1_000,
        label="paths", doc="Initial conditions, uniform in [−1, 1]⁴, all driven by one noise.")
    trapped_distance = Number(
        0.1, bounds=(1e-3, 1.0), softbounds=(0.01, 0.5), step=0.01, label="trapped within",
        doc="A path is trapped when its distance to the nearest copy of M_wv is below this: "
            "min(√(r² + s²), √(r′² + s′²)), r = (w1 − w2)/2, s = (v1 − v2)/2 (M_wv), "
            "r′ = (w1 + w2)/2, s′ = (v1 + v2)/2 (its mirror w1 = −w2, v1 = −v2).")

    def map_inputs(self) -> dict:
        """Keyword arguments of :func:`engine.stability.attracting_map` for these values."""
        return dict(sigma2=self.sigma2, lr=self.lr, n=self.resolution, lyapunov_steps=300,
                    lyapunov_replicas=8, seed=self.seed, moments=True)

    def pullback_inputs(self) -> dict:
        """Keyword arguments of :func:`engine.pullback.pullback_cloud` (distance excluded:
        the trapped fraction is recomputed from the stored distances)."""
        return dict(sigma2=self.sigma2, pullback_time=self.pullback_time, lr=self.lr,
                    n_points=self.pullback_points, seed=self.seed)

    def point_task(self) -> Task:
        """The chosen point (w0, v0) alone: π, its finite-η version and the Lyapunov exponent
        (16 replicas × 4000 steps) — a one-cell :func:`engine.stability.attracting_map`
        centred on the point."""
        half = 1e-12  # the cells' half-width: their centres are the point to 1e-12
        inputs = dict(sigma2=self.sigma2, lr=self.lr, n=2, w_range=[self.w0 - half, self.w0 + half],
                      v_range=[self.v0 - half, self.v0 + half], lyapunov_steps=4000,
                      lyapunov_replicas=16, seed=self.seed)
        return Task("stability_map", inputs, stability.attracting_map, "point")

    def pi_map_task(self) -> Task:
        """The cheap π maps alone (no Lyapunov exponents): shown first, and what the
        trajectories page's "where am I" inset reuses."""
        small = dict(self.map_inputs(), lr=None, lyapunov_steps=0, moments=False)
        return Task("stability_map", small, stability.attracting_map, "pi_map")

    def tasks(self) -> list[Task]:
        return [self.pi_map_task(),
                Task("stability_map", self.map_inputs(), stability.attracting_map, "stability_map"),
                Task("pullback_cloud", self.pullback_inputs(), sweeps.pullback_cloud, "pullback_cloud")]


class EscapeParams(param.Parameterized):
    """The escape-time page (paper 000 §4.2, Fig. 5)."""

    lr = Number(0.1, bounds=(1e-4, 1.0), softbounds=(0.01, 0.5), step=0.01,
                label="η (learning rate)", doc="Learning rate of the 2-D map on M_wv (Fig. 5: 0.1).")
    batch_size = param.Integer(1, bounds=(1, 64), softbounds=(1, 16), label="S (batch size)",
                               doc="Samples averaged per step (Fig. 5: online, S = 1).")
    n_trajectories = param.Integer(1000, bounds=(10, 5000), softbounds=(10, 2000), step=10,
                                   label="trajectories per σ²",
                                   doc="Initial conditions (w, v) uniform in (0, 2]², independent noise.")
    max_steps = param.Integer(100_000, bounds=(1_000, 1_000_000), softbounds=(1_000, 200_000),
                              step=1_000, label="step cap",
                              doc="Trajectories still inside [−2, 2]² at the cap are censored.")
    n_sigma2 = param.Integer(12, bounds=(3, 24), label="σ² values",
                             doc="Points of the curve, log-spaced from 0.002 to 1 (Fig. 5).")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed",
                         doc="Seeds the initial conditions and the noise.")
    view = param.Selector(default="fig5", objects=["fig5", "powerlaw"], label="view",
                          doc="fig5: optimal noise (paper 000); powerlaw: power-law escape (paper 003).")

    def sigma2_values(self) -> np.ndarray:
        return np.geomspace(0.002, 1.0, self.n_sigma2)

    def point_inputs(self, sigma2: float) -> dict:
        """Keyword arguments of :func:`engine.escape.escape_times` for one σ²."""
        return dict(sigma2=float(sigma2), lr=self.lr, batch_size=self.batch_size,
                    n_trajectories=self.n_trajectories, max_steps=self.max_steps, seed=self.seed)

    def tasks(self) -> list[Task]:
        """One cached point of Fig. 5 per σ² (they run side by side on a cluster)."""
        return [Task("escape_times", self.point_inputs(v), escape.escape_times, "fig5", "sigma2")
                for v in self.sigma2_values()]


class PowerLawParams(param.Parameterized):
    """The power-law escape part of the escape page (paper 003 §5.3.1, Fig. 3a–b).

    Names carry a ``fp_`` (first passage) or ``phi_`` prefix: they share the page's URL with
    the Fig. 5 controls. The bounds cap the work one request can buy (runs × step cap ≤ 5·10⁸).
    """

    fp_lr = Number(0.1, bounds=(1e-3, 1.0), softbounds=(0.01, 0.5), step=0.01,
                   label="η (first passage)", doc="Learning rate of SGD (Fig. 3b: 0.1).")
    fp_batch_size = param.Integer(1, bounds=(1, 64), softbounds=(1, 16), label="B (first passage)",
                                  doc="Mini-batch size B (Fig. 3b: 1).")
    # instantiate=True: each session gets its own list (param shares a list default otherwise)
    fp_dims = param.ListSelector(default=[1, 2, 3, 4], objects=[1, 2, 3, 4, 5, 6, 8], instantiate=True,
                                 label="d (input dimensions = n)",
                                 doc="One curve per d; the theory slope is B/(ηh*) + 1 − d/2.")
    fp_n_data = param.Selector(default=10_000, objects={"10³": 1_000, "10⁴": 10_000, "10⁵": 100_000},
                               label="N (data points)", doc="Dataset size (Fig. 3b: 10⁴).")
    fp_runs = param.Integer(100, bounds=(10, 500), softbounds=(10, 500), step=10,
                            label="runs per curve", doc="Independent SGD runs from θ* (paper: 100).")
    fp_c_max = Number(2.0, bounds=(1.2, 4.0), step=0.1, label="largest c",
                      doc="Thresholds c = L/L* from 1.1 to this, log-spaced (12 values).")
    fp_max_steps = param.Selector(default=1_000_000, objects={"10⁴": 10_000, "10⁵": 100_000,
                                                              "10⁶": 1_000_000},
                                  label="step cap", doc="Runs not past c by then are censored.")
    phi_lrs = param.ListSelector(default=[0.1, 0.5, 1.0], objects=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
                                 instantiate=True,
                                 label="η values (φ)", doc="One series of φ against B per η (Fig. 3a).")
    phi_batches = param.ListSelector(default=[1, 2, 4, 6, 8, 10], objects=[1, 2, 3, 4, 6, 8, 10, 16],
                                     instantiate=True,
                                     label="B values (φ)", doc="Batch sizes on the horizontal axis.")
    phi_chains = param.Integer(8, bounds=(2, 32), label="chains per point",
                               doc="Independent chains from θ*: their spread gives the error of φ.")
    phi_samples = param.Integer(1250, bounds=(100, 10_000), step=50, label="samples per chain",
                                doc="θ recorded every 100 steps after burn-in (the paper: 10⁴ "
                                    "samples in all, d = 1, N = 10⁵).")
    pl_seed = param.Integer(0, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed (paper 003)",
                            doc="Seeds the dataset and the mini-batches.")

    FP_FIELDS = ("fp_lr", "fp_batch_size", "fp_dims", "fp_n_data", "fp_runs", "fp_c_max",
                 "fp_max_steps")
    PHI_FIELDS = ("phi_lrs", "phi_batches", "phi_chains", "phi_samples")

    def thresholds(self) -> np.ndarray:
        return np.geomspace(1.1, max(self.fp_c_max, 1.15), 12)

    def passage_inputs(self, dim: int) -> dict:
        """Keyword arguments of :func:`engine.linreg.first_passage_times` for one d."""
        return dict(c=self.thresholds().tolist(), lr=self.fp_lr, batch_size=self.fp_batch_size,
                    dim=int(dim), n_data=self.fp_n_data, n_runs=self.fp_runs,
                    max_steps=self.fp_max_steps, seed=self.pl_seed)

    def phi_inputs(self, lr: float, batch_size: int) -> dict:
        """Keyword arguments of :func:`engine.linreg.stationary_exponent` for one point."""
        return dict(lr=float(lr), batch_size=int(batch_size), dim=1, n_data=100_000,
                    n_chains=self.phi_chains, n_samples=self.phi_samples, sample_every=100,
                    seed=self.pl_seed, keep_samples=False)

    @staticmethod
    def group(ds_or_kind, **inputs) -> str:
        """The export group of a t_p curve or a φ point (from its Dataset or its inputs)."""
        if isinstance(ds_or_kind, xr.Dataset):
            inputs, ds_or_kind = ds_or_kind.attrs, ds_or_kind.attrs["kind"]
        if ds_or_kind == "first_passage":
            return f"first_passage/d{int(inputs['dim'])}"
        return f"stationary_exponent/lr{inputs['lr']:g}_B{int(inputs['batch_size'])}"

    def tasks(self) -> list[Task]:
        """t_p curves per d (Fig. 3b), then φ per (η, B) (Fig. 3a)."""
        fp = [self.passage_inputs(d) for d in self.fp_dims]
        phi = [self.phi_inputs(lr, b) for lr in self.phi_lrs for b in self.phi_batches]
        return ([Task("first_passage", kw, linreg.first_passage_times,
                      self.group("first_passage", **kw)) for kw in fp]
                + [Task("stationary_exponent", kw, linreg.stationary_exponent,
                        self.group("stationary_exponent", **kw)) for kw in phi])


RELEASED_DATA = Path(__file__).resolve().parents[1] / "assets" / "paper001_training_set.dat"


@lru_cache(maxsize=1)
def released_dataset() -> tuple[np.ndarray, np.ndarray]:
    """The training set released with paper 001 (a copy in assets/, identical to
    ../shared/data — a test checks it): x, y as read-only arrays."""
    d = np.loadtxt(RELEASED_DATA)
    x, y = np.ascontiguousarray(d[:, 0]), np.ascontiguousarray(d[:, 1])
    x.flags.writeable = y.flags.writeable = False
    return x, y


class OverfitParams(param.Parameterized):
    """The overfitting page (paper 001 §4, Fig. 3; MATH.md §2). L uses MATH.md's ½ convention:
    the released code's step 0.01 on mean((f − y)²) is η = 0.02 here."""

    label_noise = Number(0.2, bounds=(0.0, 2.0), softbounds=(0.0, 1.0), step=0.01,
                         label="τ (label noise)",
                         doc="Std of the label noise ξ_i ~ N(0, τ²) of the fixed dataset.")
    n_data = param.Integer(100, bounds=(5, 2000), softbounds=(10, 1000), step=5, label="n (data points)",
                           doc="Size of the training set (Fig. 3: 100).")
    lr = Number(0.02, bounds=(1e-4, 10.0), softbounds=(0.001, 0.5), step=0.001,
                label="η (learning rate)",
                doc="GD step on L = (1/2n) Σ (f − y)² (the released code's 0.01 on "
                    "mean (f − y)² is 0.02 here).")
    n_steps = param.Selector(default=2_000_000, objects={"2·10⁴": 20_000, "2·10⁵": 200_000,
                                                         "2·10⁶": 2_000_000, "10⁷": 10_000_000},
                             label="GD steps", doc="Fig. 3 runs to 2·10⁶.")
    seed = param.Integer(6, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed",
                         doc="Seeds the inputs x_i and the noise directions ξ_i (seed 6 shows "
                             "the whole saddle–saddle–attractor path in 2·10⁶ steps).")
    teacher = param.Selector(default="2tanh", objects={"2tanh(x)  (paper 001)": "2tanh",
                                                       "2tanh(x) − tanh(4x)  (paper 000)": "paper000"},
                             label="teacher T(x)", doc="The target the labels come from.")
    dataset = param.Selector(default="generated", objects={"generated (n, τ, seed)": "generated",
                                                          "released with paper 001": "released"},
                             label="dataset",
                             doc="The released set has its own n = 100 and τ ≈ 0.2 (teacher 2tanh).")
    batch_size = param.Selector(default=0, objects={"full batch (GD)": 0, "1": 1, "10": 10, "32": 32},
                                label="batch size", doc="Full-batch GD (the paper) or mini-batch SGD.")
    compare_clean = param.Boolean(True, label="also run τ = 0 on the same inputs",
                                  doc="Fig. 3 a (τ = 0, dashed) beside b (τ > 0).")

    FIELDS = ("label_noise", "n_data", "lr", "n_steps", "seed", "teacher", "dataset",
              "batch_size", "compare_clean")
    MAX_WORK = 4e9  # n × steps one request may buy (≈ 25 s on this 2-core machine)

    def capped_steps(self) -> tuple[int, str | None]:
        """The step count within the work cap, and a notice if it had to be lowered."""
        n = 100 if self.dataset == "released" else self.n_data
        if n * self.n_steps <= self.MAX_WORK:
            return self.n_steps, None
        ok = [v for v in sorted(self.param.n_steps.objects.values()) if n * v <= self.MAX_WORK]
        steps = ok[-1] if ok else 20_000
        return steps, f"n × steps is capped at {self.MAX_WORK:.0e}: running {steps:,} steps."

    def run_inputs(self, clean: bool = False) -> dict:
        """Canonical inputs of one run (``clean``: the τ = 0 twin on the same inputs)."""
        released = self.dataset == "released"
        return dict(dataset=self.dataset, n_data=100 if released else self.n_data,
                    label_noise=0.0 if clean else (None if released else self.label_noise),
                    teacher="2tanh" if released else self.teacher,
                    seed=0 if released else self.seed, lr=self.lr, n_steps=self.capped_steps()[0],
                    batch_size=self.batch_size or None, loss_scale=0.5)

    def tasks(self) -> list[Task]:
        """The run at τ, and its τ = 0 twin when asked for (Fig. 3 a beside b)."""
        tasks = [Task("overfit_run", self.run_inputs(), overfit_run, "run")]
        if self.compare_clean and not (self.dataset == "generated" and self.label_noise == 0):
            tasks.append(Task("overfit_run", self.run_inputs(clean=True), overfit_run, "run_tau0"))
        return tasks


def overfit_run(dataset, n_data, label_noise, teacher, seed, lr, n_steps, batch_size, loss_scale,
                *, progress=None, cancel=None, on_partial=None) -> xr.Dataset:
    """One annotated GD run of the overfitting page from its canonical inputs (engine calls
    only: the data, :func:`engine.overfit.train` from the released initial condition, the
    stages, and the refined end point in ``attrs``)."""
    if dataset == "released":
        x, y = released_dataset()
        if label_noise == 0.0:
            y = overfit.teacher_values(x, "2tanh")
    else:
        x, y = overfit.make_dataset(n_data, label_noise, teacher, seed)
    ds = overfit.train(x, y, overfit.RELEASED_THETA0, lr, n_steps, teacher=teacher,
                       loss_scale=loss_scale, batch_size=batch_size, seed=seed,
                       chunk_steps=max(10_000, int(3e7 / x.size)), progress=progress,
                       cancel=cancel, on_partial=on_partial)
    ds = overfit.annotate(ds, x, y)
    end = ds.theta.values[-1]
    if np.all(np.isfinite(end)) and batch_size is None:
        ref = overfit.refine_minimum(x, y, end, loss_scale)
        ds.attrs.update(refined_theta=ref["theta"].tolist(), refined_grad_norm=ref["grad_norm"],
                        refined_eigenvalues=ref["eigenvalues"].tolist(),
                        refined_train_error=ref["train_error"],
                        refined_generalization_error=float(
                            overfit.generalization_error(ref["theta"], teacher)))
    return ds


class PhaseParams(param.Parameterized):
    """The phase-diagram page of Proposition 1 (paper 002, Figs. 2, 8, 9)."""

    batch_size = param.Integer(
        1, bounds=(1, 1024), softbounds=(1, 64), label="S (batch size)",
        doc="Samples per SGD step in the λ–μ map (paper 002 writes S).")
    n_data = param.Selector(
        default=0, objects={"∞ (fresh batches)": 0, **{str(n): n for n in (3, 4, 8, 10, 24, 100, 1000)}},
        label="N (dataset size)",
        doc="∞: every batch is fresh. A number: one dataset drawn from the seed (Fig. 8).")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), softbounds=(0, 100), label="seed",
                         doc="Seeds the finite dataset and the Monte Carlo batches.")
    mu_for_s = Number(0.06, bounds=(0.0, 1.0), step=0.01, label="μ (λ–S map)",
                      doc="Signal fraction of the labels for the λ–S map (Fig. 9 right: 0.06).")
    resolution = param.Integer(128, bounds=(16, 256), softbounds=(32, 256), label="map resolution",
                               doc="Grid points per axis of the λ–μ map.")
    log_lr_range = param.Range((-2.0, 1.0), bounds=(-4.0, 2.0), label="log₁₀ η range",
                               doc="The η (λ) axis of the maps, in decades; box-zoom sets it.")
    mu_range = param.Range((0.0, 1.0), bounds=(0.0, 1.0), label="μ range",
                           doc="The μ axis of the λ–μ map; box-zoom sets it.")
    lr = Number(0.5, bounds=(1e-4, 100.0), label="η (clicked)",
                doc="η of the cell whose saddle SGD is simulated.")
    mu = Number(0.5, bounds=(0.0, 1.0), label="μ (clicked)",
                doc="μ of the cell whose saddle SGD is simulated.")

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres: η log-spaced over ``log_lr_range``, μ linear over ``mu_range``."""
        n = self.resolution
        lo, hi = self.log_lr_range
        lr = 10.0 ** (lo + (np.arange(n) + 0.5) * (hi - lo) / n)
        m0, m1 = self.mu_range
        mu = m0 + (np.arange(n) + 0.5) * (m1 - m0) / n
        return lr, mu

    def map_task(self) -> Task:
        """The λ–μ map (Prop. 1), in blocks of η rows (:func:`app.sweeps.phase_map`)."""
        lr, mu = self.grid()
        inputs = dict(lr=lr, mu=mu, batch_size=self.batch_size, n_data=self.n_data or None,
                      seed=self.seed)
        return Task("saddle_lyapunov", inputs, sweeps.phase_map, "lambda_mu")

    def s_map_tasks(self) -> list[Task]:
        """The λ–S map at ``mu_for_s`` (Fig. 9 right): one column of η per S in S_VALUES."""
        lo, hi = self.log_lr_range
        lr = 10.0 ** np.linspace(lo, hi, 96)
        return [Task("saddle_lyapunov", dict(lr=lr, mu=float(self.mu_for_s), batch_size=int(S)),
                     saddle.lyapunov_exponents, "lambda_S", "batch_size") for S in S_VALUES]

    def cell_tasks(self) -> list[Task]:
        """The clicked cell (``lr``, ``mu``): the saddle SGD simulated there (200 runs × 1000
        steps, eq. 54 of paper 002) and Λ± of Proposition 1 at that one point."""
        common = dict(lr=self.lr, mu=self.mu, batch_size=self.batch_size,
                      n_data=self.n_data or None)
        return [Task("saddle_simulation", dict(common, n_runs=200, n_steps=1000, seed=self.seed),
                     saddle.simulate_saddle, "cell_simulation"),
                Task("saddle_lyapunov", dict(common, seed=self.seed), saddle.lyapunov_exponents,
                     "cell_theory")]

    @staticmethod
    def fig2_task() -> Task:
        """Fig. 2 right: the Lyapunov exponent of Π(I − ηĤ_t) against η."""
        inputs = dict(lr=np.geomspace(1e-3, 1.0, 30), n_runs=800, max_steps=5000, seed=0)
        return Task("random_product_lyapunov", inputs, saddle.random_product_lyapunov, "fig2_right")

    def tasks(self) -> list[Task]:
        return [self.map_task(), *self.s_map_tasks(), self.fig2_task()]


LOG2_S = (np.arange(48) + 0.5) * 6.0 / 48  # uniform rows in log2 S ∈ [0, 6] of the λ–S map …
S_VALUES = np.unique(np.round(2.0**LOG2_S).astype(int))  # … each computed at its nearest S


def m_has_dataset(model: ModelParams) -> bool:
    return bool(model.n_data)


#: the state objects behind each page (attribute name -> class): what the command line builds
#: to compute a page's datasets without a browser
PAGE_STATES: dict[str, dict[str, type]] = {
    "trajectories": {"model": EnsembleParams},
    "stability": {"state": StabilityParams},
    "phases": {"state": PhaseParams},
    "escape": {"state": EscapeParams, "powerlaw": PowerLawParams},
    "overfit": {"state": OverfitParams},
}


def computations(slug: str, states: dict[str, param.Parameterized]) -> dict[str, list[Task]]:
    """A page's long computations by name, for its current values: what its views follow
    (:mod:`app.compute`) and what the class mode's API starts (:mod:`app.classapi`) — one
    definition for both."""
    if slug not in PAGE_STATES:
        raise ValueError(f"unknown page {slug!r}; pages with datasets: {', '.join(PAGE_STATES)}")
    if slug == "trajectories":  # the "where am I" inset: the stability page's π map at this σ²
        return {"where": [StabilityParams(sigma2=states["model"].sigma2).pi_map_task()]}
    s = states["state"]
    if slug == "stability":  # the cheap π maps first: shown while λ is computed
        pi_map, full_map, cloud = s.tasks()
        return {"maps": [pi_map, full_map], "cloud": [cloud], "point": [s.point_task()]}
    if slug == "phases":
        return {"map": [s.map_task()], "s_map": s.s_map_tasks(), "cell": s.cell_tasks(),
                "fig2": [s.fig2_task()]}
    if slug == "escape":
        return {"curve": s.tasks(), "powerlaw": states["powerlaw"].tasks()}
    return {"runs": s.tasks()}  # overfit


def page_tasks(slug: str, states: dict[str, param.Parameterized], **options) -> list[Task]:
    """Every expensive result of a page for its current values (both escape tabs)."""
    if slug not in PAGE_STATES:
        raise ValueError(f"unknown page {slug!r}; pages with datasets: {', '.join(PAGE_STATES)}")
    if slug == "trajectories":
        return states["model"].tasks(**options)
    return [t for obj in states.values() for t in obj.tasks()]

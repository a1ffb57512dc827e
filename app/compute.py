"""Long computations of the state layer: one shared computation per list of tasks, server-wide.

A page asks for a list of :class:`app.state.Task` (an escape curve's σ² points, a pullback cloud,
a phase map…). :func:`follow` returns the :class:`Computation` of that list — the one already
running when another session (or a class of 60 following one link) asked for the same tasks,
else a new one — and every follower sees its progress, its results as they arrive, the estimate
of the time left and its end. The tasks go through :func:`app.sweeps.run_tasks`, hence through
the shared cache (and a Dask cluster, when one is configured).

A computation runs while somebody follows it: it stops at the engine's next check (a cancel
callback) when its last follower leaves — a cancel button, a newer request from the same view,
a closed tab, or a class-mode browser that stopped asking (its lease, ``ttl`` seconds, ran out).
One student cancelling does not stop it for the others.

Views follow through a :class:`Follower` (latest wins: a new request leaves the previous
computation, whose callbacks are then never delivered), which calls them back on the session's
event loop (:func:`app.jobs.session_scheduler`). The class mode's JSON API reads
:meth:`Computation.status` and follows with leases.

Engines raise ``ValueError`` with a sentence a student can act on; any other exception is a bug
whose traceback goes to the server log and whose followers get ``on_error``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Hashable, NamedTuple, Sequence

from . import sweeps
from .cache import make_key

log = logging.getLogger(__name__)
#: numba kernels release the GIL: a few threads keep both cores busy and the loop free
EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sgd-atlas-job")
#: a task that finishes this quickly (seconds) came from the cache: it is left out of the
#: time per task used to estimate the time left
FOUND = 0.1
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


class Progress(NamedTuple):
    """What a follower is shown: a snapshot, safe to hand to another thread."""

    state: str  #: running, done, failed or cancelled
    done: float  #: tasks finished, with the fraction of the one running
    total: int
    results: tuple  #: the finished tasks' Datasets, in task order (a prefix: tasks run in order)
    partial: Any  #: the growing result of the running task (streaming engines), or None
    left: float | None  #: seconds left (None until one task was computed, not found)
    error: BaseException | None
    key: str


def tasks_key(tasks: Sequence) -> str:
    """The identity of a list of tasks: their kinds and inputs (a kind names its function)."""
    keys = [make_key(t[0], t[1]) for t in tasks]
    return hashlib.sha256("|".join(keys).encode()).hexdigest()[:32]


class Computation:
    """One list of tasks being computed for whoever follows it (see the module doc)."""

    def __init__(self, tasks: Sequence, key: str):
        self.tasks, self.key = list(tasks), key
        self.total = len(self.tasks)
        self.state = RUNNING
        self.error: BaseException | None = None
        self._results: dict[int, Any] = {}
        self._partial = None
        self._done = 0.0
        self._left: float | None = None
        self._start = time.monotonic()
        self._found = [0, 0.0]  # tasks that came from the cache, and the time they took
        self._last = self._start
        self._lock = threading.Lock()
        self._followers: dict[Hashable, tuple[float | None, Callable | None]] = {}

    # -- followers ------------------------------------------------------------------------------
    def _live(self, now: float) -> int:
        return sum(1 for expiry, _ in self._followers.values() if expiry is None or expiry > now)

    @property
    def cancelled(self) -> bool:
        """Whether it should stop: nobody follows it any more (or it was cancelled)."""
        if self.state == CANCELLED:
            return True
        with self._lock:
            if self._live(time.monotonic()):
                return False
        with _REGISTRY_LOCK:  # atomically with follow(): nobody can join it any more
            with self._lock:
                if self._live(time.monotonic()) or self.state != RUNNING:
                    return self.state == CANCELLED
                self.state = CANCELLED
            if _REGISTRY.get(self.key) is self:
                del _REGISTRY[self.key]
        return True

    @property
    def followers(self) -> int:
        with self._lock:
            return self._live(time.monotonic())

    # -- what followers see --------------------------------------------------------------------
    def status(self) -> Progress:
        with self._lock:
            results = tuple(self._results[i] for i in sorted(self._results))
            return Progress(self.state, self._done, self.total, results, self._partial,
                            self._left, self.error, self.key)

    def _changed(self, final: bool = False) -> None:
        with self._lock:
            listeners = [fn for _, fn in self._followers.values() if fn is not None]
        snapshot = self.status()
        for fn in listeners:
            try:
                fn(snapshot, final)
            except Exception:  # one follower's bug must not stop the others' updates
                log.exception("a computation's listener failed")

    # -- the work ------------------------------------------------------------------------------
    def _progress(self, done: float, total: int) -> None:
        with self._lock:
            self._done = float(done)
            computed = len(self._results) - self._found[0]
            # something to go on: a task computed (not found), or 5 % of a lone task
            if done < total and (computed > 0 or (total == 1 and done >= 0.05)):
                spent = time.monotonic() - self._start - self._found[1]
                self._left = spent / max(done - self._found[0], 1e-9) * (total - done)
        self._changed()

    def _finished(self, i: int, ds) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < FOUND:
                self._found[0] += 1
                self._found[1] += now - self._last
            self._last = now
            self._results[i] = ds
            self._partial = None

    def _streamed(self, i: int, ds) -> None:
        with self._lock:
            self._partial = ds
        self._changed()

    def run(self) -> None:
        """Compute the tasks (in a worker of :data:`EXECUTOR`)."""
        if self.cancelled:  # everybody left while it waited for a worker: never started
            return
        try:
            sweeps.run_tasks(self.tasks, cancel=lambda: self.cancelled, progress=self._progress,
                             on_result=self._finished, on_partial=self._streamed)
        except BaseException as exc:
            quiet = self.cancelled or isinstance(exc, sweeps.Cancelled)
            with self._lock:
                if self.state == RUNNING:
                    self.state, self.error = (CANCELLED, None) if quiet else (FAILED, exc)
            if not quiet:
                log.exception("a background computation failed")
        else:
            with self._lock:
                if self.state == RUNNING:
                    self.state, self._done, self._left = DONE, float(self.total), 0.0
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.key) is self:
                del _REGISTRY[self.key]
        self._changed(final=True)


_REGISTRY: dict[str, Computation] = {}
_REGISTRY_LOCK = threading.RLock()


def follow(tasks: Sequence, follower: Hashable, listener: Callable[[Progress, bool], None] |
           None = None, ttl: float | None = None) -> Computation:
    """The running computation of ``tasks``, or a new one, followed by ``follower`` — or, when
    all its results are in the cache's memory, a finished one (nothing to follow).

    ``listener(progress, final)`` is called from the computing thread on every change.
    ``ttl``: the follow is a lease that runs out after ``ttl`` seconds unless renewed by
    following again (the class mode's browsers poll; a closed tab stops renewing)."""
    key = tasks_key(tasks)
    expiry = None if ttl is None else time.monotonic() + float(ttl)
    with _REGISTRY_LOCK:
        comp = _REGISTRY.get(key)
        if comp is None or comp.state != RUNNING:
            comp = Computation(tasks, key)
            found = _in_memory(tasks)
            if found is not None:  # all computed before: done now, no thread, no registry
                comp.state, comp._done, comp._left = DONE, float(comp.total), 0.0
                comp._results = dict(enumerate(found))
                return comp
            _REGISTRY[key] = comp
            fresh = True
        else:
            fresh = False
        with comp._lock:
            comp._followers[follower] = (expiry, listener)
    if fresh:
        EXECUTOR.submit(comp.run)
    return comp


def _in_memory(tasks: Sequence) -> list | None:
    """The results of ``tasks`` if every one is in the cache's memory, else None (a poll of
    a finished computation is answered "done" at once, not by computing it again)."""
    from .cache import get_cache

    cache, found = get_cache(), []
    for t in tasks:
        ds = cache.lookup(t[0], t[1], disk=False)
        if ds is None:
            return None
        found.append(ds)
    return found


def renew(comp: Computation, follower: Hashable, ttl: float) -> bool:
    """Extend ``follower``'s lease on ``comp`` by ``ttl`` seconds from now, without a listener;
    False when ``comp`` no longer runs."""
    with _REGISTRY_LOCK:
        if _REGISTRY.get(comp.key) is not comp:
            return False
        with comp._lock:
            comp._followers[follower] = (time.monotonic() + float(ttl), None)
    return True


def leave(comp: Computation, follower: Hashable) -> None:
    """``follower`` no longer follows ``comp``; it stops at its next check if nobody does."""
    with comp._lock:
        comp._followers.pop(follower, None)
    comp.cancelled  # noqa: B018 - marks it cancelled (and unregisters it) when nobody is left


def running(key: str) -> Computation | None:
    """The running computation with ``key`` (:func:`tasks_key`), if any."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(key)


def running_count() -> int:
    with _REGISTRY_LOCK:
        return len(_REGISTRY)


class Follower:
    """One view's request for a computation (latest wins), its callbacks on the view's loop.

    ``schedule(fn)`` runs ``fn`` where the view lives (:func:`app.jobs.session_scheduler`: the
    session's loop with its document lock; directly without a server). ``on_progress(p)`` gets
    a :class:`Progress` at most ~10 times a second (and at once when a result arrives);
    ``follow`` passes ``on_done(results)`` the list of Datasets, ``on_error(exc)`` the error."""

    THROTTLE = 0.1

    def __init__(self, schedule: Callable[[Callable[[], None]], None],
                 on_progress: Callable[[Progress], None] | None = None):
        self._schedule, self.on_progress = schedule, on_progress
        self._comp: Computation | None = None
        self._generation = 0
        self._closed = False
        # held while a callback runs and while a request supersedes another: without a server
        # (tests, notebooks) callbacks run in the computing threads, and a callback that had
        # checked it was current could otherwise run after a newer request (a zoomed map
        # drawn over the map asked for after it). On a server both happen on the session's
        # loop, and the lock is never contended.
        self._lock = threading.RLock()

    @property
    def running(self) -> bool:
        return self._comp is not None and self._comp.state == RUNNING

    @property
    def computation(self) -> Computation | None:
        return self._comp

    @property
    def closed(self) -> bool:
        return self._closed

    def follow(self, tasks: Sequence, on_done: Callable[[list], None],
               on_error: Callable[[BaseException], None] | None = None,
               on_start: Callable[[], None] | None = None) -> Computation:
        """Follow the computation of ``tasks`` (leaving the previous one). ``on_start()`` runs
        once the previous request can deliver nothing more (a callback of it that was running
        has finished) and before anything of this one: where a view shows "computing…"."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            if on_start is not None:
                on_start()
        sent = [0.0, -1]  # when progress was last delivered, and with how many results
        ended = threading.Event()  # the end is delivered once (see the race below)

        def current() -> bool:
            return generation == self._generation and not self._closed

        def deliver(fn, *args):
            def guarded():
                with self._lock:
                    if not current():
                        return
                    try:
                        fn(*args)
                    except Exception:  # a view bug must not vanish silently in a callback
                        log.exception("callback %s failed", getattr(fn, "__name__", fn))
                        raise
            if current():
                self._schedule(guarded)

        def listener(p: Progress, final: bool) -> None:
            if final:
                if ended.is_set():
                    return
                ended.set()
                if p.state == DONE:
                    deliver(on_done, list(p.results))
                elif p.state == FAILED and on_error is not None:
                    deliver(on_error, p.error)
                return
            now = time.monotonic()
            if self.on_progress is None:
                return
            if len(p.results) == sent[1] and p.partial is None and now - sent[0] < self.THROTTLE:
                return
            sent[0], sent[1] = now, len(p.results)
            deliver(self.on_progress, p)

        previous = self._comp
        comp = follow(tasks, self, listener)
        self._comp = comp
        if previous is not None and previous is not comp:
            leave(previous, self)
        if comp.state != RUNNING:  # finished between registering and now: deliver its end
            listener(comp.status(), True)
        return comp

    def cancel(self) -> None:
        """Leave the current computation: no callback of it is delivered any more."""
        with self._lock:
            self._generation += 1
        previous, self._comp = self._comp, None
        if previous is not None:
            leave(previous, self)

    def close(self) -> None:
        """The view is gone (the session closed): cancel, and never call back again."""
        self._closed = True
        self.cancel()

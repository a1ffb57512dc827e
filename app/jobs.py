"""Long computations off the event loop: progress, cancellation, latest-wins.

A :class:`JobSlot` belongs to one view of one session. ``submit`` cancels whatever the slot was
running (a stale result never overwrites a newer one), runs the work in a small shared thread
pool (numba kernels release the GIL), and calls the ``on_*`` callbacks back on the session's
event loop with Bokeh's document lock held — never from the worker thread.
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sgd-atlas-job")


class Cancelled(Exception):
    """The job was cancelled (a newer request, the cancel button, or the session closed)."""


class JobContext:
    """Handed to the work function: report progress, ask whether to stop."""

    def __init__(self, slot: "JobSlot", token: int):
        self._slot, self._token = slot, token
        self._last = 0.0

    @property
    def cancelled(self) -> bool:
        return self._slot._token != self._token or self._slot._closed

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job should stop."""
        if self.cancelled:
            raise Cancelled()

    def progress(self, done: float, total: float, text: str = "") -> None:
        """Report progress (throttled to ~10 updates per second)."""
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        self._slot._call(self._token, self._slot.on_progress, done, total, text)


class JobSlot:
    """At most one running job; callbacks run on the session's loop (see module doc)."""

    def __init__(self, schedule: Callable[[Callable[[], None]], None],
                 on_progress: Callable[[float, float, str], None] | None = None):
        self._schedule = schedule
        self.on_progress = on_progress
        self._token = 0
        self._closed = False
        self._lock = threading.Lock()
        self.running = False

    def submit(self, work: Callable[[JobContext], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None] | None = None) -> None:
        """Run ``work(ctx)`` in the pool; then ``on_done(result)`` or ``on_error(exc)``."""
        with self._lock:
            self._token += 1
            token = self._token
        self.running = True
        ctx = JobContext(self, token)

        def run():
            if ctx.cancelled:  # superseded while it waited for a worker: never started
                return
            try:
                result = work(ctx)
            except Cancelled:
                return
            except BaseException as exc:  # the page says so in a sentence; the log keeps
                if ctx.cancelled:  # the traceback (a cancelled job stops by raising: quiet)
                    return
                log.exception("a background computation failed")
                if on_error is not None:
                    self._call(token, self._finish_error, on_error, exc)
                return
            if not ctx.cancelled:
                self._call(token, self._finish, on_done, result)

        _EXECUTOR.submit(run)

    def _finish(self, on_done, result):
        self.running = False
        on_done(result)

    def _finish_error(self, on_error, exc):
        self.running = False
        on_error(exc)

    def _call(self, token: int, fn, *args) -> None:
        if fn is None or self._closed or token != self._token:
            return  # nobody is waiting for it: not even scheduled

        def guarded():
            if token == self._token and not self._closed:
                try:
                    fn(*args)
                except Exception:  # a view bug must not vanish silently in a tick callback
                    log.exception("job callback %s failed", getattr(fn, "__name__", fn))
                    raise

        self._schedule(guarded)

    def cancel(self) -> None:
        """Stop the running job (its result, if any, is dropped)."""
        with self._lock:
            self._token += 1
        self.running = False

    def close(self) -> None:
        """The session ended: cancel and never call back again."""
        self._closed = True
        self.cancel()


def quiet_closed_sockets() -> None:
    """A tab closed while Panel was writing to it: the write task fails with
    ``WebSocketClosedError`` and asyncio prints a traceback ("Task exception was never
    retrieved"). That is a normal event in a classroom, not an error: log one line instead.
    Installed once on the server's event loop; every other exception is handled as before."""
    import asyncio

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if getattr(loop, "_atlas_quiet_sockets", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop, context):
        if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
            log.info("a browser closed its connection while a message was being sent")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._atlas_quiet_sockets = True


def session_scheduler(doc) -> Callable[[Callable[[], None]], None]:
    """Schedule callbacks on ``doc``'s loop with its lock held; call directly without a server
    (tests, notebooks).

    Must be created on the server's thread. Workers hand the callback to the IOLoop with
    ``add_callback`` (thread-safe, and it wakes the loop); the loop thread then registers it as
    a next-tick callback of the document. Calling ``doc.add_next_tick_callback`` from the worker
    directly left callbacks waiting until some other event woke the loop (seen: a finished
    computation shown only many seconds later, or never).

    The callback runs with Panel's ``state.curdoc`` set to ``doc``, as Panel's own callbacks
    do: models created without it resolve their stylesheets to the HoloViz CDN."""
    if doc is not None and getattr(doc, "session_context", None) is not None:
        from panel.io.state import set_curdoc
        from tornado.ioloop import IOLoop

        loop = IOLoop.current()

        def in_doc(fn):
            def run():  # one reference recomputation per callback, not one per model change
                with set_curdoc(doc), doc.models.freeze():
                    fn()
            context = doc.session_context
            if context is None or context.destroyed:
                return  # the session ended while the work ran: Bokeh has dismantled the
                # document (adding a callback raised AttributeError: '_change_callbacks')
            doc.add_next_tick_callback(run)

        return lambda fn: loop.add_callback(in_doc, fn)
    return lambda fn: fn()


class DrawQueue:
    """The heavy pieces of pages being opened (their plots), drawn one per turn of the loop.

    Bokeh builds a session's document synchronously on the server's one event loop, and a
    HoloViews plot costs 0.2–0.3 s of it: the live page's five plots held the loop for
    1.3 s per student, so thirty students opening it at once stalled everyone — moves,
    /liveness — for seconds, and the last one saw a blank page for two minutes. A served page
    now sends its widgets and text at once, with an empty frame per plot, and hands each plot
    to this queue once the browser is connected. The loop draws one, serves whatever arrived
    meanwhile, waits ``gap`` seconds and draws the next: first come, first served across the
    server's sessions (a session's plots are queued together, so pages complete in the order
    they connected). A piece runs with its session's document lock held, as every Bokeh
    callback does, and is dropped if the session has closed in the meantime.

    One queue per event loop (:func:`draw_queue`): a piece must run on its document's loop."""

    def __init__(self, gap: float = 0.01):
        self.gap = gap
        self._items: collections.deque = collections.deque()
        self._busy = False  # a turn is scheduled or running
        self.drawn = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, doc, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on ``doc`` when its turn comes (call on the loop serving ``doc``)."""
        self._items.append((weakref.ref(doc), fn))
        self._arm()

    def _arm(self) -> None:
        if self._busy or not self._items:
            return
        from tornado.ioloop import IOLoop

        self._busy = True
        IOLoop.current().call_later(self.gap, self._turn)

    async def _turn(self) -> None:
        try:
            while self._items:
                ref, fn = self._items.popleft()
                doc = ref()
                context = getattr(doc, "session_context", None)
                if context is None or context.destroyed:
                    continue  # the tab closed before its plots came

                async def draw(doc, fn=fn):
                    self._draw(doc, fn)

                await context.with_locked_document(draw)
                return
        finally:
            self._busy = False
            self._arm()

    def _draw(self, doc, fn) -> None:
        from panel.io.state import set_curdoc

        # No ``doc.models.freeze()`` here (unlike :func:`session_scheduler`): a plot added
        # inside one is sent to the browser twice — its shared axis ranges are not yet among
        # the document's synced models when Panel links them in a second event.
        try:
            with set_curdoc(doc):
                fn()
            self.drawn += 1
        except Exception:  # one page's bug must not stop the other pages' plots
            log.exception("drawing a deferred piece failed")


_DRAW_QUEUES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def draw_queue() -> DrawQueue:
    """The :class:`DrawQueue` of the current event loop (the server's: one per process)."""
    from tornado.ioloop import IOLoop

    loop = IOLoop.current()
    if loop not in _DRAW_QUEUES:
        _DRAW_QUEUES[loop] = DrawQueue()
    return _DRAW_QUEUES[loop]


def freeze_startup_objects(again: bool = False) -> bool:
    """Move what exists after start-up (imported libraries, compiled kernels: ~350 000 objects)
    out of the garbage collector's full passes, once per process.

    They live as long as the server, yet every full collection walked them: with thirty
    sessions open a full pass took 1.3 s of the loop, 0.58 s after this (measured in
    process, CPython 3.11). Objects made later — every session's — are collected as before.
    With ``again``, what start-up added since the last freeze is frozen too (the class pages
    built after the first session). Returns whether this call froze (False when already
    done)."""
    if gc.get_freeze_count() and not again:
        return False
    gc.collect()
    gc.freeze()
    return True

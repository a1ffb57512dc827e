"""The server's event loop and its sessions: callbacks scheduled on a session's loop
(:func:`session_scheduler`, used by :class:`app.compute.Follower`), the queue that draws pages'
plots one per turn of the loop (:class:`DrawQueue`), and what keeps the loop quiet (closed
sockets, start-up objects out of the garbage collector's passes). The computations themselves
are :mod:`app.compute`'s."""

from __future__ import annotations

import collections
import gc
import logging
import weakref
from typing import Callable

log = logging.getLogger(__name__)


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

"""Uses of private Panel/Bokeh APIs, each with why, its upstream record and the version it
was written for (Bokeh 3.9, Panel 1.9). Public APIs are used everywhere else.
"""

from __future__ import annotations

import logging
import weakref
from typing import Callable

log = logging.getLogger(__name__)

#: how often the server looks for browsers that have gone (seconds)
GONE_POLL = 0.25


class _Watch:
    """Per server event loop: sessions whose browser may leave, polled every ``GONE_POLL``."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[weakref.ref, list[Callable[[], None]], list[bool]]] = {}
        self.timer = None

    def add(self, session, fn: Callable[[], None]) -> None:
        key = id(session)
        if key not in self.entries:
            self.entries[key] = (weakref.ref(session), [], [False])
        self.entries[key][1].append(fn)
        if self.timer is None:
            from tornado.ioloop import PeriodicCallback

            self.timer = PeriodicCallback(self.poll, 1000 * GONE_POLL)
            self.timer.start()

    def poll(self) -> None:
        for key, (ref, fns, seen) in list(self.entries.items()):
            session = ref()
            if session is None:
                del self.entries[key]
                continue
            count = session.connection_count
            if count:
                seen[0] = True
            if session.destroyed or (seen[0] and count == 0):
                del self.entries[key]
                for fn in fns:
                    try:
                        fn()
                    except Exception:  # one page's cleanup must not stop the others'
                        log.exception("cleanup after a browser left failed")
        if not self.entries and self.timer is not None:
            self.timer.stop()
            self.timer = None


_WATCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def on_browser_gone(doc, fn: Callable[[], None]) -> bool:
    """Call ``fn()`` on the server's loop within ``GONE_POLL`` s of the moment the browser of
    ``doc``'s session leaves (tab closed, reloaded, or another page of the app opened), or
    when Bokeh discards the session, whichever comes first; False without a server session.

    Bokeh calls the public ``on_session_destroyed`` hooks only when it discards an unused
    session, ``--unused-session-lifetime`` (15 s by default) after its websocket closed and
    at its next check (every 17 s): meanwhile a page's background work ran on, and a pullback
    cloud kept a core busy ~20 s after a student had moved on. Bokeh has no public "websocket
    closed" hook; this polls ``ServerSession.connection_count`` (a session counts as gone once
    it had a connection and has none), reached through the private
    ``BokehSessionContext._session`` (Bokeh 3.9; bokeh/bokeh#9018 discusses session
    life-cycle hooks)."""
    context = getattr(doc, "session_context", None)
    if context is None or not hasattr(context, "_session"):
        return False
    from tornado.ioloop import IOLoop

    loop = IOLoop.current()

    def attach(tries: int = 0) -> None:
        # the session exists only once the app's code has built the document
        session = context._session
        if session is None:
            if tries < 240 and not context.destroyed:
                loop.call_later(GONE_POLL, attach, tries + 1)
            return
        if loop not in _WATCHES:
            _WATCHES[loop] = _Watch()
        _WATCHES[loop].add(session, fn)

    loop.add_callback(attach)
    return True

"""Uses of private Panel/Bokeh APIs, each with why, its upstream record and the version it
was written for (Bokeh 3.9.2, Panel 1.9.4): when a library changes, this is the module to read.

Still outside it: :mod:`app.guards`, which as a whole wraps Panel's private event processing
(``Reactive._process_events``) to validate what a browser sends, and the pages' reading of
``pn.Param._widgets`` (the widgets a Param pane made for each parameter).
"""

from __future__ import annotations

import logging
import weakref
from typing import Callable

import panel as pn

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
    cloud kept a core busy ~20 s after a student had moved on. Bokeh has no server-side
    "websocket closed" event (asked for in bokeh/bokeh#938 and bokeh/bokeh#3770, both closed
    without one; holoviz/panel#3601, open, on the destroyed hook); this polls the public
    ``ServerSession.connection_count`` of ``BokehSessionContext.session`` (a session counts as
    gone once it had a connection and has none). Public API, Bokeh 3.9; kept here because it
    stands in for a missing hook."""
    context = getattr(doc, "session_context", None)
    if context is None or not hasattr(context, "session"):
        return False
    from tornado.ioloop import IOLoop

    loop = IOLoop.current()

    def attach(tries: int = 0) -> None:
        # the session exists only once the app's code has built the document
        session = context.session
        if session is None:
            if tries < 240 and not context.destroyed:
                loop.call_later(GONE_POLL, attach, tries + 1)
            return
        if loop not in _WATCHES:
            _WATCHES[loop] = _Watch()
        _WATCHES[loop].add(session, fn)

    loop.add_callback(attach)
    return True


def browser_connected(doc) -> bool:
    """Whether the browser of ``doc``'s session has said "document ready" (BokehJS's
    ``DocumentReady``; Panel then runs its on-load callbacks). Panel keeps it in the private
    ``pn.state._connected`` (Panel 1.9.4), which HoloViews' ``Plot.refresh`` also waits for,
    rescheduling itself every tick until then (holoviz/holoviews#5348; holoviz/panel#8692 and
    #8698 build on the same flag); the public ``pn.state.onload`` only schedules a callback."""
    return bool(pn.state._connected.get(doc))


def set_local_dist_url(doc) -> None:
    """Resolve ``doc``'s stylesheets to this server from the first model on: Panel sets
    ``dist_url`` in the document's ``template_variables`` only when it writes the page's HTML
    (``panel.io.server.server_html_page_for_session``, Panel 1.9.4), so models made before —
    all of a session Bokeh recreates for a websocket whose first document was discarded —
    took their CSS from the HoloViz CDN, which an offline classroom cannot reach. The key is
    Panel's private convention; no upstream issue found for this case (holoviz/panel#5278 and
    #8696 are about related stylesheet races)."""
    from panel.io.resources import CDN_DIST, get_dist_path

    if doc is not None and get_dist_path() != CDN_DIST:
        doc.template_variables.setdefault("dist_url", get_dist_path(cdn=False))


def _template_objects(template: pn.template.BaseTemplate, selector=None) -> list:
    """Every Panel object shown by ``template`` (``template.select`` also meets non-viewable
    render items and fails)."""
    parts = (template.header, template.sidebar, template.main, template.modal)
    return [obj for part in parts for item in part for obj in item.select(selector)]


def settle_markup(template: pn.template.BaseTemplate, doc) -> int:
    """Give the rendered markup panes now the stylesheets Panel gives them on their first
    update; returns how many models were settled. Call once ``template`` is rendered into the
    session's document ``doc``, inside ``doc.models.freeze()``.

    A pane rendered in a template gets its design's stylesheets without the theme's base CSS
    (the template loads that once for the page); its first update re-sends the stylesheets
    *with* it (Panel's ``Design.params`` resolves them as for an isolated component). New
    stylesheet models make Bokeh recompute the references of the whole document: measured
    50–65 ms for a student's first slider move on the live page (its list of changes is a
    Markdown pane) instead of 7 ms, and 30 students' first moves queued 1.5 s of work on the
    server's only event loop. Done here, the one recomputation at the end of the session's
    build covers it. ``doc`` is passed because models are attached to it only when that
    recomputation runs (Panel's stylesheet cache is per document).

    Private: ``pane._models`` and ``pane._get_properties(doc)`` (Panel 1.9.4). Upstream:
    holoviz/panel#4883 and #5278 fixed earlier stylesheet churn of the same kind; none found
    for this template-vs-update difference of ``Design.params``; bokeh/bokeh#15291 throttles
    the recomputation itself."""
    from panel.pane.markup import HTMLBasePane

    n = 0
    for pane in _template_objects(template, HTMLBasePane):
        for model, _ in list(pane._models.values()):
            styles = pane._get_properties(doc).get("stylesheets")
            if styles is not None:
                model.update(stylesheets=styles)
                n += 1
    return n


def release_js_links(template: pn.template.BaseTemplate) -> int:
    """Forget the browser-side links of a closed session's widgets; returns how many.

    Panel keeps every ``jscallback``/``jslink`` in one process-wide
    ``WeakKeyDictionary`` (``panel.links.Callback.registry``) keyed by the source widget. Its
    values hold the callback's ``args`` strongly — for an editable slider that is the sibling
    slider, which reaches its composite and so the key again: the key never dies, and neither
    does anything reachable from it (the page, its state, its plots, the Bokeh document).
    Every closed session of a page with an editable slider stayed in memory (measured: all 5
    trajectories pages and their documents alive after their sessions were discarded).

    Private: ``panel.links.Callback.registry`` (Panel 1.9.4; the editable sliders'
    ``jscallback(args={'slider': …})``). No upstream issue found for the leak (related:
    holoviz/panel#6239, #8189)."""
    from panel.links import Callback

    registry = Callback.registry
    return sum(registry.pop(obj, None) is not None for obj in _template_objects(template))


def add_toplevel_routes(routes: list[tuple]) -> int:
    """Add tornado routes to the server that ``panel serve`` builds (the class mode's pages and
    API on the dashboard's own port). Bokeh builds its tornado application from
    ``bokeh.server.urls.toplevel_patterns`` (prefixing each with ``--prefix``) after the app
    directory's ``app_hooks.py`` is imported, so routes appended there are served. Panel's
    public way, ``--plugins``/``pn.serve(extra_patterns=…)``, needs a command-line option and
    imported a second copy of the module (no shared cache). Written for Bokeh 3.9.2 /
    Panel 1.9.4; upstream: holoviz/panel#6009 (routes from an app directory), bokeh#4270.
    Idempotent (app_hooks may be executed twice); returns how many routes were added."""
    from bokeh.server.urls import toplevel_patterns

    known = {p[0] for p in toplevel_patterns}
    new = [r for r in routes if r[0] not in known]
    toplevel_patterns.extend(new)
    return len(new)

"""Many sessions on one server (issue 8): latest wins, closing a tab stops its work, identical
requests compute once, sessions share no state."""

from __future__ import annotations

import contextlib
import threading
import time

import holoviews as hv
import numpy as np
import pytest

from app import compute, jobs
from app.cache import configure, get_cache
from app.compute import Follower
from tests.support import EngineRuns, wait_until

hv.extension("bokeh")


@pytest.fixture(autouse=True)
def _fresh_cache():
    configure()
    yield
    configure()


def _of_type(o, types) -> bool:
    """``isinstance`` for whatever ``gc.get_objects()`` holds: a dead ``weakref.proxy`` raises."""
    try:
        return isinstance(o, types)
    except ReferenceError:
        return False


def _wait(cond, timeout=60.0):
    wait_until(cond, timeout)


def _task(fn, value):
    """A task computing ``fn(value)``, its inputs unique to this test (never in the cache)."""
    import uuid

    import xarray as xr

    return ("test_sessions", {"value": value, "run": uuid.uuid4().hex},
            lambda value, run: xr.Dataset({"value": ((), float(fn(value)))}))


def _values(results):
    return [float(ds.value) for ds in results]


def _computations_idle() -> bool:
    """No job waits for a worker of :data:`app.compute.EXECUTOR` and no thread runs
    app/compute.py (a computation, its results and its callbacks, which without a server
    run in the computing thread)."""
    return compute.EXECUTOR._work_queue.empty() and not _threads_in("app/compute.py")


def test_latest_wins_and_superseded_jobs_never_start():
    """Ten requests in a row from one session: only the last one's result is shown, and the
    ones still queued behind busy workers never run at all."""
    busy = threading.Event()
    blockers = [Follower(lambda fn: fn()) for _ in range(compute.EXECUTOR._max_workers)]
    for b in blockers:  # occupy every worker so that the session's requests queue up
        b.follow([_task(lambda v: busy.wait(10), 0)], lambda r: None)
    started, shown = [], []
    slot = Follower(lambda fn: fn())
    for k in range(10):
        slot.follow([_task(lambda v: started.append(v) or v, k)], lambda r: shown.append(_values(r)))
    busy.set()
    _wait(lambda: shown)
    _wait(_computations_idle)  # every job has run (or been dropped) and called back what it would
    assert shown == [[9]] and started == [9]


def test_a_stale_result_never_overwrites_a_newer_one():
    slot = Follower(lambda fn: fn())
    shown = []
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(v):  # its engine does not check cancel: it runs to its end
        started.set()
        release.wait(5)
        finished.set()
        return v

    slot.follow([_task(slow, 1)], lambda r: shown.append(_values(r)))
    assert started.wait(30)  # the slow one is computing, then it is superseded
    slot.follow([_task(lambda v: v, 2)], lambda r: shown.append(_values(r)))
    _wait(lambda: shown)
    release.set()
    assert finished.wait(30)
    _wait(_computations_idle)  # the stale one has ended, and called back whatever it would
    assert shown == [[2]]


def test_closing_a_tab_stops_its_computation(monkeypatch):
    """A page computing an escape curve is closed: its computation is cancelled and left by
    the registry, the engine stops at its next check (not after the whole curve: it raises
    its cancellation before the last σ² point) and nothing is called back into the closed
    session."""
    from app.pages.escape import EscapePage

    runs = EngineRuns().install(monkeypatch)
    calls = []
    page = EscapePage(query={"n_trajectories": "2000", "max_steps": "200000", "n_sigma2": "24"})
    page._job._on_results = lambda results: calls.append(len(results))
    comp = page._job._follower.computation
    assert comp is not None and compute.running(comp.key) is comp
    _wait(lambda: runs.calls)  # the curve is being computed by the engine
    assert not runs.calls[0]["ended"].is_set()
    page.cleanup()  # what main.py does when the browser session is destroyed
    n_calls = len(calls)
    assert comp.state == compute.CANCELLED and compute.running(comp.key) is None
    # the worker gives up between σ² points: the engine's run ends with its cancellation
    # well before the curve (24 points of 2000 × 2·10⁵ steps) could have finished
    assert runs.all_ended(timeout=120), "the engine still computes the closed tab's curve"
    rec = runs.calls[0]
    assert rec["error"] is not None and "cancel" in str(rec["error"]).lower(), rec["error"]
    assert comp.state == compute.CANCELLED and comp.status().done < comp.total
    assert len(calls) == n_calls  # nothing after close


def test_identical_requests_from_many_sessions_compute_once():
    """Eight sessions open the same escape-page link at once: each σ² point is computed once."""
    from app.pages.escape import EscapePage

    q = {"n_trajectories": "50", "max_steps": "3000", "n_sigma2": "4", "seed": "11"}
    pages = [EscapePage(query=dict(q)) for _ in range(8)]
    try:
        _wait(lambda: all("complete" in p._job.status.object for p in pages), timeout=120)
        cache = get_cache()
        # one computation per σ²: the pages that came while it ran followed it (app.compute),
        # the later ones found it stored
        assert cache.misses == 4
        first = pages[0]._table()
        for p in pages[1:]:
            assert p._table().mean_time.values.tolist() == first.mean_time.values.tolist()
    finally:
        for p in pages:
            p.cleanup()


def test_sessions_share_no_state():
    """Two sessions of each page: changing one changes nothing in the other — including the
    list-valued defaults, which must not be one shared list."""
    from app.pages.escape import EscapePage
    from app.pages.trajectories import TrajectoriesPage
    from app.state import PAGE_STATES

    for slug, classes in PAGE_STATES.items():
        for attr, cls in classes.items():
            a, b = cls(), cls()
            for name, p in cls.param.objects().items():
                va, vb = getattr(a, name), getattr(b, name)
                if isinstance(va, (list, dict, np.ndarray)) and name != "name":
                    assert va is not vb, f"{cls.__name__}.{name} is shared"
    one, two = TrajectoriesPage(query={}), TrajectoriesPage(query={})
    one.run.model.lr = 0.05
    assert two.run.model.lr == 0.1 and one.run is not two.run
    e1, e2 = EscapePage(query={"n_sigma2": "3", "max_steps": "1000"}), EscapePage(
        query={"n_sigma2": "3", "max_steps": "1000"})
    try:
        e1.powerlaw.fp_dims.append(8)  # in place, as careless code would
        e1.state.n_sigma2 = 5
        assert e2.powerlaw.fp_dims == [1, 2, 3, 4] and e2.state.n_sigma2 == 3
    finally:
        for p in (one, two, e1, e2):
            p.cleanup()


def test_the_cache_byte_budget_holds_under_sessions():
    """Sessions asking for many different results never push the shared cache past its
    budget; the most recent ones stay."""
    cache = configure(max_bytes=200_000)
    from app.state import EscapeParams, sweeps

    for seed in range(12):
        sweeps.run_tasks(EscapeParams(n_sigma2=3, n_trajectories=200, max_steps=1000,
                                      seed=seed).tasks())
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) >= 3 and cache.misses == 36


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_closed_sessions_are_freed():
    """Closed sessions leave nothing behind: a real server (in this process, so its objects
    can be counted) serves the live page — the one with editable sliders — to three
    protocol-level students who move η and leave; once Bokeh has discarded their sessions, no
    page and no document of theirs is alive.

    Regression: Panel's process-wide JS-link registry (a ``WeakKeyDictionary`` whose values
    reach their own keys through an editable slider) kept every closed session alive — page,
    state, plots and Bokeh document; three waves of 30 students grew the server by 129 MiB
    (see :func:`app.compat.release_js_links`)."""
    # in its own thread: bokeh.client runs event loops, and Playwright (browser tests in the
    # same process) keeps one running in the main thread
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(_serve_three_students_and_count).result()


def _serve_three_students_and_count():
    import gc
    import weakref

    from bokeh.document import Document

    from app.pages.base import Page
    from tests.load.loadtest import Student

    gc.collect()
    earlier = weakref.WeakSet(o for o in gc.get_objects() if _of_type(o, (Page, Document)))

    def alive():
        """Pages and documents made since the test began (earlier tests' may die meanwhile)."""
        gc.collect()
        objs = [o for o in gc.get_objects()
                if _of_type(o, (Page, Document)) and o not in earlier]
        return (sum(isinstance(o, Page) for o in objs),
                sum(isinstance(o, Document) for o in objs))

    before = (0, 0)
    with _served_app() as base:
        students = [Student(base, seed=i) for i in range(3)]
        for s in students:
            assert s.wait_loaded()
        assert alive()[0] == before[0] + 3
        for k, s in enumerate(students):
            assert s.move(0.03 + 0.01 * k, timeout=60) is not None
        for s in students:
            s.close()
        del students, s  # their client-side documents live in this process too
        _wait(lambda: alive()[0] == before[0], timeout=60)
        pages, docs = alive()
        assert pages == before[0]
        assert docs <= before[1] + 1  # Bokeh may hold on to the last document it served


@contextlib.contextmanager
def _served_app(session_lifetime_ms: int = 500):
    """The dashboard served by a Bokeh server in this process; yields its base URL."""
    from pathlib import Path

    import panel as pn

    from tests.support import free_port

    port = free_port()
    server = pn.serve({"app": str(Path(__file__).resolve().parents[1] / "app" / "main.py")},
                      address="127.0.0.1", port=port, threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"],
                      unused_session_lifetime_milliseconds=session_lifetime_ms,
                      check_unused_sessions_milliseconds=min(session_lifetime_ms, 17_000))
    try:
        _wait(lambda: _listening(port), timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class _FakeSession:
    """What :class:`app.jobs.DrawQueue` needs of a Bokeh session context."""

    def __init__(self):
        self.destroyed = False

    async def with_locked_document(self, func):
        await func(self.document)


class _FakeDoc:
    def __init__(self):
        self.session_context = _FakeSession()
        self.session_context.document = self


def test_the_draw_queue_draws_one_piece_per_turn_of_the_loop():
    """Pieces of several sessions are drawn first come, first served, and whatever reached
    the loop while one was drawn (a student's move, a /liveness request) runs before the
    next: here, a callback each piece adds to the loop. A closed session's pieces are
    skipped; a failing piece is logged and stops nothing."""
    from tornado.ioloop import IOLoop

    def scenario():
        loop = IOLoop.current()
        queue = jobs.DrawQueue(gap=0.001)
        a, b, closed = _FakeDoc(), _FakeDoc(), _FakeDoc()
        order = []

        def piece(name):
            def fn():
                order.append(name)
                loop.add_callback(order.append, f"after {name}")
            return fn

        def broken():
            raise RuntimeError("a page bug")

        for doc, name in [(a, "a1"), (b, "b1"), (closed, "c1"), (a, "a2")]:
            queue.put(doc, piece(name))
        queue.put(b, broken)
        queue.put(b, piece("b2"))
        closed.session_context.destroyed = True
        deadline = loop.time() + 10

        def check():
            if "after b2" in order or loop.time() > deadline:
                loop.stop()
            else:
                loop.call_later(0.01, check)

        check()
        loop.start()
        return order, queue

    result = []

    def run():  # a fresh loop in its own thread (another test's loop may run in this one)
        import asyncio

        asyncio.set_event_loop(asyncio.new_event_loop())
        result.extend(scenario())

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    order, queue = result
    assert order == ["a1", "after a1", "b1", "after b1", "a2", "after a2", "b2", "after b2"]
    assert queue.drawn == 4 and len(queue) == 0


def test_a_served_page_sends_its_frame_first_and_its_plots_once_connected():
    """A session's document arrives with its widgets and a frame per HoloViews plot, and no
    such plot; once the browser says it is ready, the server-wide draw queue fills every frame
    (the load test's "loaded"). The live page's plain Bokeh figures come with the page."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # bokeh.client runs loops; see the test above
        pool.submit(_frame_then_plots).result()


def _frame_then_plots():
    import panel.models  # noqa: F401  (the document's model types must be known here)
    from bokeh.client import pull_session

    from tests.load.loadtest import Student
    from tests.load.loadtest import waiting_frames as frames

    def plots(doc):
        return sum(type(m).__name__ == "figure" for m in doc.models)

    with _served_app() as base:
        silent = pull_session(url=f"{base}/app", arguments={"page": "stability"})
        try:  # a client that never says "ready": the frames only (μ±, the map, the cloud)
            assert (plots(silent.document), frames(silent.document)) == (0, 3)
        finally:
            silent.close()
        s = Student(base, seed=1, page="stability")
        try:
            assert s.wait_loaded()
            assert frames(s.session.document) == 0 and plots(s.session.document) >= 3
        finally:
            s.close()
        live = pull_session(url=f"{base}/app", arguments={"page": "trajectories"})
        try:  # never "ready", and its five figures are there
            assert (plots(live.document), frames(live.document)) == (5, 0)
        finally:
            live.close()
        s = Student(base, seed=1)
        try:
            assert s.wait_loaded()
            assert s.move(0.05, timeout=60) is not None
        finally:
            s.close()


def test_updating_text_after_the_session_build_recomputes_nothing():
    """After a session's build (as main.py does it), changing the text of any markup pane
    leaves its stylesheets as they are, so Bokeh does not recompute the references of the
    whole document (50–65 ms on the live page: a student's first slider move, times 30
    students at once, stalled the server's event loop for 1.5 s).

    Without :func:`app.compat.settle_markup` the first update of every pane swaps its
    stylesheet models (Panel resolves a design's stylesheets differently when it renders a
    pane in a template and when it updates it).

    The live page is the one whose panes no background job touches before the browser is
    connected; without a server the other pages' jobs update panes from worker threads,
    outside the document, while this test looks."""
    import panel as pn
    from bokeh.document import Document
    from bokeh.document.models import DocumentModelManager
    from panel.io.state import set_curdoc
    from panel.pane.markup import HTMLBasePane

    from app.compat import _template_objects, settle_markup
    from app.pages import PAGES

    doc = Document()
    with set_curdoc(doc):
        page = PAGES["trajectories"][1](query={})
        try:
            share = page.share_panel()
            template = pn.template.BootstrapTemplate(sidebar=[page.sidebar, share], main=[page],
                                                     busy_indicator=None)
            with doc.models.freeze():
                template.server_doc(doc)
                assert settle_markup(template, doc) >= 3
            panes = [p for p in _template_objects(template, HTMLBasePane) if p._models]
            before = {id(m): list(m.stylesheets) for p in panes for m, _ in p._models.values()}
            recomputed, me = [], threading.get_ident()
            original = DocumentModelManager.recompute

            def recompute(self):  # (the page's background jobs may update plots meanwhile)
                if threading.get_ident() == me:
                    recomputed.append(1)
                original(self)

            DocumentModelManager.recompute = recompute
            try:
                for k, p in enumerate(panes):
                    p.object = f"changed text {k}"
            finally:
                DocumentModelManager.recompute = original
            after = {id(m): list(m.stylesheets) for p in panes for m, _ in p._models.values()}
            assert len(panes) >= 3 and all(
                len(after[i]) == len(before[i]) and all(a is b for a, b in zip(after[i], before[i]))
                for i in before)
            assert recomputed == []
        finally:
            page.cleanup()


def test_leaving_a_page_stops_its_work_within_a_second(caplog):
    """(Last in this file: the bokeh.client session it leaves behind in this process made
    :func:`test_closed_sessions_are_freed` count one document too many when it ran before.)

    A browser leaves a page that is computing a long pullback cloud (issue 15: after
    ``?page=stability&seed=21&pullback_time=30000`` and a click on another page a core stayed
    busy ~20 s, and the log showed six ``AttributeError: '_change_callbacks'`` tracebacks
    from app/jobs.py). Served with a session lifetime of 3 s (Bokeh's default is 15 s), so
    only the page's own watch can explain it: its jobs are closed within a second of the websocket
    closing, the engine stops at its next check (the process falls idle), and nothing is
    logged as an error."""
    import logging
    from concurrent.futures import ThreadPoolExecutor

    with caplog.at_level(logging.ERROR), ThreadPoolExecutor(1) as pool:
        pool.submit(_leave_a_computing_page).result()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def _threads_in(path: str) -> list[str]:
    """Names of the threads of this process running code of ``path`` (repo-relative)."""
    import sys

    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            if frame.f_code.co_filename.endswith(path):
                out.append(names.get(ident, str(ident)))
                break
            frame = frame.f_back
    return out


def _leave_a_computing_page():
    import gc

    import panel.models  # noqa: F401  (the document's model types must be known here)
    from bokeh.client import pull_session

    from app.pages.stability import StabilityPage

    # Bokeh discards an unused session 3 s after its websocket closed at the earliest: only the
    # page's own watch can stop the work within a second
    with _served_app(session_lifetime_ms=3_000) as base:
        client = pull_session(url=f"{base}/app", arguments={
            "page": "stability", "seed": "21", "pullback_time": "30000"})
        try:
            def page():
                gc.collect()
                found = [o for o in gc.get_objects() if _of_type(o, StabilityPage)
                         and o.state.seed == 21 and not o._cloud_view.closed]
                return found[0] if found else None

            _wait(lambda: page() is not None and page()._cloud_view.running, timeout=60)
            served = page()
            # deliberately lets time pass (nothing to wait for): the cloud is still being
            # computed a second later (10⁵ paths × 3·10⁴ steps: minutes)
            time.sleep(1.0)
            assert served._cloud_view.running and served._cloud_ds is None
            assert _threads_in("engine/pullback.py")  # (what is checked below can fail)
        finally:
            client.close()
        left = time.time()
        _wait(lambda: served._cloud_view.closed and served._map_view.closed, timeout=10)
        assert time.time() - left < 1.0
        # the engine stops at its next check (chunks of 2,000 steps, 0.25 s on an idle
        # machine; the bound leaves room for a loaded one): no thread computes the cloud
        _wait(lambda: not _threads_in("engine/pullback.py"), timeout=3)
        # deliberately lets time pass: Bokeh discards the unused session (3 s after its
        # websocket closed) on its own schedule, as on a served app, before the server stops
        time.sleep(4.0)

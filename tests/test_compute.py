"""The one computation abstraction (:mod:`app.compute`, issue 16): a list of tasks asked for by
many followers is computed once and all of them see its progress and results; it stops only
when its last follower leaves (a cancel, a newer request, a closed tab, a lapsed lease); a
failure reaches every follower; the estimate of the time left leaves out what came from the
cache."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import xarray as xr

from app import compute
from app.cache import configure
from app.compute import DONE, Follower
from tests.support import wait_until



@pytest.fixture(autouse=True)
def _fresh_cache():
    configure()  # memory only, empty
    yield
    configure()


class Engine:
    """A task function that counts its calls, can be held, checks ``cancel`` while held, and
    reports progress — what a real engine function offers :func:`app.sweeps.run_tasks`."""

    def __init__(self):
        self.calls = 0
        self.release = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, value, run, hold=False, progress=None, cancel=None):
        with self.lock:
            self.calls += 1
        for k in range(100 if hold else 0):
            if self.release.wait(0.05):
                break
            if progress is not None:
                progress(min(k, 50), 100)
            if cancel is not None and cancel():
                self.stopped.set()
                raise RuntimeError("stopped by cancel")  # as engines stop: by raising
        return xr.Dataset({"value": ((), float(value))})


def _tasks(engine, values, run=None, hold=False):
    run = run or uuid.uuid4().hex
    return [("test_compute", {"value": v, "run": run, "hold": hold}, engine) for v in values]


def _values(results):
    return [float(ds.value) for ds in results]


def test_identical_requests_are_one_computation_that_all_followers_see():
    """Twenty followers ask for the same three tasks while they run: each task is computed
    once, every follower gets progress and the same three Datasets."""
    engine = Engine()
    tasks = _tasks(engine, [1, 2, 3], hold=True)
    shown: dict[int, list] = {}
    progress: dict[int, list] = {i: [] for i in range(20)}
    followers = []
    for i in range(20):
        f = Follower(lambda fn: fn(), on_progress=lambda p, i=i: progress[i].append(p.done))
        f.follow(tasks, lambda r, i=i: shown.__setitem__(i, r))
        followers.append(f)
    assert len({id(f.computation) for f in followers}) == 1
    assert compute.running(followers[0].computation.key).followers == 20
    time.sleep(0.3)
    engine.release.set()
    wait_until(lambda: len(shown) == 20, 30)
    assert engine.calls == 3
    assert all(_values(r) == [1, 2, 3] for r in shown.values())
    assert len({tuple(id(ds) for ds in r) for r in shown.values()}) == 1  # the same objects
    assert all(progress[i] for i in range(20))  # each saw the shared progress
    assert compute.running_count() == 0  # a finished computation leaves the registry


def test_it_stops_only_when_its_last_follower_leaves():
    engine = Engine()
    tasks = _tasks(engine, [1], hold=True)
    a, b = Follower(lambda fn: fn()), Follower(lambda fn: fn())
    got = []
    a.follow(tasks, lambda r: got.append(("a", r)))
    b.follow(tasks, lambda r: got.append(("b", r)))
    comp = a.computation
    time.sleep(0.2)
    a.cancel()  # one student cancels: the other still wants it
    time.sleep(0.3)
    assert not engine.stopped.is_set() and not comp.cancelled
    b.cancel()  # the last one leaves: the engine stops at its next check
    assert engine.stopped.wait(5)
    wait_until(lambda: comp.status().state == compute.CANCELLED, 5)
    time.sleep(0.1)
    assert got == []  # nobody is called back for a computation they left


def test_a_lapsed_lease_stops_it_and_a_renewed_one_keeps_it():
    """The class mode's browsers follow with leases: one that keeps asking keeps the
    computation; once nobody renews, it stops."""
    engine = Engine()
    tasks = _tasks(engine, [1], hold=True)
    comp = compute.follow(tasks, "browser-1", ttl=0.3)
    for _ in range(6):  # renewed every 0.1 s for 0.6 s: twice the lease
        time.sleep(0.1)
        assert compute.follow(tasks, "browser-1", ttl=0.3) is comp
    assert not engine.stopped.is_set()
    assert engine.stopped.wait(5)  # no more renewals
    assert compute.running(comp.key) is None


def test_a_new_request_after_a_cancel_computes_again():
    engine = Engine()
    tasks = _tasks(engine, [4], hold=True)
    f = Follower(lambda fn: fn())
    f.follow(tasks, lambda r: None)
    first = f.computation
    wait_until(lambda: engine.calls, 5)  # it has started
    f.cancel()
    assert engine.stopped.wait(5)
    got = []
    engine.release.set()
    f.follow(tasks, got.append)
    assert f.computation is not first
    wait_until(lambda: got, 10)
    assert _values(got[0]) == [4]


def test_following_the_same_tasks_again_does_not_restart_them():
    engine = Engine()
    tasks = _tasks(engine, [5], hold=True)
    f, got = Follower(lambda fn: fn()), []
    f.follow(tasks, got.append)
    comp = f.computation
    f.follow(tasks, got.append)  # e.g. a widget event with unchanged values
    assert f.computation is comp
    engine.release.set()
    wait_until(lambda: got, 10)
    time.sleep(0.1)
    assert engine.calls == 1 and len(got) == 1  # delivered once, to the latest request


def test_a_failure_reaches_every_follower_and_a_retry_recomputes():
    calls = []

    def bad(value, run):
        calls.append(value)
        time.sleep(0.2)
        raise ValueError("η is too large for this dataset.")

    tasks = [("test_compute", {"value": 1, "run": uuid.uuid4().hex}, bad)]
    errors = []
    for _ in range(3):
        Follower(lambda fn: fn()).follow(tasks, lambda r: None, errors.append)
    wait_until(lambda: len(errors) == 3, 10)
    assert all(isinstance(e, ValueError) for e in errors) and calls == [1]
    assert compute.running_count() == 0
    Follower(lambda fn: fn()).follow(tasks, lambda r: None, errors.append)
    wait_until(lambda: len(errors) == 4, 10)
    assert calls == [1, 1]  # a failure is not cached


def test_a_late_follower_sees_the_results_so_far():
    engine, holder = Engine(), Engine()
    run = uuid.uuid4().hex
    tasks = _tasks(engine, [1], run) + _tasks(holder, [2], run, hold=True)
    compute.follow(tasks, "first")
    comp = compute.running(compute.tasks_key(tasks))
    wait_until(lambda: comp.status().results, 10)
    late = compute.follow(tasks, "late")
    assert late is comp and _values(late.status().results) == [1]
    holder.release.set()
    wait_until(lambda: comp.status().state == DONE, 10)
    assert _values(comp.status().results) == [1, 2]


def test_the_time_left_leaves_out_what_came_from_the_cache():
    """Two tasks found in the cache, then two computed at 0.3 s each: after the third the
    estimate is about one task (0.3 s), not the mean over all three (0.2 s)."""
    def slow(value, run):
        time.sleep(0.3)
        return xr.Dataset({"value": ((), float(value))})

    run = uuid.uuid4().hex
    tasks = [("test_compute", {"value": v, "run": run}, slow) for v in range(4)]
    compute.follow(tasks[:2], "warm")
    wait_until(lambda: compute.running_count() == 0, 10)
    lefts = []
    f = Follower(lambda fn: fn(), on_progress=lambda p: lefts.append((p.done, p.left)))
    done = []
    f.follow(tasks, done.append)
    wait_until(lambda: done, 10)
    assert all(left is None for d, left in lefts if d < 3)  # nothing computed yet to go on
    after_third = [left for d, left in lefts if d == 3]
    assert after_third and after_third[-1] == pytest.approx(0.3, abs=0.1)


def test_a_new_requests_start_comes_after_an_earlier_requests_last_callback():
    """A view draws "computing…" in ``on_start``: it must land after a callback of the earlier
    request that was already running (its result would otherwise be drawn over the new
    request's "computing…", under the new request's values), and before the new result."""
    engine = Engine()
    f, order = Follower(lambda fn: fn()), []
    in_callback, finish_callback = threading.Event(), threading.Event()

    def old_done(results):
        in_callback.set()
        finish_callback.wait(10)  # a slow drawing of the earlier result
        order.append("old result")

    f.follow(_tasks(engine, [1], hold=True), old_done)
    engine.release.set()
    assert in_callback.wait(10)
    engine2 = Engine()
    engine2.release.set()
    newer = threading.Thread(target=lambda: f.follow(
        _tasks(engine2, [2]), lambda r: order.append("new result"),
        on_start=lambda: order.append("new start")))
    newer.start()
    time.sleep(0.2)  # the new request waits for the running callback
    assert order == []
    finish_callback.set()
    newer.join(10)
    wait_until(lambda: "new result" in order, 10)
    assert order == ["old result", "new start", "new result"]

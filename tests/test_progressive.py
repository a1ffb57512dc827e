"""ProgressView headlessly (no server: callbacks run in the worker thread): a failed job
resets its controls, a recomputation keeps the previous result dimmed until the new one
arrives, and the status estimates the time left."""

from __future__ import annotations

import re
import threading
import time
import uuid

import panel as pn
import pytest
import xarray as xr

from app.cache import configure
from app.pages.progress import ProgressView
from tests.support import wait_until


@pytest.fixture(autouse=True)
def _fresh_cache():
    configure()  # memory only, empty: every task below is computed
    yield
    configure()


def _wait(cond, timeout=30.0):
    wait_until(cond, timeout)


def _value(value, delay=0.0, *, release=None):
    """A task function: waits ``delay`` seconds (or for ``release``), returns ``value``."""
    if release is not None:
        release.wait(10)
    time.sleep(delay)
    return xr.Dataset({"value": ((), float(value))})


def _fail(value):
    raise RuntimeError(f"internal numba detail {value}")


def _task(fn, value, **extra):
    """``(kind, inputs, fn)``: inputs unique to this test run, so nothing comes from the cache."""
    return ("test_progressive", {"value": value, "run": uuid.uuid4().hex},
            lambda value, run: fn(value, **extra))


def _values(results):
    return [float(ds.value) for ds in results]


class Recorder:
    """A job with a dimmable container, and every list it showed."""

    def __init__(self):
        self.shown: list[list[float]] = []
        self.dim = pn.Column()
        self.job = ProgressView(lambda results: self.shown.append(_values(results)), "points",
                                  "test-done", dim=self.dim)
        self.statuses: list[str] = []
        self.job.status.param.watch(lambda e: self.statuses.append(str(e.new)), "object")

    @property
    def opacity(self) -> float:
        return float((self.dim.styles or {}).get("opacity", 1))

    def complete(self) -> bool:
        return 'id="test-done"' in str(self.job.status.object)


def test_a_failed_job_resets_its_controls_and_keeps_the_results_shown():
    r = Recorder()
    try:
        r.job.run([_task(_value, 1.0), _task(_value, 2.0)])
        _wait(r.complete)
        assert r.shown[-1] == [1.0, 2.0]
        n_shown = len(r.shown)
        r.job.run([_task(_value, 3.0), _task(_fail, 4.0)])
        _wait(lambda: "failed" in str(r.job.status.object))
        status = str(r.job.status.object)
        assert "computing" not in status and "RuntimeError" not in status
        assert "numba" not in status and "Traceback" not in status  # a sentence, not the error
        assert r.job.cancel_button.disabled and not r.job.bar.visible
        # the first new point arrived before the failure and is what the page shows now: never
        # an empty list in between
        assert [] not in r.shown[n_shown:] and r.shown[-1] == [3.0]
        r.job.run([_task(_fail, 5.0)])  # fails before any new result: the old ones stay
        _wait(lambda: "failed" in str(r.job.status.object))
        assert r.shown[-1] == [3.0] and [] not in r.shown
        assert r.job.cancel_button.disabled and not r.job.bar.visible
        assert "previous" in str(r.job.status.object) and r.opacity < 1  # shown as stale
    finally:
        r.job.close()


def test_a_failure_with_a_message_for_the_student_shows_it_escaped():
    def bad(value):
        raise ValueError("η is <b>too large</b> for this dataset.")

    r = Recorder()
    try:
        r.job.run([_task(bad, 1.0)])
        _wait(lambda: "failed" in str(r.job.status.object))
        status = str(r.job.status.object)
        assert "η is &lt;b&gt;too large&lt;/b&gt; for this dataset." in status
        assert "<b>" not in status
    finally:
        r.job.close()


def test_recomputing_keeps_the_previous_result_dimmed_until_the_new_one_arrives():
    r = Recorder()
    release, release2 = threading.Event(), threading.Event()
    try:
        r.job.run([_task(_value, 1.0)])
        _wait(r.complete)
        assert r.shown == [[1.0]] and r.opacity == 1
        r.job.run([_task(_value, 2.0, release=release), _task(_value, 3.0, release=release2)])
        time.sleep(0.3)  # the worker is waiting inside the first task
        assert r.shown == [[1.0]]  # not emptied
        assert r.opacity < 0.6 and "recomputing" in str(r.job.status.object) and r.job.stale
        release.set()
        _wait(lambda: r.shown[-1] == [2.0])  # the first new result replaces the old at once …
        assert r.opacity == 1 and "recomputing" not in str(r.job.status.object)
        assert not r.job.stale
        release2.set()
        _wait(r.complete)
        assert r.shown[-1] == [2.0, 3.0] and r.opacity == 1
    finally:
        release.set()
        release2.set()
        r.job.close()


def test_a_streamed_partial_result_ends_the_dimming():
    release = threading.Event()

    def stream(value, on_partial=None):
        on_partial(xr.Dataset({"value": ((), value / 2)}))
        release.wait(10)
        return xr.Dataset({"value": ((), value)})

    r = Recorder()
    try:
        r.job.run([_task(_value, 1.0)])
        _wait(r.complete)
        kind, inputs, _ = _task(stream, 8.0)
        r.job.run([(kind, inputs, lambda value, run, on_partial=None: stream(value, on_partial))],
                  streaming=True)
        _wait(lambda: r.shown[-1] == [4.0])
        assert r.opacity == 1 and [] not in r.shown
        release.set()
        _wait(r.complete)
        assert r.shown[-1] == [8.0]
    finally:
        release.set()
        r.job.close()


def test_a_first_run_has_nothing_to_dim():
    r = Recorder()
    release = threading.Event()
    try:
        r.job.run([_task(_value, 1.0, release=release)])
        time.sleep(0.2)
        assert r.opacity == 1 and "computing" in str(r.job.status.object)
        assert "recomputing" not in str(r.job.status.object)
        release.set()
        _wait(r.complete)
    finally:
        release.set()
        r.job.close()


def test_the_status_estimates_the_time_left():
    """Five tasks of 0.4 s: after the first, about 4 × 0.4 = 1.6 s are left."""
    r = Recorder()
    try:
        r.job.run([_task(_value, k, delay=0.4) for k in range(5)])
        _wait(r.complete)
        first = next(i for i, s in enumerate(r.statuses) if s.startswith("1 of 5"))
        assert not any("left" in s for s in r.statuses[:first])  # nothing to go on before
        after = [s for s in r.statuses[first:] if "left" in s]
        assert after, r.statuses
        m = re.search(r"about (\d+) s left", after[0])
        assert m and 1 <= int(m.group(1)) <= 3, after[0]
        assert "left" not in str(r.job.status.object)  # the final status has none
    finally:
        r.job.close()


def test_tasks_found_in_the_cache_do_not_shorten_the_estimate():
    """Three results from the cache then three of 0.5 s: after the fourth, about 1 s is left
    (not the ~0 s that the time per finished task would say)."""
    r = Recorder()
    try:
        cached = [_task(_value, k, delay=0.05) for k in range(3)]
        r.job.run(cached)
        _wait(r.complete)
        r.statuses.clear()
        r.job.run(cached + [_task(_value, k, delay=0.5) for k in range(3, 6)])
        _wait(r.complete)
        after = [s for s in r.statuses if s.startswith("4 of 6") and "left" in s]
        assert after, r.statuses
        m = re.search(r"about (\d+) s left", after[0])
        assert m and 1 <= int(m.group(1)) <= 2, after[0]
    finally:
        r.job.close()


@pytest.mark.parametrize("seconds, text", [
    (0.3, "about 1 s"), (7.4, "about 7 s"), (42, "about 40 s"), (58, "about 1 min"),
    (130, "about 2 min"), (3600, "about 60 min")])
def test_time_left_reads_as_a_round_figure(seconds, text):
    assert ProgressView.time_left(seconds) == text

"""The classroom load tests in the suite: the Panel page's (tests/load/loadtest.py), ten students
in CI, thirty and three waves on request; the class mode's (tests/load/classload.py), thirty
students at once on request (``pytest -m load tests/load`` or ``--run-load``).

Timings are reported (printed and written to test-artifacts/), never asserted: this 2-core
machine is shared and noisy. What is asserted is what must hold on any machine: every update
is delivered, the server logs no traceback, no session fails, and (30 × 3) memory does not
grow from wave to wave."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import classload, loadtest, pageload

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: what one class-mode wave may leave in the server: the store of runs' budget (64 MiB, the
#: default of SGD_ATLAS_CLASS_BYTES) plus the 50 MiB that issue 16 allows between waves
CLASS_RSS_BOUND_MIB = 64 + 50


def _run(run=loadtest.run, **kwargs) -> dict:
    """In its own thread: bokeh.client and the class-mode client run event loops, and
    Playwright (browser tests in the same process) keeps one running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run, **kwargs).result()


def _check(report: dict, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(report, indent=1))
    for wave in report["waves"]:
        print({k: v for k, v in wave.items() if k != "errors"})
        assert wave["errors"] == []
        assert wave["opened"] == wave["sessions"]
        assert wave["delivered"] == wave["expected"]
    assert report["server_log"]["tracebacks"] == 0, report["server_log"]["excerpt"]
    assert report["server_log"]["error_lines"] == 0, report["server_log"]["excerpt"]


def test_ten_students_move_eta():
    report = _run(n_sessions=10, n_moves=10, n_waves=1, think=1.0, settle=5.0,
                  log_path=ARTIFACTS / "load-10-server.log")
    _check(report, "load-10")


@pytest.mark.load
def test_thirty_students_three_waves():
    report = _run(n_sessions=30, n_moves=10, n_waves=3, think=1.0,
                  log_path=ARTIFACTS / "load-30-server.log")
    _check(report, "load-30")
    growth = report["waves"][-1]["rss_after_mib"] - report["waves"][0]["rss_after_mib"]
    print(f"RSS after wave 3 − after wave 1: {growth:.1f} MiB")
    # memory, not time: closed sessions must be freed (issue 8: within 50 MiB). It grew by
    # 129 MiB while Panel's JS-link registry kept every closed session alive.
    assert growth <= 50


@pytest.mark.load
def test_class_mode_thirty_students():
    """Thirty students open the class page at the same second, then each plays 20 frames and
    moves η ten times (its own values). Asserted: every page drawn, every frame and every move
    delivered, no error and no traceback, this client's CPU below the server's (the figures
    are the server's), and memory within the class mode's budgets. The times (drawn, frame
    and liveness latencies) and the CPU per student are printed against issue 16's targets
    and written to test-artifacts/classload-30.json, not asserted."""
    report = _run(classload.run, students=30, waves=1, moves=10, frames=20,
                  log_path=ARTIFACTS / "classload-30-server.log")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "classload-30.json").write_text(json.dumps(report, indent=1))
    print(classload.summary(report))
    wave = report["waves"][0]
    assert wave["n_errors"] == 0, wave["errors"]
    assert wave["drawn"] == wave["students"]
    assert wave["frames_delivered"] == wave["frames_asked"], wave["stopped_early"]
    assert wave["moves_applied"] == wave["moves_sent"] == 30 * 10
    assert wave["client_cpu_s"] < wave["server_cpu_s"]
    assert report["server_log"]["tracebacks"] == 0, report["server_log"]["excerpt"]
    assert report["server_log"]["error_lines"] == 0, report["server_log"]["excerpt"]
    # memory, not time: what the wave leaves is the class mode's bounded stores (runs: 64 MiB
    # by default, SGD_ATLAS_CLASS_BYTES) and the engine chunks it computed, not a copy of the
    # page or of the runs per student
    growth = wave["rss_after_mib"] - report["rss_start_mib"]
    print(f"RSS after the wave − before: {growth:.1f} MiB")
    assert growth <= CLASS_RSS_BOUND_MIB


@pytest.mark.load
@pytest.mark.parametrize("slug", sorted(pageload.INTERACTIONS))
def test_a_class_opens_each_map_and_curve_page(slug):
    """Thirty students open a page's class link at once, then make its five interactions
    (tests/load/pageload.py). Asserted: every page drawn, every interaction answered, no error,
    no traceback, this client's CPU below the server's. The times and the CPU per student are
    printed against issue 17's targets and written to test-artifacts/, not asserted."""
    report = _run(pageload.run, slug=slug, students=30,
                  log_path=ARTIFACTS / f"pageload-{slug}-30-server.log")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"pageload-{slug}-30.json").write_text(json.dumps(report, indent=1))
    print({k: v for k, v in report.items() if k != "targets"})
    assert report["errors"] == [] and report["drawn"] == report["students"]
    assert report["answered_pct"] == 100.0
    assert report["client_cpu_s"] < report["server_cpu_open_s"] + report["server_cpu_interactions_s"]
    assert report["server_log"]["tracebacks"] == 0, report["server_log"]["excerpt"]

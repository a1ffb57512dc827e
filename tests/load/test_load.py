"""The classroom load test (tests/load/loadtest.py) in the suite: ten students in CI, thirty and
three waves on request (``pytest -m load tests/load`` or ``--run-load``).

Timings are reported (printed and written to test-artifacts/), never asserted: this 2-core
machine is shared and noisy. What is asserted is what must hold on any machine: every update
is delivered, the server logs no traceback, no session fails, and (30 × 3) memory does not
grow from wave to wave."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import loadtest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _run(**kwargs) -> dict:
    """In its own thread: bokeh.client runs event loops, and Playwright (browser tests in the
    same process) keeps one running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(loadtest.run, **kwargs).result()


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

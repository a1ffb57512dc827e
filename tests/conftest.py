"""Shared fixtures and options for the SGD Atlas test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; tests that need it skip with a message if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the papers' data and MATH.md live there")
    return SHARED


def pytest_addoption(parser):
    parser.addoption("--run-load", action="store_true",
                     help="also run the opt-in classroom load tests (30 students, 3 waves)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``load`` are opt-in: ``--run-load`` or ``-m load`` selects them."""
    if config.getoption("--run-load") or "load" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="opt-in classroom load test: use --run-load or -m load")
    for item in items:
        if "load" in item.keywords and item.get_closest_marker("load") is not None:
            item.add_marker(skip)

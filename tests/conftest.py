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

"""Presets and lesson prompts, read from ``assets/presets.yaml`` (data, not code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@lru_cache(maxsize=1)
def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    for page, presets in data.items():
        for p in presets:
            missing = {"id", "title", "params", "prompt"} - set(p)
            if missing:
                raise ValueError(f"preset {p.get('id', '?')} of page {page} lacks {sorted(missing)}")
    return data


def load_presets(path: Path | None = None) -> dict:
    """``{page: [preset, ...]}``; each preset has ``id``, ``title``, ``params``, ``prompt``."""
    return _load(str(path or ASSETS / "presets.yaml"))

"""Presets and lesson prompts, read from ``assets/presets.yaml`` (data, not code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

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


def find_preset(page: str, preset_id) -> dict | None:
    """The preset ``preset_id`` of ``page``, or None."""
    return next((p for p in load_presets().get(page, []) if p["id"] == preset_id), None)


def preset_values(preset: dict) -> dict:
    """What a preset sets: its ``params`` and then its ``run`` map."""
    return {**preset.get("params", {}), **preset.get("run", {})}


def preset_prompt(preset: dict) -> str:
    """A preset's one-line prompt as Markdown, its title first."""
    return f"**{preset['title']}** — {preset['prompt']}"


def apply_link(page: str, targets: Iterable[tuple[object, Iterable[str]]],
               query: Mapping) -> list[str]:
    """A link's values on fresh state objects — its ``preset`` first, then its own values, as
    a page applies a link (:meth:`app.pages.base.Page.apply_query`) — each validated
    (:func:`app.urlstate.apply_values`); returns the notices. ``targets`` are ``(state object,
    the fields it takes)``."""
    from .urlstate import apply_values

    targets = [(obj, tuple(fields)) for obj, fields in targets]
    notices: list[str] = []
    preset = query.get("preset")
    if preset:
        found = find_preset(page, preset)
        if found is None:
            notices.append(f"No preset called {str(preset)[:40]!r}; using defaults.")
        else:
            for obj, fields in targets:
                notices += apply_values(obj, preset_values(found), fields)
    for obj, fields in targets:
        notices += apply_values(obj, query, fields)
    return notices

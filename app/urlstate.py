"""Validate values that arrive from outside (URL query, presets) against param declarations.

Nothing is trusted: a number outside the hard bounds is clamped, a non-number or an unknown
choice falls back to the current value, and every change is reported as a plain sentence for a
notice in the page.  Works for any ``param.Parameterized``, so every page uses it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import param


def _label(p: param.Parameter, name: str) -> str:
    return p.label or name


def coerce(obj: param.Parameterized, name: str, raw: Any) -> tuple[Any, str | None]:
    """(value to set, notice or None) for ``raw`` aimed at parameter ``name`` of ``obj``."""
    p = obj.param[name]
    current = getattr(obj, name)
    label = _label(p, name)
    if isinstance(p, param.ListSelector):
        return _coerce_list(p, label, current, raw)
    if isinstance(p, param.Selector):
        objects = p.objects
        values = list(objects.values()) if isinstance(objects, dict) else list(objects)
        for v in values:
            if str(v) == str(raw) or v == raw:
                return v, None
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        try:
            x = float(raw)
        except (TypeError, ValueError):
            x = math.nan
        if numeric and math.isfinite(x):
            nearest = min(numeric, key=lambda v: abs(v - x))
            return nearest, f"{label}: {raw!s} is not offered; using the nearest, {nearest}."
        return current, f"{label}: {str(raw)[:40]!r} is not one of the choices; kept {current}."
    if isinstance(p, param.Range):
        try:
            vals = raw.split(",") if isinstance(raw, str) else list(raw)
            lo, hi = (float(str(v).strip(" ()[]")) for v in vals)
        except (TypeError, ValueError):
            return current, f"{label}: {str(raw)[:40]!r} is not a range 'a,b'; kept {current}."
        blo, bhi = p.bounds or (None, None)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            return current, f"{label}: {str(raw)[:40]!r} is not an increasing range; kept {current}."
        clamped = (max(lo, blo) if blo is not None else lo, min(hi, bhi) if bhi is not None else hi)
        if clamped[0] >= clamped[1]:
            return current, f"{label}: {str(raw)[:40]!r} is outside the allowed range; kept {current}."
        return clamped, (None if clamped == (lo, hi) else f"{label}: clamped to {clamped}.")
    if isinstance(p, param.Boolean):
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True, None
        if text in ("false", "0", "no", "off"):
            return False, None
        return current, f"{label}: {str(raw)[:40]!r} is not true/false; kept {current}."
    if isinstance(p, param.Number):  # Integer is a Number
        try:
            x = float(raw)
        except (TypeError, ValueError, OverflowError):
            return current, f"{label}: {str(raw)[:40]!r} is not a number; kept {current}."
        if math.isnan(x):
            return current, f"{label}: NaN is not allowed; kept {current}."
        lo, hi = p.bounds or (None, None)
        notice = None
        if lo is not None and x < lo:
            x, notice = lo, f"{label}: {raw!s} is below the allowed minimum; clamped to {lo}."
        elif hi is not None and x > hi:
            x, notice = hi, f"{label}: {raw!s} is above the allowed maximum; clamped to {hi}."
        if not math.isfinite(x):
            return current, f"{label}: {raw!s} is not finite; kept {current}."
        if isinstance(p, param.Integer):
            if not float(x).is_integer() and notice is None:
                notice = f"{label}: {raw!s} is not a whole number; rounded to {round(x)}."
            x = int(round(x))
        return x, notice
    if isinstance(p, param.String):
        return str(raw)[:200], None
    return current, f"{label}: cannot be set from a link."


def _coerce_list(p: param.ListSelector, label: str, current: list, raw: Any):
    """A list of choices from a list, a JSON-ish "[1, 2]" or a comma-separated "1,2"."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw).strip(" []").split(",")
    objects = list(p.objects.values()) if isinstance(p.objects, dict) else list(p.objects)
    chosen, bad = [], []
    for item in list(items)[:50]:
        text = str(item).strip(" '\"")
        match = [v for v in objects if str(v) == text or v == item]
        if not match:
            try:
                match = [v for v in objects if float(v) == float(text)]
            except (TypeError, ValueError):
                match = []
        if match and match[0] not in chosen:
            chosen.append(match[0])
        elif not match and text:
            bad.append(text[:20])
    if not chosen:
        return current, f"{label}: {str(raw)[:40]!r} has none of the choices; kept {current}."
    chosen.sort(key=objects.index)
    return chosen, (f"{label}: ignored {', '.join(bad)} (not offered)." if bad else None)


def apply_values(obj: param.Parameterized, values: Mapping[str, Any],
                 allowed: Iterable[str]) -> list[str]:
    """Set the ``allowed`` parameters found in ``values`` on ``obj``; return the notices.

    Unknown keys are ignored (a link may carry other pages' or Bokeh's own parameters).
    All values are set in one ``param.update`` so watchers fire once.
    """
    notices: list[str] = []
    updates: dict[str, Any] = {}
    for name in allowed:
        if name not in values:
            continue
        raw = values[name]
        listlike = isinstance(obj.param[name], (param.Range, param.ListSelector))
        if isinstance(raw, (list, tuple)) and (not listlike or any(isinstance(r, bytes) for r in raw)):
            raw = raw[-1] if raw else ""  # a repeated query key: the last one wins
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        value, notice = coerce(obj, name, raw)
        if notice:
            notices.append(notice)
        updates[name] = value
    if updates:
        obj.param.update(**updates)
    return notices


def teacher_fields(query: dict, fields, advanced=(), extras=()) -> tuple[list[str], list[str], list[str]]:
    """``(locked, hidden, notices)`` of a teacher's link: ``lock=a,b`` and ``hide=…`` name
    parameters of ``fields``, ``advanced`` (the page's advanced parameters among ``fields``) or,
    for ``hide``, one of ``extras`` (e.g. ``nav``, ``presets``, ``share``); anything else gets a
    notice. The one reading of these links, for the Panel pages and the class mode alike."""
    def names(key):
        raw = query.get(key, "")
        if isinstance(raw, (list, tuple)):
            raw = ",".join(str(r) for r in raw)
        return [n.strip() for n in str(raw)[:500].split(",") if n.strip()]

    def controls(name):
        if name == "advanced":
            return [n for n in advanced if n in fields]
        return [name] if name in fields else []

    locked, hidden, notices = [], [], []
    for name in names("lock"):
        targets = controls(name)
        if not targets:
            notices.append(f"lock: this page has no control called {name[:40]!r}.")
        locked += [n for n in targets if n not in locked]
    for name in names("hide"):
        targets = controls(name)
        if not targets and name in extras:
            targets = [name]
        elif not targets and name != "advanced":
            notices.append(f"hide: this page has nothing called {name[:40]!r}.")
        hidden += [n for n in targets if n not in hidden]
    return locked, hidden, notices

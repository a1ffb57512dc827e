"""Values arriving over the websocket are validated before Panel applies them.

Widget bounds are not enforced for values sent by a browser (or by anything that speaks the
Bokeh protocol): a slider's ``value`` can arrive as 1e300, NaN, a string or None. Panel then
raises inside its event processing and logs a traceback, and a value that passes the widget
can still break the state it is linked to. :func:`guard_inputs` wraps the event processing of
every widget of a page:

* a value for a widget linked to a state parameter is converted and checked against that
  parameter — clamped into its bounds or, if it is no value at all, replaced by the current
  one — and the widget is set to the valid value (which also corrects the browser);
* any other property change that Panel cannot convert or validate is dropped;
* each correction shows the page's notice and a one-line warning in the server log, never a
  traceback.
"""

from __future__ import annotations

import logging
from typing import Callable

import panel as pn
import param
from panel.reactive import Reactive

from .urlstate import coerce

log = logging.getLogger(__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def guard_inputs(root: pn.viewable.Viewable, linked: dict[int, tuple[param.Parameterized, str]],
                 notify: Callable[[str], None]) -> int:
    """Guard every widget under ``root``; ``linked`` maps ``id(widget)`` to the (state object,
    parameter) it sets. Returns how many widgets were guarded (each only once)."""
    count = 0
    for obj in [*root.select(pn.widgets.Widget), *root.select(pn.layout.Tabs)]:
        if not isinstance(obj, Reactive) or getattr(obj, "_atlas_guarded", False):
            continue
        _wrap(obj, linked.get(id(obj)), notify)
        count += 1
    return count


def linked_widgets(pairs: dict[str, list[tuple[param.Parameterized, pn.widgets.Widget]]]) -> dict:
    """``{id(widget): (owner, name)}`` for parameter widgets and the parts of composite ones
    (an editable slider is a slider and a number box that both set the same parameter)."""
    out = {}
    for name, items in pairs.items():
        for owner, widget in items:
            parts = [widget]
            if isinstance(widget, pn.widgets.base.CompositeWidget):
                parts += list(widget.select(pn.widgets.Widget))
            for part in parts:
                out[id(part)] = (owner, name)
    return out


def _wrap(widget: Reactive, link, notify) -> None:
    original = widget._process_events

    def guarded(events: dict) -> None:
        events = dict(events)
        try:
            converted = widget._process_property_change(dict(events))
        except Exception as exc:  # not even convertible: drop everything, keep the state
            _reject(widget, list(events), f"{_label(widget)}: ignored an invalid value "
                                         f"({type(exc).__name__}).", notify)
            return
        for key, value in converted.items():
            if "." in key or key not in widget.param:
                continue
            problem = _check(widget, key, value, link)
            if problem is None:
                continue
            fixed, notice = problem
            events.pop(widget._property_mapping.get(key) or key, None)
            events.pop(key, None)
            if notice:
                log.warning("input rejected: %s", notice)
                notify(notice)
            if fixed is _KEEP:
                widget.param.trigger(key)  # send the valid value back to the browser
            else:
                widget.param.update(**{key: fixed})
        if events:
            original(events)

    widget._process_events = guarded
    widget._atlas_guarded = True


class _Keep:
    pass


_KEEP = _Keep()


def _label(widget) -> str:
    return str(getattr(widget, "name", "") or type(widget).__name__).rstrip(":")


def _check(widget, key, value, link):
    """None if ``value`` is fine for ``widget.key`` (and its linked parameter); else
    ``(fixed value or _KEEP, notice)``."""
    if link is not None and key == "value":
        owner, name = link
        fixed, notice = coerce(owner, name, value)
        if notice is None:
            try:
                widget.param[key]._validate(fixed)
                same = fixed is value or (type(fixed) is type(value) and fixed == value)
                return None if same else (fixed, None)
            except Exception:
                return _KEEP, f"{_label(widget)}: {_short(value)} is not accepted; kept the value."
        if fixed == getattr(owner, name):
            return _KEEP, notice
        try:
            widget.param[key]._validate(fixed)
        except Exception:
            return _KEEP, notice
        return fixed, notice
    try:
        widget.param[key]._validate(value)
    except Exception:
        return _KEEP, f"{_label(widget)}: ignored {_short(value)} for {key}."
    return None


def _reject(widget, keys, notice, notify) -> None:
    log.warning("input rejected: %s", notice)
    notify(notice)
    for key in keys:
        inverted = {v: k for k, v in widget._property_mapping.items() if v}
        key = inverted.get(key, key)
        if key in widget.param:
            widget.param.trigger(key)

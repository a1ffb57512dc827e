"""What every page offers main.py: construction from a URL query, a sidebar, notices,
binding its state to the URL, and cleanup when the browser session ends."""

from __future__ import annotations

import html

import panel as pn


class Page(pn.viewable.Viewer):
    """Base class of the dashboard's pages (a ``pn.viewable.Viewer``)."""

    def __init__(self, query: dict | None = None, **params):
        super().__init__(**params)
        self._notices: list[str] = []
        self._query = dict(query or {})

    def add_notice(self, text: str) -> None:
        """Show a plain-sentence notice (e.g. a clamped URL value) at the top of the page."""
        self._notices.append(text)
        self._sync_alert()

    def clear_notices(self) -> None:
        self._notices.clear()
        self._sync_alert()

    def notices_markdown(self, extra: list[str] = ()) -> str:
        """All notices as Markdown, HTML-escaped: they quote text from links, which must never
        be rendered as HTML (a link could otherwise run script in a student's browser)."""
        return "\n\n".join(html.escape(t, quote=False) for t in [*self._notices, *extra] if t)

    def _sync_alert(self) -> None:  # pages with an alert pane override this
        pass

    @property
    def sidebar(self) -> pn.viewable.Viewable:
        return pn.Column()

    def bind_url(self) -> None:
        """Keep the page's parameters in the URL (after they were validated)."""

    def cleanup(self) -> None:
        """Stop timers and drop in-flight work."""


def sync_to_url(objects_fields: list[tuple[object, tuple[str, ...]]], extra: dict | None = None,
                on_error=None) -> None:
    """On page load, write the validated values into the URL, then keep them in sync.

    The browser's location model overwrites server-side edits made before it loads, so both
    steps must run in ``pn.state.onload`` (see the Panel location docs).
    """
    loc = pn.state.location
    if loc is None:
        return

    def start():
        values = dict(extra or {})
        for obj, fields in objects_fields:
            values.update({f: getattr(obj, f) for f in fields})
        loc.update_query(**values)
        for obj, fields in objects_fields:
            loc.sync(obj, {f: f for f in fields}, on_error=on_error)

    pn.state.onload(start)

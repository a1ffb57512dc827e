"""Entry point of ``panel serve app``: one template, a navigation entry per page.

The page is chosen by ``?page=<slug>``; every other query parameter belongs to the page, which
validates it (see :mod:`app.urlstate`) before binding its state to the URL — except a teacher's
``lock=`` and ``hide=`` (see :meth:`app.pages.teacher.TeacherLinks.apply_teacher`), which stay
in the URL untouched so a shared link keeps them.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn

from app.compat import on_browser_gone, release_js_links, set_local_dist_url, settle_markup
from app.figures import use_scroll_friendly_plots
from app.jobs import freeze_startup_objects, quiet_closed_sockets
from app.pages import DEFAULT_PAGE, PAGES
from engine.warmup import compile_all

hv.extension("bokeh", logo=False)
pn.extension(notifications=False, sizing_mode="stretch_width")
use_scroll_friendly_plots()  # no plot captures the wheel or a swipe until it is clicked


def _query() -> dict:
    loc = pn.state.location
    return dict(loc.query_params) if loc is not None else {}


def build() -> pn.template.BootstrapTemplate:
    query = _query()
    slug = str(query.get("page", DEFAULT_PAGE))
    notice = None
    if slug not in PAGES:
        notice = f"There is no page {slug[:40]!r}; showing {PAGES[DEFAULT_PAGE][0]}."
        slug = DEFAULT_PAGE
    title, factory = PAGES[slug]
    page = factory(query=query)
    if notice:
        page.add_notice(notice)
    nav = pn.pane.HTML(
        "<nav class='atlas-nav'>" + "".join(
            f"<a href='?page={s}' class='{'active' if s == slug else ''}'>{t}</a>"
            for s, (t, _) in PAGES.items()) + "</nav>",
        stylesheets=["""
        .atlas-nav { display: flex; flex-direction: column; gap: 4px; }
        .atlas-nav a { padding: 6px 10px; border-radius: 6px; text-decoration: none; color: #1f3b57; }
        .atlas-nav a.active { background: #1f3b57; color: white; font-weight: 600; }
        """],
    )
    share = page.share_panel()
    view = page.__panel__()  # built once: guard_inputs checks this very view
    # A phone starts with the sidebar folded (its toggle opens it): open, it left 60 px of a
    # 390 px screen for the page.
    # No busy indicator: Panel keeps every session's indicator in one class-level list and
    # flips all of them on any session's event — each slider move of one student updated the
    # page of every other (quadratic work, and state leaking between sessions). Pages show
    # their own progress.
    agent = str((pn.state.headers or {}).get("User-Agent", ""))
    template = pn.template.BootstrapTemplate(
        title=f"SGD Atlas · {title}", header_background="#1f3b57", sidebar_width=330,
        collapsed_sidebar="Mobi" in agent or "Android" in agent,
        meta_viewport="width=device-width, initial-scale=1",  # a phone lays out at its width
        sidebar=[nav, page.lock_note, page.sidebar_panel(), share], main=[view],
        busy_indicator=None,
    )
    page.apply_teacher(query, extras={"nav": nav, "share": share})
    page.guard_inputs(view, share)
    page.bind_url()
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:

        def _cleanup(session_context, release=release_js_links):  # Bokeh calls it with one
            page.cleanup()  # argument; ``release`` is bound now, as Bokeh clears this
            release(template)  # module's globals once the session's page is built

        pn.state.on_session_destroyed(_cleanup)
        # and stop the page's work as soon as its browser leaves, not when Bokeh discards
        # the session (15–32 s later)
        on_browser_gone(pn.state.curdoc, page.cleanup)
    return template


compile_all()  # once per process (numba's disk cache makes it quick after the first start)
freeze_startup_objects()  # once per process, before the first page is built
quiet_closed_sockets()
_doc = pn.state.curdoc
set_local_dist_url(_doc)  # before any model is made: an offline classroom has no CDN
if _doc is not None and _doc.session_context is not None:
    # one reference recomputation for the whole page instead of one per linked model
    with _doc.models.freeze():
        _template = build()
        _template.server_doc(_doc)
        settle_markup(_template, _doc)
else:
    build().servable()

"""What every plot of the dashboard shares (see ../shared/DESIGN.md: the figures layer).

:func:`scroll_friendly` is applied to every HoloViews/Bokeh plot: the page scrolls under the
mouse wheel and under a finger, and no plot captures either until it is asked to.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import CustomJS, WheelZoomTool

def set_columns(figures: dict, columns: dict[str, dict], titles: dict[str, str] | None = None) -> None:
    """Set ``columns`` on the sources of ``figures`` (``{key: figure}``) found by name, and
    the titles by key: how a page or the class mode feeds a figure built once."""
    from bokeh.models import ColumnDataSource

    for fig in figures.values():
        for src in fig.select(type=ColumnDataSource):
            if src.name in columns:
                src.data = dict(columns[src.name])
    for key, text in (titles or {}).items():
        figures[key].title.text = text


def apply_view(figures: dict, view: dict) -> None:
    """Apply a *view* — what a page draws from its results, the one contract between the figures
    modules, the Panel pages and the class mode's browser code (``assets/js/class-page.js``) —
    to ``figures`` (``{key: figure}``)::

        {"columns": {source name: {column: values}},   # ColumnDataSources, found by name
         "titles":  {figure name: text},               # a figure's title (found by its name)
         "props":   {model name: {attribute: value}},  # any other named model (mappers,
                                                       #   spans, colour bars, axes' ranges…)
         "html":    {element id: HTML}}                # text beside the plots (escaped already)

    Every key is optional. ``html`` is the page's to place (a Panel pane, a class page's element).
    """
    set_columns(figures, view.get("columns", {}))
    titles, props = view.get("titles", {}), view.get("props", {})
    for fig in figures.values():
        if getattr(fig, "name", None) in titles:
            fig.title.text = titles[fig.name]
        for name, attrs in props.items():
            for model in fig.select({"name": name}):
                model.update(**attrs)


TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def new_figure(title: str, height: int, **kw):
    """A plain Bokeh figure as every page draws one: full width, the standard tools, no logo,
    13-px title, :func:`scroll_friendly`."""
    from bokeh.plotting import figure

    p = figure(title=title, height=height, sizing_mode="stretch_width", tools=TOOLS,
               output_backend="canvas", **kw)
    p.toolbar.logo = None
    p.title.text_font_size = "13px"
    scroll_friendly(p)
    return p


def finite(a) -> np.ndarray:
    """A float copy with ±inf replaced by NaN (Bokeh cannot serialise inf; NaN breaks a line)."""
    a = np.array(a, dtype=float)
    a[~np.isfinite(a)] = np.nan
    return a


#: BokehJS: a click (tap) on a plot makes its wheel zoom active; leaving the plot gives the
#: wheel back to the page.
_ARM_WHEEL = "toolbar.active_scroll = wheel;"
_DISARM_WHEEL = "toolbar.active_scroll = null;"


def scroll_friendly(plot) -> None:
    """No active drag or scroll tool on ``plot`` (a Bokeh figure): the mouse wheel scrolls the
    page instead of zooming a map into an empty frame, and a swipe over a plot scrolls the
    page on a phone instead of panning it. The toolbar still offers pan and wheel zoom, and a
    click on the plot arms its wheel zoom until the pointer leaves it."""
    toolbar = getattr(plot, "toolbar", None)
    if toolbar is None or getattr(plot, "_atlas_scroll_friendly", False):
        return  # once per figure: HoloViews runs hooks again on every update, when a click
        # may have armed the wheel
    plot._atlas_scroll_friendly = True
    toolbar.active_drag = None
    toolbar.active_scroll = None
    wheel = next((t for t in toolbar.tools if isinstance(t, WheelZoomTool)), None)
    if wheel is None:
        return
    args = dict(toolbar=toolbar, wheel=wheel)
    plot.js_on_event("tap", CustomJS(args=args, code=_ARM_WHEEL))
    plot.js_on_event("mouseleave", CustomJS(args=args, code=_DISARM_WHEEL))


def _hook(plot, element) -> None:  # HoloViews' hook signature
    scroll_friendly(plot.state)


def use_scroll_friendly_plots() -> None:
    """Make :func:`scroll_friendly` the default of every HoloViews Bokeh plot (idempotent;
    call after ``hv.extension("bokeh")``, which resets the defaults when it loads).

    HoloViews activates pan and wheel zoom unless ``active_tools`` says otherwise; its
    ``hooks`` run after a plot is built or updated. Set here as the default options of every
    element and container type, they apply wherever a plot does not set its own."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # (registers the Bokeh plot classes)
    from holoviews.core.options import Store

    if _hook in Store.lookup_options("bokeh", hv.Curve([]), "plot").kwargs.get("hooks", []):
        return  # already the default (``hv.extension`` resets the defaults when it loads)
    defaults = []
    for element, plot in Store.registry["bokeh"].items():
        builder = getattr(hv.opts, element.__name__, None)
        if builder is not None and "hooks" in plot.param and "active_tools" in plot.param:
            defaults.append(builder(hooks=[_hook], active_tools=[]))
    hv.opts.defaults(*defaults, backend="bokeh")


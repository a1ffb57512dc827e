"""Bokeh server hooks of ``panel serve app`` (and so of ``sgd-atlas serve``): mount the class
mode's routes on the same server, and warm its pages once the server has started."""

from __future__ import annotations

from app.classmode import routes, warm_up
from app.compat import add_toplevel_routes

add_toplevel_routes(routes())  # before Bokeh builds its tornado application (idempotent)


def on_server_loaded(server_context) -> None:
    """Per process (after ``--num-procs`` forks): build the class pages in the background."""
    from tornado.ioloop import IOLoop

    from engine.warmup import compile_all

    compile_all()
    IOLoop.current().spawn_callback(warm_up)

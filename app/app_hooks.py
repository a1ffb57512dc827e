"""Bokeh server hooks of ``panel serve app`` (and so of ``sgd-atlas serve``): mount the class
mode's routes on the same server, and warm its pages once the server has started."""

from __future__ import annotations

from app.classmode import routes, warm_up
from app.compat import add_toplevel_routes

add_toplevel_routes(routes())  # before Bokeh builds its tornado application (idempotent)


def on_server_loaded(server_context) -> None:
    """Per process (after ``--procs`` forks): build the class pages in the background, then
    take everything start-up made out of the full garbage collections (with it, a class of 60
    saw 200–460 ms pauses of the loop, 7–8 per three waves)."""
    from tornado.ioloop import IOLoop

    from app.jobs import freeze_startup_objects
    from engine.warmup import compile_all

    compile_all()

    async def warm_then_freeze():
        await warm_up()
        freeze_startup_objects(again=True)

    IOLoop.current().spawn_callback(warm_then_freeze)

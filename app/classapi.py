"""The class mode's computations API: every page's long computations, shared by a whole class.

``GET /api/compute?page=<slug>&what=<name>&client=<id>&<the page's values>`` starts the
computation ``what`` of the page (:func:`app.state.computations`: the stability page's maps,
pullback cloud and point, the phase maps and the clicked cell, the escape curves, the
overfitting runs…) for the values of a link — validated by the page's ``param`` classes, a
preset first when the link names one — or joins it when another student asked for the same
(:func:`app.compute.follow`: computed once, and every student sees its progress). It answers
its status as JSON, waiting up to ``wait`` seconds (≤ 5) for it to finish or to move on::

    {"key": …, "state": "running" | "done" | "failed" | "cancelled", "done": 2.5,
     "total": 4, "left": 7.1, "results": 2, "notices": [...], "error": null}

The browser asks again while it runs; each request renews its follow, a lease of
:data:`LEASE` seconds: a tab that closed stops renewing, and a computation nobody follows any
more stops at the engine's next check. ``GET /api/compute/cancel?key=…&client=…`` leaves it at
once (the others still following keep it running). ``GET /api/compute/result.nc?page=…&what=…
&<values>`` answers the finished results as netCDF (the pages' export format), or 409 while
they are not all computed.

Errors are JSON sentences with their status (the class mode's :class:`app.classmode._Handler`),
never a traceback; GET only; requests are bounded in size.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlencode

from . import compute
from .cache import get_cache
from .classmode import BadRequest, _Handler
from .presets import apply_link
from .state import PAGE_STATES, assemble, computations

#: seconds a follow lasts without being renewed by the next request
LEASE = 10.0
MAX_WAIT = 5.0
_CLIENT = re.compile(r"[0-9a-zA-Z_-]{8,64}")


def states_for(query: dict) -> tuple[str, dict, list[str]]:
    """``(slug, states, notices)``: the page's state objects with the link's preset and then its
    values applied, validated as the pages validate links."""
    slug = query.get("page", "")
    if slug not in PAGE_STATES:
        raise BadRequest(f"page must be one of {', '.join(PAGE_STATES)}, not {slug[:40]!r}.")
    states = {attr: cls() for attr, cls in PAGE_STATES[slug].items()}
    targets = [(obj, [n for n in obj.param if n != "name"]) for obj in states.values()]
    return slug, states, apply_link(slug, targets, query)


def tasks_for(query: dict) -> tuple[list, list[str]]:
    """The tasks of the computation a request names, and the notices of its values."""
    slug, states, notices = states_for(query)
    named = computations(slug, states)
    what = query.get("what", "")
    if what not in named:
        raise BadRequest(f"what must be one of {', '.join(named)} for page {slug}, "
                         f"not {what[:40]!r}.")
    return named[what], notices


def _client(query: dict) -> str:
    client = query.get("client", "")
    if not _CLIENT.fullmatch(client):
        raise BadRequest("client must be the browser's id: 8 to 64 letters, digits, '-' or '_'.")
    return client


def _wait(query: dict) -> float:
    try:
        wait = float(query.get("wait", "0"))
    except ValueError:
        raise BadRequest("wait must be a number of seconds.") from None
    return min(max(wait, 0.0), MAX_WAIT) if wait == wait else 0.0


def status_json(comp: compute.Computation, notices: list[str]) -> dict:
    p = comp.status()
    error = None
    if p.state == compute.FAILED:  # a ValueError's sentence is for the student; others: a bug
        error = (str(p.error).strip().splitlines()[0][:300]
                 if isinstance(p.error, ValueError) and str(p.error).strip()
                 else "The computation failed; details are in the server log.")
    return {"key": comp.key, "state": p.state, "done": p.done, "total": p.total,
            "left": p.left, "results": len(p.results), "notices": notices, "error": error}


async def follow(query: dict) -> dict:
    """Start or join the named computation for ``client``, renew its lease, and answer its
    status after at most ``wait`` seconds (sooner when it finishes or moves on)."""
    client, wait = _client(query), _wait(query)
    tasks, notices = tasks_for(query)
    loop = asyncio.get_running_loop()
    moved = asyncio.Event()

    def listener(progress, final):  # from the computing thread
        loop.call_soon_threadsafe(moved.set)

    comp = compute.follow(tasks, client, listener, ttl=LEASE)
    if wait and comp.state == compute.RUNNING:
        try:
            await asyncio.wait_for(moved.wait(), wait)
        except asyncio.TimeoutError:
            pass
    compute.renew(comp, client, LEASE)  # from now, and without this request's listener
    return status_json(comp, notices)


async def cancel(query: dict) -> dict:
    """``client`` leaves the computation ``key`` (it stops if nobody else follows it)."""
    client, key = _client(query), query.get("key", "")
    comp = compute.running(key) if re.fullmatch(r"[0-9a-f]{32}", key) else None
    if comp is None:
        return {"key": key, "state": "gone", "followers": 0}
    compute.leave(comp, client)
    return {"key": key, "state": comp.state, "followers": comp.followers}


async def result_nc(query: dict) -> bytes:
    """The finished results of the named computation as netCDF (409 while any is missing)."""
    from .pages.share import netcdf_export

    tasks, _ = tasks_for(query)
    cache = get_cache()
    found = [cache.lookup(t.kind, t.inputs) for t in tasks]
    if any(ds is None for ds in found):
        raise NotReady("Not all of it is computed yet: follow /api/compute until it is done.")
    link = "?" + urlencode({k: v for k, v in query.items() if k not in ("what", "client")})
    return netcdf_export(assemble(list(zip(tasks, found))), link)


class NotReady(BadRequest):
    """The results are not computed yet: status 409."""

    status = 409


class ComputeHandler(_Handler):
    async def get(self) -> None:
        await self.answer(lambda q: _json(follow(q)))


class CancelHandler(_Handler):
    async def get(self) -> None:
        await self.answer(lambda q: _json(cancel(q)))


class ResultHandler(_Handler):
    async def get(self) -> None:
        await self.answer(result_nc, "application/x-netcdf",
                          Content_Disposition='attachment; filename="sgd-atlas-result.nc"')


async def _json(coro) -> bytes:
    import json

    return json.dumps(await coro, separators=(",", ":"), allow_nan=False).encode()


def routes() -> list[tuple[str, type]]:
    return [(r"/api/compute", ComputeHandler), (r"/api/compute/cancel", CancelHandler),
            (r"/api/compute/result\.nc", ResultHandler)]

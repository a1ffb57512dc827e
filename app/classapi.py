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
from collections import OrderedDict
from typing import NamedTuple
from urllib.parse import urlencode

from . import compute
from .cache import get_cache
from .classmode import BadRequest, Gone, _Handler, in_worker
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


class Resolved(NamedTuple):
    """A link's validated page state: what every request with the same values shares."""

    slug: str
    states: dict
    notices: list
    named: dict  # the page's computations (app.state.computations)
    memo: dict  # what else is derived from them once (the class page's values)


_RESOLVED: OrderedDict[tuple, Resolved] = OrderedDict()
_PER_REQUEST = ("client", "wait", "have", "what", "key")


def resolve(query: dict) -> Resolved:
    """:func:`states_for` and the page's computations for the query's values, kept for the
    next request with the same values (a class sends the same ones: validating them again
    was most of a request's time on the server's loop). The states are read, never changed."""
    key = tuple(sorted((k, v) for k, v in query.items() if k not in _PER_REQUEST))
    hit = _RESOLVED.get(key)
    if hit is not None:
        _RESOLVED.move_to_end(key)
        return hit
    slug, states, notices = states_for(query)
    hit = _RESOLVED[key] = Resolved(slug, states, notices, computations(slug, states), {})
    while len(_RESOLVED) > 1024:
        _RESOLVED.popitem(last=False)
    return hit


def tasks_for(query: dict) -> tuple[list, list[str]]:
    """The tasks of the computation a request names, and the notices of its values."""
    slug, _, notices, named, _ = resolve(query)
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
    tasks, notices = tasks_for(query)
    return status_json(await _follow(query, tasks), notices)


async def _follow(query: dict, tasks: list) -> compute.Computation:
    client, wait = _client(query), _wait(query)
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
    return comp


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


# -- the class pages' views (app.classpages) ------------------------------------------------------
_VIEWS = None


def reset() -> None:
    """Forget the drawn views and the resolved links (tests)."""
    global _VIEWS
    _VIEWS = None
    _RESOLVED.clear()


def view_store():
    """Drawn views of this process by key (gzipped JSON), least recently used dropped past
    ``SGD_ATLAS_VIEW_BYTES`` (default 64 MiB)."""
    global _VIEWS
    if _VIEWS is None:
        import os

        from .classmode import SharedResults

        _VIEWS = SharedResults(int(os.environ.get("SGD_ATLAS_VIEW_BYTES", 64 * 2**20)))
    return _VIEWS


async def view(query: dict) -> dict:
    """``/api/view``: start or join the computation behind the view ``what`` of a class page
    (as :func:`follow`; a closed-form view has none), draw the view from its results so far
    once per distinct content, and answer the status with the view's key (its columns:
    ``/api/view/data?key=…``), the validated values and the teacher's locks."""
    import hashlib
    import json

    from .cache import canonical
    from .classpages import EXTRAS, SPEC_BUILDERS, fields_of, figures_module, page_class, values_of
    from .urlstate import teacher_fields

    _client(query)
    slug, states, notices, named, memo = resolve(query)
    if slug not in SPEC_BUILDERS:
        raise BadRequest(f"page must be one of {', '.join(SPEC_BUILDERS)}, not {slug[:40]!r}.")
    mod = figures_module(slug)
    what = query.get("what", "")
    if what not in mod.VIEWS:
        raise BadRequest(f"what must be one of {', '.join(mod.VIEWS)} for page {slug}, "
                         f"not {what[:40]!r}.")
    values = memo.get("values") or memo.setdefault("values", values_of(slug, states))
    if what in named:
        done = memo.get(("done", what))  # finished for these values: nothing to follow or look up
        comp = done if done is not None else await _follow(query, named[what])
        if comp.state == compute.DONE:
            memo[("done", what)] = comp
        answer = status_json(comp, notices)
        p = comp.status()
        results = list(p.results) + ([p.partial] if p.partial is not None else [])
        stamp = [comp.key, len(p.results), None if p.partial is None else round(p.done, 3)]
    else:
        answer = {"key": None, "state": compute.DONE, "done": 1, "total": 1, "left": 0.0,
                  "results": 0, "notices": notices, "error": None}
        results, stamp = [], None
    drawn = {f: values.get(f, getattr(states["state"], f, None)) for f in mod.VIEWS[what]}
    key = hashlib.sha256(json.dumps([slug, what, stamp, canonical(drawn)], sort_keys=True,
                                    default=str).encode()).hexdigest()[:32]
    if query.get("have") != key:
        async def draw():  # in a worker process (a cloud's raster would hold the GIL)
            body = await in_worker(draw_view, slug, what, results, states)
            return body, len(body)

        await view_store().get_or_compute_async(key, draw)
    answer.update(view=key, values=values)
    if "lock" in query or "hide" in query:
        fields = fields_of(slug)
        advanced = [f for f in page_class(slug).advanced if f in fields]
        lock, hide, more = teacher_fields(query, fields, advanced, EXTRAS)
        answer.update(lock=lock, hide=hide, notices=notices + more)
    return answer


def draw_view(slug: str, what: str, results: list, states: dict) -> bytes:
    """The view ``what`` of page ``slug`` drawn by its figures module, as gzipped JSON."""
    from .classpages import figures_module

    return view_json(figures_module(slug).view(what, results, states))


def view_json(v: dict) -> bytes:
    """A view (:func:`app.figures.apply_view`'s format) as gzipped JSON, its columns encoded
    (:func:`app.classmode.encode`)."""
    import gzip
    import json

    import numpy as np

    from .classmode import encode

    def plain(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON: {type(o).__name__}")

    out = {"columns": encode(v.get("columns", {})), "titles": v.get("titles", {}),
           "props": v.get("props", {}), "html": v.get("html", {})}
    return gzip.compress(json.dumps(out, separators=(",", ":"), default=plain).encode(), 6)


async def view_data(key: str) -> bytes:
    """``/api/view/data?key=…``: a drawn view's gzipped JSON."""
    body = view_store().get(key) if re.fullmatch(r"[0-9a-f]{32}", key) else None
    if body is None:
        raise Gone("This view is no longer on the server: ask /api/view for it again.")
    return body


class NotReady(BadRequest):
    """The results are not computed yet: status 409."""

    status = 409


class ComputeHandler(_Handler):
    async def get(self) -> None:
        await self.answer(lambda q: _json(follow(q)))


class CancelHandler(_Handler):
    async def get(self) -> None:
        await self.answer(lambda q: _json(cancel(q)))


class ViewHandler(_Handler):
    async def get(self) -> None:
        await self.answer(lambda q: _json(view(q)))


class ViewDataHandler(_Handler):
    """A drawn view by key: gzipped once, kept, and cacheable by the browser (a key names one
    content)."""

    def compute_etag(self):  # the key names the content: no hash of the body per request
        return self.get_query_argument("key", "")[:32] or None

    async def get(self) -> None:
        try:
            body = await view_data(self.query().get("key", ""))
        except (BadRequest, Gone) as exc:
            self.send_error(404 if isinstance(exc, Gone) else exc.status,
                            exc_info=(type(exc), exc, None))
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "private, max-age=3600")
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
        else:
            import gzip

            body = gzip.decompress(body)
        self.finish(body)


class ResultHandler(_Handler):
    async def get(self) -> None:
        await self.answer(result_nc, "application/x-netcdf",
                          Content_Disposition='attachment; filename="sgd-atlas-result.nc"')


async def _json(coro) -> bytes:
    import json

    return json.dumps(await coro, separators=(",", ":"), allow_nan=False).encode()


def routes() -> list[tuple[str, type]]:
    return [(r"/api/compute", ComputeHandler), (r"/api/compute/cancel", CancelHandler),
            (r"/api/compute/result\.nc", ResultHandler), (r"/api/view", ViewHandler),
            (r"/api/view/data", ViewDataHandler)]

"""Class mode: a page built once per process and served to a whole class, with its computations
behind a JSON API (issue 16; ../shared/DESIGN.md, "build once, serve many").

A Panel page builds a Bokeh document per browser on the server (about 1–2 s of CPU each,
``benchmarks/bench_sessions.py``): a class of
60 opening one link waits minutes. Here the live-trajectories page is built once per (page,
preset) — its figures from :mod:`app.figures.live`, the same builders as the Panel page's —
and sent as static HTML; each student's parameters and run live in the browser and in its URL,
and every frame comes from ``GET /api/live/frame``:

* inputs are validated by the same ``param`` classes as the pages (:mod:`app.urlstate`),
  bounded in size, GET only, and every error is a JSON message, never a traceback;
* a run is a chain of states, each named by the hash of its parent, its validated inputs and
  the action: a class following one preset asks for the same states, which are computed once
  (later identical requests wait for the first) and kept, least recently used first, within a
  memory budget (``SGD_ATLAS_CLASS_BYTES``, :func:`snapshots`);
* frames are computed in worker processes (:func:`frame_workers`), never on the server's
  event loop.

Routes (under the server's ``--prefix``): ``/class?page=<slug>&…`` (the page: the live one, or
About and the presets gallery as static pages; slugs without a class mode yet are redirected
to their Panel page), ``/class/thumbnail/<page>.jpg`` (the gallery's pictures), ``/api/live/frame``, ``/api/live/pi``
(the "where am I" π map) and ``/api/live/export.nc`` (the run as netCDF). Both ``panel serve
app`` and ``sgd-atlas serve`` mount them (see ``app/app_hooks.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import logging
import multiprocessing
import os
import time
from collections import OrderedDict
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import numpy as np
import param
from tornado.web import RequestHandler

from . import sweeps
from .cache import canonical
from .presets import apply_link, find_preset, load_presets, preset_prompt
from .state import (LIVE_ADVANCED, LIVE_MODEL_FIELDS, LIVE_RUN_FIELDS, LIVE_START_FIELDS,
                    EnsembleParams, StabilityParams, TrajectoryRun)
from .urlstate import apply_values, coerce, teacher_fields

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parents[1] / "assets"
MAX_QUERY = 4096  # bytes of query string a request may carry
MODEL_FIELDS, START_FIELDS, RUN_FIELDS = LIVE_MODEL_FIELDS, LIVE_START_FIELDS, LIVE_RUN_FIELDS
FIELDS = MODEL_FIELDS + START_FIELDS + RUN_FIELDS
ADVANCED = LIVE_ADVANCED
EXTRAS = ("nav", "presets", "share")
ACTIONS = ("none", "step", "reset")
SLUG = "trajectories"
_RUN_ID = set("0123456789abcdef")


class BadRequest(ValueError):
    """Input the API refuses: answered with status :attr:`status` (400) and this message."""

    status = 400


class Gone(KeyError):
    """A run this process does not hold (evicted, or the server restarted): status 404."""


# -- a bounded store of results computed once ----------------------------------------------------
class SharedResults:
    """``key -> (value, nbytes)``, least recently used evicted past ``max_bytes``; a value asked
    for while it is being computed is awaited, not computed again. Used on the event loop only
    (the computation itself runs in the pool)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._pending: dict[str, asyncio.Future] = {}
        self.nbytes = 0
        self.computed = 0  # how many values were computed (tests: identical requests, once)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str):
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: str, value, nbytes: int) -> None:
        if key in self._items:
            self.nbytes -= self._items.pop(key)[1]
        self._items[key] = (value, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, (_, n) = self._items.popitem(last=False)
            self.nbytes -= n

    async def get_or_compute_async(self, key: str, compute) -> Any:
        """Like :meth:`get_or_compute` with ``await compute()`` (which returns ``(value,
        nbytes)``) instead of a call in the pool."""
        value = self.get(key)
        if value is not None:
            return value
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            value, nbytes = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._pending.pop(key, None)
        self.computed += 1
        self.put(key, value, nbytes)
        future.set_result(value)
        return value

    async def get_or_compute(self, key: str, compute: Callable[..., tuple[Any, int]], *args,
                             executor=None):
        """The value of ``key``: stored, being computed (awaited), or ``compute(*args)`` — which
        returns ``(value, nbytes)`` — in ``executor`` (by default the thread pool)."""
        loop = asyncio.get_running_loop()
        return await self.get_or_compute_async(
            key, lambda: loop.run_in_executor(executor or pool(), compute, *args))


_POOL: ThreadPoolExecutor | None = None
_FRAMES: Executor | None = None
_RUNS: SharedResults | None = None
_PAGES: SharedResults | None = None
_PI: SharedResults | None = None
_SNAPSHOTS: SharedResults | None = None


def pool() -> ThreadPoolExecutor:
    """Threads for the pages' building and the π maps (numba releases the GIL there)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="class-mode")
    return _POOL


def frame_workers() -> Executor:
    """Where frames are computed: ``SGD_ATLAS_CLASS_WORKERS`` worker processes (default 2).
    A frame is ≈ 4 ms of GIL-bound Python (1, 2 or 4 threads of one process gave 167, 217 and
    152 frames/s); in worker processes it runs on both cores beside the server's loop, which
    answers the requests. Workers hold nothing: a request's parent state goes to whichever
    is free and the new state comes back to the server's store. ``SGD_ATLAS_CLASS_WORKERS=0``
    computes in one thread of the server instead (tests, debugging)."""
    global _FRAMES
    if _FRAMES is None:
        n = int(os.environ.get("SGD_ATLAS_CLASS_WORKERS", "2"))
        if n <= 0:
            _FRAMES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="class-frames")
        else:
            _FRAMES = ProcessPoolExecutor(max_workers=n, initializer=_worker_start,
                                          mp_context=multiprocessing.get_context("spawn"))
    return _FRAMES


async def in_worker(fn, *args):
    """``fn(*args)`` in :func:`frame_workers`; a worker that died is replaced (the states are
    the server's: nothing is lost but the frame, which the student asks again)."""
    global _FRAMES
    try:
        return await asyncio.get_running_loop().run_in_executor(frame_workers(), fn, *args)
    except BrokenProcessPool:
        log.exception("a frame worker of the class mode died; starting new ones")
        _FRAMES = None
        raise BadRequest("The server restarted its computations: try again.") from None


def _worker_start() -> None:
    """In the frame worker: Ctrl-C is the server's to handle (the worker ends with it: its
    requests' pipe closes), the kernels are loaded from numba's cache, start-up objects are
    kept out of the full garbage collections."""
    import signal

    from engine.warmup import compile_all

    from .jobs import freeze_startup_objects

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    compile_all()
    freeze_startup_objects()


def _ping() -> tuple[int, int]:
    return os.getpid(), 0


def snapshots() -> SharedResults:
    """The runs' states (snapshots) of this server process, least recently used
    dropped past ``SGD_ATLAS_CLASS_BYTES`` of arrays (default 32 MiB; a class of 60 playing
    needs its 60 latest states, ~50 kB each for 8 trajectories)."""
    global _SNAPSHOTS
    if _SNAPSHOTS is None:
        _SNAPSHOTS = SharedResults(int(os.environ.get("SGD_ATLAS_CLASS_BYTES", 32 * 2**20)))
    return _SNAPSHOTS


def stores() -> tuple[SharedResults, SharedResults, SharedResults]:
    """(frames' answers, pages, π maps) of this server process. Answers are kept for identical
    requests arriving together or soon after (16 MiB: ~200 frames); the states themselves are
    in :func:`snapshots`."""
    global _RUNS, _PAGES, _PI
    if _RUNS is None:
        _RUNS, _PAGES, _PI = SharedResults(16 * 2**20), SharedResults(64 * 2**20), SharedResults(32 * 2**20)
    return _RUNS, _PAGES, _PI


def reset_stores() -> None:
    """Forget every stored run, page, π map and view, and stop the frame worker (tests)."""
    global _RUNS, _PAGES, _PI, _SNAPSHOTS, _FRAMES
    if _FRAMES is not None:
        _FRAMES.shutdown(wait=False, cancel_futures=True)
    _RUNS = _PAGES = _PI = _SNAPSHOTS = _FRAMES = None
    from . import classapi

    classapi.reset()


# -- validated inputs ---------------------------------------------------------------------------
def read_query(arguments: dict[str, list[bytes]], raw_length: int = 0) -> dict[str, str]:
    """A request's query as ``{name: last value}`` (text), refusing oversized requests."""
    if raw_length > MAX_QUERY:
        raise BadRequest(f"The request is too long ({raw_length} bytes; at most {MAX_QUERY}).")
    out = {}
    for name, values in arguments.items():
        if values:
            out[name[:40]] = values[-1].decode("utf-8", "replace")[:1000]
    return out


def fresh_run(query: dict) -> tuple[TrajectoryRun, list[str]]:
    """A run at step 0 from the page's defaults, the link's preset, then its values — the
    order of :meth:`app.pages.base.Page.apply_query`."""
    model = EnsembleParams()
    run = TrajectoryRun(model=model)
    notices = apply_link(SLUG, [(model, MODEL_FIELDS + START_FIELDS), (run, RUN_FIELDS)], query)
    run.reset()  # a fresh start with the link's values, without "restarted" notices
    return run, notices


def run_key(parent: str, query: dict, action: str) -> str:
    """The name of the state a request leads to: its parent, its inputs and its action."""
    inputs = {k: query[k] for k in (*FIELDS, "preset", "lock", "hide") if k in query}
    payload = json.dumps([parent, action, canonical(inputs)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def values_of(run: TrajectoryRun) -> dict:
    m = run.model
    return {**{f: getattr(m, f) for f in MODEL_FIELDS + START_FIELDS},
            **{f: getattr(run, f) for f in RUN_FIELDS}}


# -- what a browser receives --------------------------------------------------------------------
def encode(columns: dict[str, dict]) -> dict:
    """Columns for JSON: numbers as base64 little-endian float32 (``{"f4": …}``; NaN survives,
    unlike in JSON), an image column (a list holding one 2-D array) with its ``shape`` — RGBA
    images (uint32) as ``{"u4": …}`` —, text as lists."""
    out = {}
    for name, cols in columns.items():
        out[name] = {col: _encode_column(values) for col, values in cols.items()}
    return out


def _encode_column(values):
    first = values[0] if isinstance(values, (list, tuple)) and len(values) == 1 else None
    if isinstance(first, np.ndarray) and first.ndim == 2:  # an image
        kind = "u4" if first.dtype.kind in "ui" and first.dtype.itemsize == 4 else "f4"
        arr = np.ascontiguousarray(first, dtype="<u4" if kind == "u4" else "<f4")
        return {kind: base64.b64encode(arr.tobytes()).decode(), "shape": list(arr.shape)}
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub" and arr.ndim == 1:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        return {"f4": base64.b64encode(arr.tobytes()).decode()}
    return [str(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]


def frame_payload(run: TrajectoryRun, key: str, notices: list[str]) -> dict:
    """Everything a class page draws after one request (the columns of
    :func:`app.figures.live.live_columns`, the counter, the notices and the changes)."""
    from .figures.live import live_columns, loss_title

    ds = run.to_dataset()
    m = run.model
    return {
        "run": key, "step": run.step, "running": run.n_running, "n": m.n_trajectories,
        "capped": run.capped, "diverged": bool(run.diverged), "message": run.message,
        "events": [[int(s), t] for s, t in run.events], "values": values_of(run),
        "notices": notices, "columns": encode(live_columns(ds)),
        "titles": {"loss": loss_title(ds)}, "pi": {"sigma2": m.sigma2, "teacher": m.teacher},
    }


def _changed(run: TrajectoryRun, query: dict) -> dict:
    """The query's values that differ from the run's as written (a class's requests carry all
    fourteen values; validating only the changed ones saves most of a millisecond a frame)."""
    now = values_of(run)
    return {k: v for k, v in query.items() if k in now and str(v) != str(now[k])}


def compute_frame(parent: dict | None, query: dict, action: str, key: str):
    """((payload bytes, the new state's snapshot), its size) for a request; runs in the pool.

    ``parent`` is the snapshot (:meth:`app.state.TrajectoryRun.snapshot`) the request starts
    from, None for a fresh run from the link's values."""
    teacher = {}
    if parent is None:
        run, notices = fresh_run(query)
        locked, hidden, more = teacher_fields(query, FIELDS, ADVANCED, EXTRAS)
        teacher, notices = {"lock": locked, "hide": hidden}, notices + more
        values = values_of(run)
        held = {n: values[n] for n in locked}
    else:
        run, notices, held = TrajectoryRun.restore(parent), [], parent["locked"]
        changed = _changed(run, query)
        # a teacher's lock holds on the server too: a tampered request cannot move it
        free = {k: v for k, v in changed.items() if k not in held}
        notices += apply_values(run.model, free, MODEL_FIELDS + START_FIELDS)
        notices += apply_values(run, free, RUN_FIELDS)
        for name in sorted(set(changed) & set(held)):
            owner = run.model if name in run.model.param else run
            if coerce(owner, name, changed[name])[0] != held[name]:
                notices.append(f"{owner.param[name].label or name} is fixed by this lesson's "
                               f"link: kept {held[name]}.")
    if action == "reset":
        run.reset("Reset: new start from step 0 with the same seed.")
    elif action == "step":
        if run.diverged:  # Play again after a blow-up: continue with the trajectories still running
            run.diverged, run.message = False, ""
        run.advance(cache=False)  # states are shared here; chunks are not worth caching
    body = json.dumps(frame_payload(run, key, notices) | teacher, separators=(",", ":"),
                      allow_nan=False).encode()
    snap = run.snapshot() | {"locked": held}
    return (body, snap), run.nbytes()


def frame_work(parent: dict | None, query: dict, action: str, key: str):
    """One frame, in a frame worker: :func:`compute_frame` from the snapshot ``parent``."""
    return compute_frame(parent, query, action, key)


def export_work(snap: dict, link: str) -> bytes:
    """A stored run as netCDF, in a frame worker."""
    return export_bytes(TrajectoryRun.restore(snap), link)


async def frame(query: dict) -> bytes:
    """The JSON answer of ``/api/live/frame`` for a validated query; identical requests (a
    class following one link) are computed once."""
    action = query.get("action", "none")
    if action not in ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}, not {action[:40]!r}.")
    parent_key = query.get("run", "")
    if parent_key and (len(parent_key) != 32 or not set(parent_key) <= _RUN_ID):
        raise BadRequest("run must be the 32-hex-digit name of a run this server gave out.")
    parent = None
    if parent_key:
        parent = snapshots().get(parent_key)  # never modified, only restored from
        if parent is None:
            raise Gone("This run is no longer on the server (it was restarted or the run was "
                       "evicted to save memory): press Reset to start again.")
    key = run_key(parent_key, query, action)

    async def compute():
        (body, snap), size = await in_worker(frame_work, parent, query, action, key)
        snapshots().put(key, snap, size)
        return body, len(body)

    return await stores()[0].get_or_compute_async(key, compute)


async def export(query: dict) -> bytes:
    """The netCDF answer of ``/api/live/export.nc``: the stored run ``run`` with ``link``."""
    key = query.get("run", "")
    snap = snapshots().get(key) if len(key) == 32 else None
    if snap is None:
        raise Gone("This run is no longer on the server: press Reset, then export again.")
    return await in_worker(export_work, snap, query.get("link", ""))


def inset_pi(sigma2: float, teacher: str):
    """The stability page's π map at ``sigma2`` (its cache entry, :meth:`StabilityParams.
    pi_map_task`) for the "where am I" inset; None for a teacher without one."""
    if teacher != "paper000":
        return None
    return sweeps.run_tasks([StabilityParams(sigma2=sigma2).pi_map_task()])[0]


async def pi_map(query: dict) -> bytes:
    """The JSON answer of ``/api/live/pi``: the "where am I" π map at σ² for the teacher."""
    from .figures.live import pi_columns

    probe = EnsembleParams()
    notices = apply_values(probe, query, ("sigma2", "teacher"))
    sigma2, teacher = probe.sigma2, probe.teacher
    key = json.dumps([repr(float(sigma2)), teacher])

    def compute():
        cols, title = pi_columns(inset_pi(sigma2, teacher), teacher)
        body = json.dumps({"columns": encode(cols), "title": title, "notices": notices,
                           "sigma2": sigma2, "teacher": teacher}, separators=(",", ":")).encode()
        return body, len(body)

    return await stores()[2].get_or_compute(key, compute)


def export_bytes(run: TrajectoryRun, link: str) -> bytes:
    from .pages.share import netcdf_export

    return netcdf_export({"trajectories": run.to_dataset()}, link)


# -- the page, built once per (page, preset) -------------------------------------------------------
def _control(obj: param.Parameterized, name: str, names: dict | None = None) -> str:
    """One labelled control generated from the parameter's declaration (label, bounds, soft
    bounds, step, choices, tooltip): the class mode's counterpart of ``pn.Param``; ``names``
    (label -> value) for a selector whose choices need a label."""
    p = obj.param[name]
    value = getattr(obj, name)
    label = html.escape(p.label or name)
    tip = html.escape(p.doc or "", quote=True)
    attrs = f'data-param="{name}" id="ctl-{name}" title="{tip}"'
    if isinstance(p, param.Boolean):
        return (f'<div class="ctl atlas-{name}"><label class="check" for="ctl-{name}">'
                f'<input type="checkbox" {attrs} data-bool{" checked" if value else ""}> '
                f'{label}</label></div>')
    if isinstance(p, param.ListSelector):  # one box per choice; the value is "a,b,…"
        objects = p.names or {str(o): o for o in p.objects}
        boxes = "".join(
            f'<label class="check"><input type="checkbox" value="{html.escape(str(v), quote=True)}"'
            f'{" checked" if v in value else ""}> {html.escape(str(k))}</label>'
            for k, v in objects.items())
        joined = html.escape(",".join(str(v) for v in value), quote=True)
        return (f'<div class="ctl atlas-{name}"><label for="ctl-{name}">{label}</label>'
                f'<div class="checks" data-list="{name}" role="group" aria-label="{label}" '
                f'title="{tip}">{boxes}</div>'
                f'<input type="hidden" data-param="{name}" id="ctl-{name}" value="{joined}"></div>')
    if isinstance(p, param.Selector):
        objects = names or p.names or {str(o): o for o in p.objects}  # label -> value
        options = "".join(
            f'<option value="{html.escape(str(v), quote=True)}"{" selected" if v == value else ""}>'
            f"{html.escape(str(k))}</option>" for k, v in objects.items())
        return (f'<div class="ctl atlas-{name}"><label for="ctl-{name}">{label}</label>'
                f'<select {attrs}>{options}</select></div>')
    lo, hi = p.bounds
    slo, shi = p.softbounds or p.bounds
    slo, shi = max(slo, lo) if lo is not None else slo, min(shi, hi) if hi is not None else shi
    integer = isinstance(p, param.Integer)
    step = p.step if p.step and not integer else (1 if integer else (shi - slo) / 200)
    box = (f'<input type="number" {attrs} value="{value}" step="{"1" if integer else "any"}"'
           + (f' min="{lo}"' if lo is not None else "") + (f' max="{hi}"' if hi is not None else "")
           + ">")
    slider = "" if name == "seed" else (
        f'<input type="range" data-slider="{name}" aria-label="{label}" min="{slo}" max="{shi}" '
        f'step="{step}" value="{min(max(value, slo), shi)}">')
    return (f'<div class="ctl atlas-{name}"><label for="ctl-{name}">{label}</label>'
            f'<div class="pair">{slider}{box}</div></div>')


def _nav(slug: str) -> str:
    from .pages import PAGES

    return "<nav class='atlas-nav' data-hide='nav'>" + "".join(
        f"<a href='class?page={s}' class='{'active' if s == slug else ''}'>{html.escape(t)}</a>"
        for s, (t, _) in PAGES.items()) + "</nav>"


def _part(name: str) -> str:
    """A piece every class page shares (``assets/<name>``) without its comment line, its
    {{…}} fields filled by the caller: ``class-top.html`` (head, header with the menu button,
    the start of the sidebar with the navigation) and ``class-bottom.html`` (the end of a page
    with figures: its configuration, the figures' script, its code)."""
    return (ASSETS / name).read_text(encoding="utf-8").split("\n", 1)[1]


def _fill(template: str, fill: dict[str, str]) -> bytes:
    """``assets/<template>`` with each ``{{key}}`` replaced by ``fill[key]``, in order (a
    value may hold fields filled later: the top and the bottom come first)."""
    page = (ASSETS / template).read_text(encoding="utf-8")
    for k, v in fill.items():
        page = page.replace("{{" + k + "}}", v)
    return page.encode()


def render_page(template: str, slug: str, scripts: tuple[str, ...], config: dict, preset: str,
                **fill: str) -> bytes:
    """A class page with figures: ``assets/<template>`` with the top, the sidebar's head (the
    teacher's lock note, the menu of the page's presets, ``preset`` chosen), the bottom and ``fill``;
    ``config`` (with the share buttons' code added) and ``scripts`` (``assets/js/<name>.js``,
    after class-menu and class-common) end the page."""
    from .pages import PAGES
    from .pages.share import browser_code

    config = {**config, "name": f"sgd-atlas-{slug}", "png_js": browser_code("png-export"),
              "copy_js": browser_code("copy-link")}
    js = "\n".join((ASSETS / "js" / f"{n}.js").read_text(encoding="utf-8")
                   for n in ("class-menu", "class-common", *scripts))
    presets = "".join(f'<option value="{html.escape(p["id"], quote=True)}"'
                      f'{" selected" if p["id"] == preset else ""}>{html.escape(p["title"])}'
                      "</option>" for p in load_presets().get(slug, []))
    head = ('<div id="lock-note" class="lock-note" hidden></div>\n'
            '  <div class="ctl" data-hide="presets"><label for="preset">Preset</label>\n'
            '    <select id="preset"><option value="">— choose a preset —</option>'
            f"{presets}</select></div>")
    fill = {"top": _part("class-top.html"), "bottom": _part("class-bottom.html"), "sidebar_head": head,
            "title": html.escape(f"SGD Atlas · {PAGES[slug][0]} · class"),
            "css": (ASSETS / "class.css").read_text(encoding="utf-8"), "resources": bokeh_js(),
            "nav": _nav(slug), "config": json.dumps(config).replace("</", "<\\/"), "js": js,
            **fill}
    return _fill(template, fill)


def _markdown(text: str) -> str:
    """The presets' one-line Markdown (``**bold**``, ``*italic*``) as HTML, escaped first."""
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)\*(?!\w)", r"<i>\1</i>", out)


def bokeh_js() -> str:
    """The ``<script>`` of BokehJS alone, from this server: Panel registers its extensions'
    bundles (tabulator, luxon, module shims: 563 kB a student) with Bokeh's resources, and the
    class pages use none of them."""
    from bokeh.resources import Resources

    return "".join(f'<script src="{u}"></script>' for u in
                   Resources(mode="server", root_url="./", components=["bokeh"]).js_files
                   if u.split("?")[0].endswith("/bokeh.min.js"))


def build_live_page(preset: str = "") -> bytes:
    """The live page's class-mode HTML for ``preset`` (the page's defaults for ""): figures of
    :mod:`app.figures.live` drawn with the preset's start, controls generated from the state's
    parameters, and the browser code; built once per process per preset."""
    from bokeh.embed import components

    from .figures.live import (
        WHERE_TEXT,
        live_columns,
        live_figures,
        pi_columns,
        set_columns,
    )
    from .pages.trajectories import TrajectoriesPage

    query = {"preset": preset} if preset else {}
    run, _ = fresh_run(query)
    figures = live_figures()
    ds = run.to_dataset()
    pi_cols, pi_title = pi_columns(inset_pi(run.model.sigma2, run.model.teacher), run.model.teacher)
    set_columns(figures, live_columns(ds) | pi_cols, {"where": pi_title})
    script, divs = components(figures)
    found = find_preset(SLUG, preset)
    prompt = TrajectoriesPage.default_prompt if found is None else preset_prompt(found)
    m = run.model
    sections = [("Model", m, MODEL_FIELDS), ("Start", m, START_FIELDS), ("Animation", run, RUN_FIELDS)]
    sidebar = "".join(
        f'<section class="group"><h4>{title}</h4>' + "".join(_control(obj, f) for f in fields)
        + "</section>" for title, obj, fields in sections)
    config = {"slug": SLUG, "preset": preset, "fields": list(FIELDS), "advanced": list(ADVANCED),
              "extras": list(EXTRAS), "values": values_of(run),
              "labels": {f: (m.param[f].label if f in m.param else run.param[f].label) or f
                         for f in FIELDS},
              "pi": {"sigma2": m.sigma2, "teacher": m.teacher}}
    return render_page(
        "class.html", SLUG, ("class-live",), config, preset, sidebar=sidebar,
        prompt=_markdown(prompt), where_text=_markdown(WHERE_TEXT), plot_w=divs["w"],
        plot_v=divs["v"], plot_loss=divs["loss"], plot_deg=divs["deg"], plot_where=divs["where"],
        bokeh_script=script, steps=f"{run.step:,}", running=f"{run.n_running} running")


#: pages whose class mode is a static page: their text, built once (no computation, no state)
STATIC = ("about", "gallery")


def build_static_page(slug: str) -> bytes:
    """The About page or the presets gallery as one static page: the Panel page's text (its
    Markdown, the same cards), the class pages' navigation and look, no Bokeh at all."""
    from markdown_it import MarkdownIt

    from engine import engine_version

    from .pages import PAGES
    from .pages.about import TEXT
    from .pages.gallery import CARD_CSS, gallery_html

    if slug == "about":  # its links to other pages (``?page=…``) stay in the class mode
        content = MarkdownIt("commonmark", {"html": False}).enable("table").render(TEXT)
    else:
        content = gallery_html()
    fill = {
        "top": _part("class-top.html"), "resources": "",
        "title": html.escape(f"SGD Atlas · {PAGES[slug][0]} · class"),
        "css": (ASSETS / "class.css").read_text(encoding="utf-8") + CARD_CSS,
        "nav": _nav(slug), "note": html.escape(f"engine version {engine_version()}"),
        "content": content, "js": (ASSETS / "js" / "class-menu.js").read_text(encoding="utf-8"),
    }
    return _fill("class-static.html", fill)


async def class_page(slug: str, preset: str) -> bytes:
    """The class page of ``slug`` and ``preset`` (built once per process: the live page, the
    map and curve pages of :mod:`app.classpages`, or a static page)."""
    from .classpages import SPEC_BUILDERS, build_class_page

    def sized(b: bytes):
        return b, len(b)

    if slug in STATIC:
        return await stores()[1].get_or_compute(slug, lambda: sized(build_static_page(slug)))
    preset = preset if find_preset(slug, preset) else ""  # unknown: the defaults, and the API's notice
    if slug == SLUG:
        return await stores()[1].get_or_compute(f"{slug}|{preset}", lambda: sized(build_live_page(preset)))
    assert slug in SPEC_BUILDERS, slug

    async def build():  # in a worker process: ~1 s of Bokeh serialisation would hold the GIL
        body = await in_worker(build_class_page, slug, preset)
        return body, len(body)

    return await stores()[1].get_or_compute_async(f"{slug}|{preset}", build)


# -- tornado handlers --------------------------------------------------------------------------
class _Handler(RequestHandler):
    """GET only; every error a JSON message (no traceback, whatever happens)."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def query(self) -> dict[str, str]:
        return read_query(self.request.query_arguments, len(self.request.query or ""))

    def write_error(self, status_code: int, **kwargs) -> None:
        reason = {405: "Only GET is served here.", 404: "Not found."}.get(
            status_code, "The request could not be answered; details are in the server log.")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, (BadRequest, Gone)):
            reason = str(exc.args[0]) if exc.args else reason
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": reason, "status": status_code}))

    async def answer(self, make, content_type: str = "application/json; charset=utf-8",
                     **headers: str) -> None:
        """``await make(query)`` as the answer (its errors as JSON, with their status)."""
        try:
            body = await make(self.query())
        except BadRequest as exc:
            self.send_error(exc.status, exc_info=(type(exc), exc, None))
            return
        except Gone as exc:
            self.send_error(404, exc_info=(type(exc), exc, None))
            return
        except Exception:
            log.exception("class-mode request failed: %s", self.request.uri[:300])
            self.send_error(500)
            return
        self.set_header("Content-Type", content_type)
        for name, value in headers.items():
            self.set_header(name.replace("_", "-"), value)
        self.finish(body)


class FrameHandler(_Handler):
    async def get(self) -> None:
        await self.answer(frame)


class PiHandler(_Handler):
    async def get(self) -> None:
        await self.answer(pi_map)


class ThumbnailHandler(_Handler):
    """``/class/thumbnail/<page>.jpg``: the gallery's screenshots, made once per process."""

    def get(self, name: str) -> None:
        from .pages.gallery import thumbnail

        image = thumbnail(name) if name.isalpha() else None
        if image is None:
            self.send_error(404)
            return
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "max-age=3600")
        self.finish(image)


class ExportHandler(_Handler):
    async def get(self) -> None:
        await self.answer(export, "application/x-netcdf",
                          Content_Disposition=f'attachment; filename="sgd-atlas-{SLUG}.nc"')


class ClassHandler(_Handler):
    """``/class?page=<slug>&…``: the page's class mode (slugs without one yet: their Panel page)."""

    async def get(self) -> None:
        from .pages import DEFAULT_PAGE, PAGES

        if self.request.path.endswith("/"):  # /class/: its relative links would miss the API
            self.redirect("../class" + (f"?{self.request.query}" if self.request.query else ""))
            return
        try:
            query = self.query()
        except BadRequest as exc:
            self.send_error(400, exc_info=(type(exc), exc, None))
            return
        slug = query.get("page", DEFAULT_PAGE)
        if slug not in class_slugs():
            target = urlencode(query) if slug in PAGES else urlencode({**query, "page": DEFAULT_PAGE})
            self.redirect(f"app?{target}" if slug in PAGES else f"class?{target}")
            return
        try:
            body = await class_page(slug, query.get("preset", ""))
        except Exception:
            log.exception("building the class page failed")
            self.send_error(500)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)


def class_slugs() -> tuple[str, ...]:
    """Every page with a class mode: the live page, the map and curve pages, the static ones."""
    from .classpages import SPEC_BUILDERS

    return (SLUG, *SPEC_BUILDERS, *STATIC)


def routes() -> list[tuple[str, type]]:
    """The class mode's tornado routes (Bokeh adds the server's ``--prefix``): the pages, the
    live page's API and every page's computations (:mod:`app.classapi`)."""
    from . import classapi

    return [(r"/class/?", ClassHandler), (r"/class/thumbnail/([a-z]{1,20})\.jpg", ThumbnailHandler),
            (r"/api/live/frame", FrameHandler),
            (r"/api/live/pi", PiHandler), (r"/api/live/export\.nc", ExportHandler),
            *classapi.routes()]


async def warm_up() -> float:
    """Build the live page of every preset (and its π maps) and the static pages before the
    first student comes, on the server's loop once it has started (the building runs in the
    pool); returns the seconds it took."""
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(in_worker(_ping) for _ in range(4)))  # the workers start now
        # the live page of every preset and the static pages; the map and curve pages are
        # built when first asked for (~1 s each in a worker process, which also computes the
        # live page's frames: twenty of them at start-up delayed the first frames ~20 s)
        for preset in ["", *(p["id"] for p in load_presets().get(SLUG, []))]:
            await class_page(SLUG, preset)
        for slug in STATIC:
            await class_page(slug, "")
    except Exception:
        log.exception("class-mode warm-up failed (pages are built on first request instead)")
    return time.perf_counter() - t0

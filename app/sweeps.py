"""Large sweeps in chunks: on this machine by default, on a Dask distributed cluster when one is
configured — ``SGD_ATLAS_SCHEDULER=tcp://host:8786`` in the environment, or the command line's
``--scheduler``.

* :func:`phase_map` splits a λ–μ map (paper 002 Prop. 1) into blocks of η rows,
  :func:`pullback_cloud` a pullback cloud (paper 000 Fig. 4) into blocks of paths; xarray joins
  the blocks (``xr.concat`` / :func:`engine.pullback.combine_clouds`). Rows of a map and paths
  of a cloud do not depend on each other (the noise is counter based and shared by seed), so
  the joined result is identical to computing it at once, wherever the blocks ran.
* :func:`run_tasks` computes a page's list of tasks (e.g. one escape-time point per σ²)
  through the shared cache; with a cluster, the missing ones are submitted together and run
  side by side.

Workers need this package installed (the same version: results are keyed on the engine's
source digest, and a worker with other code would compute other numbers). Without a cluster,
or when it cannot be reached, everything runs here, chunk after chunk, so progress and
cancellation stay fine-grained.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import xarray as xr

from engine import pullback, saddle

from .cache import get_cache, make_key

log = logging.getLogger(__name__)
SCHEDULER_ENV = "SGD_ATLAS_SCHEDULER"
MAP_ROWS = 16  # η rows per block of a phase map
CLOUD_PATHS = 12_500  # paths per block of a pullback cloud

_lock = threading.Lock()
_address: str | None = None  # set by configure(); None: the environment decides
_client = None
_client_address: str | None = None
_failed_until = 0.0


class Cancelled(Exception):
    """A sweep stopped because ``cancel()`` returned true."""


def configure(address: str | None) -> None:
    """Use the cluster at ``address`` (``""``: none, run locally; None: the environment)."""
    global _address, _failed_until
    with _lock:
        _address = address
        _failed_until = 0.0
        _close_client()


def scheduler_address() -> str | None:
    addr = _address if _address is not None else os.environ.get(SCHEDULER_ENV, "")
    return addr.strip() or None


def _close_client() -> None:
    global _client, _client_address
    if _client is not None:
        try:
            _client.close()
        except Exception:  # pragma: no cover - closing a dead connection
            pass
    _client, _client_address = None, None


def get_client():
    """The ``distributed.Client`` of the configured cluster, or None (no cluster configured, or
    it could not be reached in the last minute: then the work runs here, and the log says so)."""
    global _client, _client_address, _failed_until
    addr = scheduler_address()
    if addr is None:
        return None
    with _lock:
        if _client is not None and _client_address == addr and _client.status == "running":
            return _client
        if time.monotonic() < _failed_until:
            return None
        _close_client()
        try:
            from distributed import Client

            _client = Client(addr, set_as_default=False, timeout=10)
            _client_address = addr
            return _client
        except Exception as exc:
            _failed_until = time.monotonic() + 60.0
            log.warning("cannot reach the Dask scheduler at %s (%s); computing locally", addr, exc)
            return None


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


def _call(fn: Callable, kwargs: dict, progress=None, cancel=None, **extra) -> xr.Dataset:
    """``fn(**kwargs)`` with whichever of progress/cancel/extra keywords it takes."""
    kw = dict(kwargs)
    for name, value in (("progress", progress), ("cancel", cancel), *extra.items()):
        if value is not None and _accepts(fn, name):
            kw[name] = value
    return fn(**kw)


def _wait_all(client, futures: list, cancel, on_done: Callable[[int, Any], None]) -> list:
    """Results of ``futures`` in order; ``on_done(i, result)`` as each finishes; cancelling
    releases the futures (the cluster drops work nobody waits for)."""
    results: list = [None] * len(futures)
    pending = dict(enumerate(futures))
    try:
        while pending:
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            finished = [i for i, f in pending.items() if f.done()]
            if not finished:
                time.sleep(0.05)
                continue
            for i in finished:
                results[i] = pending.pop(i).result()  # re-raises a worker's exception here
                on_done(i, results[i])
        return results
    finally:
        if pending:
            client.cancel(list(pending.values()))


def map_chunks(fn: Callable[..., xr.Dataset], chunks: Sequence[dict], *, progress=None,
               cancel=None) -> list[xr.Dataset]:
    """``[fn(**kw) for kw in chunks]`` — here, one after the other, or on the cluster."""
    n = len(chunks)
    client = get_client()
    if client is None:
        out = []
        for i, kw in enumerate(chunks):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            inner = None if progress is None else (lambda d, t, i=i: progress(i + d / max(t, 1), n))
            out.append(_call(fn, kw, inner, cancel))
            if progress is not None:
                progress(i + 1, n)
        return out
    futures = [client.submit(fn, key=f"{fn.__name__}-{make_key(fn.__name__, kw)}", pure=False, **kw)
               for kw in chunks]
    count = [0]

    def done(i, _):
        count[0] += 1
        if progress is not None:
            progress(count[0], n)

    return _wait_all(client, futures, cancel, done)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def phase_map(lr, mu, batch_size: int = 1, n_data=None, seed: int = 0, *, progress=None,
              cancel=None, rows: int = MAP_ROWS) -> xr.Dataset:
    """:func:`engine.saddle.lyapunov_exponents` on the grid ``lr`` × ``mu``, in blocks of
    ``rows`` η values (paper 002 Prop. 1; identical to the one-call result)."""
    lr = np.atleast_1d(np.asarray(lr, dtype=float))
    chunks = [dict(lr=lr[a:b], mu=mu, batch_size=batch_size, n_data=n_data, seed=seed)
              for a, b in _blocks(lr.size, max(int(rows), 1))]
    parts = map_chunks(saddle.lyapunov_exponents, chunks, progress=progress, cancel=cancel)
    return xr.concat(parts, dim="lr", data_vars="all", combine_attrs="override")


def pullback_cloud(sigma2: float, pullback_time: int, lr: float = 0.1, n_points: int = 100_000,
                   seed: int = 0, *, progress=None, cancel=None,
                   paths: int = CLOUD_PATHS, **kwargs) -> xr.Dataset:
    """:func:`engine.pullback.pullback_cloud` in blocks of ``paths`` paths (paper 000 Fig. 4;
    identical to the one-call result)."""
    n = int(n_points)
    chunks = [dict(sigma2=sigma2, pullback_time=pullback_time, lr=lr, n_points=b - a, seed=seed,
                   first=a, **kwargs) for a, b in _blocks(n, max(int(paths), 1))]
    try:
        parts = map_chunks(pullback.pullback_cloud, chunks, progress=progress, cancel=cancel)
    except pullback.Cancelled as exc:
        raise Cancelled(str(exc)) from None
    return pullback.combine_clouds(parts)


#: functions that split themselves (their blocks go to the cluster, not the whole call)
CHUNKED = (phase_map, pullback_cloud)


def run_tasks(tasks: Iterable[tuple[str, dict, Callable]], *, progress=None, cancel=None,
              on_result: Callable[[int, xr.Dataset], None] | None = None,
              on_partial: Callable[[int, xr.Dataset], None] | None = None) -> list[xr.Dataset]:
    """Compute ``(kind, inputs, fn)`` tasks through the shared cache, in order.

    Locally: one after the other; ``progress(done, total)`` counts tasks (with fractions from
    inside a task), ``on_partial(i, ds)`` passes a growing result of a streaming function.
    With a cluster: tasks not in the cache are submitted together and stored as they finish.
    ``on_result(i, ds)`` is called for each finished task (in order locally, as they finish on
    a cluster).
    """
    tasks = list(tasks)
    n = len(tasks)
    cache = get_cache()
    client = get_client()
    results: list = [None] * n

    def finish(i, ds):
        results[i] = ds
        if on_result is not None:
            on_result(i, ds)

    remote = []
    for i, (kind, kw, fn, *_) in enumerate(tasks):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        if client is not None and fn not in CHUNKED:
            ds = cache.lookup(kind, kw)
            if ds is None:
                remote.append(i)
                continue
        else:
            partial = None if on_partial is None else (lambda ds, i=i: on_partial(i, ds))
            inner = None if progress is None else (lambda d, t, i=i: progress(i + d / max(t, 1), n))
            ds = cache.get_or_compute(
                kind, kw, lambda fn=fn, kw=kw, inner=inner, partial=partial:
                _call(fn, kw, inner, cancel, on_partial=partial))
        finish(i, ds)
        if progress is not None:
            progress(sum(r is not None for r in results), n)
    if remote:
        futures = [client.submit(fn, key=f"{kind}-{make_key(kind, kw)}", **kw)
                   for kind, kw, fn, *_ in (tasks[i] for i in remote)]

        def done(j, ds):
            i = remote[j]
            kind, kw = tasks[i][:2]
            finish(i, cache.get_or_compute(kind, kw, lambda: ds))
            if progress is not None:
                progress(sum(r is not None for r in results), n)

        _wait_all(client, futures, cancel, done)
    return results

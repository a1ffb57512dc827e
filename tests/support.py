"""What several test modules need: a free loopback port, waiting for a condition, waiting
for a server's ``/liveness``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout: float = 60.0, step: float = 0.02) -> None:
    """Poll ``cond()`` every ``step`` seconds until it is true; AssertionError after
    ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(step)


def wait_serving(base: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Until the server at ``base`` answers ``/liveness``: True, or False once ``proc`` has
    exited or ``timeout`` seconds have passed."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/liveness", timeout=2):
                return True
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.3)


def run_async(coro):
    """``asyncio.run(coro)`` in a fresh thread: Playwright's sync API (the browser tests, in
    the same process) keeps an event loop running in the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def live_processes() -> dict[int, int]:
    """``{pid: parent pid}`` of every live (not zombie) process (Linux /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                out[int(entry)] = int(fields[1])
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a server and, e.g., the class mode's frame workers)."""
    procs, out, todo = live_processes(), [pid], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in procs.items() if pp == parent]
        out += kids
        todo += kids
    return out


@contextlib.asynccontextmanager
async def class_mode_server():
    """The class mode's routes (:func:`app.classmode.routes`) on a free loopback port; yields
    ``get(path, method="GET", body=None)``, which checks that no answer is a 500 or carries a
    traceback."""
    import tornado.web
    from tornado.httpclient import AsyncHTTPClient

    from app import classmode

    port = free_port()
    server = tornado.web.Application(classmode.routes()).listen(port, address="127.0.0.1")
    client = AsyncHTTPClient(force_instance=True)

    async def get(path: str, method: str = "GET", body=None):
        resp = await client.fetch(f"http://127.0.0.1:{port}{path}", method=method, body=body,
                                  raise_error=False, follow_redirects=False, request_timeout=60)
        assert resp.code != 500 and resp.code != 599, (path, resp.code, resp.body[:300])
        assert b"Traceback" not in (resp.body or b""), path
        return resp

    try:
        yield get
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()


class EngineRuns:
    """Watches every call of ``app.sweeps.run_tasks`` — how :class:`app.compute.Computation`
    runs its tasks on the engine — made while it is installed (``install(monkeypatch)``): per
    call, ``calls[i]["progress"]`` counts the engine's progress callbacks, ``["ended"]`` is a
    ``threading.Event`` set when the call returned or raised, ``["error"]`` what it raised
    (``app.sweeps.Cancelled`` / ``engine.pullback.Cancelled`` / ``RuntimeError("cancelled")``
    when it was stopped by its cancel callback) and ``["result"]`` what it returned."""

    def __init__(self):
        import threading

        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def install(self, monkeypatch) -> "EngineRuns":
        import threading

        from app import sweeps
        from app.compute import tasks_key

        real = sweeps.run_tasks

        def run_tasks(tasks, *, progress=None, cancel=None, **kw):
            rec = {"progress": 0, "ended": threading.Event(), "error": None, "result": None,
                   "key": tasks_key(tasks)}
            with self._lock:
                self.calls.append(rec)

            def counted(done, total):
                rec["progress"] += 1
                if progress is not None:
                    progress(done, total)

            try:
                rec["result"] = real(tasks, progress=counted, cancel=cancel, **kw)
                return rec["result"]
            except BaseException as exc:
                rec["error"] = exc
                raise
            finally:
                rec["ended"].set()

        monkeypatch.setattr(sweeps, "run_tasks", run_tasks)
        return self

    def all_ended(self, timeout: float) -> bool:
        """Whether every call so far has ended, waiting up to ``timeout`` seconds in all."""
        deadline = time.time() + timeout
        return all(rec["ended"].wait(max(deadline - time.time(), 0)) for rec in list(self.calls))

    def of(self, key: str) -> dict | None:
        """The last call running the computation with ``key``, if any."""
        with self._lock:
            found = [rec for rec in self.calls if rec["key"] == key]
        return found[-1] if found else None

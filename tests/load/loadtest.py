"""A classroom on one server: N students (protocol-level Bokeh sessions) move η on the live
trajectories page while a probe polls ``/liveness``.

Each student opens ``/app?page=trajectories`` with ``bokeh.client`` (the same websocket
protocol a browser speaks), then moves the η slider ``moves`` times with a think time in
between and waits, each time, until the server's re-rendered change list arrives in its copy of
the document. Reported: updates delivered/expected, update latency p50/p95/p99, ``/liveness``
latency p50/p99/max during the moves, tracebacks and errors in the server log, and the server's
resident memory before, at the peak and after every wave.

    python -m tests.load.loadtest --sessions 30 --moves 10 --waves 3

Run from the repository root; the server is started on 127.0.0.1 with the same command the
README gives, in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tests.support import free_port, process_tree, wait_serving

ROOT = Path(__file__).resolve().parents[2]


def _rss_one(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def rss_mib(pid: int) -> float:
    """Resident set size of a process and its descendants (Linux /proc)."""
    return sum(_rss_one(p) for p in process_tree(pid))


def _cpu_one(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live descendants (Linux /proc)."""
    return sum(_cpu_one(p) for p in process_tree(pid))


class Server:
    """``panel serve app`` on a free loopback port, its log in ``log_path``."""

    def __init__(self, log_path: Path, extra: list[str] = ()):
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "w")
        cmd = [sys.executable, "-m", "panel", "serve", "app", "--address", "127.0.0.1",
               "--port", str(self.port), "--allow-websocket-origin", f"127.0.0.1:{self.port}",
               "--liveness", "--num-procs", "1", *extra]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        if wait_serving(self.base, self.proc, 180):
            return
        self.stop()
        raise RuntimeError("the server did not start:\n" + log_path.read_text()[-3000:])

    @property
    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def log_problems(self) -> dict:
        text = self.log_path.read_text(errors="replace")
        return {"tracebacks": text.count("Traceback (most recent call last)"),
                "error_lines": sum(1 for line in text.splitlines() if " ERROR" in line or
                                   line.startswith("ERROR")),
                "excerpt": [line for line in text.splitlines()
                            if "Traceback" in line or "ERROR" in line][:5]}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


class LivenessProbe(threading.Thread):
    """GET /liveness every ``period`` seconds; latencies in ms while ``recording``."""

    def __init__(self, base: str, period: float = 0.1):
        super().__init__(daemon=True)
        self.url, self.period = f"{base}/liveness", period
        self.samples: list[tuple[float, float]] = []  # (start time, latency ms)
        self.failures: list[float] = []
        self._stop = threading.Event()

    def window(self, t0: float, t1: float) -> tuple[list[float], int]:
        """Latencies (ms) of the probes started in [t0, t1], and the failures there."""
        return ([dt for t, dt in self.samples if t0 <= t <= t1],
                sum(1 for t in self.failures if t0 <= t <= t1))

    def run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    r.read()
                ok = True
            except OSError:
                ok = False
            dt = 1000 * (time.perf_counter() - t0)
            if ok:
                self.samples.append((t0, dt))
            else:
                self.failures.append(t0)
            self._stop.wait(max(self.period - dt / 1000, 0.0))

    def stop(self) -> None:
        self._stop.set()


def waiting_frames(doc) -> int:
    """How many of the page's plot frames still wait for their plot (``Page.deferred``)."""
    return sum("atlas-drawing" in str(getattr(m, "text", "")) for m in list(doc.models))


def _find(doc, predicate):
    for model in doc.models:
        try:
            if predicate(model):
                return model
        except Exception:
            continue
    return None


class Student:
    """One protocol-level session of the trajectories page (or of another ``page``, opened
    with ``arguments``: then there is no η slider to move).

    The session's IOLoop runs in its own thread for the session's whole life (bokeh.client's
    loop must not be stopped in the middle of a message: a restarted loop would read the
    socket twice and lose the framing); moves are handed to it with ``add_callback`` and
    answered through a document change callback."""

    def __init__(self, base: str, seed: int, page: str = "trajectories",
                 arguments: dict | None = None):
        import panel.models  # noqa: F401  (the document's model types must be known here too)
        from bokeh.client import pull_session
        from tornado.ioloop import IOLoop

        self.loop = IOLoop()
        self.page = page
        self.session = pull_session(url=f"{base}/app", io_loop=self.loop,
                                    arguments={"page": page, "seed": str(seed),
                                               **(arguments or {})})
        doc = self.session.document
        self.slider = _find(doc, lambda m: type(m).__name__ == "Slider"
                            and "atlas-lr" in list(m.css_classes))
        if self.slider is None and page == "trajectories":
            raise RuntimeError("no η slider in the document")
        self._expected: str | None = None
        self._arrived = threading.Event()
        self._last_change = time.perf_counter()
        doc.on_change(self._on_change)
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready(doc)

    def _ready(self, doc) -> None:
        """Say "document ready", as BokehJS does once it has rendered the page (Panel runs
        its on-load callbacks then)."""
        from bokeh.document.events import MessageSentEvent
        from bokeh.events import DocumentReady

        conn = self.session._connection
        conn._send_patch_document(self.session.id, MessageSentEvent(doc, "bokeh_event",
                                                                     DocumentReady()))

    def _serve(self) -> None:
        conn = self.session._connection
        conn._loop_until(lambda: self._closing or not self.session.connected)

    def wait_loaded(self, timeout: float = 120.0, quiet: float = 1.0) -> bool:
        """Until the server has run the page's on-load work (the validated state is written
        into the URL then) and then sent nothing for ``quiet`` seconds."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            doc = self.session.document
            loc = _find(doc, lambda m: type(m).__name__ == "Location")
            marker = "n_trajectories=" if self.page == "trajectories" else "page="
            if loc is not None and marker in str(loc.search) and not waiting_frames(doc):
                break  # the on-load callback has written the whole state into the URL, and
                # every plot is drawn (none is left waiting in its frame)
            time.sleep(0.1)
        else:
            return False
        while time.perf_counter() < deadline:
            if time.perf_counter() - self._last_change > quiet:
                return True
            time.sleep(0.1)
        return False

    def _on_change(self, event) -> None:  # on the session's loop
        self._last_change = time.perf_counter()
        if self._expected is None:
            return
        model = getattr(event, "model", None)
        text = str(getattr(model, "text", "")) if getattr(event, "attr", None) == "text" else ""
        if "Changes during the run" in text and self._expected in text:
            self._arrived.set()

    def move(self, value: float, timeout: float) -> float | None:
        """Set η and wait for the server's updated change list; latency in ms, None if lost."""
        self._arrived.clear()
        self._expected = f"η → {value:.4g}"

        def send():
            self.slider.value = value  # what a browser sends while dragging …
            # … and on release (the page listens to this one; read-only in Python, as in a
            # browser it is set by BokehJS)
            self.slider.set_from_json("value_throttled", value)

        t0 = time.perf_counter()
        self.loop.add_callback(send)
        ok = self._arrived.wait(timeout)
        return 1000 * (time.perf_counter() - t0) if ok else None

    def close(self) -> None:
        def shut():
            self._closing = True
            self.session.close()

        self.loop.add_callback(shut)
        self._thread.join(10)


def run_wave(base: str, n_sessions: int, n_moves: int, think: float, timeout: float,
             rng_seed: int, server_pid: int, arrival: float = 0.0) -> dict:
    """N students open the page — all at once, or each at a uniformly random moment of the
    first ``arrival`` seconds — then, once all are in, move η ``n_moves`` times and close.
    Returns the wave's figures."""
    opened, latencies, lost, errors = [], [], [0], []
    lock = threading.Lock()
    window = {}
    def all_in():
        window["start"] = time.perf_counter()
        window["cpu"] = cpu_seconds(server_pid)

    barrier = threading.Barrier(n_sessions, action=all_in)
    t_open = time.perf_counter()

    def student(i: int):
        rng = random.Random(rng_seed * 1000 + i)
        time.sleep(arrival * rng.random())
        try:
            s = Student(base, seed=i)
        except Exception as exc:  # a session that cannot open is an error of the run
            with lock:
                errors.append(f"open {i}: {exc!r}")
            barrier.abort()
            return
        if not s.wait_loaded():
            with lock:
                errors.append(f"load {i}: the page did not finish loading")
        with lock:
            opened.append(time.perf_counter() - t_open)
        try:
            barrier.wait(timeout=600)  # the moves start when everyone is in
        except threading.BrokenBarrierError:
            s.close()
            return
        try:
            for k in range(n_moves):
                time.sleep(think * (0.5 + rng.random()))
                value = round(0.02 + 0.001 * (k + 1) + 0.0001 * (i % 7), 4)
                dt = s.move(value, timeout)
                with lock:
                    if dt is None:
                        lost[0] += 1
                    else:
                        latencies.append(dt)
        except Exception as exc:
            with lock:
                errors.append(f"moves {i}: {exc!r}")
        finally:
            s.close()

    with ThreadPoolExecutor(n_sessions) as pool:
        list(pool.map(student, range(n_sessions)))
    return {"moves_window": (window.get("start", time.perf_counter()), time.perf_counter()),
            "cpu_at_start": window.get("cpu", cpu_seconds(server_pid)),
            "sessions": n_sessions, "opened": len(opened),
            "open_seconds_max": round(max(opened), 1) if opened else None,
            "expected": n_sessions * n_moves, "delivered": len(latencies), "lost": lost[0],
            "latency_ms": latencies, "errors": errors}


def _pct(values, q):
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def run(n_sessions: int = 30, n_moves: int = 10, n_waves: int = 1, think: float = 1.0,
        timeout: float = 60.0, settle: float = 40.0, log_path: Path | None = None,
        arrival: float = 0.0) -> dict:
    """The whole experiment (see the module doc); returns a JSON-able report."""
    log_path = log_path or ROOT / "test-artifacts" / "load-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Server(log_path)
    probe = LivenessProbe(server.base)
    probe.start()
    report = {"sessions": n_sessions, "moves": n_moves, "think_s": think, "arrival_s": arrival,
              "waves": []}
    try:
        # one session first: the page's code paths are imported and compiled before measuring
        warm = Student(server.base, seed=999)
        warm.close()
        time.sleep(2)
        report["rss_start_mib"] = round(server.rss, 1)
        for w in range(n_waves):
            peak = [server.rss]
            stop = threading.Event()

            def watch():
                while not stop.wait(0.25):
                    peak[0] = max(peak[0], server.rss)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t_wave = time.perf_counter()
            wave = run_wave(server.base, n_sessions, n_moves, think, timeout, rng_seed=w,
                            server_pid=server.proc.pid, arrival=arrival)
            t0, t1 = wave.pop("moves_window")
            cpu1 = cpu_seconds(server.proc.pid)
            cpu0 = wave.pop("cpu_at_start")
            time.sleep(settle)  # closed sessions are destroyed and collected
            stop.set()
            watcher.join()
            lat = wave.pop("latency_ms")
            live, failed = probe.window(t0, t1)  # during the moves
            opening, _ = probe.window(t_wave, t0)
            wave.update(moves_seconds=round(t1 - t0, 1),
                        server_cpu_percent=round(100 * (cpu1 - cpu0) / max(t1 - t0, 1e-9)),
                        latency_p50_ms=_pct(lat, 50), latency_p95_ms=_pct(lat, 95),
                        latency_p99_ms=_pct(lat, 99),
                        liveness_p50_ms=_pct(live, 50), liveness_p99_ms=_pct(live, 99),
                        liveness_max_ms=round(max(live), 1) if live else None,
                        liveness_samples=len(live), liveness_failures=failed,
                        liveness_while_opening_p50_ms=_pct(opening, 50),
                        liveness_while_opening_p99_ms=_pct(opening, 99),
                        liveness_while_opening_max_ms=round(max(opening), 1) if opening else None,
                        liveness_while_opening_samples=len(opening),
                        rss_peak_mib=round(peak[0], 1), rss_after_mib=round(server.rss, 1))
            report["waves"].append(wave)
    finally:
        probe.stop()
        server.stop()
        report["server_log"] = server.log_problems()
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--waves", type=int, default=1)
    ap.add_argument("--think", type=float, default=1.0, help="mean think time between moves (s)")
    ap.add_argument("--settle", type=float, default=40.0,
                    help="wait after each wave (s): Bokeh discards a closed session 15–32 s later")
    ap.add_argument("--arrival", type=float, default=0.0,
                    help="students open the page over this many seconds (0: all at once)")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    report = run(args.sessions, args.moves, args.waves, args.think, settle=args.settle,
                 arrival=args.arrival)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A classroom on the class mode (app/classmode.py): N students open the live page's static
HTML at the same second, then press Play and move η, over plain HTTP — what
``assets/js/class-live.js`` asks of the server, without a browser.

Every student is a ``Browser``: up to six HTTP/1.1 connections kept alive and reused, as a
browser holds per host, on a minimal asyncio protocol that only counts the bytes of the
scripts — tornado's ``AsyncHTTPClient`` (a connection per request, every body buffered) cost
this process more CPU per page opening than it cost the server. Per wave, every student (one
asyncio task; all of them in this one process and thread):

1. opens ``/class?page=trajectories&preset=…``, fetches every ``<script src>`` of the HTML
   at once (bokeh.min.js and the rest: a browser without a cache fetches them all) and asks
   for the first frame, ``api/live/frame?<the link minus page>&action=none``. "Drawn" is the
   time from the wave's start to that answer;
2. once every student is drawn, presses Play (within ``--play-spread`` seconds): ``--frames``
   requests ``action=step`` with all the values and ``run=<last id>``, ``frame_ms`` apart
   from the start of one to the start of the next (the browser's loop), and moves η
   ``--moves`` times, each new η riding on the next step request, as the browser sends it.
   Every student's η values are its own, and every wave's are new (a class does not repeat
   the previous class's clicks: nothing is served from the previous wave's states but the
   page and the shared start).

Meanwhile ``/liveness`` is polled every 100 ms (``loadtest.LivenessProbe``, in a thread).
Reported per wave: drawn p50/p90/max, frame latency p50/p99/max, frames delivered / asked,
liveness p99/max, server CPU per student (opening, and opening + playing), this process's CPU
(which must stay below the server's for the figures to be the server's), the server's RSS
after the wave; at the end RSS(last wave) − RSS(first wave), and the targets of issue 16.

    python -m tests.load.classload --students 60 --waves 3 --moves 10 --frames 20 [--json]

Run from the repository root. The server is started like the README's (``loadtest.Server``)
unless ``--base URL --pid PID`` name one already running (e.g. under a profiler).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import numpy as np

from tests.load.loadtest import ROOT, LivenessProbe, Server, _pct, cpu_seconds, rss_mib

PAGE = "trajectories"
SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc=\"([^\"]+)\"")
CONFIG = re.compile(r"<script[^>]*id=\"atlas-config\"[^>]*>(.*?)</script>", re.DOTALL)

#: issue 16's targets: (report key, limit, "max" or "min")
TARGETS = {
    "drawn p90 ≤ 5 s": ("drawn_p90_s", 5.0, "max"),
    "drawn max ≤ 10 s": ("drawn_max_s", 10.0, "max"),
    "server CPU/student (opening) ≤ 0.1 s": ("server_cpu_per_student_open_s", 0.1, "max"),
    "frames delivered 100 %": ("frames_delivered_pct", 100.0, "min"),
    "frame p99 < 300 ms": ("frame_p99_ms", 300.0, "max"),
    "liveness p99 < 250 ms": ("liveness_p99_ms", 250.0, "max"),
    "liveness max < 1 s": ("liveness_max_ms", 1000.0, "max"),
}
RSS_GROWTH_MIB = 50.0


def _pct_s(values, q):
    """A percentile of seconds, to 10 ms (``loadtest._pct`` rounds milliseconds to 0.1)."""
    return round(float(np.percentile(values, q)), 2) if len(values) else None


class NoClassMode(RuntimeError):
    """``/class?page=…`` redirected: this page has no class mode (yet)."""


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (Linux ``/proc/stat``): what
    the server and this client did not use of it was other load, which the timings suffer."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def listen_overflows() -> int:
    """How often a listening socket's accept queue overflowed (Linux ``/proc/net/netstat``,
    ``TcpExt: ListenOverflows``; this network namespace): each overflow drops a SYN, which the
    client sends again 1 s later."""
    try:
        with open("/proc/net/netstat") as fh:
            lines = fh.read().splitlines()
        for head, values in zip(lines[::2], lines[1::2]):
            if head.startswith("TcpExt:"):
                return int(dict(zip(head.split()[1:], values.split()[1:]))["ListenOverflows"])
    except (OSError, KeyError, ValueError):
        pass
    return -1


def js_text(value) -> str:
    """A JSON value as the browser's ``URLSearchParams.set`` writes it (``String(v)``): the
    integral float 1.0 arrives in JavaScript as 1 and is sent as "1"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text and abs(value) >= 1e-6:  # JS writes 1e-5 as 0.00001
            text = np.format_float_positional(value, trim="-")
        return text
    return str(value)


class HTTPError(RuntimeError):
    """An answer with status ≥ 400 (``status``, the start of ``body``)."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status, self.body = status, body


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, nbytes: int, ms: float):
        self.status, self.headers, self.body, self.nbytes, self.ms = status, headers, body, nbytes, ms


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time; a body it is told to
    discard is only counted (a browser's 1.3 MB bokeh.min.js costs this client little)."""

    def __init__(self):
        self.transport = None
        self.lost = False
        self._waiter: asyncio.Future | None = None
        self._head = bytearray()
        self._body: list[bytes] | None = None
        self._status, self._headers, self._left, self._count, self._keep = 0, {}, 0, 0, True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    async def request(self, host: str, target: str, keep_body: bool) -> tuple:
        self._waiter = asyncio.get_running_loop().create_future()
        self._head.clear()
        self._status, self._body, self._count = 0, ([] if keep_body else None), 0
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
                             "Accept-Encoding: gzip\r\n"  # as browsers do (the views are gzipped)
                             "Connection: keep-alive\r\n\r\n".encode("latin-1"))
        return await self._waiter

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if not self._status:  # still reading the status line and headers
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._head[:end]).decode("latin-1").split("\r\n")
            data = bytes(self._head[end + 4:])
            self._status = int(lines[0].split()[1])
            self._headers = {k.strip().lower(): v.strip() for k, _, v in
                             (line.partition(":") for line in lines[1:])}
            if "content-length" not in self._headers:  # the class mode's answers all have one
                self._waiter.set_exception(RuntimeError(f"no Content-Length: {lines[:6]}"))
                return
            self._left = int(self._headers["content-length"])
            self._keep = self._headers.get("connection", "").lower() != "close"
        if data:
            take = data[:self._left] if len(data) > self._left else data
            self._left -= len(take)
            self._count += len(take)
            if self._body is not None:
                self._body.append(take)
        if self._left == 0:
            body = b"".join(self._body) if self._body is not None else b""
            self._waiter.set_result((self._status, self._headers, body, self._count, self._keep))


class Browser:
    """What one browser holds for a host: up to six HTTP/1.1 connections, kept alive and
    reused (a page's scripts come over several at once, the frames over one)."""

    MAX_CONNECTIONS = 6

    def __init__(self, base: str, timeout: float = 120.0):
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.prefix = url.path.rstrip("/")
        self.netloc, self.timeout = url.netloc, timeout
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []
        self._slots = asyncio.Semaphore(self.MAX_CONNECTIONS)

    async def get(self, target: str, keep_body: bool = True) -> Response:
        """GET ``target`` (a path under the base, with its query); an answer with status
        ≥ 400 raises ``HTTPError``; a redirect is returned, not followed."""
        async with self._slots:
            t0 = time.perf_counter()
            while self._idle and (self._idle[-1].lost or self._idle[-1].transport.is_closing()):
                self._idle.pop()
            if self._idle:
                conn = self._idle.pop()
            else:
                _, conn = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                    _Connection, self.host, self.port), self.timeout)
                self._all.append(conn)
            try:
                status, headers, body, n, keep = await asyncio.wait_for(
                    conn.request(self.netloc, self.prefix + target, keep_body), self.timeout)
            except BaseException:
                conn.transport.close()
                raise
            if keep:
                self._idle.append(conn)
            else:
                conn.transport.close()
        if status >= 400:
            raise HTTPError(status, body)
        return Response(status, headers, body, n, 1000 * (time.perf_counter() - t0))

    def close(self) -> None:
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()


async def open_page(browser: Browser, link: dict[str, str]) -> dict:
    """What a browser does with a class link ``/class?<link>``: the HTML, every script of it
    at once, then the first frame. Returns the page's config, the first frame (parsed), the
    bytes received and the milliseconds of each part."""
    t0 = time.perf_counter()
    r = await browser.get(f"/class?{urlencode(link)}")
    if 300 <= r.status < 400:
        raise NoClassMode(link.get("page"))
    html = r.body.decode("utf-8")
    match = CONFIG.search(html)
    if match is None:
        raise RuntimeError("the class page has no atlas-config")
    config = json.loads(match.group(1))
    scripts = await asyncio.gather(*(browser.get(urljoin("/class", src), keep_body=False)
                                     for src in SCRIPT_SRC.findall(html)))
    t_scripts = time.perf_counter()
    query = {k: v for k, v in link.items() if k != "page"} | {"action": "none"}
    r0 = await browser.get(f"/api/live/frame?{urlencode(query)}")
    return {"config": config, "frame": json.loads(r0.body), "html_ms": r.ms,
            "scripts_ms": 1000 * (t_scripts - t0) - r.ms, "first_frame_ms": r0.ms,
            "n_scripts": len(scripts),
            "bytes": r.nbytes + r0.nbytes + sum(x.nbytes for x in scripts)}


def eta(student: int, move: int, wave: int) -> float:
    """The η a student sets at its ``move``-th move of a wave: near the preset's 0.1 (stable),
    different for every student at its first move (from then on its run is its own) and for
    every wave (up to 100 students), within the 4 significant digits the server keeps of η
    (``app.state.tidy``)."""
    return round(0.1 + 0.01 * wave + 0.001 * (move + 1) + 0.0001 * student, 4)


class Student:
    """One browser of the class page: its opening, then Play with η moves; ``record`` holds
    what it measured."""

    def __init__(self, i: int, wave: int, base: str, link: dict, timeout: float):
        self.i, self.wave, self.link = i, wave, link
        self.browser = Browser(base, timeout)
        self.record = {"drawn_s": None, "frames_asked": 0, "frames_ms": [], "frame_bytes": [],
                       "moves_sent": 0, "moves_applied": 0, "stopped_early": None, "errors": []}
        self.res: dict | None = None
        self.fields: list[str] = []

    async def open(self, t_start: float) -> None:
        try:
            opened = await open_page(self.browser, self.link)
        except Exception as exc:
            self.record["errors"].append(f"open: {exc!r}"[:300])
            return
        self.record["drawn_s"] = time.perf_counter() - t_start
        self.record["opening_ms"] = {k: round(opened[k], 1)
                                     for k in ("html_ms", "scripts_ms", "first_frame_ms")}
        self.res, self.fields = opened["frame"], opened["config"]["fields"]

    async def play(self, frames: int, moves: int, spread: float) -> None:
        """Play for ``frames`` frames, moving η ``moves`` times on evenly spread frames (the
        loop of class-live.js: one request out at a time, ``frame_ms`` from start to start,
        it stops on an error, a blow-up or when no trajectory runs)."""
        rec = self.record
        if self.res is None:
            return
        rng = random.Random(1000 * self.wave + self.i)
        await asyncio.sleep(spread * rng.random())
        move_at = {int((m + 0.5) * frames / moves): m for m in range(moves)} if moves else {}
        res = self.res
        rec["frames_asked"] = frames
        for j in range(frames):
            t0 = time.perf_counter()
            query = {f: js_text(res["values"][f]) for f in self.fields}
            moved = None
            if j in move_at:
                moved = eta(self.i, move_at[j], self.wave)
                query["lr"] = js_text(moved)
                rec["moves_sent"] += 1
            query |= {"run": res["run"], "action": "step"}
            try:
                r = await self.browser.get(f"/api/live/frame?{urlencode(query)}")
                new = json.loads(r.body)
            except Exception as exc:
                rec["errors"].append(f"frame {j}: {exc!r}"[:400])
                return
            if new["step"] <= res["step"]:
                rec["errors"].append(f"frame {j}: step {new['step']} after {res['step']}")
                return
            rec["frames_ms"].append(r.ms)
            rec["frame_bytes"].append(r.nbytes)
            if moved is not None and abs(new["values"]["lr"] - moved) < 1e-12:
                rec["moves_applied"] += 1
            res = new
            if res["diverged"] or res["running"] == 0:
                rec["stopped_early"] = f"frame {j}: diverged={res['diverged']} running={res['running']}"
                return
            wait = res["values"]["frame_ms"] / 1000 - (time.perf_counter() - t0)
            if wait > 0:
                await asyncio.sleep(wait)


async def _watch_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib(pid))
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass


async def run_wave(base: str, pid: int | None, probe: LivenessProbe, students: int,
                   frames: int, moves: int, preset: str, wave: int, spread: float,
                   timeout: float) -> dict:
    """One wave (see the module doc); the wave's figures."""
    link = {"page": PAGE, **({"preset": preset} if preset else {})}
    crowd = [Student(i, wave, base, link, timeout) for i in range(students)]
    peak, stop = [rss_mib(pid) if pid else float("nan")], asyncio.Event()
    watcher = asyncio.create_task(_watch_rss(pid, peak, stop)) if pid else None
    cpu0, mine0 = (cpu_seconds(pid) if pid else 0.0), time.process_time()
    busy0, overflows0 = machine_busy_seconds(), listen_overflows()
    started = time.time()
    t0 = time.perf_counter()
    await asyncio.gather(*(s.open(t0) for s in crowd))
    t1, cpu1, mine1 = time.perf_counter(), (cpu_seconds(pid) if pid else 0.0), time.process_time()
    await asyncio.gather(*(s.play(frames, moves, spread) for s in crowd))
    t2, cpu2, mine2 = time.perf_counter(), (cpu_seconds(pid) if pid else 0.0), time.process_time()
    busy2, overflows2 = machine_busy_seconds(), listen_overflows()
    stop.set()
    if watcher:
        await watcher
    for student in crowd:
        student.browser.close()

    recs = [s.record for s in crowd]
    drawn = [r["drawn_s"] for r in recs if r["drawn_s"] is not None]
    lat = [ms for r in recs for ms in r["frames_ms"]]
    asked = frames * students
    live_open, fail_open = probe.window(t0, t1)
    live_play, fail_play = probe.window(t1, t2)
    live = live_open + live_play
    parts = {k: [r["opening_ms"][k] for r in recs if "opening_ms" in r]
             for k in ("html_ms", "scripts_ms", "first_frame_ms")}
    out = {
        "wave": wave + 1, "started_at": round(started, 2),
        "students": students, "drawn": len(drawn),
        "drawn_p50_s": _pct_s(drawn, 50), "drawn_p90_s": _pct_s(drawn, 90),
        "drawn_max_s": round(max(drawn), 2) if drawn else None,
        "opening_parts_p90_ms": {k: _pct(v, 90) for k, v in parts.items()},
        "frames_asked": asked, "frames_delivered": len(lat),
        "frames_delivered_pct": round(100 * len(lat) / asked, 2) if asked else None,
        "frame_p50_ms": _pct(lat, 50), "frame_p99_ms": _pct(lat, 99),
        "frame_max_ms": round(max(lat), 1) if lat else None,
        "frame_kib_p50": _pct([b / 1024 for r in recs for b in r["frame_bytes"]], 50),
        "frame_kib_max": round(max((b for r in recs for b in r["frame_bytes"]), default=0) / 1024, 1),
        "frames_mib_per_s": round(sum(b for r in recs for b in r["frame_bytes"]) / 2**20
                                  / max(t2 - t1, 1e-9), 2),
        "moves_sent": sum(r["moves_sent"] for r in recs),
        "moves_applied": sum(r["moves_applied"] for r in recs),
        "stopped_early": [r["stopped_early"] for r in recs if r["stopped_early"]][:5],
        "liveness_p50_ms": _pct(live, 50), "liveness_p99_ms": _pct(live, 99),
        "liveness_max_ms": round(max(live), 1) if live else None,
        "liveness_samples": len(live), "liveness_failures": fail_open + fail_play,
        "liveness_opening_p99_ms": _pct(live_open, 99),
        "liveness_opening_max_ms": round(max(live_open), 1) if live_open else None,
        "opening_s": round(t1 - t0, 2), "playing_s": round(t2 - t1, 2),
        "client_cpu_s": round(mine2 - mine0, 2),
        "client_cpu_open_s": round(mine1 - mine0, 2),
        "other_load_cores": max(0.0, round((busy2 - busy0 - (cpu2 - cpu0) - (mine2 - mine0))
                                           / (t2 - t0), 2)),
        "cores": os.cpu_count(),
        "listen_overflows": overflows2 - overflows0 if overflows0 >= 0 else None,
        "errors": [e for r in recs for e in r["errors"]][:10],
        "n_errors": sum(len(r["errors"]) for r in recs),
    }
    if pid:
        out |= {
            "server_cpu_s": round(cpu2 - cpu0, 2), "server_cpu_open_s": round(cpu1 - cpu0, 2),
            "server_cpu_per_student_open_s": round((cpu1 - cpu0) / students, 4),
            "server_cpu_per_student_s": round((cpu2 - cpu0) / students, 4),
            "server_cpu_per_frame_ms": round(1000 * (cpu2 - cpu1) / max(len(lat), 1), 2),
            "server_cpu_percent_playing": round(100 * (cpu2 - cpu1) / max(t2 - t1, 1e-9)),
            "rss_peak_mib": round(peak[0], 1),
        }
    return out


async def _warm_up(base: str, preset: str) -> None:
    """One student (η of no wave) before measuring: the page is built, the code compiled."""
    s = Student(999, -1, base, {"page": PAGE, **({"preset": preset} if preset else {})}, 300.0)
    try:
        await s.open(time.perf_counter())
        await s.play(4, 2, 0.0)
        if s.record["errors"]:
            raise RuntimeError(f"warm-up student failed: {s.record['errors']}")
    finally:
        s.browser.close()


def _wait_idle(pid: int | None, limit: float = 60.0) -> None:
    """Until the server (with its workers) used < 5 % of a core over a second: a teacher
    starts it before the class; its start-up work is not the class's."""
    time.sleep(1.0)
    deadline = time.time() + limit
    while pid and time.time() < deadline:
        c0 = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - c0 < 0.05:
            return


def run(students: int = 60, waves: int = 3, moves: int = 10, frames: int = 20,
        preset: str = "p000-s1", spread: float = 1.0, settle: float = 3.0,
        timeout: float = 120.0, log_path: Path | None = None, base: str | None = None,
        pid: int | None = None) -> dict:
    """The whole experiment (see the module doc); a JSON-able report. Starts the server unless
    ``base`` names one (then ``pid`` is its process, for CPU and memory; None: not measured)."""
    server = None
    if base is None:
        log_path = log_path or ROOT / "test-artifacts" / "classload-server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        server = Server(log_path)
        base, pid = server.base, server.proc.pid
    probe = LivenessProbe(base)
    probe.start()
    report = {"students": students, "waves_asked": waves, "moves": moves, "frames": frames,
              "preset": preset, "play_spread_s": spread, "waves": []}
    try:
        asyncio.run(_warm_up(base, preset))
        _wait_idle(pid)  # the server's own warm-up (class pages, frame workers) has finished
        report["rss_start_mib"] = round(rss_mib(pid), 1) if pid else None
        for w in range(waves):
            wave = asyncio.run(run_wave(base, pid, probe, students, frames, moves, preset, w,
                                        spread, timeout))
            time.sleep(settle)
            if pid:
                wave["rss_after_mib"] = round(rss_mib(pid), 1)
            report["waves"].append(wave)
    finally:
        probe.stop()
        if server is not None:
            server.stop()
            report["server_log"] = server.log_problems()
    after = [w.get("rss_after_mib") for w in report["waves"]]
    if len(after) > 1 and None not in after:
        report["rss_growth_mib"] = round(after[-1] - after[0], 1)
    report["targets"] = check_targets(report)
    return report


def check_targets(report: dict) -> dict:
    """``{target: [worst value over the waves, met]}`` for issue 16's targets."""
    out = {}
    for name, (key, limit, kind) in TARGETS.items():
        values = [w[key] for w in report["waves"] if w.get(key) is not None]
        if not values:
            continue
        worst = max(values) if kind == "max" else min(values)
        ok = worst <= limit if kind == "max" else worst >= limit
        if name.startswith(("frame p99", "liveness p99")):
            ok = worst < limit
        out[name] = [worst, bool(ok)]
    if "rss_growth_mib" in report:
        g = report["rss_growth_mib"]
        out[f"RSS growth wave 1 → {len(report['waves'])} ≤ {RSS_GROWTH_MIB:g} MiB"] = [
            g, g <= RSS_GROWTH_MIB]
    client = sum(w["client_cpu_s"] for w in report["waves"])
    server = sum(w.get("server_cpu_s", 0) for w in report["waves"])
    if server:
        out["client CPU < server CPU"] = [round(client / server, 3), client < server]
    return out


def summary(report: dict) -> str:
    """The report for a human."""
    lines = [(f"class mode: {report['students']} students × {len(report['waves'])} waves, "
              f"{report['frames']} frames and {report['moves']} η moves each, preset "
              f"{report['preset'] or '(defaults)'}; server RSS at start "
              f"{report.get('rss_start_mib')} MiB")]
    for w in report["waves"]:
        parts = "/".join(str(v) for v in w["opening_parts_p90_ms"].values())
        early = f";  stopped early: {w['stopped_early']}" if w["stopped_early"] else ""
        lines.append(f"wave {w['wave']}: drawn {w['drawn']}/{w['students']}  p50 "
                     f"{w['drawn_p50_s']} s  p90 {w['drawn_p90_s']} s  max {w['drawn_max_s']} s"
                     f"  (p90 of html/scripts/first frame: {parts} ms)")
        lines.append(f"  frames {w['frames_delivered']}/{w['frames_asked']} "
                     f"({w['frames_delivered_pct']} %)  latency p50 {w['frame_p50_ms']}  p99 "
                     f"{w['frame_p99_ms']}  max {w['frame_max_ms']} ms;  η moves applied "
                     f"{w['moves_applied']}/{w['moves_sent']}{early}")
        lines.append(f"  frame size p50 {w['frame_kib_p50']} KiB, max {w['frame_kib_max']} KiB; "
                     f"{w['frames_mib_per_s']} MiB/s of frames while playing")
        lines.append(f"  liveness p50 {w['liveness_p50_ms']}  p99 {w['liveness_p99_ms']}  max "
                     f"{w['liveness_max_ms']} ms ({w['liveness_samples']} probes, "
                     f"{w['liveness_failures']} failed; while opening p99 "
                     f"{w['liveness_opening_p99_ms']} max {w['liveness_opening_max_ms']} ms)")
        if "server_cpu_s" in w:
            lines.append(
                f"  server CPU {w['server_cpu_s']} s = {w['server_cpu_per_student_s']} s/student"
                f" (opening {w['server_cpu_per_student_open_s']} s/student; playing "
                f"{w['server_cpu_per_frame_ms']} ms/frame, {w['server_cpu_percent_playing']} %"
                f" of a core);  client CPU {w['client_cpu_s']} s (opening "
                f"{w['client_cpu_open_s']} s);  server RSS peak {w['rss_peak_mib']} after "
                f"{w.get('rss_after_mib')} MiB")
        else:
            lines.append(f"  client CPU {w['client_cpu_s']} s")
        lines.append(f"  wall: opening {w['opening_s']} s, playing {w['playing_s']} s;  other "
                     f"processes used {w['other_load_cores']} of {w['cores']} cores meanwhile; "
                     f"accept-queue overflows {w['listen_overflows']};  errors "
                     f"{w['n_errors']} {w['errors'][:3] if w['errors'] else ''}")
    if "rss_growth_mib" in report:
        lines.append(f"RSS after wave {len(report['waves'])} − after wave 1: "
                     f"{report['rss_growth_mib']} MiB")
    if "server_log" in report:
        log = report["server_log"]
        lines.append(f"server log: {log['tracebacks']} tracebacks, {log['error_lines']} error "
                     f"lines {log['excerpt'][:3] if log['excerpt'] else ''}")
    lines.append("targets (worst wave):")
    for name, (value, ok) in report["targets"].items():
        lines.append(f"  {'ok  ' if ok else 'MISS'} {name}: {value}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=60)
    ap.add_argument("--waves", type=int, default=3)
    ap.add_argument("--moves", type=int, default=10, help="η moves per student, during Play")
    ap.add_argument("--frames", type=int, default=20, help="frames each student plays")
    ap.add_argument("--preset", default="p000-s1", help="the class link's preset ('' for none)")
    ap.add_argument("--play-spread", type=float, default=1.0,
                    help="students press Play within this many seconds of the last one drawn")
    ap.add_argument("--settle", type=float, default=3.0, help="pause after each wave (s)")
    ap.add_argument("--base", help="an already running server (default: start one)")
    ap.add_argument("--pid", type=int, help="with --base: the server's process id (CPU, RSS)")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="also print the report as one JSON line (or write it to PATH)")
    args = ap.parse_args(argv)
    report = run(args.students, args.waves, args.moves, args.frames, args.preset,
                 args.play_spread, args.settle, base=args.base, pid=args.pid)
    print(summary(report))
    if args.json == "-":
        print(json.dumps(report, separators=(",", ":")))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

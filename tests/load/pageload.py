"""A class opens a map or curve page's class link (issue 17): N students (server-bound HTTP
clients, the class mode's ``Browser``, which run no JavaScript and cost far less CPU than the
server) open ``/class?page=<slug>&preset=<id>`` in the same second and do what
``assets/js/class-page.js`` does: the HTML, its scripts, then every view the page shows —
``/api/view`` until its computation is done, ``/api/view/data`` for the drawn columns. Then each
makes five interactions (the page's :data:`INTERACTIONS`: slider moves and clicks on a map),
asking again for the views each change affects, while a probe polls ``/liveness``.

The teacher opens the link and makes the same interactions first (the computations are then
in the cache, as when a teacher prepares a lesson): the students' interactions measure cached
results, as the issue's target says; how long the teacher's uncached opening took is reported.

    python -m tests.load.pageload --page stability --students 60
    python -m tests.load.pageload --all --students 60   # every page, one server each

Reported per page: drawn p50/p90/max, server CPU per student (opening), the interactions'
answered share and latency p50/p99/max (one interaction: from the change until every view it
affects is drawn), ``/liveness`` p50/p99/max, and this client's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode, urljoin

from tests.load.classload import CONFIG, SCRIPT_SRC, Browser, _wait_idle
from tests.load.loadtest import ROOT, LivenessProbe, Server, _pct, cpu_seconds

#: page -> (preset, five interactions: the values each one changes)
INTERACTIONS = {
    "stability": ("fig3-left-s1", [{"w0": "1.5", "v0": "0.2"}, {"sigma2": "0.5"},
                                   {"w0": "0.3", "v0": "1.2"}, {"color_by": "pi_finite_lr"},
                                   {"trapped_distance": "0.2"}]),
    "phases": ("fig9-left", [{"lr": "0.02", "mu": "0.9"}, {"mu_for_s": "0.1"},
                             {"lr": "2", "mu": "0.3"}, {"log_lr_range": "-1.0,0.5"},
                             {"lr": "0.3", "mu": "0.1"}]),
    "escape": ("quick", [{"n_sigma2": "6"}, {"seed": "1"}, {"lr": "0.05"}, {"n_sigma2": "8"},
                         {"seed": "0"}]),
    "overfit": ("fig3", [{"label_noise": "0.1"}, {"label_noise": "0.3"},
                         {"compare_clean": "false"}, {"label_noise": "0.2"},
                         {"compare_clean": "true"}]),
}
TARGETS = {
    "drawn p90 ≤ 5 s": ("drawn_p90_s", 5.0, "max"),
    "drawn max ≤ 10 s": ("drawn_max_s", 10.0, "max"),
    "server CPU/student (opening) ≤ 0.1 s": ("server_cpu_per_student_open_s", 0.1, "max"),
    "interactions answered 100 %": ("answered_pct", 100.0, "min"),
    "interaction p99 < 500 ms (cached)": ("interaction_p99_ms", 500.0, "max"),
    "liveness p99 < 250 ms": ("liveness_p99_ms", 250.0, "max"),
}


class ProcessProbe:
    """:class:`LivenessProbe` in a process of its own: in the load client's process its thread
    waits for the GIL while the client parses sixty students' answers, and measures that."""

    def __init__(self, base: str):
        import subprocess

        code = ("import sys, time; from tests.load.loadtest import LivenessProbe\n"
                f"p = LivenessProbe({base!r}); p.start(); sys.stdin.read(); p.stop(); time.sleep(0.3)\n"
                "for t, dt in p.samples: print('ok', t, dt)\n"
                "for t in p.failures: print('fail', t, 0)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.samples: list[tuple[float, float]] = []
        self.failures: list[float] = []

    def start(self) -> None:  # (started in __init__)
        pass

    def stop(self) -> None:
        out, _ = self.proc.communicate("", timeout=30)
        for line in out.splitlines():
            kind, t, dt = line.split()
            if kind == "ok":
                self.samples.append((float(t), float(dt)))
            else:
                self.failures.append(float(t))

    def window(self, t0: float, t1: float):
        return LivenessProbe.window(self, t0, t1)


class Student:
    """One browser of a class page: it opens the link, then changes values."""

    def __init__(self, base: str, slug: str, preset: str):
        self.browser = Browser(base, timeout=300.0)
        self.slug, self.preset = slug, preset
        self.client = uuid.uuid4().hex[:16]
        self.values: dict = {}
        self.config: dict = {}
        self.have: dict[str, str] = {}
        self.drawn_s: float | None = None
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.view_bytes = 0

    def visible(self, what: str) -> bool:
        when = self.config["when"].get(what)
        return not when or str(self.values[when[0]]) == when[1]

    async def view(self, what: str, synced: bool) -> None:
        """Ask for one view until its computation is done, then fetch it (class-page.js)."""
        wait = 0
        while True:
            q = {"page": self.slug, "preset": self.preset, "what": what, "client": self.client,
                 "wait": wait, **(self.values if synced else {})}
            if what in self.have:
                q["have"] = self.have[what]
            answer = json.loads((await self.browser.get("/api/view?" + urlencode(q))).body)
            if not synced:
                self.values = dict(answer["values"])
            if answer["view"] != self.have.get(what):
                data = await self.browser.get("/api/view/data?key=" + answer["view"])
                self.view_bytes += data.nbytes
                self.have[what] = answer["view"]
            if answer["state"] != "running":
                if answer["state"] != "done":
                    raise RuntimeError(f"{what}: {answer['state']} {answer.get('error')}")
                return
            wait = 2

    async def open(self, t0: float) -> None:
        try:
            r = await self.browser.get("/class?" + urlencode({"page": self.slug, "preset": self.preset}))
            html = r.body.decode()
            self.config = json.loads(CONFIG.search(html).group(1))
            self.values = dict(self.config["values"])
            await asyncio.gather(*(self.browser.get(urljoin("/class", src), keep_body=False)
                                   for src in SCRIPT_SRC.findall(html)))
            await asyncio.gather(*(self.view(w, False) for w in self.config["views"]
                                   if self.visible(w)))
            self.drawn_s = time.perf_counter() - t0
        except Exception as exc:
            self.errors.append(f"open: {exc!r}"[:300])

    async def interact(self, changes: list[dict], pause: float) -> None:
        for change in changes:
            if self.errors:
                return
            await asyncio.sleep(pause)
            t = time.perf_counter()
            try:
                self.values.update(change)
                affected = [w for w, fields in self.config["views"].items()
                            if self.visible(w) and any(f in fields for f in change)]
                await asyncio.gather(*(self.view(w, True) for w in affected))
                self.latencies.append(1000 * (time.perf_counter() - t))
            except Exception as exc:
                self.errors.append(f"interaction {change}: {exc!r}"[:300])

    def close(self) -> None:
        self.browser.close()


async def _class(base, pid, probe, slug, students, preset, changes, pause) -> dict:
    crowd = [Student(base, slug, preset) for _ in range(students)]
    cpu0, mine0 = cpu_seconds(pid), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(s.open(t0) for s in crowd))
    t1, cpu1 = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*(s.interact(changes, pause) for s in crowd))
    t2, cpu2, mine2 = time.perf_counter(), cpu_seconds(pid), time.process_time()
    for s in crowd:
        s.close()
    drawn = [s.drawn_s for s in crowd if s.drawn_s is not None]
    lat = [x for s in crowd for x in s.latencies]
    asked = students * len(changes)
    return {
        "page": slug, "preset": preset, "students": students, "drawn": len(drawn),
        "drawn_p50_s": round(_pct(drawn, 50) or 0, 2) if drawn else None,
        "drawn_p90_s": round(_pct(drawn, 90) or 0, 2) if drawn else None,
        "drawn_max_s": round(max(drawn), 2) if drawn else None,
        "server_cpu_open_s": round(cpu1 - cpu0, 2),
        "server_cpu_per_student_open_s": round((cpu1 - cpu0) / students, 4),
        "server_cpu_interactions_s": round(cpu2 - cpu1, 2),
        "interactions_asked": asked, "interactions_answered": len(lat),
        "answered_pct": round(100 * len(lat) / asked, 2) if asked else None,
        "interaction_p50_ms": _pct(lat, 50), "interaction_p99_ms": _pct(lat, 99),
        "interaction_max_ms": round(max(lat), 1) if lat else None,
        "window": [t0, t1, t2],
        "view_kib_per_student": round(sum(s.view_bytes for s in crowd) / students / 1024, 1),
        "client_cpu_s": round(mine2 - mine0, 2), "seconds": round(t2 - t0, 2),
        "errors": [e for s in crowd for e in s.errors][:5],
    }


def _liveness(probe, report: dict) -> dict:
    """``/liveness`` while the class opened and interacted (the probe's samples, once read)."""
    t0, t1, t2 = report.pop("window")
    live, failures = probe.window(t0, t2)
    live_open, _ = probe.window(t0, t1)
    return {"liveness_p50_ms": _pct(live, 50), "liveness_p99_ms": _pct(live, 99),
            "liveness_max_ms": round(max(live), 1) if live else None,
            "liveness_samples": len(live), "liveness_failures": failures,
            "liveness_opening_p99_ms": _pct(live_open, 99)}


async def _teacher(base: str, slug: str, preset: str, changes: list[dict]) -> float:
    """The teacher's own opening and interactions, before the class: returns its opening's
    seconds (computations not yet cached)."""
    s = Student(base, slug, preset)
    try:
        t0 = time.perf_counter()
        await s.open(t0)
        if s.errors:
            raise RuntimeError(s.errors)
        await s.interact(changes, 0.0)
        if s.errors:
            raise RuntimeError(s.errors)
        return s.drawn_s
    finally:
        s.close()


def check_targets(report: dict) -> dict:
    out = {}
    for name, (key, limit, kind) in TARGETS.items():
        value = report.get(key)
        out[name] = {"value": value, "met": value is not None and
                     (value <= limit if kind == "max" else value >= limit)}
    return out


def run(slug: str, students: int = 60, pause: float = 1.0, log_path: Path | None = None) -> dict:
    preset, changes = INTERACTIONS[slug]
    log_path = log_path or ROOT / "test-artifacts" / f"pageload-{slug}-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Server(log_path)
    probe = ProcessProbe(server.base)
    try:
        teacher_s = asyncio.run(_teacher(server.base, slug, preset, changes))
        _wait_idle(server.proc.pid)  # the server's own warm-up (every class page) has finished
        report = asyncio.run(_class(server.base, server.proc.pid, probe, slug, students, preset,
                                    changes, pause))
        report["teacher_open_uncached_s"] = round(teacher_s, 2)
    finally:
        server.stop()
    probe.stop()  # (its samples are read when it stops)
    report.update(_liveness(probe, report))
    report["server_log"] = server.log_problems()
    report["targets"] = check_targets(report)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--page", choices=sorted(INTERACTIONS), action="append")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--students", type=int, default=60)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between interactions")
    args = ap.parse_args(argv)
    pages = sorted(INTERACTIONS) if args.all or not args.page else args.page
    ok = True
    for slug in pages:
        report = run(slug, args.students, args.pause)
        out = ROOT / "test-artifacts" / f"pageload-{slug}.json"
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report.items() if k != "targets"}))
        for name, t in report["targets"].items():
            print(f"  {'ok ' if t['met'] else 'NOT'} {name}: {t['value']}")
            ok &= t["met"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

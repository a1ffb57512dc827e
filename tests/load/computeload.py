"""A class asks for one long computation: N students (server-bound HTTP clients, the class
mode's ``Browser``) ask ``/api/compute`` for the same uncached pullback cloud at once and
follow its progress until it is done, while a probe polls ``/liveness``.

Reported: how many engine computations the server ran for it (the disk cache folder holds
one file per computed result), the time until every student saw it done, the latency of the
API's answers (p50/p99 of those that did not wait for progress: ``wait=0`` polls), ``/liveness``
p50/p99/max, and the server's and this client's CPU seconds.

    python -m tests.load.computeload --students 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from tests.load.classload import Browser
from tests.load.loadtest import LivenessProbe, Server, cpu_seconds

CLOUD = {"page": "stability", "what": "cloud", "sigma2": "1", "lr": "0.1",
         "pullback_time": "10000", "pullback_points": "100000"}


async def student(base: str, values: dict, poll: float, latencies: list) -> float:
    """Follow the computation until done (a poll every ``poll`` s); seconds until done."""
    from urllib.parse import urlencode

    browser = Browser(base)
    client = uuid.uuid4().hex[:16]
    t0 = time.perf_counter()
    try:
        while True:
            t = time.perf_counter()
            resp = await browser.get("/api/compute?" + urlencode({**values, "client": client,
                                                                   "wait": 0}))
            latencies.append(time.perf_counter() - t)
            answer = json.loads(resp.body)
            if answer["state"] != "running":
                assert answer["state"] == "done", answer
                return time.perf_counter() - t0
            await asyncio.sleep(poll)
    finally:
        browser.close()


def run(students: int = 60, poll: float = 1.0) -> dict:
    cache_dir = Path(tempfile.mkdtemp(prefix="computeload-"))
    log = cache_dir / "server.log"
    import os

    os.environ["SGD_ATLAS_CACHE_DIR"] = str(cache_dir / "cache")  # the server's results on disk
    server = Server(log)
    try:
        probe = LivenessProbe(server.base)
        probe.start()
        time.sleep(3)
        seed = str(np.random.default_rng().integers(10**6, 10**7))  # never computed before
        values = dict(CLOUD, seed=seed)
        cpu0, me0 = cpu_seconds(server.proc.pid), time.process_time()
        latencies: list[float] = []
        t0 = time.perf_counter()

        async def all_students():
            return await asyncio.gather(*(student(server.base, values, poll, latencies)
                                          for _ in range(students)))

        done = asyncio.run(all_students())
        t1 = time.perf_counter()
        live, failures = probe.window(t0, t1)
        probe.stop()
        files = list((cache_dir / "cache").rglob("pullback_cloud-*.nc"))
        return {
            "students": students, "computed": len(files),
            "all_done_s": max(done), "first_done_s": min(done),
            "requests": len(latencies),
            "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "latency_p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "liveness_p50_ms": float(np.percentile(live, 50)),
            "liveness_p99_ms": float(np.percentile(live, 99)), "liveness_max_ms": max(live),
            "liveness_failures": failures,
            "server_cpu_s": cpu_seconds(server.proc.pid) - cpu0,
            "client_cpu_s": time.process_time() - me0,
            "log": server.log_problems(),
        }
    finally:
        server.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=60)
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between a student's polls")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.students, args.poll), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

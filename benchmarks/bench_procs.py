"""Do several server processes help? ``sgd-atlas serve --procs N`` against one process.

K students request the live Panel page at once. Bokeh builds a session's whole document when
its page is requested (the server's main cost per student, ~0.8 s of CPU for this page), so
the client is plain HTTP: it costs far less CPU than the server, and the figures are the
server's (real browsers, twelve of them on this 2-core machine, measured themselves). Reported
per N: the time until every page has arrived (p50, max), the server's CPU seconds (every
process, proxy included), the proxy's own share, and this client's CPU.

Whether each page's websocket then reaches the process that built it (one document per page,
not 1.67) is what ``tests/browser/test_procs.py`` checks with real browsers.

    python -m benchmarks.bench_procs --students 24 --procs 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request

from tests.load.loadtest import ROOT, _cpu_one, cpu_seconds
from tests.support import free_port, wait_serving

def _open_all(url: str, k: int) -> list[float]:
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()

    def one(i):
        with urllib.request.urlopen(url, timeout=600) as r:
            assert r.status == 200 and b"Bokeh" in r.read()
        return time.perf_counter() - t0

    with ThreadPoolExecutor(k) as pool:
        return sorted(pool.map(one, range(k)))


def measure(procs: int, students: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve",
                             "--procs", str(procs), "--port", str(port), "--no-disk-cache"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_serving(base, proc, 600):
            raise RuntimeError("the server did not start")
        time.sleep(3)
        for _ in range(2):  # warm: the first pages of each process compile and fill caches
            _open_all(f"{base}/app?page=trajectories", 2 * procs)
        time.sleep(5)  # the warm-up sessions' plots are drawn
        cpu0, own0, me0 = cpu_seconds(proc.pid), _cpu_one(proc.pid), time.process_time()
        times = _open_all(f"{base}/app?page=trajectories", students)
        out = {"procs": procs, "students": students, "pages_p50_s": times[len(times) // 2],
               "pages_max_s": times[-1], "server_cpu_s": cpu_seconds(proc.pid) - cpu0,
               "client_cpu_s": time.process_time() - me0}
        if procs > 1:  # the proxy is sgd-atlas itself
            out["proxy_cpu_s"] = _cpu_one(proc.pid) - own0
            with urllib.request.urlopen(f"{base}/atlas-proxy", timeout=10) as r:
                out["routing"] = [{k: p[k] for k in ("pages", "websockets")}
                                  for p in json.loads(r.read())["processes"]]
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=12)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    for n in args.procs:
        print(json.dumps(measure(n, args.students)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

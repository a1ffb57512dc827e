"""Server CPU per student session of each Panel page (issue 16: the per-session cost that the
class mode is to remove), with the models per page and a plain-NumPy reference timed in the
same run (machines are noisy: the ratio is what to compare across runs).

A protocol-level student (``tests.load.loadtest.Student``: the websocket protocol a browser
speaks, no browser) opens a page, says "document ready", waits until every plot is drawn and
the server has been quiet for a second, and leaves. One warm-up visit per page fills the
caches and compiles; then ``--visits`` visits, one after another, are measured: the server
process's CPU time (``/proc``) over them divided by their number, and this client's own CPU
time, which must stay below the server's for the figure to be the server's.

    python benchmarks/bench_sessions.py [--visits 5] [--pages trajectories,phases]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.load.loadtest import Server, Student, cpu_seconds

#: each page opened as a class would: its defaults, with the cheap numerics of its presets
PAGES = {
    "trajectories": {},
    "stability": {"resolution": "60", "pullback_points": "5000", "pullback_time": "3000"},
    "phases": {"resolution": "48"},
    "escape": {"preset": "quick"},
    "overfit": {"n_steps": "200000"},
    "gallery": {},
    "about": {},
}


def numpy_reference(repeats: int = 5) -> float:
    """Seconds of CPU for a fixed plain-NumPy workload (eigenvalues of 40 symmetric 200×200
    matrices), the best of ``repeats``: the unit the session costs are divided by."""
    rng = np.random.default_rng(0)
    mats = rng.standard_normal((40, 200, 200))
    mats = mats + mats.transpose(0, 2, 1)
    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        np.linalg.eigvalsh(mats)
        best = min(best, time.process_time() - t)
    return best


def visit(base: str, page: str, arguments: dict) -> int:
    """One student's visit; the number of models of the page's document."""
    s = Student(base, seed=0, page=page, arguments=arguments)
    try:
        if not s.wait_loaded(timeout=300):
            raise RuntimeError(f"{page}: not loaded within 300 s")
        return len(s.session.document.models)
    finally:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=5)
    ap.add_argument("--pages", default=",".join(PAGES))
    args = ap.parse_args()
    ref = numpy_reference()
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    server = Server(out / "bench_sessions_server.log")
    rows = []
    try:
        for page in args.pages.split(","):
            visit(server.base, page, PAGES[page])  # warm-up: caches, compilation
            time.sleep(1.0)
            cpu0, mine0 = cpu_seconds(server.proc.pid), time.process_time()
            models = [visit(server.base, page, PAGES[page]) for _ in range(args.visits)]
            # the quiet second each visit waits for is idle time, not CPU: nothing to subtract
            server_cpu = (cpu_seconds(server.proc.pid) - cpu0) / args.visits
            client_cpu = (time.process_time() - mine0) / args.visits
            rows.append(dict(page=page, server_cpu_s=round(server_cpu, 3),
                             client_cpu_s=round(client_cpu, 3), models=int(np.median(models)),
                             numpy_units=round(server_cpu / ref, 1)))
    finally:
        problems = server.log_problems()
        server.stop()
    print(f"plain-NumPy reference (eigvalsh of 40 × 200×200): {ref:.3f} s of CPU")
    print(f"{'page':<14}{'server CPU/student':>20}{'client CPU':>12}{'models':>8}{'× NumPy':>9}")
    for r in rows:
        print(f"{r['page']:<14}{r['server_cpu_s']:>18.3f} s{r['client_cpu_s']:>10.3f} s"
              f"{r['models']:>8}{r['numpy_units']:>9}")
    print("server log:", json.dumps({k: problems[k] for k in ("tracebacks", "error_lines")}))
    (out / "bench_sessions.json").write_text(json.dumps(dict(numpy_reference_s=ref, rows=rows),
                                                       indent=1))


if __name__ == "__main__":
    main()

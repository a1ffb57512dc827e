"""Server CPU per student session of each Panel page (issue 16: the per-session cost that the
class mode is to remove), with the models per page and a plain-NumPy reference timed in the
same run (machines are noisy: the ratio is what to compare across runs) — and, beside each
page that has a class mode (app/classmode.py), the same figures for its class page.

A protocol-level student (``tests.load.loadtest.Student``: the websocket protocol a browser
speaks, no browser) opens a page, says "document ready", waits until every plot is drawn and
the server has been quiet for a second, and leaves. One warm-up visit per page fills the
caches and compiles; then ``--visits`` visits, one after another, are measured: the server
process's CPU time (``/proc``) over them divided by their number, and this client's own CPU
time, which must stay below the server's for the figure to be the server's.

A class-mode student (``tests.load.classload.open_page``: what a browser fetches, over HTTP)
gets ``/class?page=<page>&…``, every script of it and the first frame. Measured the same way
over ``--class-visits`` visits after a warm-up one: with the link everyone of a class opens
(its first frame is computed once and then served from the shared store: the "build once,
serve many" cost), and with a link of its own (a different ``seed`` per visit: the first frame
is computed for each). The models of the class page are those of its built document
(``app.figures.live.live_figures``). Pages without a class mode (``/class`` redirects them to
their Panel page) show "—".

    python benchmarks/bench_sessions.py [--visits 5] [--class-visits 30] [--pages trajectories,phases]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.load.classload import Browser, NoClassMode, open_page
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


def class_visits(base: str, pid: int, page: str, arguments: dict, visits: int,
                 own: bool) -> dict | None:
    """Server (process ``pid``) and client CPU per class-mode visit of ``page``, None if it has
    no class mode; ``own``: each visit's link has a seed of its own, else all share the link
    of the warm-up visit."""
    link = {"page": page, **arguments}

    async def one(link: dict) -> None:
        browser = Browser(base)  # a new student: new connections
        try:
            await open_page(browser, link)
        finally:
            browser.close()

    async def go():
        try:
            await one(link | ({"seed": "1000"} if own else {}))  # warm-up
        except NoClassMode:
            return None
        await asyncio.sleep(1.0)
        cpu0, mine0 = cpu_seconds(pid), time.process_time()
        for i in range(visits):
            await one(link | ({"seed": str(1001 + i)} if own else {}))
        return {"server_cpu_s": (cpu_seconds(pid) - cpu0) / visits,
                "client_cpu_s": (time.process_time() - mine0) / visits}

    return asyncio.run(go())


def class_models(page: str) -> int | None:
    """Bokeh models of ``page``'s class-mode document (None: no class mode)."""
    from bokeh.document import Document

    from app.classmode import SLUG
    from app.figures.live import live_figures

    if page != SLUG:
        return None
    doc = Document()
    for fig in live_figures().values():
        doc.add_root(fig)
    return len(list(doc.models))


def _cell(value, fmt: str, width: int) -> str:
    return f"{'—' if value is None else format(value, fmt):>{width}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=5)
    ap.add_argument("--class-visits", type=int, default=30,
                    help="class-mode visits measured per page (each costs milliseconds)")
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
            row = dict(page=page, server_cpu_s=round(server_cpu, 3),
                       client_cpu_s=round(client_cpu, 3), models=int(np.median(models)),
                       numpy_units=round(server_cpu / ref, 1))
            pid, n = server.proc.pid, args.class_visits
            shared = class_visits(server.base, pid, page, PAGES[page], n, own=False)
            own = shared and class_visits(server.base, pid, page, PAGES[page], n, own=True)
            row["class"] = shared and dict(
                server_cpu_s=round(shared["server_cpu_s"], 4),
                client_cpu_s=round(shared["client_cpu_s"], 4),
                own_link_server_cpu_s=round(own["server_cpu_s"], 4),
                own_link_client_cpu_s=round(own["client_cpu_s"], 4),
                models=class_models(page), numpy_units=round(shared["server_cpu_s"] / ref, 2),
                panel_over_class=(round(server_cpu / shared["server_cpu_s"])
                                  if shared["server_cpu_s"] > 0 else None))
            rows.append(row)
    finally:
        problems = server.log_problems()
        server.stop()
    print(f"plain-NumPy reference (eigvalsh of 40 × 200×200): {ref:.3f} s of CPU")
    print(f"{'':<14}{'— Panel page —':^49}{'— class page —':^58}")
    print(f"{'page':<14}{'server CPU/student':>20}{'client CPU':>12}{'models':>8}{'× NumPy':>9}"
          f"{'server CPU/student':>20}{'own link':>10}{'client CPU':>12}{'models':>8}"
          f"{'Panel/class':>13}")
    for r in rows:
        c = r["class"] or {}
        print(f"{r['page']:<14}{r['server_cpu_s']:>18.3f} s{r['client_cpu_s']:>10.3f} s"
              f"{r['models']:>8}{r['numpy_units']:>9}"
              f"{_cell(c.get('server_cpu_s'), '.4f', 18)}{' s' if c else '  '}"
              f"{_cell(c.get('own_link_server_cpu_s'), '.4f', 8)}{' s' if c else '  '}"
              f"{_cell(c.get('client_cpu_s'), '.4f', 10)}{' s' if c else '  '}"
              f"{_cell(c.get('models'), 'd', 8)}{_cell(c.get('panel_over_class'), 'd', 12)}"
              f"{'×' if c.get('panel_over_class') else ' '}")
    print("class page: HTML, every script (bokeh.min.js …) and the first frame; 'own link': a "
          "seed per visit (its first frame computed), else the class's shared link")
    print("server log:", json.dumps({k: problems[k] for k in ("tracebacks", "error_lines")}))
    (out / "bench_sessions.json").write_text(json.dumps(dict(numpy_reference_s=ref, rows=rows),
                                                       indent=1))


if __name__ == "__main__":
    main()

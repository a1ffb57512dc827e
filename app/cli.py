"""``sgd-atlas``: compute a page's datasets headlessly, prewarm the cache, serve the dashboard.

    sgd-atlas compute escape --preset fig5 -o fig5.nc
    sgd-atlas compute phases --set resolution=64 --set batch_size=4 -o phases.nc
    sgd-atlas prewarm                         # every preset of every page, into the disk cache
    sgd-atlas serve --port 5006               # panel serve with the right options

Values given with ``--set`` are validated exactly like values in a link (clamped to the
bounds, with a message). Results go through the same cache as the dashboard's, so what
``prewarm`` computes the night before is there, warm, when the class opens the links.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sgd-atlas"


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2."""


def _cache_dir(args) -> Path | None:
    if getattr(args, "no_disk_cache", False):
        return None
    return Path(args.cache_dir or os.environ.get("SGD_ATLAS_CACHE_DIR") or DEFAULT_CACHE_DIR)


def _setup(args) -> None:
    """The process-wide cache and cluster, from the options (before anything computes)."""
    from . import sweeps
    from .cache import configure

    configure(_cache_dir(args))
    if args.scheduler is not None:
        sweeps.configure(args.scheduler)


def _parse_sets(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        values[name.strip()] = value.strip()
    return values


def build_states(page: str, preset: str | None = None, values: dict | None = None,
                 report=print) -> dict:
    """Fresh state objects of ``page`` with a preset's and then ``values``' parameters applied
    (validated as link values are; ``report`` receives each notice)."""
    from .presets import apply_link, find_preset, load_presets
    from .state import PAGE_STATES

    if page not in PAGE_STATES:
        raise UsageError(f"no page {page!r}; choose one of: {', '.join(PAGE_STATES)}")
    states = {attr: cls() for attr, cls in PAGE_STATES[page].items()}
    fields = {attr: tuple(n for n in obj.param if n != "name") for attr, obj in states.items()}
    if preset and find_preset(page, preset) is None:
        ids = [p["id"] for p in load_presets().get(page, [])]
        raise UsageError(f"page {page} has no preset {preset!r}; presets: {', '.join(ids) or 'none'}")
    known = {n for f in fields.values() for n in f}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise UsageError(f"page {page} has no parameter {', '.join(unknown)}; "
                         f"parameters: {', '.join(sorted(known))}")
    query = {**({"preset": preset} if preset else {}), **(values or {})}
    for notice in apply_link(page, [(states[a], fields[a]) for a in states], query):
        report(notice)
    return states


def _progress_printer(label: str, quiet: bool):
    last = [0.0]

    def progress(done, total):
        now = time.monotonic()
        if quiet or (now - last[0] < 1.0 and done < total):
            return
        last[0] = now
        print(f"\r{label}: {100 * done / max(total, 1):5.1f} %", end="", file=sys.stderr, flush=True)

    return progress


def compute(page: str, preset: str | None = None, values: dict | None = None,
            steps: int = 10_000, quiet: bool = True):
    """``(tasks, results)`` of a page's datasets, through the shared cache."""
    from .state import page_tasks
    from .sweeps import run_tasks

    states = build_states(page, preset, values,
                          report=lambda n: print(f"note: {n}", file=sys.stderr))
    options = {"n_steps": steps} if page == "trajectories" else {}
    tasks = page_tasks(page, states, **options)
    results = run_tasks(tasks, progress=_progress_printer(page, quiet))
    if not quiet:
        print(file=sys.stderr)
    return tasks, results


def cmd_compute(args) -> int:
    from . import ncio
    from .state import assemble

    _setup(args)
    t0 = time.perf_counter()
    tasks, results = compute(args.page, args.preset, _parse_sets(args.set), args.steps,
                             quiet=args.quiet)
    groups = assemble(list(zip(tasks, results)))
    out = Path(args.output or f"{args.page}.nc")
    ncio.write(groups, out)
    print(f"{out}: {len(groups)} dataset(s) ({', '.join(groups)}) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def cmd_prewarm(args) -> int:
    from .cache import get_cache
    from .presets import load_presets
    from .state import PAGE_STATES

    _setup(args)
    cache = get_cache()
    if cache.directory is None:
        print("note: --no-disk-cache: results are computed and then forgotten", file=sys.stderr)
    pages = args.page or [p for p in PAGE_STATES if p != "trajectories"]
    jobs = []
    for page in pages:
        if page not in PAGE_STATES:
            raise UsageError(f"no page {page!r}; choose from: {', '.join(PAGE_STATES)}")
        ids = [None] + [p["id"] for p in load_presets().get(page, [])]
        if args.preset:
            ids = [i for i in ids if i in args.preset]
        jobs += [(page, pid) for pid in ids]
    if args.preset and not jobs:
        raise UsageError(f"no preset {', '.join(args.preset)} on {', '.join(pages)}")
    if args.list:
        for page, pid in jobs:
            print(f"{page} {pid or '(defaults)'}")
        return 0
    for page, pid in jobs:
        t0 = time.perf_counter()
        before = cache.misses
        compute(page, pid, quiet=args.quiet)
        print(f"{page:<12} {pid or '(defaults)':<20} {time.perf_counter() - t0:7.1f} s  "
              f"{cache.misses - before} computed", flush=True)
    where = cache.directory or "memory only"
    print(f"cache: {where}, {cache.disk_usage() / 2**20:.1f} MiB on disk")
    return 0


def _origins(args) -> list[str]:
    """The websocket origins to accept: the options', the environment's, else the serving
    host's."""
    origins = list(args.allow_origin or [])
    if not origins:
        origins = [o for o in os.environ.get("SGD_ATLAS_ORIGINS", "").replace(",", " ").split() if o]
    if not origins:  # the serving host only
        origins = [f"localhost:{args.port}", f"127.0.0.1:{args.port}"]
        if args.address not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
            origins.append(f"{args.address}:{args.port}")
    return origins


def serve_command(args, port: int | None = None) -> tuple[list[str], dict]:
    """The ``panel serve`` command line and environment for ``serve``'s options: the server
    itself, or with ``port`` one of ``--procs N``'s processes (on loopback, behind the proxy)."""
    env = dict(os.environ)
    cache_dir = _cache_dir(args)
    if cache_dir is not None:
        env["SGD_ATLAS_CACHE_DIR"] = str(cache_dir)
    else:
        env.pop("SGD_ATLAS_CACHE_DIR", None)
    if args.cache_bytes is not None:
        env["SGD_ATLAS_CACHE_BYTES"] = str(int(args.cache_bytes))
    if args.scheduler is not None:
        env["SGD_ATLAS_SCHEDULER"] = args.scheduler
    address, port = ("127.0.0.1", port) if port is not None else (args.address, args.port)
    cmd = [sys.executable, "-m", "panel", "serve", str(APP_DIR), "--address", address,
           "--port", str(port), "--liveness", "--num-procs", "1"]
    for origin in _origins(args):
        cmd += ["--allow-websocket-origin", origin]
    if args.warm:
        cmd.append("--warm")
    if args.show and port == args.port:
        cmd.append("--show")
    return cmd, env


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def cmd_serve(args) -> int:
    if args.num_procs < 1:
        raise UsageError(f"--procs must be at least 1, got {args.num_procs}")
    if args.num_procs == 1:
        cmd, env = serve_command(args)
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        os.execvpe(cmd[0], cmd, env)  # the server is this very process: signals reach it
    ports = _free_ports(args.num_procs)
    commands = [serve_command(args, port) for port in ports]
    if args.dry_run:
        for cmd, _ in commands:
            print(shlex.join(cmd))
        print(f"# and sgd-atlas's proxy on {args.address}:{args.port}, keeping each browser on "
              "one of these processes")
        return 0
    return supervise(commands, ports, args)


def supervise(commands: list[tuple[list[str], dict]], ports: list[int], args) -> int:
    """``--procs N``: N server processes behind the sticky proxy of :mod:`app.proxy`, in this
    process. Each server runs in a process group of its own (its frame workers with it); all
    of them are ended when this process is asked to stop (SIGTERM, SIGINT, SIGHUP) or when one
    of them exits. Returns the exit status."""
    import urllib.request

    from tornado.ioloop import IOLoop, PeriodicCallback

    from . import proxy

    procs = [subprocess.Popen(cmd, env=env, start_new_session=True) for cmd, env in commands]
    status = {"code": 0}

    def stop_all():
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def exited():
        return next((p for p in procs if p.poll() is not None), None)

    def interrupt(signum, frame):  # while the processes start: stop them
        raise KeyboardInterrupt

    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, interrupt)
        for port in ports:  # each process answers before the public port opens
            deadline = time.monotonic() + 600
            while True:
                gone = exited()
                if gone is not None:
                    print(f"sgd-atlas serve: a server process exited ({gone.returncode}) "
                          "while starting", file=sys.stderr)
                    return gone.returncode or 1
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        print("sgd-atlas serve: a server process did not start in 600 s",
                              file=sys.stderr)
                        return 1
                    time.sleep(0.5)
        loop = IOLoop.current()
        proxy.application(proxy.Backends(ports)).listen(args.port, args.address)
        url = f"http://{args.address}:{args.port}/app"
        print(f"sgd-atlas: serving {url} from {len(procs)} processes (each browser kept on "
              "one)", file=sys.stderr, flush=True)
        if args.show:
            import webbrowser

            webbrowser.open(url)

        def stop(signum=None, frame=None):
            loop.add_callback_from_signal(loop.stop)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)

        def watch():
            gone = exited()
            if gone is not None:
                print(f"sgd-atlas serve: a server process exited ({gone.returncode}); stopping",
                      file=sys.stderr)
                status["code"] = gone.returncode or 1
                loop.stop()

        PeriodicCallback(watch, 1000).start()
        loop.start()
        return status["code"]
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="sgd-atlas",
        description="SGD Atlas: phase diagrams of SGD in tiny networks. Compute any page's "
                    "datasets to netCDF, prewarm the cache from the presets, or serve the "
                    "dashboard.",
        epilog="Environment: SGD_ATLAS_CACHE_DIR (disk cache folder), SGD_ATLAS_CACHE_BYTES "
               "(memory budget), SGD_ATLAS_DISK_BYTES (disk budget), SGD_ATLAS_SCHEDULER (Dask "
               "scheduler address), SGD_ATLAS_ORIGINS (websocket origins for serve).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument("--cache-dir", metavar="DIR",
                       help=f"disk cache folder (default: $SGD_ATLAS_CACHE_DIR or {DEFAULT_CACHE_DIR})")
        p.add_argument("--no-disk-cache", action="store_true",
                       help="keep results in memory only")
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler, e.g. tcp://10.0.0.5:8786: large sweeps run on that "
                            "cluster (default: $SGD_ATLAS_SCHEDULER, else this machine); '' "
                            "forces local work")

    c = sub.add_parser("compute", help="compute a page's datasets and write them to netCDF",
                       description="Compute every dataset of PAGE (both tabs of escape) and "
                                   "write them as netCDF groups.")
    c.add_argument("page", metavar="PAGE",
                   help="trajectories, stability, phases, escape or overfit")
    c.add_argument("--preset", metavar="ID", help="start from a preset of assets/presets.yaml")
    c.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a page parameter, as in a link (repeatable), e.g. --set sigma2=0.5")
    c.add_argument("--steps", type=int, default=10_000,
                   help="SGD steps of the trajectories page's ensemble (default 10000)")
    c.add_argument("-o", "--output", metavar="FILE.nc", help="output file (default PAGE.nc)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    common(c)
    c.set_defaults(func=cmd_compute)

    p = sub.add_parser("prewarm", help="compute every preset into the disk cache",
                       description="Compute each page's defaults and every preset of "
                                   "assets/presets.yaml into the cache folder, so a server "
                                   "started on it (sgd-atlas serve) answers at once.")
    p.add_argument("--page", action="append", metavar="PAGE",
                   help="only this page (repeatable; default: every page but the live one)")
    p.add_argument("--preset", action="append", metavar="ID",
                   help="only this preset (repeatable; default: the defaults and every preset)")
    p.add_argument("--list", action="store_true", help="list what would be computed, and stop")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    common(p)
    p.set_defaults(func=cmd_prewarm)

    s = sub.add_parser("serve", help="serve the dashboard (panel serve with the right options)",
                       description="Serve the dashboard. Websocket connections are accepted from "
                                   "the serving host only unless --allow-origin says otherwise; "
                                   "/liveness answers health checks; there is no admin page.")
    s.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 for a classroom)")
    s.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    s.add_argument("--allow-origin", action="append", metavar="HOST:PORT",
                   help="a websocket origin to accept (repeatable; default: "
                        "$SGD_ATLAS_ORIGINS, else localhost and 127.0.0.1 at PORT)")
    s.add_argument("--cache-bytes", type=float, metavar="N",
                   help="memory budget of the result cache in bytes (default 512 MiB)")
    s.add_argument("--procs", "--num-procs", dest="num_procs", type=int, default=1, metavar="N",
                   help="server processes (default 1), behind one port: each browser is kept "
                        "on one of them (a cookie), they share the disk cache, and stopping "
                        "sgd-atlas stops all of them. The class mode reaches its targets "
                        "with 1 (it has its own frame workers); more help the full pages")
    s.add_argument("--no-warm", dest="warm", action="store_false",
                   help="do not run the app once before accepting sessions")
    s.add_argument("--show", action="store_true", help="open a browser")
    s.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    common(s)
    s.set_defaults(func=cmd_serve)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"sgd-atlas {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

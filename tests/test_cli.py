"""The ``sgd-atlas`` command line (app/cli.py): compute, prewarm, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from app import cli, ncio, sweeps
from app.cache import configure, get_cache
from engine import escape

TINY_ESCAPE = ["--set", "n_sigma2=3", "--set", "n_trajectories=40", "--set", "max_steps=2000",
               "--set", "fp_dims=1,2", "--set", "fp_runs=10", "--set", "fp_max_steps=10000",
               "--set", "phi_lrs=0.1", "--set", "phi_batches=1,2", "--set", "phi_samples=100"]


@pytest.fixture(autouse=True)
def _restore():
    yield
    configure()
    sweeps.configure(None)


def _options(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


@pytest.mark.parametrize("command", ["compute", "prewarm", "serve"])
def test_help_documents_every_option(command):
    out = subprocess.run([sys.executable, "-m", "app.cli", command, "--help"],
                         capture_output=True, text=True, check=True).stdout
    sub = cli.parser()._subparsers._group_actions[0].choices[command]
    for option in _options(sub):
        assert option in out
    assert all(a.help for a in sub._actions)  # none undocumented
    top = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert command in top and "SGD_ATLAS_SCHEDULER" in top


def test_compute_writes_every_dataset_of_a_page(tmp_path, capsys):
    out = tmp_path / "escape.nc"
    rc = cli.main(["compute", "escape", *TINY_ESCAPE, "--set", "lr=7", "-o", str(out),
                   "--no-disk-cache", "-q"])
    assert rc == 0
    assert "clamped to 1.0" in capsys.readouterr().err  # validated like a link value
    groups = ncio.read_groups(out)
    assert set(groups) == {"fig5", "first_passage/d1", "first_passage/d2",
                           "stationary_exponent/lr0.1_B1", "stationary_exponent/lr0.1_B2"}
    fig5 = groups["fig5"]
    assert fig5.sizes["sigma2"] == 3 and np.all(np.diff(fig5.sigma2.values) > 0)
    # the curve's points are the engine's, computed independently
    one = escape.escape_times(float(fig5.sigma2[1]), lr=1.0, n_trajectories=40, max_steps=2000)
    xr.testing.assert_identical(fig5.isel(sigma2=[1]).drop_attrs(), one.drop_attrs())
    assert fig5.attrs["lr"] == 1.0


def test_compute_trajectories_runs_the_ensemble(tmp_path):
    out = tmp_path / "t.nc"
    assert cli.main(["compute", "trajectories", "--preset", "p000-s1", "--steps", "300",
                     "--set", "n_trajectories=3", "-o", str(out), "--no-disk-cache", "-q"]) == 0
    ds = ncio.read_groups(out)["trajectories"]
    assert ds.sizes["trajectory"] == 3 and int(ds.step[-1]) == 300 and ds.attrs["sigma2"] == 1.0


@pytest.mark.parametrize("argv,message", [
    (["compute", "nope"], "no page 'nope'"),
    (["compute", "escape", "--set", "foo=1"], "has no parameter foo"),
    (["compute", "escape", "--set", "lr"], "NAME=VALUE"),
    (["compute", "escape", "--preset", "nope"], "has no preset 'nope'"),
    (["prewarm", "--page", "nope"], "no page 'nope'"),
])
def test_mistakes_are_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv + ["--no-disk-cache"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_prewarm_fills_the_disk_cache_a_server_then_reads(tmp_path, monkeypatch, capsys):
    import app.presets

    tiny = {"id": "tiny", "title": "t", "prompt": "p",
            "params": {"n_sigma2": 3, "n_trajectories": 30, "max_steps": 1000, "fp_dims": [1],
                       "fp_runs": 10, "fp_max_steps": 10_000, "phi_lrs": [0.1],
                       "phi_batches": [1], "phi_samples": 100}}
    monkeypatch.setattr(app.presets, "_load", lambda path: {"escape": [tiny]})
    assert cli.main(["prewarm", "--page", "escape", "--list", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["escape (defaults)", "escape tiny"]
    assert cli.main(["prewarm", "--page", "escape", "--preset", "tiny", "-q",
                     "--cache-dir", str(tmp_path)]) == 0
    assert "5 computed" in capsys.readouterr().out  # 3 points, 1 curve, 1 φ
    assert len(list(tmp_path.rglob("*.nc"))) == 5

    configure(tmp_path)  # "the next morning": a fresh process on the same folder
    cli.compute("escape", "tiny")
    cache = get_cache()
    assert cache.misses == 5 and cache.disk_hits == 5  # all read, none recomputed


def test_serve_defaults_to_this_host_only(monkeypatch):
    monkeypatch.delenv("SGD_ATLAS_ORIGINS", raising=False)
    args = cli.parser().parse_args(["serve", "--port", "5077", "--no-disk-cache"])
    cmd, env = cli.serve_command(args)
    origins = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--allow-websocket-origin"]
    assert origins == ["localhost:5077", "127.0.0.1:5077"]
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1" and "--liveness" in cmd
    assert not any("admin" in c for c in cmd) and "SGD_ATLAS_CACHE_DIR" not in env

    monkeypatch.setenv("SGD_ATLAS_ORIGINS", "class.example.org:5006, 10.0.0.2:5006")
    args = cli.parser().parse_args(["serve", "--address", "0.0.0.0", "--cache-dir", "/tmp/c",
                                    "--scheduler", "tcp://h:8786"])
    cmd, env = cli.serve_command(args)
    origins = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--allow-websocket-origin"]
    assert origins == ["class.example.org:5006", "10.0.0.2:5006"]
    assert env["SGD_ATLAS_CACHE_DIR"] == "/tmp/c" and env["SGD_ATLAS_SCHEDULER"] == "tcp://h:8786"


def test_stopping_a_multi_process_server_stops_every_process():
    """``sgd-atlas serve --procs 2``: two server processes behind one port (app/proxy.py).

    Each browser is kept on one process by a cookie: a class-mode run, held by the process
    that computed it, is stepped ten times without once being "no longer on the server" — and
    without the cookie (requests spread over both) it would be; a Panel page's websocket
    reaches the process that built its page. A SIGTERM to sgd-atlas (``docker stop``) ends all
    of them (before, Tornado's children outlived their parent)."""
    import asyncio
    import json
    import re
    import urllib.error
    import urllib.request

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    from tests.load.loadtest import ROOT
    from tests.support import free_port, live_processes, process_tree, run_async, wait_serving

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve",
                             "--procs", "2", "--port", str(port), "--no-disk-cache"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path, cookie=None):
        request = urllib.request.Request(base + path, headers={"Cookie": cookie} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def stats():
        return json.loads(get("/atlas-proxy")[2])["processes"]

    def step_ten(cookie):
        """A class-mode run started and stepped ten times: the statuses of the steps."""
        answer = json.loads(get("/api/live/frame?sigma2=0.5&steps_per_frame=10", cookie)[2])
        codes = []
        for _ in range(10):
            code, _, body = get(f"/api/live/frame?sigma2=0.5&steps_per_frame=10&action=step"
                                f"&run={answer.get('run', '')}", cookie)
            codes.append(code)
            if code == 200:
                answer = json.loads(body)
        return codes, answer

    serving: set[int] = set()
    try:
        assert wait_serving(base, proc, 300), "the server did not start"
        time.sleep(1)
        serving = set(process_tree(proc.pid)[1:])
        assert len(serving) >= 2  # (at least) the two server processes
        code, headers, body = get("/class?page=trajectories")
        assert code == 200 and "Play</button>" in body.decode()
        cookie = headers["Set-Cookie"].split(";")[0]
        assert re.fullmatch(r"sgd_atlas_proc=[01]", cookie)
        codes, answer = step_ten(cookie)
        assert codes == [200] * 10 and answer["step"] == 100
        assert answer["values"]["sigma2"] == 0.5
        codes, _ = step_ten(None)  # no cookie: the requests alternate between the processes
        assert 404 in codes
        assert all(p["requests"] > 0 for p in stats())

        # a Panel page, then its websocket: both to the cookie's process
        before = stats()
        code, headers, body = get("/app?page=about")
        cookie = headers["Set-Cookie"].split(";")[0]
        k = int(cookie.rsplit("=", 1)[1])
        token = re.search(r'"token":\s*"([^"]+)"', body.decode()).group(1)

        async def connect():
            ws = await websocket_connect(HTTPRequest(
                f"ws://127.0.0.1:{port}/app/ws", headers={"Cookie": cookie,
                                                          "Origin": f"http://127.0.0.1:{port}"}),
                subprotocols=["bokeh", token])
            first = await asyncio.wait_for(ws.read_message(), 60)  # Bokeh's ACK
            ws.close()
            return first

        assert run_async(connect()) is not None
        after = stats()
        assert [a["websockets"] - b["websockets"] for a, b in zip(after, before)] == \
            [int(i == k) for i in range(2)]
        assert after[k]["pages"] - before[k]["pages"] == 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        deadline = time.time() + 30
        while serving & set(live_processes()) and time.time() < deadline:
            time.sleep(0.2)
        assert not serving & set(live_processes()), "server processes outlived the SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in serving & set(live_processes()):
            os.kill(pid, signal.SIGKILL)

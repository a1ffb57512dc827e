"""What several test modules need: a free loopback port, waiting for a condition, waiting
for a server's ``/liveness``."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout: float = 60.0, step: float = 0.02) -> None:
    """Poll ``cond()`` every ``step`` seconds until it is true; AssertionError after
    ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(step)


def wait_serving(base: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Until the server at ``base`` answers ``/liveness``: True, or False once ``proc`` has
    exited or ``timeout`` seconds have passed."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/liveness", timeout=2):
                return True
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.3)


def run_async(coro):
    """``asyncio.run(coro)`` in a fresh thread: Playwright's sync API (the browser tests, in
    the same process) keeps an event loop running in the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

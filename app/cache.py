"""One cache of engine Datasets, shared by every page and every session — and, on disk, by
server restarts, several server processes and the command line.

Keys are derived from the *canonical values* of the inputs (floats by their exact repr, arrays
by a hash of their bytes) plus the engine version (:func:`engine.engine_version`, which hashes
the engine's source) — never from object identity, which is how ``pn.cache`` goes stale with
xarray objects.

* **Memory**: entries are evicted least-recently-used when the total ``nbytes`` passes the
  budget (``SGD_ATLAS_CACHE_BYTES``, default 512 MiB).
* **Disk** (optional: ``SGD_ATLAS_CACHE_DIR``, or the command line's ``--cache-dir``): every
  computed Dataset is also written as netCDF to ``<dir>/<engine version>/<kind>-<key>.nc``, so
  a restarted server starts warm. Files of other engine versions are deleted when the cache
  opens; the directory is kept under ``SGD_ATLAS_DISK_BYTES`` (default 4 GiB) by deleting the
  least recently used files. Nothing is ever written outside the directory.
* Identical requests that arrive together compute once: the later callers wait for the first.

Cached Datasets are frozen (their arrays are made read-only) because several sessions share
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

import engine

from . import ncio

log = logging.getLogger(__name__)
DEFAULT_BUDGET = 512 * 2**20
DEFAULT_DISK_BUDGET = 4 * 2**30
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+\+[0-9a-f]{12}$")


def canonical(value: Any) -> Any:
    """A JSON-serialisable canonical form of a parameter value."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        digest = hashlib.sha256(arr.tobytes()).hexdigest()
        return {"ndarray": digest, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # exact round-trip, and NaN/inf-safe
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    raise TypeError(f"cannot build a cache key from {type(value).__name__}")


def make_key(kind: str, inputs: Mapping[str, Any], version: str | None = None) -> str:
    """sha256 of (kind, canonical inputs, engine version)."""
    payload = {"kind": kind, "inputs": canonical(dict(inputs)),
               "engine": version if version is not None else engine.engine_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _freeze(ds: xr.Dataset) -> xr.Dataset:
    for var in ds.variables.values():
        data = var.values
        if isinstance(data, np.ndarray):
            data.flags.writeable = False
    return ds


class DatasetCache:
    """Thread-safe LRU of ``xr.Dataset`` with a byte budget, single-flight computation and an
    optional netCDF directory behind it (see the module doc)."""

    def __init__(self, max_bytes: int = DEFAULT_BUDGET, directory: str | os.PathLike | None = None,
                 disk_bytes: int = DEFAULT_DISK_BUDGET):
        self.max_bytes = int(max_bytes)
        self.disk_bytes = int(disk_bytes)
        self.directory = Path(directory).expanduser().resolve() if directory else None
        self._entries: OrderedDict[str, xr.Dataset] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._disk_lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._prune_versions()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def get(self, key: str) -> xr.Dataset | None:
        with self._lock:
            ds = self._entries.get(key)
            if ds is not None:
                self._entries.move_to_end(key)
            return ds

    def put(self, key: str, ds: xr.Dataset) -> xr.Dataset:
        ds = _freeze(ds)
        size = int(ds.nbytes)
        with self._lock:
            if key in self._entries:
                self._bytes -= int(self._entries.pop(key).nbytes)
            if size <= self.max_bytes:  # a Dataset larger than the budget is not kept
                self._entries[key] = ds
                self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                self._bytes -= int(old.nbytes)
        return ds

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    # -- disk ----------------------------------------------------------------------------------
    def _version_dir(self) -> Path:
        return self.directory / engine.engine_version()

    def path(self, kind: str, inputs: Mapping[str, Any]) -> Path | None:
        """Where ``(kind, inputs)`` is (or would be) stored on disk; None without a directory."""
        if self.directory is None:
            return None
        return self._version_dir() / f"{kind}-{make_key(kind, inputs)}.nc"

    def _prune_versions(self) -> None:
        """Delete the result folders of other engine versions (only folders named like one)."""
        current = engine.engine_version()
        for entry in self.directory.iterdir():
            if entry.is_dir() and entry.name != current and _VERSION_DIR.match(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                log.info("cache: removed results of engine %s", entry.name)

    def _load(self, path: Path) -> xr.Dataset | None:
        try:
            ds = ncio.read_dataset(path)
            os.utime(path)  # least-recently-used order on disk is by modification time
            return ds
        except FileNotFoundError:
            return None
        except Exception:  # a damaged file (killed writer, full disk): drop it, recompute
            log.warning("cache: unreadable %s, recomputing", path.name, exc_info=True)
            path.unlink(missing_ok=True)
            return None

    def _store(self, path: Path, ds: xr.Dataset) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ncio.write(ds, path)
        except Exception:  # the result is still served from memory
            log.warning("cache: could not write %s", path.name, exc_info=True)
            return
        self._trim_disk()

    def disk_usage(self) -> int:
        """Bytes of result files in the current engine version's folder."""
        if self.directory is None or not self._version_dir().is_dir():
            return 0
        return sum(p.stat().st_size for p in self._version_dir().glob("*.nc"))

    def _trim_disk(self) -> None:
        with self._disk_lock:
            files = []
            for p in self._version_dir().glob("*.nc"):
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
            total = sum(f[1] for f in files)
            for _, size, p in sorted(files, key=lambda f: f[0]):
                if total <= self.disk_bytes:
                    break
                p.unlink(missing_ok=True)
                total -= size

    def _hit(self, key: str) -> xr.Dataset | None:
        """The entry for ``key`` from memory, counted and made most recent (lock held)."""
        ds = self._entries.get(key)
        if ds is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return ds

    def lookup(self, kind: str, inputs: Mapping[str, Any], *,
               disk: bool = True) -> xr.Dataset | None:
        """The stored Dataset for ``(kind, inputs)`` — memory, then disk unless ``disk`` is
        false — or None; never computes (used to decide what must be sent to a cluster, and
        by views that draw a result at once if it is in memory)."""
        if not _KIND.match(kind):
            raise ValueError(f"invalid cache kind {kind!r}")
        key = make_key(kind, inputs)
        with self._lock:
            ds = self._hit(key)
            if ds is not None or not disk:
                return ds
        path = self.path(kind, inputs)
        ds = self._load(path) if path is not None else None
        if ds is None:
            return None
        with self._lock:
            self.disk_hits += 1
        return self.put(key, ds)

    # -- the one entry point -------------------------------------------------------------------
    def get_or_compute(self, kind: str, inputs: Mapping[str, Any],
                       compute: Callable[[], xr.Dataset]) -> xr.Dataset:
        """The cached Dataset for ``(kind, inputs)``: from memory, else from disk, else
        computed (once, however many callers ask at the same time) and stored in both."""
        if not _KIND.match(kind):
            raise ValueError(f"invalid cache kind {kind!r}")
        key = make_key(kind, inputs)
        while True:
            with self._lock:
                ds = self._hit(key)
                if ds is not None:
                    return ds
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    self.misses += 1
                    owner = True
                else:
                    owner = False
            if not owner:
                event.wait()
                continue  # the owner stored it (or failed: then we compute it ourselves)
            try:
                path = self.path(kind, inputs)
                if path is not None:
                    ds = self._load(path)
                    if ds is not None:
                        with self._lock:
                            self.disk_hits += 1
                        return self.put(key, ds)
                ds = compute()
                if path is not None:
                    self._store(path, ds)
                return self.put(key, ds)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()


_CACHE: DatasetCache | None = None
_CACHE_LOCK = threading.Lock()


def _env_bytes(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return max(int(float(raw)), 0) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number of bytes; using %d", name, raw, default)
        return default


def get_cache() -> DatasetCache:
    """The process-wide cache, created on first use from the environment:
    ``SGD_ATLAS_CACHE_BYTES`` (memory budget), ``SGD_ATLAS_CACHE_DIR`` (disk folder; unset:
    memory only) and ``SGD_ATLAS_DISK_BYTES`` (disk budget)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = DatasetCache(_env_bytes("SGD_ATLAS_CACHE_BYTES", DEFAULT_BUDGET),
                                  os.environ.get("SGD_ATLAS_CACHE_DIR") or None,
                                  _env_bytes("SGD_ATLAS_DISK_BYTES", DEFAULT_DISK_BUDGET))
        return _CACHE


def configure(directory: str | os.PathLike | None = None, max_bytes: int | None = None,
              disk_bytes: int | None = None) -> DatasetCache:
    """Replace the process-wide cache (the command line, before it computes anything)."""
    global _CACHE
    with _CACHE_LOCK:
        _CACHE = DatasetCache(DEFAULT_BUDGET if max_bytes is None else max_bytes, directory,
                              DEFAULT_DISK_BUDGET if disk_bytes is None else disk_bytes)
        return _CACHE

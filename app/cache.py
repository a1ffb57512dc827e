"""One in-memory cache of engine Datasets, shared by every page and every session.

Keys are derived from the *canonical values* of the inputs (floats by their exact repr, arrays
by a hash of their bytes) plus the engine version — never from object identity, which is how
``pn.cache`` goes stale with xarray objects.  Entries are evicted least-recently-used when the
total ``nbytes`` passes the budget (``SGD_ATLAS_CACHE_BYTES``, default 512 MiB).  Identical
requests that arrive together compute once: the later callers wait for the first.

Cached Datasets are frozen (their arrays are made read-only) because several sessions share
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

import engine

DEFAULT_BUDGET = 512 * 2**20


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
               "engine": version if version is not None else engine.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _freeze(ds: xr.Dataset) -> xr.Dataset:
    for var in ds.variables.values():
        data = var.values
        if isinstance(data, np.ndarray):
            data.flags.writeable = False
    return ds


class DatasetCache:
    """Thread-safe LRU of ``xr.Dataset`` with a byte budget and single-flight computation."""

    def __init__(self, max_bytes: int = DEFAULT_BUDGET):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, xr.Dataset] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self.hits = 0
        self.misses = 0

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

    def get_or_compute(self, kind: str, inputs: Mapping[str, Any],
                       compute: Callable[[], xr.Dataset]) -> xr.Dataset:
        """The cached Dataset for ``(kind, inputs)``, computing it once if absent."""
        key = make_key(kind, inputs)
        while True:
            with self._lock:
                ds = self._entries.get(key)
                if ds is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
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
                return self.put(key, compute())
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()


_CACHE: DatasetCache | None = None
_CACHE_LOCK = threading.Lock()


def get_cache() -> DatasetCache:
    """The process-wide cache (created on first use; budget from ``SGD_ATLAS_CACHE_BYTES``)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            raw = os.environ.get("SGD_ATLAS_CACHE_BYTES", "")
            try:
                budget = int(float(raw)) if raw else DEFAULT_BUDGET
            except ValueError:
                budget = DEFAULT_BUDGET
            _CACHE = DatasetCache(max(budget, 0))
        return _CACHE

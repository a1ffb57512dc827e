"""The shared Dataset cache (app/cache.py): keys, hits, LRU eviction, concurrency."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import xarray as xr

from app.cache import DatasetCache, canonical, make_key


def _ds(n: int, fill: float = 0.0) -> xr.Dataset:
    return xr.Dataset({"a": ("x", np.full(n, fill))})


def test_keys_are_canonical_values_not_identities():
    a = np.arange(5.0)
    assert make_key("k", {"lr": 0.1, "theta": a}) == make_key("k", {"theta": a.copy(), "lr": 0.1})
    assert make_key("k", {"lr": 0.1}) != make_key("k", {"lr": 0.1 + 1e-17 * 0 + 2e-17})
    assert make_key("k", {"lr": 0.1}) != make_key("other", {"lr": 0.1})
    assert make_key("k", {"lr": 0.1}, version="1") != make_key("k", {"lr": 0.1}, version="2")
    assert canonical(np.float64(0.5)) == canonical(0.5)
    with pytest.raises(TypeError):
        canonical(object())


def test_hits_and_misses():
    cache = DatasetCache(10_000)
    calls = []
    compute = lambda: calls.append(1) or _ds(10)  # noqa: E731
    first = cache.get_or_compute("k", {"a": 1}, compute)
    second = cache.get_or_compute("k", {"a": 1}, compute)
    assert first is second and len(calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(ValueError):  # cached data is read-only: sessions share it
        first["a"].values[0] = 1.0


def test_lru_eviction_under_the_byte_budget():
    cache = DatasetCache(3 * 800 + 10)  # three Datasets of 100 float64
    for i in range(3):
        cache.get_or_compute("k", {"i": i}, lambda: _ds(100))
    cache.get_or_compute("k", {"i": 0}, lambda: _ds(100))  # 0 is now most recent
    cache.get_or_compute("k", {"i": 3}, lambda: _ds(100))  # evicts 1, the least recent
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    assert cache.get(make_key("k", {"i": 1})) is None
    assert cache.get(make_key("k", {"i": 0})) is not None
    cache.get_or_compute("k", {"big": 1}, lambda: _ds(1000))  # larger than the budget: not kept
    assert cache.get(make_key("k", {"big": 1})) is None


def test_engine_version_change_invalidates(monkeypatch):
    import engine

    cache = DatasetCache()
    cache.get_or_compute("k", {"a": 1}, lambda: _ds(3))
    monkeypatch.setattr(engine, "__version__", "999")
    calls = []
    cache.get_or_compute("k", {"a": 1}, lambda: calls.append(1) or _ds(3))
    assert calls == [1]


def test_identical_concurrent_requests_compute_once():
    cache = DatasetCache()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return _ds(5, 1.0)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", {"s": 1}, slow)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 8
    assert all(r is results[0] for r in results)


def test_a_failed_computation_is_not_cached_and_waiters_retry():
    cache = DatasetCache()
    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", {"f": 1}, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cache.get_or_compute("k", {"f": 1}, lambda: _ds(2)).sizes["x"] == 2

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
        time.sleep(0.3)  # deliberately takes time (it waits for nothing): the others ask meanwhile
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


# -- the disk layer ----------------------------------------------------------------------------

def _engine_ds(fill: float) -> xr.Dataset:
    """A Dataset with the attrs engine results carry (bools, None, dicts, lists)."""
    return xr.Dataset({"a": ("x", np.full(4, fill)), "ok": ("x", np.array([True, False, True, True]))},
                      attrs={"inputs": {"lr": 0.1, "n_data": None}, "diverged": False,
                             "refined": [[1.0, 2.0], [3.0, 4.0]], "name": "run"})


def test_a_restarted_server_starts_warm_from_disk(tmp_path):
    first = DatasetCache(directory=tmp_path)
    ds = first.get_or_compute("k", {"a": 1}, lambda: _engine_ds(2.0))
    files = list(tmp_path.rglob("k-*.nc"))
    assert len(files) == 1 and files[0] == first.path("k", {"a": 1})

    restarted = DatasetCache(directory=tmp_path)  # a new process: empty memory, same folder
    calls = []
    again = restarted.get_or_compute("k", {"a": 1}, lambda: calls.append(1) or _engine_ds(0.0))
    assert calls == [] and (restarted.disk_hits, restarted.misses) == (1, 1)
    xr.testing.assert_identical(ds, again)
    assert again.attrs["inputs"] == {"lr": 0.1, "n_data": None} and again.attrs["diverged"] is False
    assert again.ok.dtype == bool
    restarted.get_or_compute("k", {"a": 1}, lambda: calls.append(1) or _engine_ds(0.0))
    assert restarted.hits == 1 and calls == []  # now from memory


def test_engine_version_change_invalidates_the_disk_and_prunes_old_results(tmp_path, monkeypatch):
    import engine

    DatasetCache(directory=tmp_path).get_or_compute("k", {"a": 1}, lambda: _engine_ds(1.0))
    old_dir = next(tmp_path.iterdir())
    unrelated = tmp_path / "notes"  # not a version folder: never touched
    unrelated.mkdir()
    monkeypatch.setattr(engine, "__version__", "9.9.9")
    cache = DatasetCache(directory=tmp_path)
    assert not old_dir.exists() and unrelated.exists()
    calls = []
    cache.get_or_compute("k", {"a": 1}, lambda: calls.append(1) or _engine_ds(1.0))
    assert calls == [1]
    assert cache.path("k", {"a": 1}).parent.name.startswith("9.9.9+")


def test_the_disk_stays_under_its_budget_least_recently_used_first(tmp_path):
    one = len(__import__("app.ncio", fromlist=["to_bytes"]).to_bytes(_engine_ds(0.0)))
    cache = DatasetCache(directory=tmp_path, disk_bytes=3 * one + one // 2)
    for i in range(3):
        cache.get_or_compute("k", {"i": i}, lambda: _engine_ds(float(i)))
        time.sleep(0.02)  # deliberately lets time pass: distinct modification times
    fresh = DatasetCache(directory=tmp_path, disk_bytes=cache.disk_bytes)
    fresh.get_or_compute("k", {"i": 0}, lambda: _engine_ds(-1.0))  # read from disk: now recent
    time.sleep(0.02)  # deliberately lets time pass: {"i": 0} is now older than what follows
    fresh.get_or_compute("k", {"i": 3}, lambda: _engine_ds(3.0))
    assert fresh.disk_usage() <= fresh.disk_bytes
    assert not fresh.path("k", {"i": 1}).exists()  # the least recently used one went
    assert fresh.path("k", {"i": 0}).exists() and fresh.path("k", {"i": 3}).exists()


def test_a_damaged_file_is_recomputed_not_served(tmp_path):
    cache = DatasetCache(directory=tmp_path)
    cache.get_or_compute("k", {"a": 1}, lambda: _engine_ds(1.0))
    cache.path("k", {"a": 1}).write_bytes(b"\x89HDF half a file")
    fresh = DatasetCache(directory=tmp_path)
    ds = fresh.get_or_compute("k", {"a": 1}, lambda: _engine_ds(5.0))
    assert float(ds.a[0]) == 5.0 and fresh.disk_hits == 0
    assert DatasetCache(directory=tmp_path).get_or_compute(
        "k", {"a": 1}, lambda: _engine_ds(7.0)).a[0] == 5.0  # rewritten whole


def test_kinds_cannot_name_paths(tmp_path):
    cache = DatasetCache(directory=tmp_path)
    for kind in ("../x", "a/b", "", "K"):
        with pytest.raises(ValueError):
            cache.get_or_compute(kind, {}, lambda: _engine_ds(0.0))
    assert list(tmp_path.iterdir()) == []


def test_concurrent_sessions_and_two_processes_sharing_a_folder(tmp_path):
    """12 sessions (threads) on two caches over one folder (two server processes) ask for 4
    keys in random order: each key is computed at most once per process, every session sees
    the right values, and the folder holds exactly the 4 files, all readable."""
    caches = [DatasetCache(directory=tmp_path), DatasetCache(directory=tmp_path)]
    calls = {0: [], 1: []}
    lock = threading.Lock()
    errors, rng = [], np.random.default_rng(0)
    orders = [rng.permutation(4) for _ in range(12)]

    def session(j):
        c = j % 2
        try:
            for i in orders[j]:
                def compute(i=int(i)):
                    with lock:
                        calls[c].append(i)
                    time.sleep(0.05)  # deliberately takes time: other sessions ask meanwhile
                    return _engine_ds(float(i))
                ds = caches[c].get_or_compute("k", {"i": int(i)}, compute)
                assert float(ds.a[0]) == i
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(j,)) for j in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for c in (0, 1):
        assert sorted(calls[c]) == sorted(set(calls[c]))  # no key twice in one process
    assert len(calls[0]) + len(calls[1]) >= 4
    files = sorted(tmp_path.rglob("*.nc"))
    assert len(files) == 4 and not list(tmp_path.rglob(".tmp-*"))
    fresh = DatasetCache(directory=tmp_path)
    for i in range(4):
        assert float(fresh.get_or_compute("k", {"i": i}, lambda: _engine_ds(-1.0)).a[0]) == i

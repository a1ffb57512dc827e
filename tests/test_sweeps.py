"""Sweeps in chunks (app/sweeps.py): the joined result equals the one-call result, here and on
an in-process Dask cluster of two workers, for the same seed."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xarray as xr

from app import sweeps
from app.cache import configure as configure_cache
from app.state import EscapeParams, PhaseParams, StabilityParams, assemble
from engine import escape, pullback, saddle


@pytest.fixture(autouse=True)
def _fresh_cache():
    configure_cache()  # memory only, empty: every test computes for real
    sweeps.configure("")
    yield
    sweeps.configure(None)
    configure_cache()


LR = np.geomspace(0.01, 10.0, 37)
MU = np.linspace(0.0, 1.0, 11)


@pytest.mark.parametrize("n_data,batch_size", [(None, 1), (None, 4), (8, 1), (8, 3)])
def test_a_phase_map_in_row_blocks_equals_the_whole_map(n_data, batch_size):
    """Prop. 1 of paper 002 cell by cell: blocks of 5 η rows join to the one-call map."""
    whole = saddle.lyapunov_exponents(LR, MU, batch_size=batch_size, n_data=n_data, seed=3)
    blocks = sweeps.phase_map(LR, MU, batch_size=batch_size, n_data=n_data, seed=3, rows=5)
    xr.testing.assert_identical(whole, blocks)


def test_a_pullback_cloud_in_path_blocks_equals_the_whole_cloud():
    """Paper 000 Fig. 4: all paths share one noise, so blocks of paths are independent."""
    whole = pullback.pullback_cloud(1.0, 400, n_points=1000, seed=5)
    blocks = sweeps.pullback_cloud(1.0, 400, n_points=1000, seed=5, paths=333)
    xr.testing.assert_identical(whole, blocks)
    assert 0.0 < float(blocks.trapped_fraction) < 1.0
    with pytest.raises(ValueError, match="cover"):
        pullback.combine_clouds([pullback.pullback_cloud(1.0, 10, n_points=5, first=2)])


def test_cancelling_between_blocks():
    calls = []
    with pytest.raises(sweeps.Cancelled):
        sweeps.phase_map(LR, MU, rows=5, cancel=lambda: len(calls) > 0,
                         progress=lambda d, t: calls.append(d))
    assert calls and max(calls) < 8


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c


def distributed_task_stream(client):
    from distributed import get_task_stream

    return get_task_stream(client=client)


def test_a_two_worker_cluster_gives_identical_results(cluster):
    state = StabilityParams(sigma2=1.0, pullback_time=1_000, pullback_points=2_000, seed=4)
    phases = PhaseParams(resolution=24, batch_size=2, n_data=8, seed=1)
    esc = EscapeParams(n_sigma2=3, n_trajectories=40, max_steps=3_000, seed=2)
    tasks = [phases.map_task(), state.tasks()[-1], *esc.tasks()]
    local = sweeps.run_tasks(tasks)

    configure_cache()  # nothing cached: everything must come from the cluster
    sweeps.configure(cluster.scheduler_address)
    client = sweeps.get_client()
    assert client is not None and len(client.scheduler_info()["workers"]) == 2
    seen = []
    with distributed_task_stream(client) as stream:
        remote = sweeps.run_tasks(tasks, progress=lambda d, t: seen.append((d, t)))
    for a, b in zip(local, remote):
        xr.testing.assert_identical(a, b)
    assert seen[-1] == (len(tasks), len(tasks))
    # the blocks of the big sweeps and the escape points all ran on the workers
    ran = [str(t["key"]).split("-")[0] for t in stream.data]
    assert ran.count("lyapunov_exponents") == 2  # 24 η rows in blocks of 16
    assert ran.count("pullback_cloud") == 1 and ran.count("escape_times") == 3
    assert len({t["worker"] for t in stream.data}) == 2
    # the curve of Fig. 5 assembled by xarray from the points, wherever they ran
    curve = assemble(list(zip(tasks[2:], remote[2:])))["fig5"]
    np.testing.assert_array_equal(curve.sigma2.values, np.sort(esc.sigma2_values()))


def test_cancelling_on_the_cluster_releases_the_work(cluster):
    sweeps.configure(cluster.scheduler_address)
    tasks = [("escape_times", dict(sigma2=s, n_trajectories=400, max_steps=200_000, seed=9),
              escape.escape_times) for s in (0.004, 0.005, 0.006)]
    with pytest.raises(sweeps.Cancelled):
        sweeps.run_tasks(tasks, cancel=lambda: True)


def test_an_unreachable_scheduler_falls_back_to_local_work(caplog):
    sweeps.configure("tcp://127.0.0.1:1")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="app.sweeps"):
        got = sweeps.phase_map(LR[:4], MU[:3], rows=2)
    xr.testing.assert_identical(got, saddle.lyapunov_exponents(LR[:4], MU[:3]))
    assert "cannot reach the Dask scheduler" in caplog.text

"""The class mode's computations API (app/classapi.py, issue 17): sixty students asking for the
same uncached pullback cloud get one computation, all of them see its progress, and its netCDF
equals the engine's own result; a cancel leaves it running for the others; a lapsed lease stops
it; bad input is a JSON sentence."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlencode

import numpy as np
import pytest
import xarray as xr

from app import cache, classapi, compute
from engine import pullback
from tests.support import class_mode_server, run_async

CLOUD = {"page": "stability", "what": "cloud", "sigma2": "1", "lr": "0.1",
         "pullback_time": "1000", "pullback_points": "4000"}
LONG = dict(CLOUD, pullback_time="100000", pullback_points="100000")


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())


def _url(path: str, **values) -> str:
    return f"{path}?{urlencode(values)}"


def _client() -> str:
    return uuid.uuid4().hex[:16]


async def _follow(get, values: dict, client: str, wait: float = 1.0) -> dict:
    resp = await get(_url("/api/compute", **values, client=client, wait=wait))
    assert resp.code == 200, resp.body
    return json.loads(resp.body)


def test_sixty_students_asking_for_one_uncached_cloud_compute_it_once():
    seed = str(np.random.default_rng().integers(1000, 10**6))  # never in any cache
    values = dict(CLOUD, seed=seed, pullback_time="10000", pullback_points="30000")  # ~2 s
    clients = [_client() for _ in range(60)]

    async def student(get, client):
        seen = []
        while True:
            answer = await _follow(get, values, client, wait=0.5)
            seen.append(answer)
            if answer["state"] != "running":
                return seen

    async def main():
        async with class_mode_server() as get:
            histories = await asyncio.gather(*(student(get, c) for c in clients))
            resp = await get(_url("/api/compute/result.nc", **values))
            return histories, resp

    histories, resp = run_async(main())
    assert cache.get_cache().misses == 1  # one pullback cloud computed, for all sixty
    keys = {a["key"] for h in histories for a in h}
    assert len(keys) == 1
    assert all(h[-1]["state"] == "done" and h[-1]["results"] == 1 for h in histories)
    running = [a for h in histories for a in h if a["state"] == "running"]
    assert running and all(0 <= a["done"] <= 1 and a["total"] == 1 for a in running)
    # the export is the engine's result, computed independently here
    assert resp.code == 200
    with xr.open_dataset(__import__("io").BytesIO(resp.body), group="pullback_cloud") as got:
        direct = pullback.pullback_cloud(sigma2=1.0, pullback_time=10000, lr=0.1,
                                         n_points=30000, seed=int(seed))
        np.testing.assert_array_equal(got.cloud.values, direct.cloud.values)


def test_one_students_cancel_leaves_it_running_for_the_others_and_the_last_stops_it():
    seed = str(np.random.default_rng().integers(1000, 10**6))
    values = dict(LONG, seed=seed)
    a, b = _client(), _client()

    async def main():
        async with class_mode_server() as get:
            first = await _follow(get, values, a, wait=0)
            await _follow(get, values, b, wait=0)
            comp = compute.running(first["key"])
            one = json.loads((await get(_url("/api/compute/cancel", key=first["key"],
                                             client=a))).body)
            after_one = comp.state
            two = json.loads((await get(_url("/api/compute/cancel", key=first["key"],
                                             client=b))).body)
            for _ in range(100):  # the engine stops at its next check
                if comp.status().state != "running":
                    break
                await asyncio.sleep(0.1)
            return first, one, after_one, two, comp.status().state

    first, one, after_one, two, final = run_async(main())
    assert first["state"] == "running"
    assert one["followers"] == 1 and after_one == "running"
    assert two["followers"] == 0 and final == "cancelled"
    assert compute.running(first["key"]) is None


def test_a_lapsed_lease_stops_the_computation(monkeypatch):
    """A browser that closed its tab stops asking: once its lease runs out, the computation
    nobody follows any more stops."""
    monkeypatch.setattr(classapi, "LEASE", 0.5)
    values = dict(LONG, seed=str(np.random.default_rng().integers(1000, 10**6)))

    async def main():
        async with class_mode_server() as get:
            first = await _follow(get, values, _client(), wait=0)
            comp = compute.running(first["key"])
            for _ in range(100):
                if comp.status().state != "running":
                    break
                await asyncio.sleep(0.1)
            return comp.status().state

    assert run_async(main()) == "cancelled"


def test_bad_input_is_a_json_sentence_and_values_are_validated():
    async def main():
        async with class_mode_server() as get:
            out = {}
            for name, path in {
                "page": _url("/api/compute", page="<script>", what="cloud", client=_client()),
                "what": _url("/api/compute", page="stability", what="nope", client=_client()),
                "client": _url("/api/compute", page="stability", what="cloud", client="x"),
                "wait": _url("/api/compute", **CLOUD, client=_client(), wait="soon"),
                "early": _url("/api/compute/result.nc", **dict(LONG, seed="424242")),
                "clamped": _url("/api/compute", **dict(CLOUD, pullback_points="1e9",
                                                        seed="77"), client=_client(), wait=0),
            }.items():
                resp = await get(path)
                out[name] = (resp.code, json.loads(resp.body))
            return out

    out = run_async(main())
    for name in ("page", "what", "client", "wait"):
        code, body = out[name]
        assert code == 400 and body["error"] and body["status"] == 400, name  # JSON, never HTML
    assert "cloud" in out["what"][1]["error"] and "maps" in out["what"][1]["error"]
    assert out["early"][0] == 409
    code, body = out["clamped"]
    assert code == 200 and any("paths" in n and "100000" in n for n in body["notices"])


def test_a_poll_after_the_end_answers_done_at_once_without_computing_again():
    """A browser that asks once more after the computation finished (``wait=0``) is told
    "done" by that very answer — before, it started the computation again, answered
    "running", and a browser polling without waiting never saw the end."""
    values = dict(CLOUD, what="point", seed=str(np.random.default_rng().integers(1000, 10**6)))

    async def main():
        async with class_mode_server() as get:
            first = await _follow(get, values, _client(), wait=5)
            while first["state"] == "running":
                first = await _follow(get, values, _client(), wait=5)
            misses = cache.get_cache().misses
            later = [await _follow(get, values, _client(), wait=0) for _ in range(3)]
            return first, later, misses

    first, later, misses = run_async(main())
    assert first["state"] == "done"
    assert [a["state"] for a in later] == ["done"] * 3 and all(a["results"] == 1 for a in later)
    assert cache.get_cache().misses == misses == 1


# -- the class pages' views (/api/view, app.classpages) ------------------------------------------
def _decode(col):
    """A column as app.classmode.encode wrote it."""
    import base64

    if isinstance(col, list):
        return col
    kind = "u4" if "u4" in col else "f4"
    arr = np.frombuffer(base64.b64decode(col[kind]), dtype="<" + kind)
    return arr.reshape(col["shape"]) if "shape" in col else arr


async def _view(get, values: dict, client: str, wait: float = 1.0) -> tuple[dict, dict | None]:
    """``/api/view``'s answer and, unless the client has it (``have``), the drawn view."""
    resp = await get(_url("/api/view", **values, client=client, wait=wait))
    assert resp.code == 200, resp.body
    answer = json.loads(resp.body)
    if values.get("have") == answer["view"]:
        return answer, None
    data = await get(_url("/api/view/data", key=answer["view"]))
    assert data.code == 200, data.body
    return answer, json.loads(data.body)


def test_sixty_students_get_one_cloud_drawn_once_equal_to_the_engines_cloud():
    """The cloud's view for a class: one computation, each distinct view drawn once, and what
    the browser receives is the figures module's columns of the engine's own cloud (the trapped
    share its fraction of paths within the distance, paper 000 Fig. 4)."""
    from app.figures.stability import cloud_columns

    seed = str(np.random.default_rng().integers(1000, 10**6))
    values = dict(CLOUD, seed=seed, trapped_distance="0.1")
    clients = [_client() for _ in range(60)]

    async def student(get, client):
        while True:
            answer, drawn = await _view(get, values, client, wait=0.5)
            if answer["state"] != "running":
                return answer, drawn

    async def main():
        async with class_mode_server() as get:
            return await asyncio.gather(*(student(get, c) for c in clients))

    before = classapi.view_store().computed
    finals = run_async(main())
    assert cache.get_cache().misses == 1
    assert {a["view"] for a, _ in finals} == {finals[0][0]["view"]}
    assert classapi.view_store().computed - before <= 2  # the empty cloud, then the cloud
    direct = pullback.pullback_cloud(sigma2=1.0, pullback_time=1000, lr=0.1, n_points=4000,
                                     seed=int(seed))
    expected = cloud_columns(direct, 0.1)
    got = finals[0][1]["columns"]
    np.testing.assert_array_equal(_decode(got["stab-cloud-image"]["image"]),
                                  expected["stab-cloud-image"]["image"][0])
    np.testing.assert_allclose(_decode(got["stab-cloud-rings-w"]["share"]),
                               expected["stab-cloud-rings-w"]["share"], rtol=1e-6)
    share = 100 * np.mean(direct.distance.values < 0.1)
    assert f"{share:.1f} %" in finals[0][1]["html"]["stab-trapped"]


def test_an_instant_view_is_the_closed_form_validated_and_not_drawn_twice():
    """μ±(x) at the clicked point is a closed form (paper 000 eq. 38, engine.stability.mu_pm):
    the view's columns equal it; a value out of bounds is clamped with a notice; asking again
    with the key one has (``have``) draws and sends nothing; a teacher's lock comes back."""
    from engine import stability as st

    base = {"page": "stability", "what": "mu", "sigma2": "0.5"}

    async def main():
        async with class_mode_server() as get:
            client = _client()
            a, drawn = await _view(get, dict(base, w0="1.2", v0="0.3", lock="sigma2"), client)
            n = classapi.view_store().computed
            again, none = await _view(get, dict(base, w0="1.2", v0="0.3", have=a["view"]), client)
            same_n = classapi.view_store().computed
            clamped, _ = await _view(get, dict(base, w0="7", v0="0.3"), client)
            bad = await get(_url("/api/view", page="stability", what="nothing", client=client))
            gone = await get(_url("/api/view/data", key="0" * 32))
            wrong = await get(_url("/api/view", page="trajectories", what="mu", client=client))
            return a, drawn, n, again, none, same_n, clamped, bad, gone, wrong

    a, drawn, n, again, none, same_n, clamped, bad, gone, wrong = run_async(main())
    cols = drawn["columns"]["stab-mu-curves"]
    x = _decode(cols["x"]).astype(float)
    lo, hi = st.mu_pm(x, 1.2, 0.3)
    np.testing.assert_allclose(_decode(cols["mu_plus"]), hi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_decode(cols["mu_minus"]), lo, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_decode(cols["rho"]), np.exp(-x**2 / 1.0) / np.sqrt(np.pi),
                               rtol=1e-5)
    assert list(_decode(drawn["columns"]["stab-map-marker"]["w"])) == [np.float32(1.2)]
    assert drawn["titles"]["stab-fig-mu"].startswith("μ±(x; w = 1.20, v = 0.30)")
    assert a["state"] == "done" and a["lock"] == ["sigma2"] and a["values"]["sigma2"] == 0.5
    assert again["view"] == a["view"] and none is None and same_n == n
    assert clamped["values"]["w0"] == 2.0 and any("w" in t for t in clamped["notices"])
    assert clamped["view"] != a["view"]
    assert bad.code == 400 and "what must be one of" in json.loads(bad.body)["error"]
    assert gone.code == 404 and "ask /api/view" in json.loads(gone.body)["error"]
    assert wrong.code == 400 and "page must be one of" in json.loads(wrong.body)["error"]

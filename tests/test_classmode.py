"""Class mode (app/classmode.py): the live page built once per (page, preset) and its JSON API.

Every frame is checked against an independent computation: the same run advanced in process
(and as one long engine call — the engine's noise is counter based), the columns against the
run's history (last finite θ, the median loss, |w1 − w2|, the nearest point of M_wv by least
squares), the export against the stored run. The store's promises are checked by counting: an
identical request is computed once, however many students send it at the same moment, and the
memory budget evicts the least recently used."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
from urllib.parse import urlencode, urljoin, urlsplit

import numpy as np
import pytest
import xarray as xr

from app import cache, ncio
from app import classmode as cm
from app.state import EnsembleParams, TrajectoryRun, restart_reason
from engine import fa
from tests.support import class_mode_server, run_async

FLOOR = 1e-16  # the loss axis is logarithmic: zeros are drawn at this value


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fresh_stores(monkeypatch):
    """Every test starts with empty class-mode stores and its own (memory-only) engine cache;
    frames are computed in a thread of this process (their store is then readable here)."""
    monkeypatch.setenv("SGD_ATLAS_CLASS_WORKERS", "0")
    cm.reset_stores()
    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())
    yield
    cm.reset_stores()


def f4(col: dict) -> np.ndarray:
    """A numeric column as the browser decodes it: base64 float32 little-endian."""
    return np.frombuffer(base64.b64decode(col["f4"]), dtype="<f4")


def _no_constant(name):
    raise AssertionError(f"{name} in the JSON: browsers cannot parse it")


def strict_json(body: bytes) -> dict:
    """JSON as a browser's ``JSON.parse`` reads it: NaN/Infinity tokens are an error."""
    return json.loads(body, parse_constant=_no_constant)


def stored(key: str) -> TrajectoryRun:
    """The run a state name stands for (the store keeps its snapshot)."""
    return TrajectoryRun.restore(cm.snapshots().get(key))


def frame(**query) -> dict:
    """One ``/api/live/frame`` answer, called directly (validated query as text)."""
    return strict_json(run_async(cm.frame({k: str(v) for k, v in query.items()})))


def http(script):
    """Run ``script(get)`` against a fresh server; its result."""
    async def main():
        async with class_mode_server() as get:
            return await script(get)
    return run_async(main())


def json_error(resp, status: int) -> str:
    assert resp.code == status, (resp.code, resp.body[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    data = strict_json(resp.body)
    assert data["status"] == status and isinstance(data["error"], str) and data["error"]
    return data["error"]


def _frame_path(**query) -> str:
    return "/api/live/frame?" + urlencode({k: str(v) for k, v in query.items()})


# -- 1. a chain of requests is the run computed in process ------------------------------------
def test_a_chain_of_steps_is_bit_identical_to_the_run_in_process_and_to_one_long_run(monkeypatch):
    values = {"lr": "0.2", "sigma2": "1", "seed": "3", "n_trajectories": "5"}
    chunks = [50, 50, 30, 70]  # the student changes "steps per frame" on the way
    k = len(chunks)

    async def script(get):
        run, answers = "", []
        for n in chunks:
            resp = await get(_frame_path(**values, steps_per_frame=n, action="step",
                                         **({"run": run} if run else {})))
            assert resp.code == 200 and resp.headers["Content-Type"].startswith("application/json")
            answers.append(strict_json(resp.body))
            run = answers[-1]["run"]
        return answers

    answers = http(script)
    assert [a["step"] for a in answers] == list(np.cumsum(chunks))
    assert [a["values"]["steps_per_frame"] for a in answers] == chunks
    assert len({a["run"] for a in answers}) == k and all(re.fullmatch(r"[0-9a-f]{32}", a["run"])
                                                         for a in answers)
    served = stored(answers[-1]["run"])
    assert served.step == 200 and answers[-1]["notices"] == []
    assert np.all(np.diff(served.hist_step) > 0) and served.hist_step[0] == 0

    # the same run in process, with its own cache (nothing shared with the server's chunks)
    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())
    ref = TrajectoryRun(model=EnsembleParams(lr=0.2, sigma2=1.0, seed=3, n_trajectories=5),
                        steps_per_frame=50)
    for n in chunks:
        ref.advance(n)
    assert cache.get_cache().misses == k  # it really was computed again
    for name in ("theta", "exit_step", "exit_reason", "hist_step", "hist_theta", "hist_loss"):
        np.testing.assert_array_equal(getattr(served, name), getattr(ref, name), err_msg=name)
    assert served.step == ref.step

    # and as one long engine run from the seed's initial conditions: counter-based noise
    assert np.all(served.exit_step < 0)
    m = ref.model
    long = fa.run_ensemble(m.initial_conditions(), n_steps=sum(chunks), **m.engine_kwargs())
    np.testing.assert_array_equal(served.theta, long.theta_final.values)
    np.testing.assert_allclose(served.hist_loss[:, -1], fa.population_loss(long.theta_final.values,
                                                                           1.0, "paper000"),
                               rtol=1e-12)

    # what the browser draws: the heads are the final θ, as float32
    cols = answers[-1]["columns"]
    np.testing.assert_array_equal(f4(cols["live-w-heads"]["w1"]), served.theta[:, 0].astype("<f4"))
    np.testing.assert_array_equal(f4(cols["live-v-heads"]["v2"]), served.theta[:, 3].astype("<f4"))


# -- 2. identical requests are computed once ----------------------------------------------------
def test_identical_concurrent_requests_are_computed_once_and_branches_do_not_move_the_parent():
    query = {"lr": "0.05", "sigma2": "1", "action": "step"}

    async def main():
        runs = cm.stores()[0]
        bodies = await asyncio.gather(*(cm.frame(dict(query)) for _ in range(20)))
        assert runs.computed == 1 and len(set(bodies)) == 1
        again = await cm.frame(dict(query))  # later: served from the store
        assert again == bodies[0] and runs.computed == 1
        other = await cm.frame({**query, "lr": "0.06"})
        assert runs.computed == 2
        parent = strict_json(bodies[0])["run"]
        before = stored(parent).copy()
        # 20 students step the same state with one η, 2 with another: 2 computations
        kids = await asyncio.gather(*(cm.frame({"run": parent, "action": "step", "lr": lr})
                                      for lr in ["0.05"] * 20 + ["0.02"] * 2))
        assert runs.computed == 4 and len(set(kids[:20])) == 1 and kids[20] == kids[21]
        return bodies[0], other, before, parent, kids

    first, other, before, parent, kids = run_async(main())
    a, b = strict_json(first), strict_json(other)
    assert a["run"] != b["run"] and a["values"]["lr"] == 0.05 and b["values"]["lr"] == 0.06
    # the parent state is unchanged by its children's steps
    p = stored(parent)
    assert p.step == 100 and p.events == before.events
    for name in ("theta", "hist_theta", "hist_loss", "hist_step", "exit_step"):
        np.testing.assert_array_equal(getattr(p, name), getattr(before, name), err_msg=name)
    k1, k2 = (strict_json(kids[i]) for i in (0, 20))
    assert k1["step"] == k2["step"] == 200 and k1["run"] != k2["run"]
    assert not np.array_equal(stored(k1["run"]).theta, stored(k2["run"]).theta)


# -- 3. validation ------------------------------------------------------------------------------
XSS = "<img src=x onerror=alert(1)>"


def test_validation_clamps_and_refuses_with_json_never_a_traceback():
    async def script(get):
        out = {}
        out["clamped"] = await get(_frame_path(lr="1e6", batch_size="-5"))
        out["nan"] = await get(_frame_path(lr="abc", sigma2="nan"))
        out["action"] = await get(_frame_path(action="jump"))
        out["bad_run"] = await get(_frame_path(run="../../etc/passwd", action="step"))
        out["upper_run"] = await get(_frame_path(run="A" * 32, action="step"))
        out["gone_run"] = await get(_frame_path(run="0" * 32, action="step"))
        out["long"] = await get(_frame_path(teacher="x" * (cm.MAX_QUERY + 10)))
        out["long_class"] = await get("/class?" + urlencode({"page": "trajectories",
                                                             "x": "y" * cm.MAX_QUERY}))
        out["long_export"] = await get("/api/live/export.nc?" + urlencode({"run": "0" * 32,
                                                                           "link": "z" * 5000}))
        for path in ("/api/live/frame", "/api/live/pi", "/api/live/export.nc", "/class"):
            out[f"POST {path}"] = await get(path, "POST", "")
            out[f"PUT {path}"] = await get(path, "PUT", "lr=1")
            out[f"DELETE {path}"] = await get(path, "DELETE")
        out["xss"] = await get(_frame_path(teacher=XSS, preset=XSS, lock=XSS, hide=XSS))
        out["xss_page"] = await get("/class?" + urlencode({"page": "trajectories", "preset": XSS}))
        return out

    r = http(script)
    ok = strict_json(r["clamped"].body)
    assert ok["values"]["lr"] == 10.0 and ok["values"]["batch_size"] == 1
    assert any("clamped" in n and "10.0" in n for n in ok["notices"]), ok["notices"]
    assert any("clamped" in n and "S (batch size)" in n for n in ok["notices"]), ok["notices"]
    bad = strict_json(r["nan"].body)
    assert bad["values"]["lr"] == 0.1 and bad["values"]["sigma2"] == 0.1  # kept the defaults
    assert any("not a number" in n for n in bad["notices"])
    assert any("NaN is not allowed" in n for n in bad["notices"])
    assert "action" in json_error(r["action"], 400)
    assert "32-hex-digit" in json_error(r["bad_run"], 400)
    json_error(r["upper_run"], 400)
    assert "Reset" in json_error(r["gone_run"], 404)
    for name in ("long", "long_class", "long_export"):
        assert "too long" in json_error(r[name], 400)
    for name, resp in r.items():
        if name.split()[0] in ("POST", "PUT", "DELETE"):
            assert json_error(resp, 405) == "Only GET is served here.", name
    # hostile text comes back inside JSON strings only, as plain text for textContent
    xss = r["xss"]
    assert xss.code == 200 and xss.headers["X-Content-Type-Options"] == "nosniff"
    assert xss.headers["Content-Type"].startswith("application/json")
    data = strict_json(xss.body)
    assert data["values"]["teacher"] == "paper000" and data["lock"] == [] and data["hide"] == []
    mentions = [s for s in _strings(data) if "<img" in s]
    assert mentions and all(s in data["notices"] for s in mentions)
    assert not any("&lt;" in n for n in data["notices"])  # not HTML-escaped: plain text
    assert any("No preset called" in n for n in data["notices"])
    page = r["xss_page"]
    assert page.code == 200 and b"<img src=x" not in page.body and b"onerror=alert" not in page.body


def _strings(obj):
    """Every string of a JSON document, keys included."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


# -- 4. a mid-run change of η is marked, a change of σ² restarts ---------------------------------
def test_a_change_of_eta_mid_run_is_an_event_and_a_change_of_sigma2_restarts():
    d1 = frame(action="step", seed=2)
    assert d1["step"] == 100 and d1["events"] == []
    d2 = frame(run=d1["run"], action="none", seed=2, lr=0.05)
    assert d2["step"] == 100 and d2["events"] == [[100, "η → 0.05"]]
    assert "continues" in d2["message"] and "restarted" not in d2["message"]
    p1, p2 = stored(d1["run"]), stored(d2["run"])
    np.testing.assert_array_equal(p2.hist_theta, p1.hist_theta)  # no restart: the same history
    assert p1.model.lr == 0.1 and p1.events == []  # the parent is untouched

    # the next chunk runs at the new η from step 100: one engine call from the parent's θ
    d3 = frame(run=d2["run"], action="step", seed=2, lr=0.05)
    assert d3["step"] == 200 and d3["events"] == [[100, "η → 0.05"]]
    p3 = stored(d3["run"])
    chunk = fa.run_ensemble(p1.theta, n_steps=100, start_step=100,
                            trajectory_ids=np.arange(8), **p3.model.engine_kwargs())
    np.testing.assert_array_equal(p3.theta, chunk.theta_final.values)
    # the event's marker on both step plots
    for src in ("live-loss-events", "live-deg-events"):
        np.testing.assert_array_equal(f4(d3["columns"][src]["x"]), [100.0])

    # τ also changes live (online data), σ² restarts from step 0 with the seed's start
    d4 = frame(run=d3["run"], action="none", seed=2, lr=0.05, label_noise=0.1)
    assert d4["step"] == 200 and d4["events"][-1] == [200, "τ → 0.1"]
    d5 = frame(run=d4["run"], action="none", seed=2, lr=0.05, label_noise=0.1, sigma2=1)
    assert d5["step"] == 0 and d5["events"] == []
    assert d5["message"] == restart_reason({"sigma2"}) and "restarted" in d5["message"]
    p5 = stored(d5["run"])
    expected = EnsembleParams(seed=2, sigma2=1.0).initial_conditions()
    np.testing.assert_array_equal(p5.theta, expected)
    np.testing.assert_allclose(p5.hist_loss[:, 0], fa.population_loss(expected, 1.0, "paper000"))
    # and a fixed dataset makes τ part of the data: a restart too
    d6 = frame(action="step", n_data=100, batch_size=10, steps_per_frame=20)
    d7 = frame(run=d6["run"], action="none", n_data=100, batch_size=10, steps_per_frame=20,
               label_noise=0.3)
    assert d7["step"] == 0 and d7["message"] == restart_reason({"label_noise"})


# -- 5. divergence -------------------------------------------------------------------------------
def test_divergence_is_reported_and_the_json_stays_valid():
    d = frame(preset="diverge", action="step")
    assert d["values"]["lr"] == 2.5 and d["values"]["sigma2"] == 1.0
    assert d["values"]["steps_per_frame"] == 200
    for _ in range(30):
        if d["diverged"]:
            break
        d = frame(run=d["run"], action="step")
    assert d["diverged"] and "blew up" in d["message"]
    run = stored(d["run"])
    gone = run.exit_reason == 2
    assert gone.any() and d["running"] == int((run.exit_step < 0).sum()) < d["n"]
    steps = run.hist_step
    for i in range(run.theta.shape[0]):
        after = steps >= run.exit_step[i]
        if gone[i]:  # no record after a blow-up; finite before it
            assert np.all(np.isnan(run.hist_loss[i, after]))
            assert np.all(np.isfinite(run.hist_loss[i, ~after]))
        elif run.exit_step[i] < 0:
            assert np.all(np.isfinite(run.hist_loss[i]))

    # the loss lines: per trajectory the loss at steps > 0 and a NaN break; NaN only there and
    # after a blow-up; no inf anywhere
    x, y = (f4(d["columns"]["live-loss-lines"][c]) for c in ("x", "y"))
    keep = steps > 0
    loss = run.hist_loss[:, keep]
    block = np.full((loss.shape[0], loss.shape[1] + 1), np.nan)
    block[:, :-1] = np.maximum(np.where(np.isfinite(loss), loss, np.nan), FLOOR)
    xs = np.full_like(block, np.nan)
    xs[:, :-1] = steps[keep]
    np.testing.assert_array_equal(y, block.ravel().astype("<f4"))
    np.testing.assert_array_equal(x, xs.ravel().astype("<f4"))
    assert not np.isinf(y).any()
    med = f4(d["columns"]["live-loss-median"]["y"])
    assert np.isfinite(med).all()  # some trajectory still runs at every recorded step

    # Play again: the survivors go on, the blown-up ones stay where they stopped
    e = frame(run=d["run"], action="step")
    nxt = stored(e["run"])
    assert e["step"] == d["step"] + 200
    np.testing.assert_array_equal(nxt.exit_step[gone], run.exit_step[gone])
    np.testing.assert_array_equal(nxt.theta[gone], run.theta[gone])


# -- 6. reset ------------------------------------------------------------------------------------
def test_reset_returns_to_step_zero_with_the_fresh_start():
    fresh = frame(seed=7, sigma2=1)
    d = frame(run=fresh["run"], action="step", seed=7, sigma2=1)
    d = frame(run=d["run"], action="step", seed=7, sigma2=1, lr=0.3)
    r = frame(run=d["run"], action="reset", seed=7, sigma2=1, lr=0.3)
    assert r["step"] == 0 and r["events"] == [] and r["message"].startswith("Reset")
    for src in ("live-w-heads", "live-v-heads", "live-where-points"):
        assert r["columns"][src] == fresh["columns"][src], src
    expected = EnsembleParams(seed=7, sigma2=1.0).initial_conditions()
    np.testing.assert_array_equal(stored(r["run"]).theta, expected)
    np.testing.assert_array_equal(stored(fresh["run"]).theta, expected)
    assert r["values"]["lr"] == 0.3  # a reset keeps the values, not the old η


# -- 7. export -----------------------------------------------------------------------------------
def test_export_is_the_stored_run_as_netcdf_with_its_link():
    link = "https://atlas.example/class?page=trajectories&lr=0.05&note=é ü"

    async def script(get):
        d = strict_json((await get(_frame_path(action="step", sigma2=1))).body)
        d = strict_json((await get(_frame_path(run=d["run"], action="step", sigma2=1,
                                               lr=0.05))).body)
        resp = await get("/api/live/export.nc?" + urlencode({"run": d["run"], "link": link}))
        gone = await get("/api/live/export.nc?" + urlencode({"run": "f" * 32}))
        short = await get("/api/live/export.nc?run=abc")
        return d, resp, gone, short

    d, resp, gone, short = http(script)
    assert resp.code == 200 and resp.headers["Content-Type"] == "application/x-netcdf"
    assert "attachment" in resp.headers["Content-Disposition"]
    ref = stored(d["run"]).to_dataset()
    assert ref.attrs["events"] == [[100, "η → 0.05"]]
    ds = ncio.read_groups(resp.body)["trajectories"]
    for name in ("theta", "loss", "exit_step", "exit_reason"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    np.testing.assert_array_equal(ds.step.values, ref.step.values)
    assert ds.attrs["events"] == ref.attrs["events"]
    assert ds.attrs["sgd_atlas_link"] == link and ds.attrs["lr"] == 0.05
    # and as any netCDF reader sees it, without the app's decoding
    plain = xr.load_dataset(io.BytesIO(resp.body), group="trajectories", engine="h5netcdf")
    np.testing.assert_array_equal(plain.theta.values, ref.theta.values)
    assert json.loads(plain.attrs["events"]) == [[100, "η → 0.05"]]
    json_error(gone, 404)
    json_error(short, 404)


# -- 8. teacher links ----------------------------------------------------------------------------
def test_teacher_links_lock_and_hide_with_a_notice_for_unknown_names():
    d = frame(lock="lr,advanced", hide="nav,bogus")
    advanced = ["n_trajectories", "seed", "start", "w0", "v0", "spread", "steps_per_frame",
                "frame_ms"]
    assert d["lock"][0] == "lr" and sorted(d["lock"][1:]) == sorted(advanced)
    assert len(d["lock"]) == len(set(d["lock"]))
    every = set(EnsembleParams.param) | set(TrajectoryRun.param)
    assert set(d["lock"]) <= every
    assert d["hide"] == ["nav"]
    assert [n for n in d["notices"] if "bogus" in n] == [
        "hide: this page has nothing called 'bogus'."]
    d = frame(lock="sigma2,nav", hide="advanced,presets")
    assert d["lock"] == ["sigma2"] and sorted(d["hide"]) == sorted(advanced + ["presets"])
    assert any("'nav'" in n for n in d["notices"])  # nav can be hidden, not locked


def test_a_locked_value_holds_against_a_tampered_request():
    """The browser disables a locked control; a request written by hand cannot move it either
    (the run keeps the link's value and says so), while unlocked values move freely."""
    d = frame(lock="sigma2", sigma2=0.5)
    d = frame(run=d["run"], action="step", sigma2=2.0, lr=0.05)
    assert d["values"]["sigma2"] == 0.5 and d["values"]["lr"] == 0.05
    assert d["step"] > 0  # no restart: σ² did not change
    assert any("fixed by this lesson's link: kept 0.5" in n for n in d["notices"])
    same = frame(run=d["run"], action="step", sigma2="0.50")  # the same value, written otherwise
    assert not any("fixed" in n for n in same["notices"])


# -- 9. the page -------------------------------------------------------------------------------
def test_each_class_page_is_built_once_and_unknown_slugs_redirect():
    from app.pages import PAGES

    async def script(get):
        a = await get("/class?page=trajectories&lr=0.3")
        b = await get("/class?page=trajectories&lr=0.05")  # the values live in the browser
        c = await get("/class")
        odd = await get("/class?page=../../etc&lr=0.2")
        preset = await get("/class?page=trajectories&preset=diverge")
        others = {slug: await get(f"/class?page={slug}&sigma2=1") for slug in PAGES}
        return a, b, c, odd, preset, others

    a, b, c, odd, preset, others = http(script)
    assert a.code == b.code == c.code == 200
    assert a.headers["Content-Type"].startswith("text/html")
    assert a.body == b.body == c.body
    html = a.body.decode()
    buttons = re.findall(r"<button[^>]*>(.*?)</button>", html, re.DOTALL)
    assert any("Play" in t for t in buttons), buttons
    # the default live page and the "diverge" one, and one page for each other slug
    assert cm.stores()[1].computed == 2 + len(PAGES) - 1
    assert preset.code == 200 and preset.body != a.body
    assert 'value="diverge" selected' in preset.body.decode()
    assert set(PAGES) <= set(cm.class_slugs())  # every page has its class mode (issue 17)
    for slug, answer in others.items():
        assert answer.code == 200, slug
        assert f"class?page={slug}' class='active'" in answer.body.decode()
    assert odd.code == 302 and odd.headers["Location"] == "class?page=trajectories&lr=0.2"
    # the page's embedded configuration is the defaults', readable as JSON
    config = re.search(r'id="atlas-config"[^>]*>(.*?)</script>', html, re.DOTALL)
    assert config and json.loads(config.group(1))["values"]["lr"] == 0.1


def test_about_and_the_gallery_are_static_class_pages():
    """``/class?page=about`` and ``/class?page=gallery`` are built once, without Bokeh: the
    About text with its table, every preset's card with its class link (``class?…``) and its
    full-page link (``app?…``), their pictures, and the class pages' navigation."""
    from app.pages.about import TEXT
    from app.presets import load_presets

    async def script(get):
        about = await get("/class?page=about")
        gallery = await get("/class?page=gallery")
        again = await get("/class?page=gallery&preset=x")
        thumb = await get("/class/thumbnail/stability.jpg")
        missing = await get("/class/thumbnail/nothing.jpg")
        return about, gallery, again, thumb, missing

    about, gallery, again, thumb, missing = http(script)
    assert about.code == gallery.code == 200 and gallery.body == again.body
    text = about.body.decode()
    assert "<table>" in text and "Bokeh" not in text and "<script src" not in text
    for heading in re.findall(r"^## (.+)$", TEXT, re.MULTILINE):  # every section of the text
        assert f"<h2>{heading.replace('&', '&amp;')}</h2>" in text
    assert "href='class?page=about'" in text and "href='class?page=gallery'" in text  # nav
    page = gallery.body.decode()
    for slug, presets in load_presets().items():
        for p in presets:
            assert f"data-preset='{p['id']}'" in page
            assert f"href='class?page={slug}&amp;preset={p['id']}&amp;hide=advanced'" in page
            assert f"href='app?page={slug}&amp;preset={p['id']}'" in page
    assert thumb.code == 200 and thumb.body[:3] == b"\xff\xd8\xff"  # a JPEG
    assert missing.code == 404 and json.loads(missing.body)["status"] == 404


def test_the_page_at_class_slash_resolves_its_relative_urls():
    """The route accepts ``/class/``; the page and its redirects use relative URLs, so from
    ``/class/`` they must still reach the API and the Panel app (or ``/class/`` must redirect
    to ``/class``)."""
    async def script(get):
        out = {}
        for path in ("/class/?page=trajectories", "/class/?page=stability"):
            resp = await get(path)
            if resp.code in (301, 302):
                out[path] = urljoin("http://h" + path, resp.headers["Location"])
            else:
                assert resp.code == 200
                api = urljoin("http://h" + path, "api/live/frame?action=none")
                out[path] = api
                out[path + " api"] = (await get(api[len("http://h"):])).code
        return out

    out = http(script)
    assert urlsplit(out["/class/?page=stability"]).path in ("/app", "/class")
    if urlsplit(out["/class/?page=trajectories"]).path != "/class":  # served, not redirected
        assert out["/class/?page=trajectories api"] == 200, out


# -- 10. the columns are the run's history ---------------------------------------------------------
def test_columns_are_the_runs_history():
    d = frame(action="step", sigma2=1, seed=5, steps_per_frame=300)
    d = frame(run=d["run"], action="step", sigma2=1, seed=5, steps_per_frame=300)
    run = stored(d["run"])
    cols = d["columns"]
    assert np.all(run.exit_step < 0)
    last = run.hist_theta[:, -1, :]
    np.testing.assert_allclose(f4(cols["live-w-heads"]["w1"]), last[:, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(f4(cols["live-w-heads"]["w2"]), last[:, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(f4(cols["live-v-heads"]["v1"]), last[:, 2], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(f4(cols["live-w-heads"]["color"]), np.arange(8) % 20)

    keep = run.hist_step > 0
    np.testing.assert_array_equal(f4(cols["live-loss-median"]["x"]), run.hist_step[keep])
    np.testing.assert_allclose(f4(cols["live-loss-median"]["y"]),
                               np.nanmedian(run.hist_loss[:, keep], axis=0), rtol=1e-6)

    # |w1 − w2| per trajectory at steps > 0, NaN-separated
    y = f4(cols["live-deg-w"]["y"]).reshape(8, -1)
    assert np.all(np.isnan(y[:, -1]))
    np.testing.assert_allclose(y[:, :-1], np.maximum(np.abs(run.hist_theta[:, keep, 0]
                                                            - run.hist_theta[:, keep, 1]), FLOOR),
                               rtol=1e-6)

    # "where am I": the orthogonal projection onto M_wv = span{(1,1,0,0), (0,0,1,1)} or its
    # mirror span{(1,−1,0,0), (0,0,1,−1)}, whichever is nearer, folded to w ≥ 0; the distance
    # is eq. 19's √(r² + s²), i.e. the Euclidean distance / √2
    best = []
    for t in run.theta:
        options = []
        for sign in (1.0, -1.0):
            basis = np.array([[1, sign, 0, 0], [0, 0, 1, sign]], float).T
            coef = np.linalg.lstsq(basis, t, rcond=None)[0]
            options.append((np.linalg.norm(t - basis @ coef) / np.sqrt(2), *coef))
        dist, w, v = min(options, key=lambda o: o[0])
        best.append((abs(w), v * np.sign(w) if w else v, dist))
    best = np.array(best)
    pts = cols["live-where-points"]
    for i, c in enumerate(("w", "v", "distance")):
        np.testing.assert_allclose(f4(pts[c]), best[:, i], rtol=1e-5, atol=1e-6, err_msg=c)


# -- 11. the memory budget -------------------------------------------------------------------------
def test_the_store_keeps_its_budget_least_recently_used_first():
    s = cm.SharedResults(max_bytes=100)
    for key in "abc":
        s.put(key, key.upper(), 40)
    assert s.get("a") is None and s.nbytes == 80 and len(s) == 2
    assert s.get("b") == "B"  # b is now the most recently used
    s.put("d", "D", 40)
    assert s.get("c") is None and s.get("b") == "B" and s.get("d") == "D" and s.nbytes == 80
    s.put("b", "B2", 10)  # replacing an item counts its new size only
    assert s.nbytes == 50 and s.get("b") == "B2"
    s.put("big", "X", 500)  # one item larger than the budget is kept alone
    assert len(s) == 1 and s.get("big") == "X" and s.nbytes == 500
    s.put("e", "E", 10)
    assert s.get("big") is None and s.nbytes == 10 <= s.max_bytes

    # random puts and gets against a plain list model of LRU (oldest first): the same keys held,
    # nbytes their sum, never over budget but for a single item
    rng = np.random.default_rng(0)
    model = [("e", 10)]
    for i in range(400):
        key = f"k{rng.integers(30)}"
        if rng.random() < 0.3:
            hit = [kv for kv in model if kv[0] == key]
            assert (s.get(key) is not None) == bool(hit)
            if hit:
                model.remove(hit[0])
                model.append(hit[0])
            continue
        size = int(rng.integers(1, 60))
        s.put(key, i, size)
        model = [kv for kv in model if kv[0] != key] + [(key, size)]
        while sum(n for _, n in model) > s.max_bytes and len(model) > 1:
            model.pop(0)
        assert list(s._items) == [k for k, _ in model]
        assert s.nbytes == sum(n for _, n in model)
        assert s.nbytes <= s.max_bytes or len(s) == 1


def test_a_failed_computation_is_not_stored_and_is_retried():
    s = cm.SharedResults(max_bytes=1000)
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("engine failed")

    async def main():
        results = await asyncio.gather(*(s.get_or_compute("k", boom) for _ in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results) and len(calls) == 1
        assert s.computed == 0 and len(s) == 0
        assert await s.get_or_compute("k", lambda: ("ok", 2)) == "ok"
        assert s.computed == 1 and s.nbytes == 2

    run_async(main())


def test_run_store_budget_evicts_old_runs_which_then_answer_404(monkeypatch):
    monkeypatch.setenv("SGD_ATLAS_CLASS_BYTES", "1")  # every new run evicts the previous
    cm.reset_stores()
    a = frame(lr=0.1)
    b = frame(lr=0.2)
    runs = cm.snapshots()
    assert len(runs) == 1 and runs.get(a["run"]) is None and runs.get(b["run"]) is not None
    with pytest.raises(cm.Gone):
        run_async(cm.frame({"run": a["run"], "action": "step"}))


def test_frames_from_the_worker_process_are_the_threads_frames(monkeypatch):
    """The server computes frames in a worker process (the second core): a chain of requests
    gives byte-identical answers there and in a thread, and the worker is another process."""
    chain = [dict(preset="p000-s1", action="none"), dict(action="step"),
             dict(action="step", lr="0.12"), dict(action="reset")]

    def run_chain():
        async def main():
            out, key = [], ""
            for q in chain:
                body = await cm.frame({**q, **({"run": key} if key else {})})
                key = json.loads(body)["run"]
                out.append(body)
            pids = {(await asyncio.gather(*(cm.in_worker(cm._ping) for _ in range(8))))[i][0]
                    for i in range(8)}
            exported = await cm.in_worker(cm.export_work, cm.snapshots().get(key), "link")
            return out, pids, len(exported) > 0
        return run_async(main())

    threads, pids, _ = run_chain()
    assert pids == {os.getpid()}
    monkeypatch.setenv("SGD_ATLAS_CLASS_WORKERS", "2")
    cm.reset_stores()
    try:
        worker, pids, exported = run_chain()
        assert len(pids) >= 1 and os.getpid() not in pids and exported
    finally:
        cm.reset_stores()
    assert worker == threads
    assert json.loads(worker[2])["events"] == [[500, "η → 0.12"]]


# -- the π map -------------------------------------------------------------------------------------
def test_pi_map_is_computed_once_and_validated():
    async def main():
        bodies = await asyncio.gather(*(cm.pi_map({"sigma2": "1", "teacher": "paper000"})
                                        for _ in range(5)))
        assert len(set(bodies)) == 1 and cm.stores()[2].computed == 1
        other = await cm.pi_map({"sigma2": "1e6", "teacher": "paper001"})
        return bodies[0], other

    body, other = run_async(main())
    d = strict_json(body)
    assert d["sigma2"] == 1.0 and d["notices"] == []
    img = d["columns"]["live-where-image"]["image"]
    pi = f4(img).reshape(img["shape"])
    assert pi.ndim == 2 and pi.size > 4
    assert np.all((pi[np.isfinite(pi)] >= 0) & (pi[np.isfinite(pi)] <= 1))
    assert (pi[np.isfinite(pi)] > 0.5).any()  # σ² = 1 has an attracting region (paper 000 Fig. 3)
    o = strict_json(other)
    assert o["sigma2"] == 100.0 and any("clamped" in n for n in o["notices"])
    assert o["columns"]["live-where-note"]["text"] == ["π map: paper 000 teacher only"]


def test_each_class_page_has_the_controls_of_its_panel_page():
    """The class page of a map or curve page sends every field its Panel page takes from a
    link (the same state, the same validation), and each view's fields include every field
    that changes its computation's tasks (the browser asks again when one changes)."""
    from app.classpages import SPEC_BUILDERS, fields_of, view_fields
    from app.compute import tasks_key
    from app.pages import escape, phases, stability
    from app.state import PAGE_STATES, OverfitParams, computations

    panel = {"stability": stability.FIELDS, "phases": phases.FIELDS + phases.RANGES,
             "escape": escape.FIELDS + ("view",) + escape.PL_FIELDS,
             "overfit": OverfitParams.FIELDS}
    assert set(panel) == set(SPEC_BUILDERS)
    for slug, fields in panel.items():
        assert set(fields) <= set(fields_of(slug)), slug
        deps = view_fields(slug)
        fresh = {a: c() for a, c in PAGE_STATES[slug].items()}
        base = {k: tasks_key(v) for k, v in computations(slug, fresh).items()}
        for name in fields_of(slug):  # a field missing from a view's list would leave it stale
            states = {a: c() for a, c in PAGE_STATES[slug].items()}
            owner = next(o for o in states.values() if name in o.param)
            default = owner.param[name].default
            p = owner.param[name]
            objects = getattr(p, "objects", None)
            if objects:
                objects = list(objects.values()) if isinstance(objects, dict) else list(objects)
                other = [o for o in objects if o != default and not isinstance(default, list)]
                if not other:
                    continue
                setattr(owner, name, other[-1])
            elif isinstance(default, bool):
                setattr(owner, name, not default)
            else:
                continue  # (numbers: only view_fields' own nudge changes them)
            now = {k: tasks_key(v) for k, v in computations(slug, states).items()}
            for what, key in now.items():
                if key != base[what] and what in deps:
                    assert name in deps[what], (slug, what, name)

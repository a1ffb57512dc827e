"""Hostile input (issue 8): every public engine function and every state class rejects or clamps
1e6, −5, NaN, inf, 1e300 and huge step counts with a clear message; values sent by a browser
are validated before Panel applies them; kernels compiled with their real decorators notice
NaN/inf; divergence over η ∈ [1e−4, 1e3] is reported, never raised."""

from __future__ import annotations

import json
import logging
import math
import re

import holoviews as hv
import numpy as np
import panel as pn
import param
import pytest

from app import state as st
from app.urlstate import apply_values
from engine import escape, fa, linreg, overfit, pullback, saddle, stability

hv.extension("bokeh")
TH = np.array([[0.5, -0.3, 0.8, 0.2], [0.1, 0.2, -0.4, 0.9]])
WV = np.array([[0.5, 0.5], [1.0, 0.3]])
X, Y = overfit.make_dataset(12, 0.2, seed=1)

#: values no count may take (a count of 1e6 is a legitimate request, not an attack)
BAD_COUNTS = [-5, math.nan, math.inf, 1e300, 10**15, 2.5, "12", None]
#: values a real parameter is handed (1e6 is legal for some — then the result must be sound)
BAD_REALS = [1e6, -5.0, math.nan, math.inf, -math.inf, 1e300, "0.1", None]

# (function, valid small arguments, count parameters, real parameters)
ENGINE = [
    (fa.run_ensemble, dict(theta0=TH, lr=0.1, sigma2=0.5, n_steps=20),
     ["n_steps", "batch_size", "seed", "record_every", "n_data"], ["lr", "sigma2", "label_noise"]),
    (fa.run_reduced, dict(wv0=WV, lr=0.1, sigma2=0.5, n_steps=20),
     ["n_steps", "batch_size", "seed"], ["lr", "sigma2", "label_noise"]),
    (escape.escape_times, dict(sigma2=0.5, n_trajectories=5, max_steps=50),
     ["n_trajectories", "max_steps", "batch_size", "seed"], ["sigma2", "lr"]),
    (pullback.pullback_cloud, dict(sigma2=1.0, pullback_time=20, n_points=10),
     ["pullback_time", "n_points", "seed"], ["sigma2", "lr", "distance"]),
    (stability.attracting_map, dict(sigma2=1.0, n=5, lr=0.1, lyapunov_steps=10, lyapunov_replicas=2),
     ["n", "lyapunov_steps", "lyapunov_replicas", "seed"], ["sigma2", "lr"]),
    (stability.attracting_probability, dict(w=0.5, v=0.5, sigma2=1.0), [], ["sigma2", "lr"]),
    (stability.lyapunov, dict(w=0.5, v=0.5, sigma2=1.0, lr=0.1, n_steps=50, n_replicas=2),
     ["n_steps", "n_replicas"], ["sigma2", "lr"]),
    (saddle.lyapunov_exponents, dict(lr=0.1, mu=0.5), ["batch_size", "n_data", "seed"], ["lr", "mu"]),
    (saddle.simulate_saddle, dict(lr=0.1, mu=0.5, n_runs=5), ["batch_size", "n_data", "n_runs"],
     ["lr", "mu"]),
    (saddle.random_product_lyapunov, dict(lr=0.1, n_runs=5, max_steps=50),
     ["n_runs", "max_steps", "seed"], ["lr"]),
    (linreg.first_passage_times, dict(c=[1.1], n_runs=3, max_steps=100, n_data=50),
     ["batch_size", "dim", "n_data", "n_runs", "max_steps", "seed"], ["lr"]),
    (linreg.stationary_exponent, dict(lr=0.1, batch_size=1, dim=1, n_data=50, n_chains=2,
                                      n_samples=20, sample_every=2),
     ["batch_size", "dim", "n_data", "n_chains", "n_samples", "sample_every", "burn_in", "seed"],
     ["lr"]),
    (linreg.make_regression, dict(dim=1, n_data=20), ["dim", "n_data", "seed"], []),
    (overfit.train, dict(x=X, y=Y, theta0=TH[0], lr=0.02, n_steps=50),
     ["n_steps", "batch_size", "seed"], ["lr", "loss_scale"]),
    (overfit.make_dataset, dict(n_data=10), ["n_data", "seed"], ["label_noise"]),
    (fa.make_data, dict(n_data=10), ["n_data", "seed"], ["sigma2", "label_noise"]),
    (fa.uniform_initial, dict(n_trajectories=3), ["n_trajectories", "seed"], ["half_width"]),
    (fa.population_loss, dict(theta=TH, sigma2=1.0), [], ["sigma2"]),
]
CASES = [(fn, base, name, value) for fn, base, counts, reals in ENGINE
         for name, values in [(c, BAD_COUNTS) for c in counts] + [(r, BAD_REALS) for r in reals]
         for value in values]


def _id(case):
    fn, _, name, value = case
    return f"{fn.__module__.split('.')[-1]}.{fn.__name__}-{name}={value!r}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_engine_functions_reject_hostile_values_with_a_clear_message(case):
    fn, base, name, value = case
    try:
        result = fn(**{**base, name: value})
    except ValueError as exc:  # rejected: the message must say which value
        text = str(exc)
        assert name in text or name.replace("_", " ") in text, text
        return
    # accepted (e.g. η = 1e6 is a legal request): the answer must be a sound one — the same
    # variables and shapes as the answer to valid arguments, the value taken recorded as
    # given, and a number written as text ("0.1") giving exactly the answer to the number
    valid = fn(**base)
    if isinstance(value, str):
        again = fn(**{**base, name: float(value)})
    if hasattr(result, "data_vars"):
        assert result.attrs, "a Dataset without its inputs"
        if value is None:  # "not given" may leave a part out (no finite-η map without η)
            assert result.data_vars and set(result.data_vars) <= set(valid.data_vars)
        else:
            assert sorted(result.data_vars) == sorted(valid.data_vars), (name, value)
        assert dict(result.sizes) == dict(valid.sizes), (name, value)
        if isinstance(value, (int, float, str)) and name in result.attrs:
            assert float(result.attrs[name]) == float(value), (name, value, result.attrs[name])
        if isinstance(value, str):
            assert result.drop_attrs().equals(again.drop_attrs()), (name, value)
    else:
        result, valid = np.asarray(result), np.asarray(valid)
        assert result.shape == valid.shape and not np.isnan(result).all(), (name, value)
        if isinstance(value, str):
            np.testing.assert_array_equal(result, np.asarray(again))


def test_divergence_over_a_log_grid_of_eta_is_reported_never_raised():
    """η from 1e−4 to 1e3 on every stepping engine: no exception; past the stability edge the
    result says at which step (and records stop there)."""
    etas = np.geomspace(1e-4, 1e3, 15)
    for lr in etas:
        ds = fa.run_ensemble(TH, lr, 1.0, 200, record_every=10)
        div = ds.exit_reason.values == 2
        assert np.all(ds.exit_step.values[div] >= 1)
        ds = fa.run_reduced(WV, lr, 1.0, 200, record_every=10)
        ds = overfit.train(X, Y, TH[0], lr, 200)
        k = ds.attrs["diverged_at"]
        if k >= 0:
            assert 1 <= k <= 200 and np.all(np.isnan(ds.theta.values[ds.step.values >= k]))
        fp = linreg.first_passage_times([1.5], lr=min(lr, 1e3), n_runs=3, max_steps=200, n_data=50)
        assert fp.sizes["run"] == 3
        sim = saddle.simulate_saddle(lr, 0.5, n_runs=5, n_steps=50)
        assert sim.sizes["trajectory"] == 5
    # well past the edge everything diverges, and says so at the first steps
    ds = fa.run_ensemble(TH, 1e3, 1.0, 200)
    assert np.all(ds.exit_reason.values == 2) and np.all(ds.exit_step.values <= 5)
    assert 1 <= overfit.train(X, Y, TH[0], 1e3, 200).attrs["diverged_at"] <= 5


def test_kernels_with_their_real_decorators_notice_nan_and_inf():
    """The overfitting kernel uses fastmath (reassoc, contract, nsz — never nnan/ninf): a NaN
    or an inf in the data must still stop GD at its first step."""
    from engine.overfit import _S_OF_BATCH, _gd
    from engine._vecmath import stream_key

    for bad in (math.nan, math.inf):
        x = X.copy()
        x[3] = bad
        steps = np.arange(5)
        rec = np.full((5, 4), np.nan)
        theta, exit_step = _gd(x, Y, TH[0].copy(), 0.02, 0.5, 100, 0, x.size,
                               stream_key(0, _S_OF_BATCH, 0), steps, rec)
        assert exit_step == 1
    # inf produced inside the ensemble kernel (a step of 1e300) is caught on the first step
    ds = fa.run_ensemble(TH, 1e300, 1.0, 10)
    assert np.all(ds.exit_reason.values == 2) and np.all(ds.exit_step.values == 1)
    assert not np.any(np.isinf(ds.theta.values))  # recorded values are finite or NaN


# -- state classes -----------------------------------------------------------------------------

STATE_CLASSES = [st.EnsembleParams, st.TrajectoryRun, st.StabilityParams, st.PhaseParams,
                 st.EscapeParams, st.PowerLawParams, st.OverfitParams]
INPUT_TYPES = (param.Number, param.Selector, param.Boolean, param.Range)  # Integer is a Number
STATE_PARAMS = [(cls, name) for cls in STATE_CLASSES for name, p in cls.param.objects().items()
                if isinstance(p, INPUT_TYPES) and name not in ("step", "diverged")]


@pytest.mark.parametrize("cls,name", STATE_PARAMS, ids=[f"{c.__name__}.{n}" for c, n in STATE_PARAMS])
def test_state_parameters_clamp_links_and_reject_direct_nonsense(cls, name):
    p = cls.param[name]
    hostile = [1e6, -5, math.nan, math.inf, 1e300, 10**15, "garbage", "<script>"]
    for value in hostile:
        obj = cls()
        before = getattr(obj, name)
        notices = apply_values(obj, {name: value}, [name])  # a link, a preset, the CLI
        now = getattr(obj, name)
        if now != before:  # changed: either said so, or it was taken as given (1e6 steps)
            assert notices or now == value, (name, value)
        p._validate(now)  # whatever was kept is valid
        if isinstance(p, param.Number) and p.bounds is not None:
            lo, hi = p.bounds
            assert (lo is None or now >= lo) and (hi is None or now <= hi)
        if not _valid(p, value):  # direct assignment of nonsense is refused, by name
            with pytest.raises(ValueError, match=name):
                setattr(cls(), name, value)


def _valid(p, value) -> bool:
    try:
        p._validate(value)
        return True
    except Exception:
        return False


# -- values sent by a browser ------------------------------------------------------------------

def _pages():
    from app.pages import PAGES

    return [s for s in PAGES if s not in ("about", "gallery")]


@pytest.mark.parametrize("slug", _pages())
def test_browser_values_are_validated_before_panel_applies_them(slug, caplog):
    """Every parameter widget of every page, and every part of a composite one, is sent what a
    tampered websocket could send. Nothing raises, nothing is logged as an error, every state
    value stays within its bounds and each correction is shown to the user."""
    from app.pages import PAGES

    page = PAGES[slug][1](query={"n_steps": "20000", "n_trajectories": "20", "max_steps": "1000",
                                 "n_sigma2": "3", "resolution": "16", "pullback_points": "1000",
                                 "pullback_time": "1000"})
    try:
        assert page.guard_inputs(page.__panel__()) > 5
        hostile = [1e6, -5, math.nan, math.inf, 1e300, "abc", None, [99], {"x": 1}]
        pairs = page.param_widgets()
        with caplog.at_level(logging.ERROR):
            for name, items in pairs.items():
                for owner, widget in items:
                    parts = [widget, *widget.select(pn.widgets.Widget)]
                    for part in parts:
                        for prop in {"value", "value_throttled", "active", "value_input"} & set(
                                part._property_mapping.values()) | {"value"}:
                            for value in hostile:
                                part._process_events({prop: value})
                    owner.param[name]._validate(getattr(owner, name))
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert any("lr" in n or "η" in n or "clamp" in n or "kept" in n for n in page._notices)
    finally:
        page.cleanup()


# -- the class mode's JSON API and page (app/classmode.py) -------------------------------------

#: what a tampered link can carry, as text
LINK_VALUES = [1e6, -5, math.nan, math.inf, -math.inf, 1e300, 10**15, 2.5, "garbage", "",
               "<script>alert(1)</script>", "'\"><img src=x onerror=alert(1)>", "\x00\r\nX: y",
               "é" * 300]


def _class_mode_requests(paths):
    """GET every path on a server of the class mode's routes; ``[(path, response)]``."""
    from tests.support import class_mode_server, run_async

    async def main():
        async with class_mode_server() as get:
            return [(p, await get(p)) for p in paths]

    return run_async(main())


def test_class_mode_answers_hostile_links_with_json_notices_or_errors(monkeypatch):
    """Every field of ``/api/live/frame`` (and the run, the action, the teacher's lock/hide),
    the π map's and the class page's parameters are sent the hostile values: never a 500 or a
    traceback; a 200 is strict JSON whose values are valid and whose every correction has a
    notice; a refusal is a JSON error; the page never echoes the markup."""
    from urllib.parse import urlencode

    from app import cache, classmode

    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())
    classmode.reset_stores()
    owners = {f: st.EnsembleParams for f in classmode.MODEL_FIELDS + classmode.START_FIELDS}
    owners |= {f: st.TrajectoryRun for f in classmode.RUN_FIELDS}

    def strict(body):
        return json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))

    names = [*classmode.FIELDS, "preset", "lock", "hide", "action", "run"]
    frames = [(name, value, "/api/live/frame?" + urlencode(
        {"action": "none", name: str(value)})) for name in names for value in LINK_VALUES]
    pis = [("/api/live/pi?" + urlencode({"sigma2": str(v), "teacher": "paper001"})) for v in LINK_VALUES]
    pis += [("/api/live/pi?" + urlencode({"teacher": str(v)})) for v in LINK_VALUES]
    pages = [("/class?" + urlencode({"page": str(v), "lr": str(v)})) for v in LINK_VALUES]
    pages += [("/class?" + urlencode({"page": "trajectories", "preset": str(v)})) for v in LINK_VALUES]
    worst = "/api/live/frame?" + urlencode({"action": "step", "n_trajectories": "1e6",
                                            "batch_size": "1e6", "steps_per_frame": "1e300"})
    try:
        answers = _class_mode_requests([p for *_, p in frames] + pis + pages + [worst])
    finally:
        classmode.reset_stores()
    for path, resp in answers:
        body = resp.body or b""
        assert resp.code in (200, 302, 400, 404), (path, resp.code, body[:300])
        assert b"Traceback" not in body, path
    by_path = dict(answers)

    for name, value, path in frames:
        resp = by_path[path]
        if resp.code != 200:
            assert name in ("action", "run"), (path, resp.code)
            error = strict(resp.body)
            assert error["status"] == resp.code and error["error"]
            continue
        data = strict(resp.body)
        assert all(isinstance(n, str) for n in data["notices"])
        for field, taken in data["values"].items():  # whatever was kept is valid
            owners[field].param[field]._validate(taken)
        if name not in owners:
            continue
        taken = data["values"][name]
        try:
            silent = float(value) == float(taken)
        except (TypeError, ValueError):
            silent = str(value) == str(taken)
        assert silent or data["notices"], (name, value, taken)  # each correction is said

    for path in pis:
        data = strict(by_path[path].body)
        assert 1e-4 <= data["sigma2"] <= 100 and data["teacher"] in ("paper000", "paper001")
    for path in pages:
        resp = by_path[path]
        if resp.code == 302:  # an unknown page: the class page of the default page
            location = resp.headers["Location"]
            assert location.startswith(("class?", "app?")) and not re.search(r"[\s<>\"']", location)
        else:
            assert resp.code == 200 and b"onerror=alert" not in resp.body
            assert b"<script>alert(1)" not in resp.body
    # the most expensive link still buys one frame within the work budget
    data = strict(by_path[worst].body)
    assert data["n"] == 100 and data["values"]["batch_size"] == 1024
    assert 0 < data["step"] <= st.TrajectoryRun.work_budget // (100 * 1024) == data["capped"]


def test_the_computations_api_answers_hostile_links_with_json(monkeypatch):
    """``/api/compute`` and its result and cancel routes (app/classapi.py) get the hostile values
    in every parameter of every page's computations, and in their own parameters: never a 500
    or a traceback; every answer is strict JSON (the results route answers 409 while nothing is
    computed: it validates the link like the others and never computes)."""
    from urllib.parse import urlencode

    from app import cache, classapi, classmode
    from app.state import PAGE_STATES, computations

    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())
    monkeypatch.setattr(classapi, "LEASE", 0.2)  # what these requests start stops at once
    paths = []
    for slug, classes in PAGE_STATES.items():
        states = {a: c() for a, c in classes.items()}
        for what in computations(slug, states):
            for obj in states.values():
                for name in (n for n in obj.param if n != "name"):
                    paths += ["/api/compute/result.nc?" + urlencode(
                        {"page": slug, "what": what, name: str(v)}) for v in LINK_VALUES]
    own = [{"page": "stability", "what": "point", "client": "c" * 16, k: str(v)}
           for k in ("page", "what", "client", "wait", "preset") for v in LINK_VALUES]
    paths += ["/api/compute?" + urlencode(q) for q in own]
    paths += ["/api/compute/cancel?" + urlencode({"key": str(v), "client": str(v)})
              for v in LINK_VALUES]
    try:
        answers = _class_mode_requests(paths)
    finally:
        classmode.reset_stores()
    for path, resp in answers:
        assert resp.code in (200, 400, 409), (path, resp.code, resp.body[:300])
        data = json.loads(resp.body, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
        if resp.code == 200:
            assert data["state"] in ("running", "done", "failed", "cancelled", "gone")
        else:
            assert data["status"] == resp.code and data["error"]


def test_the_views_api_answers_hostile_links_with_json(monkeypatch):
    """``/api/view`` and ``/api/view/data`` (app/classapi.py) get the hostile values in every
    field of every class page's closed-form views (stability ``mu``, phases ``marker``,
    overfitting ``regions``: nothing is computed) and in their own parameters: never a 500 or
    a traceback; every answer is strict JSON; a 200's values are valid for their parameters
    and name a view whose data is JSON with the view's keys."""
    from urllib.parse import parse_qsl, urlencode

    import param

    from app import cache, classapi, classmode
    from app.classpages import _owners
    from app.state import PAGE_STATES

    monkeypatch.setattr(cache, "_CACHE", cache.DatasetCache())
    monkeypatch.setattr(classapi, "LEASE", 0.2)
    instant = {"stability": "mu", "phases": "marker", "overfit": "regions"}
    paths = []
    for slug, what in instant.items():
        for _, name in _owners(slug):
            paths += ["/api/view?" + urlencode({"page": slug, "what": what, "client": "c" * 16,
                                                name: str(v)}) for v in LINK_VALUES]
    own = [{"page": "stability", "what": "mu", "client": "c" * 16, k: str(v)}
           for k in ("page", "what", "client", "have", "preset", "lock", "hide") for v in LINK_VALUES]
    paths += ["/api/view?" + urlencode(q) for q in own]
    paths += ["/api/view/data?" + urlencode({"key": str(v)}) for v in LINK_VALUES]
    try:
        answers = _class_mode_requests(paths)
        keys = {json.loads(r.body)["view"] for p, r in answers
                if r.code == 200 and p.startswith("/api/view?")}
        data = _class_mode_requests([f"/api/view/data?key={k}" for k in sorted(keys)])
    finally:
        classmode.reset_stores()
    owners = {slug: {f: PAGE_STATES[slug][a] for a, f in _owners(slug)} for slug in instant}
    for path, resp in answers:
        assert resp.code in (200, 400, 404), (path, resp.code, resp.body[:300])
        got = json.loads(resp.body, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
        if resp.code != 200:
            assert got["status"] == resp.code and got["error"]
            continue
        slug = dict(parse_qsl(path.split("?", 1)[1]))["page"]
        assert got["state"] == "done" and all(isinstance(n, str) for n in got["notices"])
        for field, value in got["values"].items():
            cls = owners[slug][field]
            taken = tuple(float(x) for x in value.split(",")) if isinstance(
                cls.param[field], param.Range) else value
            cls.param[field]._validate(taken)
    assert keys and all(r.code == 200 for _, r in data)
    for _, r in data:
        assert set(json.loads(r.body)) == {"columns", "titles", "props", "html"}

"""Pages built headlessly (no server): presets, links, notices, background jobs."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from app.pages.stability import StabilityPage
from app.pages.trajectories import TrajectoriesPage
from tests.support import EngineRuns, run_async, wait_until

hv.extension("bokeh")


_run = run_async


def _wait(cond, timeout=60.0):
    wait_until(cond, timeout)


def test_trajectories_page_applies_preset_then_link_values():
    page = TrajectoriesPage(query={"preset": "p000-s1", "lr": "0.05", "seed": "-4"})
    m = page.run.model
    assert page.preset == "p000-s1" and m.sigma2 == 1.0 and m.lr == 0.05 and m.seed == 0
    assert any("seed" in n for n in page._notices)
    assert page.prompt_markdown().startswith("**paper 000, σ² = 1.0")
    assert _run(page.step_once()) and page.run.step == 500


def test_notices_quote_links_as_text_not_html():
    page = TrajectoriesPage(query={"teacher": "<script>alert(1)</script>", "preset": "<b>x</b>"})
    md = page.notices_markdown()
    assert "<script>" not in md and "&lt;script&gt;" in md and "<b>" not in md


def test_unknown_preset_is_reported():
    page = TrajectoriesPage(query={"preset": "nope"})
    assert page.preset == "" and any("No preset" in n for n in page._notices)


def test_stability_page_computes_in_the_background_and_follows_sigma2():
    page = StabilityPage(query={"resolution": "30", "pullback_points": "1000",
                                "pullback_time": "1000", "sigma2": "1"})
    try:
        # the π map is shown first, then the full map (π, finite-η π, λ) replaces it
        _wait(lambda: page._map_ds is not None and "lyapunov" in page._map_ds
              and 'id="map-done"' in page._map_view.status.object
              and "paths trapped" in page._trapped.object)  # the cloud drawn
        strong = float(page._map_ds.pi_small_lr.sum())
        assert page._map_ds.sizes == {"w": 30, "v": 30}
        assert "lyapunov" in page._map_ds and "mu_plus_mean" in page._map_ds
        assert "paths trapped" in page._trapped.object
        first = page._map_ds
        page.state.sigma2 = 0.1
        _wait(lambda: page._map_ds is not first and page._map_ds.attrs["sigma2"] == 0.1)
        assert float(page._map_ds.pi_small_lr.sum()) < 0.5 * strong  # Fig. 3 right
        page.state.param.update(w0=1.5, v0=0.2)
        assert "(w, v) = (1.500, 0.200)" in page._point_md.object
    finally:
        page.cleanup()


def test_cancelling_the_cloud_drops_its_result(monkeypatch):
    """Cancel stops the cloud's computation itself, not only what the page says: it is
    cancelled and out of the registry, the engine (which was reporting progress) stops at its
    next check with its cancellation, and no result arrives."""
    from app import compute

    runs = EngineRuns().install(monkeypatch)
    page = StabilityPage(query={"resolution": "10", "pullback_points": "100000",
                                "pullback_time": "100000"})
    try:
        comp = page._cloud_view._follower.computation
        assert comp is not None and comp.state == compute.RUNNING
        # the engine is computing the cloud (10⁵ paths × 10⁵ steps: minutes) and says so
        _wait(lambda: runs.of(comp.key) is not None and runs.of(comp.key)["progress"] > 0)
        run = runs.of(comp.key)
        page._cloud_view.cancel()
        assert "Cancelled" in page._cloud_view.status.object
        assert comp.state == compute.CANCELLED and compute.running(comp.key) is None
        assert not page._cloud_view.running
        assert run["ended"].wait(30), "the engine still computes the cancelled cloud"
        assert run["result"] is None and "cancel" in str(run["error"]).lower(), run["error"]
        assert comp.status().done < comp.total and comp.status().results == ()
        assert page._cloud_ds is None and "Cancelled" in page._cloud_view.status.object
    finally:
        page.cleanup()


def test_phases_page_zoom_recomputes_and_resets():
    from app.pages.phases import PhasesPage
    from app.state import PhaseParams

    page = PhasesPage(query={"resolution": "16"})
    try:
        _wait(lambda: getattr(page, "_map_ds", None) is not None)
        first = page._map_ds
        page._on_range(x_range=(-1.0, 0.0), y_range=(0.2, 0.4))  # a box-zoom
        _wait(lambda: page._map_ds is not first)
        assert np.log10(page._map_ds.lr.values).min() > -1.0 and page._map_ds.mu.values.max() < 0.4
        assert page._map_ds.sizes == {"lr": 16, "mu": 16}  # full resolution in the zoomed box
        zoomed = page._map_ds
        page._on_reset_view(None)
        _wait(lambda: page._map_ds is not zoomed)
        assert page.state.log_lr_range == PhaseParams.param.log_lr_range.default
        _wait(lambda: "Theory: phase" in page._verdict.object)  # computed in the background
        assert "live trajectories" in page._verdict.object
    finally:
        page.cleanup()


def test_escape_page_fills_in_every_point():
    from app.pages.escape import EscapePage

    page = EscapePage(query={"n_trajectories": "20", "max_steps": "2000", "n_sigma2": "4"})
    try:
        _wait(lambda: "complete" in page._job.status.object)
        assert len(page._points) == 4
        assert sorted(float(p.sigma2.values[0]) for p in page._points) == pytest.approx(
            list(np.geomspace(0.002, 1.0, 4)))
    finally:
        page.cleanup()


def test_escape_page_computes_the_power_law_tab_only_when_shown():
    from app.pages.escape import EscapePage

    q = {"n_trajectories": "20", "max_steps": "2000", "n_sigma2": "3", "fp_runs": "20",
         "fp_dims": "1,3", "phi_lrs": "[0.1, 0.5]", "phi_batches": "1,2", "phi_chains": "2",
         "phi_samples": "100"}
    page = EscapePage(query=q)
    try:
        _wait(lambda: "complete" in page._job.status.object)
        assert page._pl == {"fp": [], "phi": []} and page._pl_job.status.object == ""
        page._tabs.active = 1  # the user opens the paper-003 tab
        assert page.state.view == "powerlaw"
        _wait(lambda: "complete" in page._pl_job.status.object)
        assert [ds.attrs["dim"] for ds in page._pl["fp"]] == [1, 3]
        assert sorted((ds.attrs["lr"], ds.attrs["batch_size"]) for ds in page._pl["phi"]) == [
            (0.1, 1), (0.1, 2), (0.5, 1), (0.5, 2)]
        assert "theory" in page._pl_table.object and "d = 3" in page._pl_table.object
        page.powerlaw.fp_lr = 0.2  # a change recomputes the shown tab only
        _wait(lambda: "complete" in page._pl_job.status.object and page._pl["fp"]
              and page._pl["fp"][0].attrs["lr"] == 0.2)
        assert not page._stale["powerlaw"]
    finally:
        page.cleanup()


def test_list_parameters_from_links_are_validated():
    from app.state import PowerLawParams
    from app.urlstate import apply_values

    p = PowerLawParams()
    notes = apply_values(p, {"fp_dims": [b"[2, 99, x]"], "phi_batches": [4, 1]},
                         ("fp_dims", "phi_batches"))
    assert p.fp_dims == [2] and p.phi_batches == [1, 4]
    assert len(notes) == 1 and "99" in notes[0]
    notes = apply_values(p, {"fp_dims": "nothing"}, ("fp_dims",))
    assert p.fp_dims == [2] and "kept" in notes[0]


def test_overfit_page_runs_both_twins_and_tau_changes_the_curves():
    from app.pages.overfit import OverfitPage

    page = OverfitPage(query={"n_steps": "20000", "n_data": "30"})
    try:
        _wait(lambda: "complete" in page._job.status.object)
        assert len(page._runs) == 2  # τ = 0.2 and its τ = 0 twin
        noisy, clean = page._runs
        np.testing.assert_array_equal(noisy.step.values, clean.step.values)
        assert not np.allclose(noisy.train_error.values, clean.train_error.values)
        before = noisy.generalization_error.values.copy()
        page.state.label_noise = 0.5
        _wait(lambda: "complete" in page._job.status.object and page._runs
              and not page._runs[0].attrs.get("partial")
              and not np.allclose(page._runs[0].generalization_error.values, before))
        assert "R is smallest" in page._summary.object
    finally:
        page.cleanup()


def test_overfit_page_caps_work_and_reports_divergence():
    from app.pages.overfit import OverfitPage

    page = OverfitPage(query={"n_data": "2000", "n_steps": "10000000", "lr": "10",
                              "compare_clean": "false"})
    try:
        assert "capped" in page.notices_markdown()
        _wait(lambda: "complete" in page._job.status.object)
        assert page._runs[0].attrs["n_steps"] == 2_000_000
        assert "diverged at step" in page._summary.object
    finally:
        page.cleanup()


def test_a_locked_control_holds_its_value_and_hide_hides():
    """?lock=…&hide=…: a disabled widget can still be sent a value over the websocket, so the
    lock is kept on the state itself."""
    page = StabilityPage(query={"resolution": "10", "pullback_points": "1000",
                                "pullback_time": "1000", "sigma2": "1"})
    try:
        page.apply_teacher({"lock": "sigma2,bogus", "hide": "advanced,presets"})
        widgets = page.param_widgets()
        assert all(w.disabled for _, w in widgets["sigma2"])
        assert not any(w.disabled for _, w in widgets["lr"])
        assert all(not w.visible for n in page.advanced for _, w in widgets[n])
        assert not page._preset_select.visible
        assert any("bogus" in n for n in page._notices)
        page.state.sigma2 = 5.0  # what a tampered websocket message would do
        assert page.state.sigma2 == 1.0 and any("fixed by this lesson" in n for n in page._notices)
        page.state.lr = 0.05  # unlocked controls move freely
        assert page.state.lr == 0.05
    finally:
        page.cleanup()


def _source(page, name: str) -> dict:
    """The columns of the live page's Bokeh source ``name`` (see app/figures/live.py)."""
    from bokeh.models import ColumnDataSource

    found = [src.data for fig in page._figures.values()
             for src in fig.select(type=ColumnDataSource) if src.name == name]
    assert len(found) == 1, name
    return found[0]


def _title(page, key: str) -> str:
    return page._figures[key].title.text


def test_where_am_i_reuses_the_stability_pages_map():
    """The trajectories page's inset is the stability page's cached π map at the same σ²."""
    from app.cache import configure, get_cache
    from app.figures.live import pi_columns
    from app.state import StabilityParams

    configure()
    page = TrajectoriesPage(query={"sigma2": "0.7"})
    try:
        _wait(lambda: page._pi_ds is not None)
        task = StabilityParams(sigma2=0.7).pi_map_task()
        assert get_cache().lookup(task.kind, task.inputs) is page._pi_ds
        stability_page = StabilityPage(query={"sigma2": "0.7"})
        stability_page.cleanup()
        assert stability_page.state.tasks()[0] == task  # the page asks for the very same entry
        again = TrajectoriesPage(query={"sigma2": "0.7"})  # another student, same σ²:
        again.cleanup()
        assert again._pi_ds is page._pi_ds  # drawn from the cache at once, no job, no wait
        image = _source(again, "live-where-image")["image"][0]
        np.testing.assert_array_equal(image, page._pi_ds.pi_small_lr.values.T)  # the map itself
        pts = _source(page, "live-where-points")  # a point per trajectory
        theta = page.run.theta
        assert len(pts["w"]) == page.run.model.n_trajectories
        # the nearest copy of M_wv, {w1 = w2, v1 = v2} or its mirror {w1 = −w2, v1 = −v2}
        # (MATH.md §1), w folded to w ≥ 0
        plus, minus = np.abs(theta[:, 0] + theta[:, 1]) / 2, np.abs(theta[:, 0] - theta[:, 1]) / 2
        mirror = (np.hypot(theta[:, 0] + theta[:, 1], theta[:, 2] + theta[:, 3])
                  < np.hypot(theta[:, 0] - theta[:, 1], theta[:, 2] - theta[:, 3]))
        assert mirror.any() and not mirror.all()  # both copies are exercised
        w = np.where(mirror, minus, plus)
        np.testing.assert_allclose(np.sort(pts["w"]), np.sort(w))
        low = page._pi_ds.copy()
        low["valley"] = -abs(low.valley)  # as at σ² = 0.1: C lies at v < 0, outside [0, 2]²
        assert pi_columns(low)[0]["live-where-note"]["text"] == ["valley C: outside this window"]
        assert pi_columns(low)[0]["live-where-valley"]["x"].size == 0
        assert _source(page, "live-where-note")["text"] == [""]
        assert "σ² = 0.7" in _title(page, "where")
        assert len(_source(page, "live-where-valley")["x"]) > 0
        assert pi_columns(None)[0]["live-where-note"]["text"] == ["computing the π map…"]
        from app.figures.stability import map_columns

        assert map_columns(None, "pi_small_lr")[1]["legend"] == "valley C: not computed yet"
        page.run.model.teacher = "paper001"  # no π map for that teacher: said, not drawn
        assert page._pi_ds is None
        assert _source(page, "live-where-note")["text"] == ["π map: paper 000 teacher only"]
        assert np.isnan(_source(page, "live-where-image")["image"][0]).all()
    finally:
        page.cleanup()


def test_pages_export_what_they_show_as_netcdf():
    from app import ncio
    from app.pages.escape import EscapePage
    from app.pages.overfit import OverfitPage

    traj = TrajectoriesPage(query={"n_trajectories": "3"})
    assert _run(traj.step_once())
    got = ncio.read_groups(traj.export_bytes().getvalue())["trajectories"]
    assert got.sizes["trajectory"] == 3 and int(got.step[-1]) == traj.run.step
    assert got.attrs["sgd_atlas_engine"] and "page=trajectories" in got.attrs["sgd_atlas_link"]
    traj.cleanup()

    esc = EscapePage(query={"n_trajectories": "20", "max_steps": "2000", "n_sigma2": "3"})
    over = OverfitPage(query={"n_steps": "20000", "n_data": "30"})
    try:
        _wait(lambda: "complete" in esc._job.status.object and "complete" in over._job.status.object)
        groups = ncio.read_groups(esc.export_bytes().getvalue())
        assert list(groups) == ["fig5"] and groups["fig5"].sizes["sigma2"] == 3
        groups = ncio.read_groups(over.export_bytes().getvalue())
        assert sorted(groups) == ["run", "run_tau0"]
        np.testing.assert_array_equal(groups["run"].train_error.values, over._runs[0].train_error.values)
        assert groups["run"].attrs["refined_theta"] == over._runs[0].attrs["refined_theta"]
    finally:
        esc.cleanup()
        over.cleanup()


def test_a_click_on_the_stability_map_computes_the_point_in_the_background(monkeypatch):
    """Picking (w, v) never runs the Lyapunov estimate (16 × 4000 steps) or π on the server's
    loop (here: the calling thread): they are one cached task of a background job, whose
    result fills the text under the plots and the export (issue 16). The values equal the
    engine's own functions at the point."""
    import threading

    from app.cache import configure
    from engine import stability

    configure()
    page = StabilityPage(query={"resolution": "10", "pullback_points": "1000",
                                "pullback_time": "1000", "sigma2": "1"})
    threads, real = [], stability.attracting_map

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(stability, "attracting_map", spy)
    try:
        page._on_tap(x=0.7, y=1.1)
        assert "computing" in page._point_md.object
        _wait(lambda: page._point_ds is not None and "λ =" in page._point_md.object
              and float(page._point_ds.w[0]) == pytest.approx(0.7))
        assert threads and threading.get_ident() not in threads
        ds = page.export_datasets()["point"]
        pi = stability.attracting_probability(0.7, 1.1, 1.0)
        lam, _ = stability.lyapunov(0.7, 1.1, 1.0, page.state.lr, n_steps=4000, n_replicas=16,
                                    seed=page.state.seed)
        assert float(ds.pi_small_lr[0, 0]) == pytest.approx(float(pi), abs=1e-6)
        assert float(ds.lyapunov[0, 0]) == pytest.approx(float(lam), rel=1e-6)
        assert f"π = {float(pi):.3f}" in page._point_md.object
    finally:
        page.cleanup()

"""Presets (assets/presets.yaml): a preset chosen in a page equals the same preset opened from
a fresh link, whatever was chosen before (issue 15, item 2: after "paper 001 teacher, τ = 0.2"
the preset "paper 000, σ² = 1.0" kept start=point, w0 = v0 = 0 and spread 0.02, so every
trajectory started at the origin on the projector but in the box on the students' screens)."""

from __future__ import annotations

from itertools import permutations

import holoviews as hv
import numpy as np
import pytest

from app.pages import PAGES
from app.presets import load_presets

hv.extension("bokeh")

PRESETS = load_presets()
PAIRS = [(slug, a, b) for slug in PRESETS if slug in PAGES
         for a, b in permutations([p["id"] for p in PRESETS[slug]], 2)]


def _values(page) -> dict:
    return {(type(obj).__name__, f): getattr(obj, f)
            for obj, fields in page.preset_targets() for f in fields}


def _choose(page, preset_id: str) -> None:
    """What the page's preset menu does when a preset is picked."""
    page._preset_select.value = preset_id


@pytest.mark.parametrize("slug,first,then", PAIRS, ids=[f"{s}:{a}>{b}" for s, a, b in PAIRS])
def test_a_preset_after_another_equals_the_preset_from_a_fresh_link(slug, first, then):
    factory = PAGES[slug][1]
    fresh = factory(query={"preset": then})
    page = factory(query={})
    try:
        _choose(page, first)
        _choose(page, then)
        assert page.preset == fresh.preset == then
        assert _values(page) == _values(fresh)
        if slug == "trajectories":  # the very starting points, not only the parameters
            np.testing.assert_array_equal(page.run.theta, fresh.run.theta)
            assert page.run.step == 0
    finally:
        page.cleanup()
        fresh.cleanup()


def test_the_reported_sequence_starts_in_the_box_again():
    """The issue's sequence, stated in the paper's terms: paper 000's presets start the
    ensemble uniformly in [−1, 1]⁴ (paper 000 §3), never at the origin."""
    page = PAGES["trajectories"][1](query={})
    try:
        _choose(page, "p001-tau02")
        assert page.run.model.start == "point" and page.run.model.w0 == 0.0
        _choose(page, "p000-s1")
        m = page.run.model
        assert (m.start, m.w0, m.v0, m.spread) == ("box", 0.5, 0.5, 0.05)
        theta = page.run.theta
        assert theta.shape == (8, 4) and np.all(np.abs(theta) <= 1.0)
        assert np.ptp(theta, axis=0).min() > 0.5  # spread over the box, not a point
    finally:
        page.cleanup()


def test_a_locked_control_keeps_its_value_through_presets_with_one_notice():
    """A teacher's lock holds when a student picks a preset, and the page says so once."""
    page = PAGES["trajectories"][1](query={})
    try:
        page.apply_teacher({"lock": "lr"})
        _choose(page, "diverge")  # asks η = 2.5
        assert page.run.model.lr == 0.1 and page.run.model.sigma2 == 1.0
        fixed = [n for n in page._notices if "fixed by this lesson" in n]
        assert len(fixed) == 1 and "2.5" in fixed[0]
        _choose(page, "p000-s01")  # asks η = 0.1, which it already has: nothing to say
        assert page.run.model.lr == 0.1
        assert not [n for n in page._notices if "fixed by this lesson" in n]
    finally:
        page.cleanup()

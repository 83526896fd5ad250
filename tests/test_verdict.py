"""The shared verdict rule."""

from __future__ import annotations

import math

import pytest

from genlab.studies.verdict import judge, mean_ci


def test_mean_ci_matches_student_t():
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.302653, sd = 1, half width = 4.302653 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean - lo == pytest.approx(hi - mean)


@pytest.mark.parametrize(
    ("values", "threshold", "verdict"),
    [
        ([0.02, 0.03, 0.025], 0.0, "supported"),
        ([-0.02, -0.03, -0.025], 0.0, "not supported"),
        ([0.05, -0.04, 0.01], 0.0, "inconclusive"),
        ([0.02, 0.03, 0.025], 0.05, "not supported"),
        ([0.5], 0.0, "inconclusive"),
        ([0.02, float("nan"), 0.03, 0.025], 0.0, "supported"),
        ([float("nan"), 0.3], 0.0, "inconclusive"),
    ],
)
def test_rule(values, threshold, verdict):
    v = judge("X-1", "a claim", values, quantity="q", threshold=threshold)
    assert v.verdict == verdict
    d = v.to_dict()
    assert {"id", "text", "verdict", "effect", "ci", "per_seed", "detail"} <= d.keys()
    if any(math.isnan(x) for x in values):
        assert "not finite" in v.detail


def test_every_preset_of_a_study_sets_the_same_knobs():
    from genlab.studies import STUDIES

    for study in STUDIES.values():
        assert set(study.presets) == {"smoke", "quick", "paper"}, study.name
        keys = {name: set(p.params) for name, p in study.presets.items()}
        assert keys["smoke"] == keys["quick"] == keys["paper"], (study.name, keys)

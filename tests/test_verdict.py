"""The shared verdict rule: direction, parts, controls, magnitude, degenerate flags, test-set noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from genlab.studies.verdict import (
    Control,
    Magnitude,
    Measure,
    accuracy,
    combine,
    judge,
    mean_ci,
    part,
    shuffled,
    slope,
    spearman,
)

NULL = Control([0.01, -0.02, 0.015, -0.01, 0.0], "an A/A comparison")


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
    v = judge("X-1", "a claim", values, quantity="q", threshold=threshold, control=NULL)
    assert v.verdict == verdict
    d = v.to_dict()
    keys = {"id", "text", "verdict", "effect", "ci", "per_seed", "detail", "control", "magnitude", "degenerate"}
    assert keys | {"uncertainty"} <= d.keys()
    assert d["control"]["verdict"] == ("inconclusive" if threshold == 0 else "not supported")
    assert d["magnitude"] is None
    if any(math.isnan(x) for x in values):
        assert "undefined" in v.detail and v.n_undefined == sum(math.isnan(x) for x in values)


def test_a_claim_whose_control_passes_too_is_inconclusive():
    v = judge("X", "t", [0.2, 0.25, 0.22, 0.21, 0.24], "q", control=Control([0.2, 0.21, 0.19, 0.2, 0.22], "A/A"))
    assert v.direction == "supported" and v.verdict == "inconclusive"
    assert v.reason == "the control passes too" and v.control["verdict"] == "supported"
    ok = judge("X", "t", [0.2, 0.25, 0.22, 0.21, 0.24], "q", control=NULL)
    assert ok.verdict == "supported" and ok.control["verdict"] == "inconclusive"


def test_identical_per_seed_values_are_flagged_degenerate_and_not_confident():
    v = judge("X", "t", [1.0] * 5, "q", control=NULL, threshold=0.99)
    assert v.degenerate and v.verdict == "inconclusive" and "degenerate" in v.reason
    # the same values with test-set noise have a real interval: flagged, but judged
    ex = [np.r_[np.ones(90), np.zeros(10)]] * 5
    w = judge("X", "t", [Measure(0.9, e) for e in ex], "q", control=NULL, threshold=0.5)
    assert w.degenerate and w.ci[1] > w.ci[0] and w.verdict == "supported"


def test_test_set_noise_widens_the_interval_by_the_documented_formula():
    rng = np.random.default_rng(0)
    m, n = 400, 5
    correct = [rng.random(m) < 0.8 for _ in range(n)]
    per_seed = [accuracy(c) for c in correct]
    v = judge("X", "t", per_seed, "acc", control=NULL)
    values = np.array([p.value for p in per_seed])
    d = np.mean(np.stack(correct).astype(float), axis=0)
    se = math.sqrt(values.var(ddof=1) / n + d.var(ddof=1) / m)
    half = stats.t.ppf(0.975, n - 1) * se
    assert v.ci == pytest.approx([values.mean() - half, values.mean() + half])
    plain = judge("X", "t", list(values), "acc", control=NULL)
    assert plain.ci[1] - plain.ci[0] < v.ci[1] - v.ci[0]
    assert "test" in v.uncertainty and "test" not in plain.uncertainty


def test_a_one_image_gap_is_not_a_measurement():
    # SB beats LB by exactly one of 360 test images on every seed: identical per-seed values, but the
    # test-set component keeps the interval honest (the old rule said "supported" with a zero-width CI)
    base = np.r_[np.ones(300), np.zeros(60)]
    sb, lb = base.copy(), base.copy()
    sb[300] = 1
    diff = combine([1, -1], [accuracy(sb), accuracy(lb)])
    v = judge("LB-gap", "t", [diff] * 5, "gap", control=NULL)
    assert v.effect == pytest.approx(1 / 360) and v.verdict == "inconclusive"


def test_magnitude_is_judged_against_the_papers_size():
    mag = Magnitude(math.log10(3), "ratio between 3 and 10", hi=1.0, log10=True)
    small = judge("D", "t", [0.08, 0.07, 0.09, 0.08, 0.075], "log ratio", control=NULL, magnitude=mag)
    assert small.verdict == "supported" and small.magnitude["verdict"] == "not supported"
    assert small.summary.startswith("direction reproduced, magnitude not reproduced (paper: ratio between 3")
    assert "1.2" in small.magnitude["ours"]  # shown as a ratio, 10^0.08
    inside = judge("D", "t", [0.7, 0.72, 0.69, 0.71, 0.7], "log ratio", control=NULL, magnitude=mag)
    assert inside.magnitude["verdict"] == "supported" and "magnitude reproduced" in inside.summary
    straddle = judge("D", "t", [0.3, 0.7, 0.5, 0.9, 0.2], "log ratio", control=NULL, magnitude=mag)
    assert straddle.magnitude["verdict"] == "inconclusive"


def test_parts_must_all_hold():
    main = [0.2, 0.25, 0.22, 0.21, 0.24]
    good = part("p", [1.0, 1.1, 0.9, 1.2, 1.0], "q")
    bad = part("p", [-1.0, -1.1, -0.9, -1.2, -1.0], "q")
    unsure = part("p", [1.0, -1.1, 0.9, -1.2, 1.0], "q")
    assert judge("X", "t", main, "q", control=NULL, also=[good]).verdict == "supported"
    assert judge("X", "t", main, "q", control=NULL, also=[bad]).verdict == "not supported"
    assert judge("X", "t", main, "q", control=NULL, also=[unsure]).verdict == "inconclusive"
    assert judge("X", "t", main, "q", control=NULL, also=[good]).parts[0]["verdict"] == "supported"


def test_undefined_spearman_is_nan_not_zero():
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    assert spearman([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0)


def test_slope_and_combine_keep_per_example_contributions():
    rng = np.random.default_rng(1)
    x = [0.0, 0.2, 0.5, 1.0]
    ys = [accuracy(rng.random(50) < p) for p in (0.9, 0.7, 0.5, 0.1)]
    s = slope(x, ys)
    assert s.value == pytest.approx(np.polyfit(x, [y.value for y in ys], 1)[0])
    assert s.examples is not None and s.examples.mean() == pytest.approx(s.value)
    c = combine([1, -1], ys[:2])
    assert c.value == pytest.approx(ys[0].value - ys[1].value) and c.examples.mean() == pytest.approx(c.value)


def test_shuffled_is_a_fixed_non_identity_permutation():
    vals = [0, 1, 2, 3]
    for seed in range(20):
        s = shuffled(vals, seed)
        assert sorted(s) == vals and s != vals and s == shuffled(vals, seed)


def test_every_preset_of_a_study_sets_the_same_knobs():
    from genlab.studies import STUDIES

    for study in STUDIES.values():
        assert set(study.presets) == {"smoke", "quick", "paper"}, study.name
        keys = {name: set(p.params) for name, p in study.presets.items()}
        assert keys["smoke"] == keys["quick"] == keys["paper"], (study.name, keys)
        assert study.presets["quick"].seeds >= 5, study.name

"""Study introspection: plan (source runs, six target arms from the same x0, the predictor in the spec), smoke end
to end, steps to target, and the claims on synthetic measurements where they hold, fail, and where the control
passes too."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.introspect import N_PREDICTOR, monotone_share, steps_to_target
from genlab.runner import run_study
from genlab.store import Store
from genlab.studies import STUDIES, get
from genlab.studies.introspection import ARMS, MOSTLY, IntrospectionStudy
from genlab.studies.verdict import pack


@pytest.fixture
def study(monkeypatch) -> IntrospectionStudy:
    monkeypatch.setitem(STUDIES, "introspection", IntrospectionStudy())
    return get("introspection")


def test_plan_arms_share_x0_and_differ_only_where_stated(study, tmp_path):
    ctx = study.context("smoke", None, Store(tmp_path))
    plan = study.plan(ctx)
    assert len(plan) == (ctx.seeds + 1) + ctx.seeds * len(ARMS)
    specs = {a: study.spec(ctx, a, 1) for a in ARMS}
    assert {s.seed for s in specs.values()} == {1} and len({s.run_id for s in specs.values()}) == len(ARMS)
    assert specs["nojump-AA"].replace(**{"train.order_seed": None}) == specs["nojump"]
    assert specs["introspection"].train.jump_net == specs["noise"].train.jump_net
    assert len(specs["introspection"].train.jump_net) == N_PREDICTOR and specs["linear"].train.jump_net == ()
    assert specs["noise"].replace(**{"train.jump": "introspection"}) == specs["introspection"]
    assert specs["introspection"].data["name"] != study.source_spec(ctx, 0).data["name"]
    assert quick_has_five_seeds(study, tmp_path)
    with pytest.raises(GenlabError, match="--data-root"):
        study.plan(study.context("paper", None, Store(tmp_path)))


def quick_has_five_seeds(study, tmp_path) -> bool:
    return study.context("quick", None, Store(tmp_path)).seeds >= 5


def test_smoke_end_to_end(study, tmp_path):
    result = run_study("introspection", preset="smoke", out=tmp_path, quiet=True)
    ids = ["WE-stats", "WE-predict", "WE-jump", "WE-noise", "WE-noise-jump"]
    assert [c["id"] for c in result["claims"]] == ids
    for c in result["claims"]:
        assert c["control"] is not None and c["verdict"] in ("supported", "not supported", "inconclusive")
    cell = result["measurements"]["cells"][0]
    assert len(cell["arms"]["introspection"]["jumps"]) == 2 and cell["arms"]["nojump"]["jumps"] == []
    assert set(cell["predict"]["run"]) == {"introspection", "shuffled", "linear", "quadratic", "no change"}
    for fig in result["figures"]:
        assert (tmp_path / "introspection" / fig).stat().st_size > 1000


def test_steps_to_target_interpolates_and_flags_runs_that_never_reach():
    curve = [[10, 0.2, 1.0], [20, 0.6, 0.8], [30, 0.9, 0.5]]
    assert steps_to_target(curve, 0.4) == (15.0, False)
    assert steps_to_target(curve, 0.1) == (10.0, False)
    assert steps_to_target(curve, 0.95) == (30.0, True)
    inc = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.05, 1.0, 0.0]])
    assert monotone_share(__import__("torch").as_tensor(inc)) == 0.5  # the static weight is left out


def _cell(rng: np.random.Generator, gain: float, control: float) -> dict:
    """One seed where every claim's effect is `gain` (log10 units) and every control's is `control`."""
    t0, fast = 400.0, 400.0 * 10**-gain
    steps = {"nojump": t0, "nojump-AA": t0 * 10**-control, "introspection": fast, "linear": t0}
    steps |= {"noise": t0, "introspection+noise": t0}
    arms = {}
    for a in ARMS:
        acc = 0.8 + (gain if a == "introspection" else 0)
        jumps = [{"test_loss_before": 1.0, "test_loss_after": 10 ** (gain + 0.01 * rng.standard_normal())}]
        arms[a] = {"steps": steps[a] * (1 + 0.01 * rng.standard_normal()), "censored": False, "jumps": jumps}
        arms[a]["correct_at"] = pack(rng.random(2000) < acc)
    e = 0.01 * rng.standard_normal(3)
    layer = {"n": 10, "monotone": MOSTLY + gain + e[0], "walk": MOSTLY + control + e[1]}
    layer |= {"median_w0": 0.1, "median_disp": 0.1 * 10 ** (e[2] - gain)}
    errors = {"introspection": 0.1 * 10**-gain, "shuffled": 0.1 * 10**-control, "linear": 0.1, "quadratic": 0.1}
    errors["no change"] = 0.1
    errors = {k: v * (1 + 0.01 * rng.standard_normal()) for k, v in errors.items()}
    return {"arms": arms, "stats": {"layers": [layer]}, "predict": {"weights": errors, "run": errors}}


@pytest.mark.parametrize(
    ("gain", "control", "expected"),
    [(0.1, 0.0, "supported"), (-0.1, 0.0, "not supported"), (0.1, 0.1, "inconclusive")],
)
def test_claims_on_synthetic_measurements(study, gain, control, expected):
    rng = np.random.default_rng(0)
    cells = [_cell(rng, gain, control) for _ in range(5)]
    verdicts = study.claims({"seeds": 5, "cells": cells, "params": {}})
    assert [v.verdict for v in verdicts] == [expected] * 5
    if expected == "inconclusive":
        assert all(v.reason == "the control passes too" for v in verdicts)
    assert all(v.control is not None and v.parts for v in verdicts)

"""Study pooling-geometry: plan (same parameters across geometries, controls), smoke end to end, and its claims
on synthetic measurements where they hold, fail, and where the control passes too."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.models import build, n_params
from genlab.runner import run_study
from genlab.store import Store
from genlab.studies import get
from genlab.studies.pooling_geometry import ROLES, TASKS
from genlab.studies.verdict import accuracy, pack


def _options(model: dict) -> dict:
    return {k: v for k, v in model.items() if k != "name"}


def test_plan_geometries_share_parameters_and_controls_differ_only_where_stated(tmp_path):
    study = get("pooling-geometry")
    ctx = study.context("quick", None, Store(tmp_path))
    assert ctx.seeds >= 5 and len(study.plan(ctx)) == ctx.seeds * len(TASKS) * len(ROLES)
    specs = {r: study.spec(ctx, "symmetry", r, 3) for r in ROLES}
    counts = {r: n_params(build(s.model["name"], (1, 32, 32), 2, **_options(s.model))) for r, s in specs.items()}
    assert counts["square"] == counts["mirror"] == counts["randomA"] == counts["randomB"]
    assert specs["randomA"].model["perm_seed"] != specs["randomB"].model["perm_seed"]
    assert specs["shallow-AA"].replace(**{"train.order_seed": None}) == specs["shallow"]
    assert {s.seed for s in specs.values()} == {3} and {s.data["task"] for s in specs.values()} == {"symmetry"}


def test_smoke_end_to_end(tmp_path):
    result = run_study("pooling-geometry", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == ["PG-cross", "PG-shallow"]
    for c in result["claims"]:
        assert c["control"] is not None and c["verdict"] in ("supported", "not supported", "inconclusive")
    cell = result["measurements"]["cells"][0]
    store = Store(tmp_path)
    run = store.load(get("pooling-geometry").spec(
        get("pooling-geometry").context("smoke", None, store), "closedness", "mirror", 0).run_id)  # fmt: skip
    assert accuracy(cell["closedness"]["mirror"]["correct"]).value == pytest.approx(run.final["test_acc"])
    for fig in result["figures"]:
        assert (tmp_path / "pooling-geometry" / fig).stat().st_size > 1000


def _cell(rng: np.random.Generator, cross: float, control: float, deep: float) -> dict:
    base = 0.7
    accs = {
        "closedness": {"square": base + cross, "mirror": base, "randomA": base + control, "randomB": base},
        "symmetry": {"square": base, "mirror": base + cross, "randomA": base, "randomB": base + control},
    }
    for task in TASKS:
        accs[task] |= {"shallow": base - deep, "shallow-AA": base - deep + control}
    return {
        t: {r: {"correct": pack(rng.random(3000) < a), "test_acc": a} for r, a in accs[t].items()} for t in TASKS
    }


@pytest.mark.parametrize(
    ("cross", "control", "deep", "expected"),
    [(0.05, 0.0, 0.1, "supported"), (-0.05, 0.0, -0.1, "not supported"), (0.05, 0.05, 0.1, "inconclusive")],
)
def test_claims_on_synthetic_measurements(cross, control, deep, expected):
    rng = np.random.default_rng(0)
    cells = [_cell(rng, cross, control, deep) for _ in range(5)]
    verdicts = get("pooling-geometry").claims({"seeds": 5, "cells": cells})
    assert [v.verdict for v in verdicts] == [expected, expected]
    if expected == "inconclusive":
        assert all(v.reason == "the control passes too" for v in verdicts)
    assert len(verdicts[0].parts) == 2 and len(verdicts[1].parts) == 4

"""Study demo: it shares the large-batch runs and LB-gap's measurement; its claims on synthetic measurements."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.store import Store
from genlab.studies import get
from genlab.studies.verdict import pack


def test_demo_plans_the_large_batch_runs(tmp_path):
    store = Store(tmp_path)
    demo, lb = get("demo"), get("large-batch")
    dctx, lctx = demo.context("quick", None, store), lb.context("quick", None, store)
    assert dctx.seeds == lctx.seeds >= 5
    assert {s.run_id for s in demo.plan(dctx)} <= {s.run_id for s in lb.plan(lctx)}


def _cell(rng: np.random.Generator, gap: float, control_gap: float, budget_ratio: float) -> dict:
    accs = {"SB": 0.8, "LB": 0.8 - gap, "SBc": 0.8 - control_gap, "budget-SB": 0.8, "budget-LB": 0.8}
    losses = {"SB": 0.01, "LB": 0.0099, "SBc": 0.0098, "budget-SB": 0.05, "budget-LB": 0.05 * budget_ratio}
    return {
        "final": {
            r: {"train_loss": losses[r] * (1 + rng.normal(0, 0.02)), "test_acc": a} for r, a in accs.items()
        },
        "correct": {r: pack(rng.random(4000) < a) for r, a in accs.items()},
    }


@pytest.mark.parametrize(
    ("gap", "control_gap", "budget_ratio", "fit", "gap_verdict"),
    [
        (0.05, 0.0, 12.0, "supported", "supported"),  # claims hold; the fixed budget does not match the fit
        (-0.05, 0.0, 12.0, "supported", "not supported"),  # LB generalizes better: DEMO-gap fails
        (0.05, 0.05, 1.0, "inconclusive", "inconclusive"),  # both controls pass too
    ],
)
def test_demo_claims_on_synthetic_measurements(gap, control_gap, budget_ratio, fit, gap_verdict):
    rng = np.random.default_rng(0)
    cells = [_cell(rng, gap, control_gap, budget_ratio) for _ in range(5)]
    verdicts = {v.id: v for v in get("demo").claims({"seeds": 5, "cells": cells})}
    assert verdicts["DEMO-fit"].verdict == fit and verdicts["DEMO-gap"].verdict == gap_verdict
    if fit == "inconclusive":
        assert all(v.reason == "the control passes too" for v in verdicts.values())

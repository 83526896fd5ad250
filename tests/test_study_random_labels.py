"""Study random-labels: the smoke preset runs end to end; each claim's quantity is a small function checked on
hand-made rows; `claims()` fed synthetic measurements gives each verdict (holds, fails, control passes too)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.io import read_json
from genlab.runner import run_study
from genlab.store import Store
from genlab.studies import get
from genlab.studies.random_labels import (
    AA,
    CONTROL_MODEL,
    FIXED,
    STRONG_WD,
    acc,
    affine,
    chance_gap,
    conditions,
    control_levels,
    fit_headroom,
    pixel_gap,
    reg_change,
    rl_fit,
    rl_test_fall,
    rl_time,
    weight_shrink,
)
from genlab.studies.verdict import Measure, pack

CLAIMS = ["RL-fit", "RL-test", "RL-time", "RL-reg", "RL-pixels"]


def test_smoke_end_to_end(tmp_path):
    result = run_study("random-labels", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == CLAIMS
    params = get("random-labels").presets["smoke"].params
    assert len(result["runs"]) == 2 * (3 * len(conditions(params)) + 1)
    cells = result["measurements"]["cells"]
    # label corruption really was applied, and the A/A run differs from p=0 only in its batch order
    store = Store(tmp_path)
    run = store.load(cells["mlp-1x32"]["p=1"][0]["run_id"])
    assert run.spec.data["transform"] == "labels" and run.spec.data["corrupt_p"] == 1.0
    p0, aa = (store.load(cells["cnn"][c][1]["run_id"]).spec for c in ("p=0", AA))
    assert aa.train.order_seed is not None and aa.replace(**{"train.order_seed": None}) == p0
    # RL-reg's runs all train the same fixed number of steps, with no early stop
    fixed = [cells[m][c][0] for m in cells if m != CONTROL_MODEL for c in cells[m] if c.startswith(FIXED)]
    assert len({r["steps"] for r in fixed}) == 1
    # RL-fit's per-seed value is the smallest fit headroom, read back from disk
    fit = result["claims"][0]
    for seed in range(2):
        lowest = math.inf
        for m in result["measurements"]["models"]:
            for c in ["p=0", "p=0.5", "p=1", "shuffled-pixels", "random-pixels", "gaussian"]:
                last = read_json(tmp_path / cells[m][c][seed]["run_id"] / "history.json")[-1]
                budget = params["epochs"] * last["step"] / last["epoch"]
                h = math.log10(budget / last["step"]) if last["train_acc"] >= 1 else math.log10(last["train_acc"])
                lowest = min(lowest, h)
        assert fit["per_seed"][seed] == pytest.approx(lowest)
    for claim in result["claims"]:
        assert claim["control"] is not None and claim["control"]["verdict"] in (
            "supported",
            "not supported",
            "inconclusive",
        )
    assert {t["title"] for t in result["tables"]} >= {"For orientation: Zhang et al. Table 1 (CIFAR-10)"}
    for fig in result["figures"]:
        assert (tmp_path / "random-labels" / fig).stat().st_size > 1000


def test_paper_preset_needs_a_data_root(tmp_path):
    study = get("random-labels")
    ctx = study.context("paper", 1, Store(tmp_path))
    with pytest.raises(GenlabError, match="--data-root"):
        study.plan(ctx)
    ctx = study.context("paper", 1, Store(tmp_path), data_root=str(tmp_path))
    specs = study.plan(ctx)
    assert {s.data["root"] for s in specs} == {str(tmp_path)}
    assert {s.model["name"] for s in specs} == {"mlp", "small-alexnet"}


# ---------------------------------------------------------------- the quantities, on hand-made rows
def _row(acc: float = 0.5, n: int = 100, steps: int = 100, fitted: bool = True, **kw) -> dict:
    k = round(acc * n)
    return {
        "fitted": fitted,
        "steps": steps,
        "budget_steps": 1000,
        "train_acc": 1.0 if fitted else 0.25,
        "test_acc": k / n,
        "correct": [1] * k + [0] * (n - k),
        "weight_norm": 1.0,
        **kw,
    }


def test_fit_headroom_is_continuous_on_both_sides():
    assert fit_headroom(_row(steps=100)) == pytest.approx(1.0)
    assert fit_headroom(_row(steps=1000)) == 0.0
    assert fit_headroom(_row(fitted=False)) == pytest.approx(math.log10(0.25))
    assert math.isnan(fit_headroom({**_row(fitted=False), "train_acc": 0.0}))
    cells = {"a": {"p=0": [_row(steps=10)], "p=1": [_row(fitted=False)]}, "b": {"p=0": [_row(steps=100)]}}
    assert rl_fit(cells, ["a"], ["p=0", "p=1"], 0) == pytest.approx(math.log10(0.25))
    assert rl_fit(cells, ["a", "b"], ["p=0"], 0) == pytest.approx(1.0)


def test_rl_test_fall_is_a_slope_with_per_example_contributions():
    cells = {"m": {"p=0": [_row(0.9)], "p=0.5": [_row(0.5)], "p=1": [_row(0.1)]}}
    fall = rl_test_fall(cells, ["m"], [0.0, 0.5, 1.0], 0)
    assert fall.value == pytest.approx(0.8)
    assert fall.examples is not None and np.mean(fall.examples) == pytest.approx(0.8)
    control = rl_test_fall(cells, ["m"], [0.0, 0.5, 1.0], 0, shuffle=True)
    order = control_levels([0.0, 0.5, 1.0], 0, 0)
    assert order != [0.0, 0.5, 1.0] and sorted(order) == [0.0, 0.5, 1.0]
    assert control.value == pytest.approx(-np.polyfit(order, [0.9, 0.5, 0.1], 1)[0])
    gap = chance_gap(cells, ["m"], 0.1, 0)
    assert gap.value == pytest.approx(0.0) and np.mean(gap.examples) == pytest.approx(0.0)
    assert affine(Measure(0.2, np.array([0.0, 0.4])), -1.0, 0.05).examples.tolist() == pytest.approx([0.05, -0.35])
    packed = {"correct": pack(np.array([1, 0, 0, 1]))}
    assert (
        packed["correct"] == "1001" and acc(packed).value == 0.5 and acc(packed).examples.tolist() == [1, 0, 0, 1]
    )


def test_rl_time_is_a_log_ratio_undefined_when_a_run_did_not_fit():
    cells = {
        "a": {"p=0": [_row(steps=100)], "p=1": [_row(steps=400)], AA: [_row(steps=100)]},
        "b": {"p=0": [_row(steps=100)], "p=1": [_row(steps=100)], AA: [_row(steps=100, fitted=False)]},
    }
    assert rl_time(cells, ["a", "b"], 0) == pytest.approx(math.log10(4) / 2)
    assert rl_time(cells, ["a"], 0, other=AA) == 0.0
    assert math.isnan(rl_time(cells, ["a", "b"], 0, other=AA))


def test_reg_change_and_weight_shrink_at_equal_steps():
    cells = {
        "a": {FIXED: [_row(0.6, weight_norm=10.0)], f"{FIXED}+wd": [_row(0.5, weight_norm=1.0)]},
        "b": {FIXED: [_row(0.6, weight_norm=4.0)], f"{FIXED}+wd": [_row(0.6, weight_norm=4.0)]},
    }
    change = reg_change(cells, ["a", "b"], 0, "wd")
    assert change.value == pytest.approx(-0.05) and np.mean(change.examples) == pytest.approx(-0.05)
    assert weight_shrink(cells, ["a", "b"], 0) == pytest.approx(0.5)


def test_pixel_gap_is_cnn_drop_minus_mean_mlp_drop():
    cells = {
        "cnn": {"p=0": [_row(0.8)], "shuffled-pixels": [_row(0.4)]},
        "m1": {"p=0": [_row(0.4)], "shuffled-pixels": [_row(0.4)]},
        "m2": {"p=0": [_row(0.4)], "shuffled-pixels": [_row(0.2)]},
    }
    gap = pixel_gap(cells, ["m1", "m2"], 0)
    assert gap.value == pytest.approx(0.4 - 0.1) and np.mean(gap.examples) == pytest.approx(0.3)


# ---------------------------------------------------------------- claims() on synthetic measurements
MODELS = ["mlp-a", "mlp-b", "cnn"]
P_LEVELS = [0.0, 0.5, 1.0]
N_TEST = 1000


def _holds(model: str, cond: str) -> dict:
    """A world where every claim holds: (test acc, steps to fit, fitted, weight norm) per model and condition."""
    clean = 0.8 if model == "cnn" else 0.4
    accs = {"p=0": clean, "p=0.5": (clean + 0.1) / 2, "p=1": 0.1, AA: clean, "shuffled-pixels": 0.4}
    accs.update({"random-pixels": 0.2, "gaussian": 0.1, FIXED: clean, f"{FIXED}+wd": clean, f"{FIXED}+aug": clean})
    accs[f"{FIXED}+{STRONG_WD}"] = 0.1
    steps = {"p=0": 100, "p=0.5": 150, "p=1": 250, AA: 100}
    norm = 8.0 if cond == f"{FIXED}+wd" else 10.0
    fitted = model != CONTROL_MODEL  # the 4-unit MLP cannot memorize random labels
    return {"acc": accs[cond], "steps": steps.get(cond, 120), "fitted": fitted, "train_acc": 0.2, "norm": norm}


def _synthetic(world, seeds: int = 6) -> dict:
    """A `result` as `analyze` returns it, drawn from `world` with seed-to-seed and test-set noise."""
    rng = np.random.default_rng(0)
    cells: dict = {}
    conds = [*(f"p={p:g}" for p in P_LEVELS), "shuffled-pixels", "random-pixels", "gaussian", AA]
    conds += [FIXED, f"{FIXED}+wd", f"{FIXED}+aug", f"{FIXED}+{STRONG_WD}"]
    for m in [*MODELS, CONTROL_MODEL]:
        for c in conds if m != CONTROL_MODEL else ["p=1"]:
            rows = []
            for _ in range(seeds):
                w = world(m, c)
                correct = (rng.random(N_TEST) < w["acc"] + rng.normal(0, 0.01)).astype(int)
                fitted = w["fitted"]
                rows.append(
                    {
                        "fitted": fitted,
                        "steps": round(w["steps"] * math.exp(rng.normal(0, 0.05))) if fitted else 1000,
                        "budget_steps": 1000,
                        "train_acc": 1.0 if fitted else w["train_acc"] * math.exp(rng.normal(0, 0.05)),
                        "test_acc": float(correct.mean()),
                        "correct": correct.tolist(),
                        "weight_norm": w["norm"] * math.exp(rng.normal(0, 0.01)),
                    }
                )
            cells.setdefault(m, {})[c] = rows
    settings = {"epochs": 100, "reg_epochs": 50, "weight_decay": 5e-3, "control_weight_decay": 0.2, "shift": 3}
    return {
        "models": MODELS,
        "mlps": MODELS[:2],
        "seeds": seeds,
        "chance": 0.1,
        "p_levels": P_LEVELS,
        "regularizers": ["wd", "aug"],
        "cells": cells,
        "settings": {**settings, "lr": 0.05, "decay": 0.99},
    }


def _verdicts(world) -> dict:
    claims = get("random-labels").claims(_synthetic(world))
    assert [c.id for c in claims] == CLAIMS
    assert all(c.control is not None for c in claims)
    return {c.id: c for c in claims}


def test_claims_hold_where_the_effects_are_there():
    verdicts = _verdicts(_holds)
    for cid in CLAIMS:
        assert verdicts[cid].verdict == "supported", (cid, verdicts[cid].reason, verdicts[cid].control)
        assert verdicts[cid].control["verdict"] != "supported"
    assert verdicts["RL-time"].magnitude["verdict"] == "supported"
    assert verdicts["RL-test"].uncertainty != verdicts["RL-fit"].uncertainty  # test-set noise is included


def test_claims_fail_where_the_effects_are_absent():
    def fails(model: str, cond: str) -> dict:
        w = _holds(model, cond)
        if cond == "random-pixels" and model == "mlp-a":  # a transform that is not fitted
            w.update(fitted=False, train_acc=0.5)
        if cond == "p=1":  # random labels take less time to fit than true ones
            w["steps"] = 50
        if cond.startswith("p="):  # test accuracy does not fall with p
            w["acc"] = 0.5
        if cond == f"{FIXED}+wd":  # weight decay costs 20 points
            w["acc"] -= 0.2
        if cond == "shuffled-pixels":  # shuffling hurts the MLPs, not the CNN
            w["acc"] = 0.8 if model == "cnn" else 0.2
        return w

    verdicts = _verdicts(fails)
    for cid in CLAIMS:
        assert verdicts[cid].verdict == "not supported", (cid, verdicts[cid].effect, verdicts[cid].ci)


def test_claims_are_inconclusive_where_the_control_passes_too():
    def leaky(model: str, cond: str) -> dict:
        w = _holds(model, cond)
        if model == CONTROL_MODEL:  # the 4-unit MLP fits random labels too
            w.update(fitted=True, steps=200)
        if cond == AA:  # another batch order alone slows fitting and drops the CNN's accuracy
            w.update(steps=250, acc=0.4 if model == "cnn" else w["acc"])
        if cond == f"{FIXED}+{STRONG_WD}":  # even the very strong weight decay changes nothing
            w["acc"] = _holds(model, FIXED)["acc"]
        return w

    verdicts = _verdicts(leaky)
    for cid in ("RL-fit", "RL-time", "RL-reg", "RL-pixels"):
        assert verdicts[cid].direction == "supported"
        assert verdicts[cid].control["verdict"] == "supported"
        assert verdicts[cid].verdict == "inconclusive" and verdicts[cid].reason == "the control passes too"

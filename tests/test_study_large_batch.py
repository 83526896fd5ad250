"""Study large-batch: plan shape (matched loss, same x0, A/A control), smoke end to end, and every claim fed
synthetic measurements where it holds, where it fails, and where its control passes too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import write_stand_in_files
from genlab.errors import GenlabError
from genlab.probes import Objective, eps_sharpness
from genlab.runner import run_study
from genlab.store import Store, model_from_state
from genlab.studies import get
from genlab.studies.large_batch import flat
from genlab.studies.large_batch_claims import SHARPNESS, claims, end_of_budget_table
from genlab.studies.verdict import accuracy
from genlab.train import load_data

CLAIMS = ["LB-gap", "LB-sharp", "LB-eig", "LB-lowdim", "LB-interp", "LB-warm", "LB-dist", "LB-traj", "LB-sweep"]
AA = ["LB-gap", "LB-sharp", "LB-eig", "LB-lowdim", "LB-interp", "LB-dist", "LB-traj"]  # forceable controls


def test_plan_same_x0_matched_loss_and_an_aa_control(tmp_path):
    study = get("large-batch")
    ctx = study.context("quick", 2, Store(tmp_path))
    specs = study.specs(ctx, ctx.params["setups"][0], 0)
    assert specs["SB"].train.batch_size == 40 and specs["LB"].train.batch_size == 400  # 1% and 10% of 4,000
    assert specs["warm3"].train.switch_batch_epoch == 3 and specs["warm3"].train.switch_batch_size == 400
    assert all(s.seed == 0 for s in specs.values())
    matched = [n for n in specs if not n.startswith("budget")]
    assert {specs[n].train.target_train_loss for n in matched} == {ctx.params["target_loss"]}
    assert specs["budget-SB"].train.target_train_loss is None
    sbc = specs["SBc"]
    assert sbc.train.order_seed not in (None, 0) and sbc.replace(**{"train.order_seed": None}) == specs["SB"]
    assert len(study.plan(ctx)) == 2 * len(specs)


def test_paper_preset_fails_clearly_without_a_data_root(tmp_path):
    study = get("large-batch")
    ctx = study.context("paper", 1, Store(tmp_path))
    with pytest.raises(GenlabError, match="--data-root"):
        study.plan(ctx)


def test_smoke_end_to_end(tmp_path):
    result = run_study("large-batch", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == CLAIMS
    for c in result["claims"]:
        assert c["verdict"] in ("supported", "not supported", "inconclusive")
        assert c["control"] is not None and "uncertainty" in c and isinstance(c["degenerate"], bool)
    assert result["claims"][0]["uncertainty"].startswith("Student-t over seeds (n-1 df), standard error widened")
    cell = next(iter(result["measurements"]["setups"].values()))[0]
    store = Store(tmp_path)
    study = get("large-batch")
    ctx = study.context("smoke", 2, store)
    specs = study.specs(ctx, ctx.params["setups"][0], 0)
    sb, lb = store.load(specs["SB"].run_id), store.load(specs["LB"].run_id)
    sbc = store.load(specs["SBc"].run_id)
    # SB, LB and the control start at the same x0 and stop at the matched loss
    assert torch.equal(flat(sb.init_state), flat(lb.init_state)) and torch.equal(
        flat(sb.init_state), flat(sbc.init_state)
    )
    for run in (sb, lb, sbc):
        assert run.stop_reason == "target_train_loss" and run.final["train_loss"] <= ctx.params["target_loss"]
    assert cell["dist"]["LB"] == pytest.approx(float((flat(lb.final_state) - flat(lb.init_state)).norm()))
    # the cached phi equals a fresh eps_sharpness call on the stored LB minimizer, and its ascent moved
    data = load_data(lb.spec)
    obj = Objective(model_from_state(lb.spec, lb.final_state, data), data=(data.x_train, data.y_train))
    fresh = eps_sharpness(obj, 1e-3, max_iter=3)
    assert fresh.moved and cell["min"]["LB"]["phi"]["0.001/full"] == pytest.approx(fresh.phi, rel=1e-6)
    assert cell["min"]["LB"]["sharpness_runs"]["0.001/full"]["iterations"] >= 1
    # per-example correctness is the stored model's
    assert accuracy(cell["correct"]["LB"]).value == pytest.approx(lb.final["test_acc"])
    assert cell["traj"]["SB"][0]["step"] == 0 and len(cell["traj"]["SB"]) == len(sb.snapshot_steps)
    paths = cell["paths"]["LB"]["linear"]
    i0 = paths["alpha"].index(0.0)
    sb_obj = Objective(model_from_state(sb.spec, sb.final_state, data), data=(data.x_train, data.y_train))
    assert paths["train_loss"][i0] == pytest.approx(sb_obj.loss(sb_obj.params()), rel=1e-5)
    # LB-traj is not an endpoint ratio of LB-sharp (the old bug: the same number twice)
    by = {c["id"]: c for c in result["claims"]}
    assert by["LB-traj"]["per_seed"] != by["LB-sharp"]["per_seed"]
    assert {t["title"] for t in result["tables"]} == {end_of_budget_table(result["measurements"])["title"]}
    for fig in result["figures"]:
        assert (tmp_path / "large-batch" / fig).stat().st_size > 1000


def test_paper_preset_plans_and_starts_on_stand_in_files(tmp_path):
    write_stand_in_files(tmp_path)
    study = get("large-batch")
    store = Store(tmp_path / "runs")
    ctx = study.context("paper", 1, store, data_root=str(tmp_path))
    specs = study.plan(ctx)
    assert {s.model["name"] for s in specs} == {"keskar-f1", "keskar-c1"}
    first = study.specs(ctx, ctx.params["setups"][0], 0)
    assert first["SB"].train.batch_size == 256 and first["LB"].train.batch_size == 4
    for spec in (specs[0], next(s for s in specs if s.model["name"] == "keskar-c1")):
        run = store.get_or_train(spec.replace(**{"train.epochs": 1, "train.snapshot_every": 0}))
        assert run.status == "finished" and 0 <= run.final["test_acc"] <= 1


# ---------------------------------------------------------------- synthetic measurements
def _correct(rng: np.random.Generator, p: float, m: int = 2000) -> list[int]:
    return (rng.random(m) < p).astype(int).tolist()


def _path(k_near: float, k_far: float) -> dict:
    alpha = (np.arange(61) - 20) / 20
    loss = np.minimum(k_near * alpha**2, k_far * (alpha - 1) ** 2) + 0.01
    return {"linear": {"alpha": alpha.tolist(), "train_loss": loss.tolist(), "test_loss": (loss + 0.1).tolist()}}


def _traj(slope: float) -> list[dict]:
    losses = np.logspace(0, -2, 6)
    return [{"step": i, "loss": float(v), "phi": float(v**slope), "lambda_max": 1.0} for i, v in enumerate(losses)]


def synthetic_cell(rng: np.random.Generator, s: float, c: float) -> dict:
    """One seed where the claims hold (s = 1) or fail (s = -1); c = 1 makes every A/A control pass too."""

    def noise(scale: float = 0.05) -> float:
        return float(rng.normal(0, scale))

    phi_sb = {f"{e:g}/{d or 'full'}": 0.5 * 10 ** noise() for e, d in SHARPNESS}
    mins = {
        "SB": {"phi": phi_sb, "top": [10.0], "steep_fraction": 0.01},
        "LB": {
            "phi": {k: v * 10 ** (1.5 * s + noise()) for k, v in phi_sb.items()},
            "top": [10.0 * 10 ** (0.5 * s + noise())],
        },
        "SBc": {
            "phi": {k: v * 10 ** (1.5 * c + noise()) for k, v in phi_sb.items()},
            "top": [10.0 * 10 ** (0.5 * c + noise())],
        },
    }
    mins["LB"]["steep_fraction"] = 0.05 * 10 ** (-s + noise())
    mins["SBc"]["steep_fraction"] = 0.01
    mins["init"] = {"steep_fraction": 0.05 * 10 ** (-c + noise())}
    warm = {f"warm{k}": 0.3 * 10 ** (-0.2 * s * k + noise()) for k in (1, 3)}
    bs = {"SB": 40, "bs100": 100, "LB": 400, "bs1000": 1000}
    sweep_phi = {f"bs{b}": 0.5 * 10 ** (0.3 * s * math.log2(b / 40) + noise()) for b in (100, 1000)}
    budget = {"budget-SB": 0.4, "budget-LB": 0.8}
    others = {n: {"phi": {"0.001/full": v}} for n, v in {**warm, **sweep_phi, **budget}.items()}
    acc = {
        "SB": 0.8,
        "LB": 0.8 - 0.05 * s,
        "SBc": 0.8 - 0.05 * c,
        "warm1": 0.8 - 0.04 * s,
        "warm3": 0.8 - 0.02 * s,
    }
    acc |= {"bs100": 0.8 - 0.02 * s, "bs1000": 0.8 - 0.08 * s, "budget-SB": 0.8, "budget-LB": 0.78}
    correct = {n: _correct(rng, p) for n, p in acc.items()}
    final = {
        n: {
            "batch_size": bs.get(n, 40),
            "steps": 100,
            "train_loss": 0.01,
            "train_acc": 1.0,
            "test_acc": float(np.mean(correct[n])),
        }
        for n in correct
    }
    return {
        "final": final,
        "correct": correct,
        "min": mins,
        "others": others,
        "dist": {"SB": 10.0, "LB": 10.0 / 10 ** (0.7 * s + noise()), "SBc": 10.0 / 10 ** (0.7 * c + noise())},
        "traj": {"SB": _traj(0.5 + noise()), "LB": _traj(0.5 - s + noise()), "SBc": _traj(0.5 - c + noise())},
        "paths": {"LB": _path(1.0, 10 ** (s + noise())), "SBc": _path(1.0, 10 ** (c + noise()))},
    }


def synthetic_result(s: float, c: float, seeds: int = 6) -> dict:
    rng = np.random.default_rng(0)
    cells = [synthetic_cell(rng, s, c) for _ in range(seeds)]
    return {
        "seeds": seeds,
        "setups": {"synthetic": cells},
        "target_loss": 0.01,
        "warm": [1, 3],
        "sweep": [100, 1000],
    }


@pytest.mark.parametrize(
    ("s", "c", "expected", "ids"),
    [
        (1, 0, "supported", CLAIMS),
        (-1, 0, "not supported", CLAIMS),
        (1, 1, "inconclusive", AA),
    ],
)
def test_claims_on_synthetic_measurements(s, c, expected, ids):
    verdicts = {v.id: v for v in claims(synthetic_result(s, c))}
    assert list(verdicts) == CLAIMS
    for cid in ids:
        v = verdicts[cid]
        assert v.verdict == expected, (cid, v.verdict, v.effect, v.ci, v.reason, v.control)
        if expected == "inconclusive":
            assert v.reason == "the control passes too" and v.control["verdict"] == "supported"
        else:
            assert v.control["verdict"] != "supported"
    mag = {cid: verdicts[cid].magnitude for cid in ("LB-sharp", "LB-dist")}
    if s == 1:  # 10^1.5 sharper and 10^0.7 = 5x farther: both inside the paper's sizes
        assert mag["LB-sharp"]["verdict"] == "supported" and mag["LB-dist"]["verdict"] == "supported"

"""Study optimizer-minima: plan shape (same x0 and batch order across optimizers, matched loss, twins differ
only by order_seed), smoke end to end (cached probes equal fresh probe calls), the paper preset on stand-in
files, and every claim fed synthetic measurements where it holds, where it fails, and where its control passes
too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import write_stand_in_files
from genlab.errors import GenlabError
from genlab.probes import Objective, barrier, basin_radius
from genlab.runner import run_study
from genlab.store import Store, model_from_state
from genlab.studies import STUDIES
from genlab.studies.optimizer_minima import SWITCHES, OptimizerMinimaStudy, flat
from genlab.studies.optimizer_minima_claims import (
    OPTIMIZERS,
    claims,
    distinct_pairs,
    pair_key,
    summary_table,
    switch_name,
    twin,
    twin_pairs,
)
from genlab.train import load_data

CLAIMS = ["OM-distinct", "OM-switch", "OM-basin", "OM-norm", "OM-traintest", "OM-eig"]
AA = ["OM-distinct", "OM-switch", "OM-basin"]  # controls that can be forced to pass


@pytest.fixture
def study(monkeypatch) -> OptimizerMinimaStudy:
    s = OptimizerMinimaStudy()
    monkeypatch.setitem(STUDIES, "optimizer-minima", s)
    return s


def test_plan_same_x0_same_order_matched_loss_and_twins(tmp_path, study):
    ctx = study.context("quick", 2, Store(tmp_path))
    arch = ctx.params["archs"][1]
    specs = study.specs(ctx, arch, 1)
    assert arch["model"]["batchnorm"] is True
    assert {s.seed for s in specs.values()} == {1}
    assert {s.train.target_train_loss for s in specs.values()} == {ctx.params["target_loss"]}
    base = specs["sgd"].to_dict()
    for o in OPTIMIZERS:  # the optimizers differ only in the optimizer and its lr / momentum
        d = specs[o].to_dict()
        assert {k: v for k, v in d.items() if k != "train"} == {k: v for k, v in base.items() if k != "train"}
        diff = {k for k in d["train"] if d["train"][k] != base["train"][k]}
        assert diff <= {"optimizer", "lr", "momentum"} and specs[o].train.order_seed is None
        tw = specs[twin(o)]
        assert tw.train.order_seed not in (None, 1) and tw.replace(**{"train.order_seed": None}) == specs[o]
    assert specs["sgdm"].train.momentum == 0.9 and specs["sgd"].train.momentum == 0.0
    sw = specs[switch_name("adam", "sgdm")].train
    assert (sw.optimizer, sw.switch_optimizer, sw.switch_lr, sw.momentum) == ("adam", "sgd", 0.02, 0.9)
    assert specs[switch_name("rmsprop", "adam")].train.momentum == 0.0  # no momentum leaks into RMSprop
    assert len(study.plan(ctx)) == 2 * 2 * (2 * len(OPTIMIZERS) + len(SWITCHES))


def test_paper_preset_fails_clearly_without_a_data_root(tmp_path, study):
    ctx = study.context("paper", 1, Store(tmp_path))
    with pytest.raises(GenlabError, match="--data-root"):
        study.plan(ctx)


def test_smoke_end_to_end(tmp_path, study):
    result = run_study("optimizer-minima", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == CLAIMS
    for c in result["claims"]:
        assert c["verdict"] in ("supported", "not supported", "inconclusive")
        assert c["control"] is not None and isinstance(c["degenerate"], bool)
    by = {c["id"]: c for c in result["claims"]}
    assert by["OM-eig"]["uncertainty"].startswith("Student-t over seeds (n-1 df), standard error widened")
    m = result["measurements"]
    store = Store(tmp_path)
    ctx = study.context("smoke", 2, store)
    arch = ctx.params["archs"][1]  # with BN: paths recompute the running statistics
    specs = study.specs(ctx, arch, 0)
    runs = {n: store.load(specs[n].run_id) for n in ("sgd", "adam", twin("sgd"))}
    assert torch.equal(flat(runs["sgd"].init_state), flat(runs["adam"].init_state))
    for run in runs.values():
        assert run.stop_reason == "target_train_loss" and run.final["train_loss"] <= ctx.params["target_loss"]
    cell = m["archs"][arch["name"]][0]
    data = load_data(runs["sgd"].spec)
    sgd, adam = (model_from_state(r.spec, r.final_state, data) for r in (runs["sgd"], runs["adam"]))
    obj = Objective(sgd, data=(data.x_train, data.y_train))
    test = Objective(sgd, data=(data.x_test, data.y_test))
    fresh = barrier(obj, adam, sgd, steps=ctx.params["barrier_steps"], refine=4, test=test, bn="recompute")
    cached = cell["paths"][pair_key("sgd", "adam")]
    assert cached["train"] == pytest.approx(fresh.train_barrier, rel=1e-5, abs=1e-7)
    assert cached["test"] == pytest.approx(fresh.test_barrier, rel=1e-5, abs=1e-7)
    br = basin_radius(
        obj, n_directions=ctx.params["basin_dirs"], delta=ctx.params["basin_delta"], seed=0, test=test
    )
    assert cell["min"]["sgd"]["basin"]["train"] == pytest.approx(br.train_radii.tolist())
    assert cell["norm"]["adam"] == pytest.approx(float(flat(runs["adam"].final_state).norm()))
    gap = np.mean(cell["min"]["sgd"]["test_losses"]) - cell["min"]["sgd"]["train_loss"]
    assert gap == pytest.approx(runs["sgd"].final["test_loss"] - runs["sgd"].final["train_loss"], abs=1e-4)
    surf = cell["surfaces"]["barycentric"]
    assert surf["test_loss"] is not None and surf["minima"] == ctx.params["surfaces"]["barycentric"]
    assert summary_table(m)["rows"] and len(result["figures"]) == 8
    for fig in result["figures"]:
        assert (tmp_path / "optimizer-minima" / fig).stat().st_size > 1000


def test_paper_preset_plans_and_starts_on_stand_in_files(tmp_path, study):
    write_stand_in_files(tmp_path)
    store = Store(tmp_path / "runs")
    ctx = study.context("paper", 1, store, data_root=str(tmp_path))
    specs = study.plan(ctx)
    assert {s.data["name"] for s in specs} == {"cifar10"}
    assert {bool(s.model.get("batchnorm")) for s in specs} == {False, True}
    spec = study.specs(ctx, ctx.params["archs"][1], 0)["adam"]
    run = store.get_or_train(spec.replace(**{"train.epochs": 1, "train.target_train_loss": None}))
    assert run.status == "finished" and 0 <= run.final["test_acc"] <= 1


# ---------------------------------------------------------------- synthetic measurements
LOG_LAMBDA = {o: 1.8 - 0.2 * i for i, o in enumerate(OPTIMIZERS)}  # Adam flattest
LOG_RADIUS = {o: 0.1 * i for i, o in enumerate(OPTIMIZERS)}  # Adam widest


def synthetic_cell(
    rng: np.random.Generator, s: float, c: float, bn: bool, seed_shift: float, base: np.ndarray
) -> dict:
    """One seed where the claims hold (s = 1) or fail (s = -1); c = 1 makes the A/A controls pass too."""

    def noise(scale: float = 0.02) -> float:
        return float(rng.normal(0, scale))

    paths = {}
    for k in distinct_pairs():
        tb = 0.1 * 10 ** (0.5 * s + noise())
        paths[k] = {
            "train": tb,
            "test": 0.2 + s * tb + noise(0.005),
            "train_excess": 0.3 * s + noise(),
            "test_excess": 0.3 * s + noise(),
        }
    for k in twin_pairs():
        tb = 0.1 * 10 ** noise()
        paths[k] = {
            "train": tb,
            "test": 0.2 + s * tb + noise(0.005),
            "train_excess": 0.3 * c + noise(),
            "test_excess": 0.3 * c + noise(),
        }
    dist, final = {}, {}
    for a, b in SWITCHES:
        e = switch_name(a, b)
        dist[pair_key(e, a)], dist[pair_key(e, b)] = 10 ** (0.3 * s + noise()), 1.0
        dist[pair_key(twin(a), a)], dist[pair_key(twin(a), b)] = 0.5 * 10 ** (0.3 * c + noise()), 0.5
        final[e] = {"switched": True, "loss_at_switch": 0.05}
    final |= {o: {"epoch": 10, "test_acc": 0.9} for o in OPTIMIZERS}
    mins = {}
    for o in OPTIMIZERS:
        r = 10 ** (s * LOG_RADIUS[o] + noise() + rng.normal(0, 0.1, 50))
        g = 0.1 + 0.1 * s * (LOG_LAMBDA[o] - 1.4) + noise(0.002)
        mins[o] = {
            "basin": {"train": r.tolist(), "test": (1.1 * r).tolist()},
            "top": [10 ** (LOG_LAMBDA[o] + noise())],
            "trace": 100.0,
            "train_loss": 0.02,
            "test_losses": (0.02 + g + base).tolist(),
        }
    sgd = np.asarray(mins["sgd"]["basin"]["train"])
    mins[twin("sgd")] = {"basin": {"train": (sgd * 10 ** (0.3 * c + noise())).tolist(), "test": sgd.tolist()}}
    if s > 0:  # characteristic norms: spread between optimizers, tight within (tighter with BN)
        norm = {o: 10 ** (1 + 0.1 * i + noise(0.005 if bn else 0.03)) for i, o in enumerate(OPTIMIZERS)}
    else:  # norms move with the seed, not with the optimizer
        norm = {o: 10 ** (1 + seed_shift + noise(0.001)) for o in OPTIMIZERS}
    return {"paths": paths, "dist": dist, "final": final, "min": mins, "norm": norm}


def synthetic_result(s: float, c: float, seeds: int = 6) -> dict:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.05, 300)  # per-example test-loss noise of the shared test set
    shifts = rng.normal(0, 0.1, seeds)
    archs = {
        name: [synthetic_cell(rng, s, c, bn, shifts[i], base) for i in range(seeds)]
        for name, bn in (("mlp", False), ("mlp-bn", True))
    }
    return {
        "seeds": seeds,
        "archs": archs,
        "bn": {"mlp": False, "mlp-bn": True},
        "target_loss": 0.02,
        "switches": SWITCHES,
        "basin_delta": 0.1,
        "lr": {o: 0.1 for o in OPTIMIZERS},
    }


@pytest.mark.parametrize(
    ("s", "c", "expected", "ids"),
    [(1, 0, "supported", CLAIMS), (-1, 0, "not supported", CLAIMS), (1, 1, "inconclusive", AA)],
)
def test_claims_on_synthetic_measurements(s, c, expected, ids):
    verdicts = {v.id: v for v in claims(synthetic_result(s, c))}
    assert list(verdicts) == CLAIMS
    for cid in ids:
        v = verdicts[cid]
        assert v.verdict == expected, (cid, v.verdict, v.effect, v.ci, v.reason, v.control, v.parts)
        if expected == "inconclusive":
            assert v.reason == "the control passes too" and v.control["verdict"] == "supported"
        else:
            assert v.control["verdict"] != "supported"

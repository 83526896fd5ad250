"""Study large-batch: smoke end to end; plan shape; sharpness and distances read back from stored runs."""

from __future__ import annotations

import pytest
import torch

from conftest import write_stand_in_files
from genlab.errors import GenlabError
from genlab.probes import Objective, eps_sharpness
from genlab.runner import run_study
from genlab.store import Store, model_from_state
from genlab.studies import get
from genlab.studies.large_batch import flat
from genlab.train import load_data

CLAIMS = ["LB-gap", "LB-sharp", "LB-eig", "LB-lowdim", "LB-interp", "LB-warm", "LB-dist", "LB-traj", "LB-sweep"]


def test_plan_same_x0_and_batch_sizes(tmp_path):
    study = get("large-batch")
    ctx = study.context("quick", 2, Store(tmp_path))
    setup = ctx.params["setups"][0]
    specs = study.specs(ctx, setup, 0)
    assert specs["SB"].train.batch_size == 16 and specs["LB"].train.batch_size == 144  # ~1% and 10% of 1,437
    assert specs["warm5"].train.switch_batch_epoch == 5 and specs["warm5"].train.switch_batch_size == 144
    assert all(s.seed == 0 for s in specs.values())
    assert len(study.plan(ctx)) == 2 * len(specs)


def test_paper_preset_plans_with_data_root_and_fails_clearly_without(tmp_path):
    study = get("large-batch")
    ctx = study.context("paper", 1, Store(tmp_path))
    with pytest.raises(GenlabError, match=r"does not exist|expected"):
        study.plan(ctx)


def test_smoke_end_to_end(tmp_path):
    result = run_study("large-batch", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == CLAIMS
    assert all(c["verdict"] in ("supported", "not supported", "inconclusive") for c in result["claims"])
    cell = next(iter(result["measurements"]["setups"].values()))[0]
    store = Store(tmp_path)
    study = get("large-batch")
    ctx = study.context("smoke", 2, store)
    specs = study.specs(ctx, ctx.params["setups"][0], 0)
    sb, lb = store.load(specs["SB"].run_id), store.load(specs["LB"].run_id)
    # distances from the shared x0, recomputed from the stored checkpoints
    assert torch.equal(flat(sb.init_state), flat(lb.init_state))
    assert cell["dist"]["LB"] == pytest.approx(float((flat(lb.final_state) - flat(lb.init_state)).norm()))
    # the cached phi equals a fresh eps_sharpness call on the stored LB minimizer
    data = load_data(lb.spec)
    obj = Objective(model_from_state(lb.spec, lb.final_state, data), data=(data.x_train, data.y_train))
    assert cell["LB"]["phi"]["0.001/full"] == pytest.approx(eps_sharpness(obj, 1e-3, max_iter=3).phi, rel=1e-6)
    # trajectories: one row per snapshot, starting at x0
    assert cell["traj"]["SB"][0]["step"] == 0 and len(cell["traj"]["SB"]) == len(sb.snapshot_steps)
    paths = cell["paths"]["linear"]
    i1 = paths["alpha"].index(1.0)
    assert paths["train_loss"][i1] == pytest.approx(obj.loss(obj.params()), rel=1e-5)
    for fig in result["figures"]:
        assert (tmp_path / "large-batch" / fig).stat().st_size > 1000


def test_paper_preset_plans_and_starts_on_stand_in_files(tmp_path):
    write_stand_in_files(tmp_path)
    study = get("large-batch")
    store = Store(tmp_path / "runs")
    ctx = study.context("paper", 1, store, data_root=str(tmp_path))
    specs = study.plan(ctx)
    assert {s.model["name"] for s in specs} == {"keskar-f1", "keskar-c1"}
    sb = study.specs(ctx, ctx.params["setups"][0], 0)["SB"]
    assert sb.train.batch_size == 256 and study.specs(ctx, ctx.params["setups"][0], 0)["LB"].train.batch_size == 4
    for spec in (specs[0], next(s for s in specs if s.model["name"] == "keskar-c1")):
        run = store.get_or_train(spec.replace(**{"train.epochs": 1, "train.snapshot_every": 0}))
        assert run.status == "finished" and 0 <= run.final["test_acc"] <= 1

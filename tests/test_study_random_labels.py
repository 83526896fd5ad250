"""Study random-labels: the smoke preset runs end to end and its claims come from the stored runs."""

from __future__ import annotations

import pytest

from genlab.errors import GenlabError
from genlab.io import read_json
from genlab.runner import run_study
from genlab.store import Store
from genlab.studies import get
from genlab.studies.random_labels import conditions


def test_smoke_end_to_end(tmp_path):
    result = run_study("random-labels", preset="smoke", out=tmp_path, quiet=True)
    ids = [c["id"] for c in result["claims"]]
    assert ids == ["RL-fit", "RL-test", "RL-time", "RL-reg", "RL-pixels"]
    assert len(result["runs"]) == 2 * 3 * len(conditions())
    cells = result["measurements"]["cells"]
    # label corruption really was applied: train labels of p=1 differ from the true ones for most examples
    store = Store(tmp_path)
    run = store.load(cells["mlp-1x512"]["p=1"][0]["run_id"])
    assert run.spec.data["transform"] == "labels" and run.spec.data["corrupt_p"] == 1.0
    # RL-fit's per-seed value is the lowest final train accuracy over the fitting cells, read back from disk
    fit = result["claims"][0]
    for seed in range(2):
        lowest = min(
            read_json(tmp_path / cells[m][c][seed]["run_id"] / "history.json")[-1]["train_acc"]
            for m in cells
            for c in cells[m]
            if not c.startswith("true+")
        )
        assert fit["per_seed"][seed] == pytest.approx(lowest)
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

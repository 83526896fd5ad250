"""The command line: train, runs, list, run, reproduce, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genlab.cli import main
from genlab.io import read_json

TINY = [
    "--set", "data.name=blobs", "--set", "data.n_train=120", "--set", "data.n_test=60",
    "--set", "model.widths=[16]", "--set", "train.epochs=2",
]  # fmt: skip


def test_train_prints_run_dir_and_table_then_caches(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "train_acc" in out and "finished" in out
    run_id = out.split()[1].rstrip(":")
    assert (tmp_path / run_id / "history.json").exists()
    assert main(["train", *TINY, "--out", str(tmp_path), "--quiet"]) == 0
    assert "cached" in capsys.readouterr().out
    assert main(["runs", "--out", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert run_id in listing and "blobs" in listing and "finished" in listing


def test_train_from_spec_file(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {name: blobs, n_train: 100, n_test: 50}\nmodel: {name: mlp, width: 8}\ntrain: {epochs: 1}\n"
    )
    assert main(["train", str(spec), "--set", "train.lr=0.05", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    run_dir = next((tmp_path / "r").iterdir())
    assert read_json(run_dir / "spec.json")["train"]["lr"] == 0.05


def test_list_shows_studies_presets_sources_models(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("demo", "smoke", "quick", "paper", "digits", "mnist1d", "cifar10", "keskar-f1"):
        assert word in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--set", "data.name=imagenet"], "data.name"),
        (["train", "--set", "model.name=resnet"], "model.name"),
        (["train", "--set", "train.optimizer=lion"], "train.optimizer"),
        (["train", "--set", "train.lr=-0.1"], "train.lr"),
        (["train", "--set", "train.epochs=many"], "train.epochs"),
        (["train", "--set", "train.lerning_rate=0.1"], "train.lerning_rate"),
        (["train", "--set", "data.name=mnist", "--set", "data.root=/no/such/folder"], "does not exist"),
        (["train", "no-such-spec.yaml"], "does not exist"),
        (["run", "nostudy"], "nostudy"),
        (["run", "demo", "--preset", "huge"], "huge"),
        (["run", "demo", "--seeds", "-2"], "--seeds"),
        (["run", "demo", "--seeds", "two"], "--seeds"),
        (["run", "demo", "--executor", "slurm"], "slurm"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_is_one_line_without_traceback(argv, needle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "genlab.cli", *argv, "--out", str(tmp_path)] if argv[0] != "frobnicate"
        else [sys.executable, "-m", "genlab.cli", *argv],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error:") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_and_reproduce_demo_smoke(tmp_path, capsys):
    assert main(["run", "demo", "--preset", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    result = read_json(tmp_path / "demo" / "result.json")
    assert {"study", "preset", "seeds", "claims", "figures", "runs"} <= result.keys()
    assert result["study"] == "demo" and result["preset"] == "smoke" and result["seeds"] == 2
    assert len(result["runs"]) == 10 and all((tmp_path / r / "status.json").exists() for r in result["runs"])
    for claim in result["claims"]:
        assert {
            "id",
            "text",
            "verdict",
            "effect",
            "ci",
            "per_seed",
            "detail",
            "control",
            "degenerate",
        } <= claim.keys()
        assert claim["verdict"] in ("supported", "not supported", "inconclusive") and len(claim["per_seed"]) == 2
    assert (tmp_path / "demo" / result["figures"][0]).stat().st_size > 1000
    # the verdicts come from the stored runs' numbers
    gap = result["claims"][1]
    finals = [read_json(tmp_path / r / "history.json")[-1]["test_acc"] for r in result["runs"]]
    assert gap["per_seed"] == pytest.approx([finals[0] - finals[1], finals[5] - finals[6]])  # SB - LB per seed
    # reproduce reuses the runs and writes the index
    assert main(["reproduce", "--preset", "smoke", "--only", "demo", "--out", str(tmp_path), "--quiet"]) == 0
    assert read_json(tmp_path / "demo" / "result.json")["trained_now"] == 0
    index = (tmp_path / "index.html").read_text()
    assert "DEMO-gap" in index and "demo/index.html" in index
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "demo-accuracy.png" in page and json.loads((tmp_path / "demo" / "result.json").read_text())


def test_process_executor_gives_the_same_numbers(tmp_path):
    from conftest import tiny_spec
    from genlab.executors import run_plan
    from genlab.store import Store

    specs = [tiny_spec(seed=s) for s in range(2)]
    local, pool = Store(tmp_path / "local"), Store(tmp_path / "pool")
    run_plan(specs, local, "local")
    run_plan(specs, pool, "process", workers=2)
    for s in specs:
        assert (
            read_json(local.run_dir(s) / "history.json")[-1]["train_loss"]
            == read_json(pool.run_dir(s) / "history.json")[-1]["train_loss"]
        )

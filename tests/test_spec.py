"""Spec validation, overrides and the run hash."""

from __future__ import annotations

import json

import pytest

from genlab.errors import GenlabError
from genlab.spec import RunSpec, TrainSpec, from_dict, load_spec


def test_hash_is_stable_and_covers_every_part():
    base = RunSpec()
    assert base.run_id == RunSpec().run_id and len(base.run_id) == 12
    variants = [
        base.replace(seed=1),
        base.replace(**{"train.lr": 0.05}),
        base.replace(**{"data.name": "mnist1d"}),
        base.replace(**{"model.widths": [10]}),
    ]
    assert len({base.run_id, *(v.run_id for v in variants)}) == 5
    # int vs float lr is the same spec
    assert base.replace(**{"train.lr": 1}).run_id == base.replace(**{"train.lr": 1.0}).run_id


def test_spec_file_and_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "data: {name: blobs, n_classes: 3}\nmodel: {name: mlp, width: 8}\ntrain: {epochs: 2}\nseed: 4\n"
    )
    spec = load_spec(path, ["train.lr=0.01", "model.depth=1", "train.nesterov=true", "train.clip=null"])
    assert spec.data == {"name": "blobs", "n_classes": 3} and spec.model == {"name": "mlp", "width": 8, "depth": 1}
    assert spec.train.lr == 0.01 and spec.train.epochs == 2 and spec.train.nesterov is True and spec.seed == 4
    jpath = tmp_path / "s.json"
    jpath.write_text(json.dumps(spec.to_dict()))
    assert load_spec(jpath).run_id == spec.run_id


@pytest.mark.parametrize(
    ("sets", "field"),
    [
        (["train.lr=-1"], "train.lr"),
        (["train.lr=abc"], "train.lr"),
        (["train.optimizer=adamw"], "train.optimizer"),
        (["train.lrr=1"], "train.lrr"),
        (["train.batch_size=2.5"], "train.batch_size"),
        (["train.epochs=0"], "train.epochs"),
        (["train.schedule=linear"], "train.schedule"),
        (["train.switch_batch_epoch=3"], "train.switch_batch_epoch"),
        (["train.target_train_acc=2"], "train.target_train_acc"),
        (["data.name=foo"], "data.name"),
        (["model.name=foo"], "model.name"),
        (["model.widht=3"], "model.widht"),
        (["seed=-1"], "seed"),
        (["bogus=1"], "bogus"),
        (["train.lr"], "--set"),
    ],
)
def test_bad_values_name_the_field_in_one_line(sets, field):
    with pytest.raises(GenlabError) as err:
        load_spec(None, sets)
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg


def test_missing_or_broken_spec_file(tmp_path):
    with pytest.raises(GenlabError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(GenlabError, match="not valid YAML"):
        load_spec(bad)


def test_trainspec_roundtrip():
    t = TrainSpec(optimizer="adam", lr=1e-3, switch_optimizer_epoch=2, switch_optimizer="sgd")
    spec = RunSpec(train=t)
    assert from_dict(spec.to_dict()).train == t

"""Spec validation, overrides and the run hash."""

from __future__ import annotations

import json

import pytest

from genlab.errors import GenlabError
from genlab.spec import RunSpec, TrainSpec, from_dict, load_spec, parse_value


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


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("1E-3", 1e-3), (".5", 0.5), ("1_000", 1000), ("2.5e+2", 250.0), ("-3", -3), ("abc", "abc")],
)
def test_numbers_a_person_types_parse(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)
    assert parse_value(f"[{text}, 1]") == [value, 1]


def test_the_readme_tour_values_reach_the_spec(tmp_path):
    assert load_spec(None, ["train.lr=1e-3", "train.epochs=1e3"]).train == TrainSpec(lr=1e-3, epochs=1000)
    path = tmp_path / "spec.yaml"
    path.write_text("train: {lr: 1e-3, batch_size: 1_024}\n")
    assert load_spec(path).train == TrainSpec(lr=1e-3, batch_size=1024)


@pytest.mark.parametrize("bad", ["train.lr=.inf", "train.lr=inf", "train.epochs=1.5", "train.epochs=2.5e-1"])
def test_infinite_and_fractional_values_are_refused_in_one_line(bad):
    with pytest.raises(GenlabError) as err:
        load_spec(None, [bad])
    assert "\n" not in str(err.value) and str(err.value).startswith(bad.split("=")[0])


def test_every_set_override_in_the_readme_parses():
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    commands = [c for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for c in block.splitlines()]
    sets = [re.findall(r"--set (\S+)", c) for c in commands if c.startswith("genlab train")]
    assert sets and all(sets)
    for overrides in sets:
        load_spec(None, overrides)  # raises a GenlabError if the README's own example does not parse

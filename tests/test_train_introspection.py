"""The weight-history and jump options of the training loop (`train.snapshot_dtype`, `train.jump*`) and the
introspection math: float16 history, each jump arm's documented displacement, resume with jumps."""

from __future__ import annotations

import pytest
import torch
from test_train import MemoryCheckpointer, same_state

from conftest import tiny_spec
from genlab.errors import GenlabError
from genlab.introspect import (
    N_PREDICTOR,
    extrapolate,
    fit_predictor,
    history_steps,
    predict,
    predictor,
    training_set,
)
from genlab.spec import RunSpec, TrainSpec, from_dict
from genlab.train import train

JUMPS = (30, 50)


def _net(seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    return [float(v) for v in torch.cat([p.detach().reshape(-1) for p in predictor().parameters()])]


def _flat(state: dict) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in state.values()])


def test_history_in_float16_matches_float32_and_is_half_the_size():
    a = train(tiny_spec(snapshot_every=5, epochs=2))
    b = train(tiny_spec(snapshot_every=5, epochs=2, snapshot_dtype="float16"))
    assert b.snapshots.dtype == torch.float16 and b.snapshots.shape == a.snapshots.shape
    assert b.snapshots.shape[1] == sum(v.numel() for v in a.final_state.values())
    assert same_state(a.final_state, b.final_state)  # the history does not change the run
    assert torch.allclose(b.snapshots.float(), a.snapshots, atol=2e-3, rtol=1e-3)
    assert b.snapshots.element_size() * 2 == a.snapshots.element_size()


def test_spec_options_are_validated_and_late_defaults_keep_run_ids():
    assert RunSpec().run_id == RunSpec(train=TrainSpec(snapshot_dtype="float32", jump="none")).run_id
    spec = tiny_spec(jump="introspection", jump_steps=[30, 50], jump_net=_net())
    assert from_dict(spec.to_dict()) == spec and spec.train.jump_steps == (30, 50)
    assert spec.run_id != tiny_spec(jump="introspection", jump_steps=[30, 50], jump_net=_net(1)).run_id
    for bad, field in (
        ({"jump": "magic", "jump_steps": [30]}, "train.jump"),
        ({"jump": "linear"}, "train.jump_steps"),
        ({"jump": "linear", "jump_steps": [50, 30]}, "train.jump_steps"),
        ({"jump": "noise", "jump_steps": [30]}, "train.jump_net"),
        ({"snapshot_dtype": "int8"}, "train.snapshot_dtype"),
    ):
        with pytest.raises(GenlabError, match=field):
            TrainSpec(**bad)


def test_introspection_math():
    assert history_steps(50) == (0, 20, 35, 50) and history_steps(45) == (0, 18, 32, 45)
    h = torch.tensor([[0.0, 0.4, 0.7, 1.0], [1.0, 1.4 * 1.4 - 0.4, 0.0, 0.0]])
    lin = extrapolate(h[:1], (0, 20, 35, 50), 100, "linear")
    assert float(lin[0]) == pytest.approx(2.0)
    quad = extrapolate(torch.tensor([[0.0, 0.16, 0.49, 1.0]]), (0, 20, 35, 50), 100, "quadratic")
    assert float(quad[0]) == pytest.approx(4.0)
    net = _net()
    # scale and shift invariance of the standardized predictor
    assert torch.allclose(predict(net, 3 * h + 2), 3 * predict(net, h) + 2, atol=1e-5)
    snaps = torch.cumsum(torch.randn(41, 7) * 0.1, 0)
    x, y = training_set(snaps, list(range(0, 41)), [10, 20], torch.arange(7))
    assert x.shape == (14, 4) and torch.equal(y[:7], snaps[20]) and torch.equal(x[:7, 1], snaps[4])
    flat = fit_predictor(x, y, seed=0, epochs=2, batch=4)
    assert len(flat) == N_PREDICTOR and flat == fit_predictor(x, y, seed=0, epochs=2, batch=4)


@pytest.mark.parametrize("kind", ["introspection", "linear", "noise", "introspection+noise"])
def test_each_jump_arm_moves_the_weights_as_documented(kind):
    net = _net()
    jumped = train(tiny_spec(epochs=4, max_steps=30, jump=kind, jump_steps=[30], jump_net=net, snapshot_every=1))
    plain = train(tiny_spec(epochs=4, max_steps=30, snapshot_every=1))
    h = plain.snapshots[list(history_steps(30))].T
    w_t, w_new = h[:, 3], _flat(jumped.final_state)
    d_intro = predict(net, h) - w_t
    sizes = [v.numel() for v in plain.final_state.values()]
    (record,) = jumped.history[-1]["jumps"]
    assert record["step"] == 30 and set(record) >= {"test_loss_before", "test_loss_after", "test_acc_after"}
    assert torch.equal(jumped.snapshots[:30], plain.snapshots[:30])  # the same run until the jump
    if kind == "introspection":
        assert torch.allclose(w_new, w_t + d_intro, atol=1e-6)
    elif kind == "linear":
        assert torch.allclose(w_new, extrapolate(h, (0, 12, 21, 30), 60, "linear").float(), atol=1e-5)
    else:
        d = w_new - w_t - (d_intro if kind == "introspection+noise" else 0)
        for block_d, block_i in zip(d.split(sizes), d_intro.split(sizes), strict=True):
            assert float(block_d.norm()) == pytest.approx(float(block_i.norm()), rel=1e-4)
        assert abs(float(torch.nn.functional.cosine_similarity(d, d_intro, 0))) < 0.5


@pytest.mark.parametrize("crash_after", [1, 3])
def test_resume_after_interrupt_with_jumps_gives_identical_results(crash_after):
    spec = tiny_spec(epochs=8, jump="introspection+noise", jump_steps=[12, 30, 50], jump_net=_net(),
                     snapshot_every=4, snapshot_dtype="float16")  # fmt: skip
    full = train(spec)
    ck = MemoryCheckpointer(crash_after=crash_after)
    with pytest.raises(KeyboardInterrupt):
        train(spec, checkpointer=ck)
    torch.manual_seed(999)
    resumed = train(spec, checkpointer=ck)
    assert same_state(full.final_state, resumed.final_state) and torch.equal(full.snapshots, resumed.snapshots)
    assert [r.get("jumps") for r in full.history] == [r.get("jumps") for r in resumed.history]
    assert sum(len(r.get("jumps", [])) for r in full.history) == 3


def test_store_keeps_the_float16_history_and_the_jump_records(tmp_path):
    from genlab.store import Store

    spec = tiny_spec(epochs=3, jump="linear", jump_steps=[12], snapshot_every=4, snapshot_dtype="float16")
    run = Store(tmp_path).get_or_train(spec)
    loaded = Store(tmp_path).load(spec.run_id)
    assert loaded.snapshots.dtype == torch.float16 and torch.equal(loaded.snapshots, run.snapshots)
    assert loaded.snapshot_steps == list(range(0, run.steps + 1, 4))
    assert [r.get("jumps") for r in loaded.history] == [r.get("jumps") for r in run.history]

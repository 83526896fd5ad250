"""The training loop: learning, determinism, regimes, divergence, resume."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_spec
from genlab.train import (
    Callback,
    add_gradient_noise,
    batch_loss,
    learning_rate,
    load_data,
    phase,
    shift_augment,
    train,
)


class MemoryCheckpointer:
    """Keeps the loop's state in memory; can crash after a given number of saves."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.state, self.saves, self.crash_after = None, 0, crash_after

    def load(self):
        return self.state

    def save(self, state):
        self.state = state
        self.saves += 1
        if self.crash_after is not None and self.saves >= self.crash_after:
            self.crash_after = None
            raise KeyboardInterrupt


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_decreases_and_history_is_complete(spec):
    run = train(spec)
    assert run.status == "finished" and run.stop_reason == "epochs" and len(run.history) == 4
    assert run.history[-1]["train_loss"] < 0.5 * run.history[0]["batch_loss"]
    assert run.history[-1]["train_acc"] > 0.9
    for key in (
        "epoch",
        "step",
        "lr",
        "batch_size",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "seconds",
    ):
        assert key in run.history[0]
    assert run.steps == 4 * math.ceil(240 / 32) == run.history[-1]["step"]
    assert not same_state(run.init_state, run.final_state)


def test_same_spec_same_bits_and_same_x0_across_regimes():
    a, b = train(tiny_spec()), train(tiny_spec())
    assert same_state(a.final_state, b.final_state) and a.history[-1]["test_loss"] == b.history[-1]["test_loss"]
    other = train(tiny_spec(batch_size=120))
    assert same_state(a.init_state, other.init_state)  # same seed -> same x0
    assert not same_state(a.final_state, other.final_state)
    assert not same_state(a.init_state, train(tiny_spec(seed=1)).init_state)


def test_divergence_is_recorded_not_raised():
    run = train(tiny_spec(lr=1e6, momentum=0.0, epochs=5))
    assert run.status == "diverged" and run.diverged_step is not None and run.diverged_step <= run.steps + 1
    assert run.stop_reason == "diverged" and len(run.history) <= 5


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_resume_after_interrupt_gives_identical_parameters(crash_after):
    spec = tiny_spec(optimizer="adam", lr=0.01, epochs=4, noise_eta=0.01, augment="none", snapshot_every=5)
    full = train(spec)
    ck = MemoryCheckpointer(crash_after=crash_after)
    with pytest.raises(KeyboardInterrupt):
        train(spec, checkpointer=ck)
    # a fresh process would start with other global RNG state
    torch.manual_seed(999)
    resumed = train(spec, checkpointer=ck)
    assert same_state(full.final_state, resumed.final_state)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert resumed.snapshot_steps == full.snapshot_steps and torch.equal(resumed.snapshots, full.snapshots)


def test_warm_start_switches_batch_size_and_optimizer_switch():
    spec = tiny_spec(epochs=4, switch_batch_epoch=2, switch_batch_size=120)
    run = train(spec)
    assert [r["batch_size"] for r in run.history] == [32, 32, 120, 120]
    assert run.steps == 2 * 8 + 2 * 2
    spec = tiny_spec(epochs=3, switch_optimizer_epoch=1, switch_optimizer="adam", switch_lr=0.001)
    run = train(spec)
    assert [r["optimizer"] for r in run.history] == ["sgd", "adam", "adam"]
    assert [r["lr"] for r in run.history] == [0.1, 0.001, 0.001]
    # the switch changes the trajectory only from the switch epoch on
    plain = train(tiny_spec(epochs=3))
    assert run.history[0]["train_loss"] == plain.history[0]["train_loss"]
    assert run.history[1]["train_loss"] != plain.history[1]["train_loss"]


def test_schedules():
    t = tiny_spec(schedule="step", lr_step=2, lr_gamma=0.5, epochs=6).train
    assert [learning_rate(t, e) for e in range(5)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    t = tiny_spec(schedule="exponential", lr_gamma=0.95).train
    assert learning_rate(t, 3) == pytest.approx(0.1 * 0.95**3)
    t = tiny_spec(schedule="cosine", epochs=4).train
    assert [round(learning_rate(t, e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    assert phase(tiny_spec().train, 3) == (32, "sgd")


def test_gradient_noise_in_the_loop_and_its_annealed_variance():
    seen = []

    def record(step, model):
        seen.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())

    spec = tiny_spec(optimizer="sgd", lr=1.0, momentum=0.0, noise_eta=0.3, noise_gamma=0.55, epochs=1)
    spec = spec.replace(**{"model.init": "zero", "model.widths": [200]})
    run = train(spec, callbacks=[Callback(1, record)])
    assert run.steps == 8 and len(seen) == 8
    # at a zero MLP every gradient but the last bias is zero: the first update is pure noise, sigma_0^2 = eta
    first = seen[0][: 200 * 8 + 200]
    assert abs(float(first.std()) - math.sqrt(0.3)) < 0.05 * math.sqrt(0.3)
    # the schedule itself, on zero gradients at later steps
    for t in (0, 10, 1000):
        p = torch.zeros(20000, requires_grad=True)
        p.grad = torch.zeros(20000)
        sigma = add_gradient_noise([p], t, 0.3, 0.55, torch.Generator().manual_seed(t))
        assert sigma == pytest.approx(math.sqrt(0.3 / (1 + t) ** 0.55))
        assert abs(float(p.grad.std()) - sigma) < 0.03 * sigma


def test_clipping_bounds_the_update():
    seen = []
    spec = tiny_spec(optimizer="sgd", lr=1.0, momentum=0.0, clip=1e-3, epochs=1)
    train(
        spec,
        callbacks=[
            Callback(
                1, lambda s, m: seen.append(torch.cat([p.detach().flatten() for p in m.parameters()]).clone())
            )
        ],
    )
    assert float((seen[1] - seen[0]).norm()) <= 1e-3 * (1 + 1e-5)


def test_stops_at_target_accuracy_and_max_steps():
    run = train(tiny_spec(epochs=50, target_train_acc=0.9))
    assert run.stop_reason == "target_train_acc" and run.history[-1]["train_acc"] >= 0.9 and len(run.history) < 50
    run = train(tiny_spec(epochs=50, max_steps=11))
    assert run.steps == 11 and run.stop_reason == "max_steps" and len(run.history) == 2


def test_gradient_descent_stops_at_target_grad_norm():
    spec = tiny_spec(batch_size=240, momentum=0.0, lr=0.5, epochs=3000, target_grad_norm=0.05)
    run = train(spec)
    assert run.stop_reason == "target_grad_norm" and run.steps == len(run.history) < 3000
    assert run.history[-1]["grad_norm"] < 0.05 <= run.history[-2]["grad_norm"]
    # full batch: the recorded norm is the gradient norm of the training loss at the point before the step
    from genlab.store import model_from_state

    before = train(tiny_spec(batch_size=240, momentum=0.0, lr=0.5, epochs=run.steps - 1))
    data = load_data(spec)
    model = model_from_state(spec, before.final_state, data).train()
    loss = batch_loss(model(data.x_train), data.y_train, "cross_entropy")
    loss.backward()
    norm = float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())))
    assert norm == pytest.approx(run.history[-1]["grad_norm"], rel=1e-5)


def test_shift_augment_moves_content_and_is_seeded():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3, 3] = 1.0
    g = torch.Generator().manual_seed(0)
    out = shift_augment(x, g)
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(4))
    pos = [divmod(int(o.flatten().argmax()), 8) for o in out]
    assert all(abs(r - 3) <= 2 and abs(c - 3) <= 2 for r, c in pos) and len(set(pos)) > 1
    assert torch.equal(shift_augment(x, torch.Generator().manual_seed(0)), out)


def test_mse_loss_and_snapshots():
    run = train(tiny_spec(loss="mse", snapshot_every=4, epochs=2))
    assert run.status == "finished" and run.history[-1]["train_acc"] > 0.6
    assert run.snapshot_steps == [0, 4, 8, 12, 16] and run.snapshots.shape[0] == 5
    flat_final = torch.cat([v.flatten() for k, v in run.final_state.items()])
    assert torch.equal(run.snapshots[-1], flat_final)


def test_eval_every_thins_the_history_but_not_the_training():
    full, thin = train(tiny_spec(epochs=7)), train(tiny_spec(epochs=7, eval_every=3))
    assert [r["epoch"] for r in thin.history] == [3, 6, 7]
    assert same_state(full.final_state, thin.final_state)
    assert thin.history[-1]["train_loss"] == full.history[-1]["train_loss"]


def test_stops_at_target_train_loss_with_the_full_training_loss():
    run = train(tiny_spec(epochs=200, target_train_loss=0.05))
    assert run.stop_reason == "target_train_loss" and run.final["train_loss"] <= 0.05
    assert all(row["train_loss"] > 0.05 for row in run.history[:-1])  # it stopped at the first epoch below


def test_order_seed_keeps_x0_and_changes_the_batch_order():
    a, b = train(tiny_spec(epochs=2)), train(tiny_spec(epochs=2, order_seed=7))
    for k in a.init_state:
        assert torch.equal(a.init_state[k], b.init_state[k])
    key = next(iter(a.final_state))
    assert not torch.equal(a.final_state[key], b.final_state[key])
    assert torch.equal(train(tiny_spec(epochs=2, order_seed=0)).final_state[key], a.final_state[key])


def test_polish_reaches_a_critical_point_in_float64():
    spec = tiny_spec(epochs=3, polish="lbfgs", polish_steps=500, target_grad_norm=1e-6, weight_decay=1e-2)
    spec = spec.replace(**{"model.activation": "tanh"})
    run = train(spec)
    last = run.history[-1]
    assert last["polished"] and last["polish_iterations"] >= 1 and last["grad_norm"] <= 1e-6
    assert last["stop_reason"] == "polished" and run.history[-2]["grad_norm"] > 1e-3

"""The one training loop. Every regime the studies need is an option of `TrainSpec`, not a subclass.

`train(spec)` builds the data and the model from the spec (the model's init x0 comes from `spec.seed`, so runs
that differ only in training options start from the same point), then runs epochs of index-sliced mini-batches:
batch size and optimizer switches at given epochs, per-epoch lr schedules, clipping, annealed gradient noise
after clipping, callbacks every N steps that receive the model (for probes along the trajectory or for jumps
that edit the weights), flat parameter snapshots every `snapshot_every` steps (in `snapshot_dtype`), and weight
jumps at `jump_steps` (Sinha et al.; the math is in `genlab.introspect`; the weights at the steps a jump needs
are kept in memory and in the checkpoint, so a resumed run jumps the same way). After every epoch it
evaluates the full train and test sets in eval mode and records a history row.

A NaN/inf loss stops the run with status `diverged` and the step; nothing is raised. With a `checkpointer`
(see `Checkpointer`; the store provides one) the loop saves its whole state every `checkpoint_every` epochs and
resumes from the last save: a resumed run gives bit-identical parameters on CPU. This module knows nothing of
the store, the studies or the terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.data import Dataset, load
from genlab.introspect import history_steps, jump_displacement
from genlab.models import build
from genlab.spec import RunSpec, TrainSpec


@dataclass(frozen=True)
class Callback:
    """Call `fn(step, model)` after every `every`-th optimizer step (step counts from 1)."""

    every: int
    fn: Callable[[int, nn.Module], None]


class Checkpointer(Protocol):
    """Where the loop keeps its resumable state (a dict of tensors and plain data)."""

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


@dataclass
class Run:
    """What a finished (or diverged) training run leaves: states, history and trajectory snapshots."""

    spec: RunSpec
    status: str
    history: list[dict]
    init_state: dict[str, Tensor]
    final_state: dict[str, Tensor]
    steps: int
    seconds: float
    stop_reason: str
    diverged_step: int | None = None
    snapshot_steps: list[int] = field(default_factory=list)
    snapshots: Tensor | None = None

    @property
    def final(self) -> dict:
        """The last history row (final train/test loss and accuracy)."""
        return self.history[-1] if self.history else {}


def load_data(spec: RunSpec, device: str = "cpu") -> Dataset:
    """The dataset a spec names."""
    opts = {k: v for k, v in spec.data.items() if k != "name"}
    return load(spec.data["name"], device=device, **opts)


def build_model(spec: RunSpec, data: Dataset) -> nn.Module:
    """The model a spec names, initialized from `spec.seed` (the same x0 for every run with that seed)."""
    opts = {k: v for k, v in spec.model.items() if k != "name"}
    torch.manual_seed(spec.seed)
    return build(spec.model["name"], data.input_shape, data.n_classes, **opts)


def make_optimizer(name: str, params: Sequence[Tensor], t: TrainSpec, lr: float) -> torch.optim.Optimizer:
    """An optimizer by name with the spec's momentum and weight decay."""
    wd = t.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=t.momentum, weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)


def learning_rate(t: TrainSpec, epoch: int) -> float:
    """The lr for 0-based `epoch` (after an optimizer switch, the schedule applies to `switch_lr`)."""
    base = t.lr
    if t.switch_optimizer_epoch is not None and epoch >= t.switch_optimizer_epoch and t.switch_lr is not None:
        base = t.switch_lr
    if t.schedule == "step":
        return base * t.lr_gamma ** (epoch // t.lr_step)
    if t.schedule == "exponential":
        return base * t.lr_gamma**epoch
    if t.schedule == "cosine":
        return base * (1 + math.cos(math.pi * epoch / t.epochs)) / 2
    return base


def phase(t: TrainSpec, epoch: int) -> tuple[int, str]:
    """(batch size, optimizer name) in force during 0-based `epoch`."""
    bs = t.batch_size
    if t.switch_batch_epoch is not None and epoch >= t.switch_batch_epoch:
        bs = t.switch_batch_size
    opt = t.optimizer
    if t.switch_optimizer_epoch is not None and epoch >= t.switch_optimizer_epoch:
        opt = t.switch_optimizer
    return bs, opt


def batch_loss(logits: Tensor, y: Tensor, kind: str) -> Tensor:
    """Mean loss of a batch: cross-entropy, or squared error against one-hot targets."""
    if kind == "mse":
        return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype), reduction="sum") / len(y)
    return F.cross_entropy(logits, y)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, loss: str = "cross_entropy", chunk: int = 4096) -> tuple:
    """(mean loss, accuracy) over all of (x, y) in eval mode; the model's train/eval flag is restored."""
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    try:
        for i in range(0, len(y), chunk):
            logits = model(x[i : i + chunk])
            total += float(batch_loss(logits, y[i : i + chunk], loss)) * len(logits)
            correct += int((logits.argmax(1) == y[i : i + chunk]).sum())
    finally:
        model.train(was_training)
    return total / len(y), correct / len(y)


def shift_augment(x: Tensor, generator: torch.Generator, max_shift: int = 2) -> Tensor:
    """Shift each example by a random integer offset in [-max_shift, max_shift] per spatial axis, zero fill."""
    spatial = x.dim() - 2
    if spatial < 1:
        return x
    pad = [max_shift] * (2 * spatial)
    padded = F.pad(x, pad)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), spatial), generator=generator)
    out = torch.empty_like(x)
    size = x.shape[2:]
    for combo in torch.unique(offsets, dim=0):
        mask = (offsets == combo).all(1).to(x.device)
        index = tuple(slice(int(o), int(o) + s) for o, s in zip(combo, size, strict=True))
        out[mask] = padded[(mask, slice(None), *index)]
    return out


def add_gradient_noise(
    params: Iterable[Tensor], step: int, eta: float, gamma: float, generator: torch.Generator
) -> float:
    """Add N(0, sigma_t^2) to every gradient, sigma_t^2 = eta / (1 + t)^gamma at 0-based step t.

    Returns sigma_t."""
    sigma = math.sqrt(eta / (1 + step) ** gamma)
    for p in params:
        if p.grad is not None:
            p.grad.add_(torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype), alpha=sigma)
    return sigma


def polish(model: nn.Module, data: Dataset, t: TrainSpec) -> dict:
    """Full-batch L-BFGS in float64 (strong Wolfe) on the training objective — the mean loss plus
    `t.weight_decay` / 2 * ||theta||^2, the L2 term the optimizers add to the gradient — until its gradient norm
    is <= t.target_grad_norm (default 1e-5) or `t.polish_steps` iterations; the model is left in its dtype with
    the polished parameters. Returns a history row (train/test loss and accuracy without the L2 term, the
    float64 gradient norm of the objective, iterations)."""
    target = t.target_grad_norm or 1e-5
    dtype = next(model.parameters()).dtype
    model.to(torch.float64).eval()
    n_params = sum(p.numel() for p in model.parameters())
    x, y = data.x_train.to(torch.float64), data.y_train
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1,
        max_iter=t.polish_steps,
        max_eval=4 * t.polish_steps,
        tolerance_grad=target / math.sqrt(n_params),  # L-BFGS tests the max-norm; this bounds the 2-norm
        tolerance_change=0,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = batch_loss(model(x), y, t.loss)
        if t.weight_decay:
            loss = loss + 0.5 * t.weight_decay * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    iterations = opt.state[opt.param_groups[0]["params"][0]].get("n_iter", 0)
    closure()
    grad_norm = _grad_norm(model)
    tr_loss, tr_acc = evaluate(model, x, y, t.loss)
    te_loss, te_acc = evaluate(model, data.x_test.to(torch.float64), data.y_test, t.loss)
    model.to(dtype)
    for p in model.parameters():
        p.grad = None
    return {
        "train_loss": tr_loss,
        "train_acc": tr_acc,
        "test_loss": te_loss,
        "test_acc": te_acc,
        "grad_norm": grad_norm,
        "polished": True,
        "polish_iterations": int(iterations),
        "stop_reason": "polished" if grad_norm <= target else "polish_steps",
    }


def _grad_norm(model: nn.Module) -> float:
    return float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in model.parameters() if p.grad is not None)))


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().clone()


def apply_jump(model: nn.Module, t: TrainSpec, step: int, memory: dict[int, Tensor], order: int) -> dict:
    """Move the model by the jump `t.jump` at `step` (weights at the history steps from `memory`); returns the
    jump's record: its step and displacement norm."""
    params = list(model.parameters())
    steps = history_steps(step)
    w_t = _flat(model)
    h = torch.stack([memory[s] for s in steps[:3]] + [w_t], 1)
    gen = torch.Generator().manual_seed(order * 7919 + 3 + 104_729 * step)
    d = jump_displacement(t.jump, h, steps, [p.numel() for p in params], t.jump_net, gen)
    new = (w_t + d).to(params[0].device)
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(new[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    return {"step": step, "norm": float(d.norm())}


def _clone_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train(
    spec: RunSpec,
    data: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    checkpointer: Checkpointer | None = None,
    progress: Callable[[dict], None] | None = None,
    device: str = "cpu",
) -> Run:
    """Train the run `spec` describes and return its `Run` (see the module docstring)."""
    t = spec.train
    data = (data or load_data(spec)).to(device)
    model = build_model(spec, data).to(device)
    order = spec.seed if t.order_seed is None else t.order_seed
    order_rng = torch.Generator().manual_seed(order * 7919 + 1)
    noise_rng = torch.Generator(device).manual_seed(order * 7919 + 2)
    init_state = _clone_state(model)
    epoch = step = 0
    history: list[dict] = []
    snapshot_steps: list[int] = []
    snapshots: list[Tensor] = []
    snap_dtype = getattr(torch, t.snapshot_dtype)
    jump_at = set(t.jump_steps) if t.jump != "none" else set()
    remember = {s for j in jump_at for s in history_steps(j)[:3]}
    memory: dict[int, Tensor] = {}  # flat weights at the steps the jumps need
    jump_log: list[dict] = []  # jumps since the last history row
    seconds = 0.0
    opt_name = phase(t, 0)[1]
    opt = make_optimizer(opt_name, list(model.parameters()), t, learning_rate(t, 0))
    saved = checkpointer.load() if checkpointer else None
    if saved is not None:
        epoch, step, seconds, history = saved["epoch"], saved["step"], saved["seconds"], saved["history"]
        init_state = saved["init"]
        model.load_state_dict(saved["model"])
        opt_name = saved["opt_name"]
        opt = make_optimizer(opt_name, list(model.parameters()), t, learning_rate(t, epoch))
        opt.load_state_dict(saved["optimizer"])
        order_rng.set_state(saved["rng_order"])
        noise_rng.set_state(saved["rng_noise"])
        torch.set_rng_state(saved["rng_torch"])
        snapshot_steps = list(saved["snapshot_steps"])
        snapshots = list(saved["snapshots"])
        memory, jump_log = dict(saved.get("jump_memory", {})), list(saved.get("jump_log", []))
    if t.snapshot_every and step == 0 and not snapshots:
        snapshot_steps, snapshots = [0], [_flat(model).to(snap_dtype)]
    if step == 0 and 0 in remember:
        memory[0] = _flat(model)
    status, stop_reason, diverged_step = "finished", "epochs", None
    n = data.n_train
    while epoch < t.epochs:
        start = time.perf_counter()
        bs, name = phase(t, epoch)
        lr = learning_rate(t, epoch)
        if name != opt_name:
            opt_name, opt = name, make_optimizer(name, list(model.parameters()), t, lr)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=order_rng)
        running, seen, grad_norm = 0.0, 0, math.nan
        for i in range(0, n, bs):
            idx = perm[i : i + bs].to(device)
            x, y = data.x_train[idx], data.y_train[idx]
            if t.augment == "shift":
                x = shift_augment(x, order_rng, t.shift_pixels)
            loss = batch_loss(model(x), y, t.loss)
            if not torch.isfinite(loss):
                status, stop_reason, diverged_step = "diverged", "diverged", step + 1
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if i + bs >= n or (t.max_steps is not None and step + 1 >= t.max_steps):
                grad_norm = _grad_norm(model)
            if t.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            if t.noise_eta > 0:
                add_gradient_noise(model.parameters(), step, t.noise_eta, t.noise_gamma, noise_rng)
            opt.step()
            step += 1
            running, seen = running + loss.item() * len(y), seen + len(y)
            if step in jump_at:
                before = evaluate(model, data.x_test, data.y_test, t.loss)
                record = apply_jump(model, t, step, memory, order)
                after = evaluate(model, data.x_test, data.y_test, t.loss)
                jump_log.append({**record, "test_loss_before": before[0], "test_acc_before": before[1]})
                jump_log[-1] |= {"test_loss_after": after[0], "test_acc_after": after[1]}
            if step in remember:
                memory[step] = _flat(model)
            for cb in callbacks:
                if step % cb.every == 0:
                    cb.fn(step, model)
            if t.snapshot_every and step % t.snapshot_every == 0:
                snapshot_steps.append(step)
                snapshots.append(_flat(model).to(snap_dtype))
            if t.max_steps is not None and step >= t.max_steps:
                stop_reason = "max_steps"
                break
        epoch += 1
        if status == "finished" and t.target_grad_norm is not None and grad_norm < t.target_grad_norm:
            stop_reason = "target_grad_norm"
        seconds += time.perf_counter() - start
        last = stop_reason != "epochs" or epoch == t.epochs
        targets = t.target_train_acc is not None or t.target_train_loss is not None
        if epoch % t.eval_every == 0 or last or targets:
            start = time.perf_counter()
            tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, t.loss)
            te_loss, te_acc = evaluate(model, data.x_test, data.y_test, t.loss)
            if status == "finished" and not math.isfinite(tr_loss):
                status, stop_reason, diverged_step = "diverged", "diverged", step
            if status == "finished" and t.target_train_acc is not None and tr_acc >= t.target_train_acc:
                stop_reason = "target_train_acc"
            if status == "finished" and t.target_train_loss is not None and tr_loss <= t.target_train_loss:
                stop_reason = "target_train_loss"
            seconds += time.perf_counter() - start
            row = {
                "epoch": epoch,
                "step": step,
                "lr": lr,
                "batch_size": bs,
                "optimizer": opt_name,
                "batch_loss": running / seen if seen else float("nan"),
                "train_loss": tr_loss,
                "train_acc": tr_acc,
                "test_loss": te_loss,
                "test_acc": te_acc,
                "grad_norm": grad_norm,
                "seconds": seconds,
                "stop_reason": stop_reason if stop_reason != "epochs" else None,
            }
            if jump_log:
                row["jumps"], jump_log = jump_log, []
            history.append(row)
            if progress:
                progress(row)
        if stop_reason != "epochs":
            break
        if checkpointer and (epoch % t.checkpoint_every == 0 or epoch == t.epochs):
            checkpointer.save(
                {
                    "epoch": epoch,
                    "step": step,
                    "seconds": seconds,
                    "history": history,
                    "init": init_state,
                    "model": _clone_state(model),
                    "opt_name": opt_name,
                    "optimizer": opt.state_dict(),
                    "rng_order": order_rng.get_state(),
                    "rng_noise": noise_rng.get_state().cpu(),
                    "rng_torch": torch.get_rng_state(),
                    "snapshot_steps": snapshot_steps,
                    "snapshots": snapshots,
                    **({"jump_memory": memory, "jump_log": jump_log} if jump_at else {}),
                }
            )
    if status == "finished" and t.polish == "lbfgs" and not (history and history[-1].get("polished")):
        row = polish(model, data, t)
        history.append({**history[-1], **row} if history else row)
        if not math.isfinite(row["train_loss"]):
            status, stop_reason, diverged_step = "diverged", "diverged", step
    return Run(
        spec=spec,
        status=status,
        history=history,
        init_state=init_state,
        final_state=_clone_state(model),
        steps=step,
        seconds=seconds,
        stop_reason=stop_reason,
        diverged_step=diverged_step,
        snapshot_steps=snapshot_steps,
        snapshots=torch.stack(snapshots) if snapshots else None,
    )

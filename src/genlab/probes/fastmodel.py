"""Private model copies for `fasteval.PointEvaluator`: parameters bound to one flat vector, exact rewrites.

Every rewrite here leaves the computed function unchanged (the evaluator also checks each copy against the
plain model with `functional_call` before using it):
  * `Bound`: a model copy whose parameters are views into one flat vector, set per point by `Combination`;
    optionally with 4-d (Conv2d) weights kept in channels_last memory format (copied from the flat vector per
    point; a few thousand numbers). On CPU, oneDNN then runs convolutions and max-pooling in NHWC, measured
    4-11x faster for small-channel layers than NCHW (torch 2.13, 2 threads).
  * `rewrite`: in every nn.Sequential, a monotone non-decreasing activation directly followed by a max-pool is
    swapped with it (relu(max(a, b)) == max(relu(a), relu(b)) exactly), so the activation runs on the pooled,
    smaller tensor; and an activation that directly follows a layer which always returns a new tensor (Linear,
    Conv, BatchNorm, pooling) runs in place. A fresh multi-megabyte output per activation costs page faults:
    measured 80-83% of the matmul peak for a plain MLP forward vs 93-95% with in-place activations.
  * `Injected`: stands in for the first layer when its output is precomputed (see fasteval).
  * `ce_and_accuracy`: cross-entropy and accuracy from one max over the logits, for the plain
    `cross_entropy` loss (mean reduction, no weights, no smoothing); equal to it up to float rounding.

Must not train, must not touch the Objective's model or the user's, and must not import genlab.train / store /
studies / cli / runner.
"""

from __future__ import annotations

import copy
import itertools
import math

import torch
from torch import nn

_FIRST_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MONOTONE = (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.Hardtanh)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_POOLS = (*_MAX_POOLS, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_FRESH = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm, *_POOLS)
_IN_PLACE = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid)


class Injected(nn.Module):
    """Stands in for the first layer: returns the precomputed output set for the current point."""

    def __init__(self):
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, *args, **kwargs):
        return self.value


def frozen_copy(net: nn.Module, rewritten: bool) -> nn.Module:
    """A deep copy without autograd; with `rewritten`, the exact rewrites of `rewrite` applied."""
    out = copy.deepcopy(net)
    for p in out.parameters():
        p.requires_grad_(False)
    if rewritten:
        rewrite(out)
    return out


def rewrite(net: nn.Module) -> dict[str, int]:
    """Inside every nn.Sequential of `net`: swap (monotone activation, max-pool) pairs, then make activations
    that follow a fresh-output layer in-place. Returns the counts {"swapped": ..., "in_place": ...}."""
    swapped = in_place = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        i = 0
        while i < len(keys) - 1:
            act, pool = seq._modules[keys[i]], seq._modules[keys[i + 1]]
            if isinstance(act, _MONOTONE) and isinstance(pool, _MAX_POOLS) and not pool.return_indices:
                seq._modules[keys[i]], seq._modules[keys[i + 1]] = pool, act
                swapped += 1
                i += 2
            else:
                i += 1
        for prev, act in itertools.pairwise(seq._modules.values()):
            if isinstance(act, _IN_PLACE) and isinstance(prev, _FRESH) and not act.inplace:
                act.inplace = True
                in_place += 1
    return {"swapped": swapped, "in_place": in_place}


def find_first_layer(net: nn.Module, x: torch.Tensor) -> str | None:
    """Name of the first parametrized module called, if it is a plain Linear/Conv called once, else None."""
    order: list[str] = []
    hooks = []
    for name, m in net.named_modules():
        if any(True for _ in m.parameters(recurse=False)):
            hooks.append(m.register_forward_pre_hook(lambda mod, inp, name=name: order.append(name)))
    try:
        with torch.no_grad():
            net(x[:2])
    finally:
        for h in hooks:
            h.remove()
    if not order or order[0] == "" or order.count(order[0]) != 1:
        return None
    module = net.get_submodule(order[0])
    return order[0] if type(module) in _FIRST_TYPES else None


def has_conv2d(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


class Bound:
    """A model copy whose trainable parameters (those in `mask`) are set from one flat vector per point.

    flat = base + c @ dirs (`Combination`); parameters are views into `flat`, except 4-d weights when
    `channels_last`, which are channels_last tensors refreshed from `flat` after every `set_point`.
    """

    def __init__(
        self, net: nn.Module, space, mask: torch.Tensor, base, dirs, buf_views: dict[str, torch.Tensor],
        channels_last: bool = False,
    ):  # fmt: skip
        self.net = net
        self.channels_last = channels_last
        self.base = base[mask].contiguous() if base is not None else None
        self.dirs = dirs[:, mask].contiguous()  # [k, n_mask]; rows contiguous
        self.flat = torch.zeros(int(mask.sum()), dtype=dirs.dtype, device=dirs.device)
        params = dict(net.named_parameters())
        self.slices: dict[str, tuple[slice, tuple[int, ...]]] = {}
        self.nhwc: list[tuple[torch.Tensor, torch.Tensor]] = []  # (target, view of flat)
        offset = 0
        for info in space.params:
            if info.numel and bool(mask[info.slice.start]):
                sl = slice(offset, offset + info.numel)
                view = self.flat[sl].view(info.shape)
                if channels_last and len(info.shape) == 4:
                    target = torch.empty_like(view).contiguous(memory_format=torch.channels_last)
                    self.nhwc.append((target, view))
                    params[info.name].data = target
                else:
                    params[info.name].data = view
                self.slices[info.name] = (sl, info.shape)
                offset = sl.stop
        for name, view in buf_views.items():
            mod_name, _, leaf = name.rpartition(".")
            net.get_submodule(mod_name)._buffers[leaf] = view
        self.injected: Injected | None = None
        self.combine = Combination(self.base, self.dirs)

    def set_point(self, c: list[float]) -> None:
        self.combine(c, out=self.flat)
        for target, view in self.nhwc:
            target.copy_(view)


class Combination:
    """out = base + sum_k c_k rows_k for coordinates c given as Python floats (no device sync per point).

    base + c_0 rows_0 + ... + c_{k-2} rows_{k-2} is kept while those leading coordinates repeat (grids run row
    by row), so a point usually costs one axpy, torch.add(partial, rows_{k-1}, alpha=c_{k-1}): two reads and a
    write of the vector instead of the five passes of an addmm with a broadcast base. Corners stay exact: with
    base None and c a unit vector, out equals that row bit for bit.
    """

    def __init__(self, base: torch.Tensor | None, rows: torch.Tensor):
        self.base, self.rows = base, rows
        self._lead: tuple[float, ...] | None = None
        self._partial: torch.Tensor | None = None

    def __call__(self, c: list[float], out: torch.Tensor | None = None) -> torch.Tensor:
        lead = tuple(c[:-1])
        if lead != self._lead:
            partial = self.base.clone() if self.base is not None else torch.zeros_like(self.rows[0])
            for cj, row in zip(lead, self.rows, strict=False):
                if cj != 0.0:  # basin scans move along one direction at a time
                    partial.add_(row, alpha=cj)
            self._partial, self._lead = partial, lead
        return torch.add(self._partial, self.rows[-1], alpha=c[-1], out=out)


def is_plain_cross_entropy(loss_fn) -> bool:
    """True for F.cross_entropy and nn.CrossEntropyLoss() with default arguments (mean, no weights/smoothing)."""
    if loss_fn is nn.functional.cross_entropy:
        return True
    return (
        isinstance(loss_fn, nn.CrossEntropyLoss)
        and loss_fn.weight is None
        and loss_fn.reduction == "mean"
        and loss_fn.label_smoothing == 0.0
    )


def plain_labels(y: torch.Tensor) -> bool:
    """Integer class labels that no ignore_index (-100) can touch."""
    return y.dim() == 1 and not y.is_floating_point() and (len(y) == 0 or int(y.min()) >= 0)


def ce_and_accuracy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, accuracy) of logits [..., N, C] for labels [N], from one max over the classes.

    Returns two tensors of shape [...] (one value per leading index, e.g. per point of a stacked block).
    """
    top, idx = out.max(dim=-1)
    picked = out.gather(-1, y.expand(out.shape[:-1])[..., None])[..., 0]
    lse = (out - top[..., None]).exp_().sum(dim=-1).log_()
    loss = (lse - (picked - top)).mean(dim=-1)
    return loss, (idx == y).to(out.dtype).mean(dim=-1)


def accuracy(out: torch.Tensor, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
        return (out.argmax(-1) == y).to(like.dtype).mean()
    return torch.full_like(like, math.nan)

"""Weight evolution (Sinha et al., "Introspection", ICLR 2017): the 4-40-1 weight predictor, extrapolation
baselines, and the jumps the training loop applies (`train.jump`, `train.jump_steps`, `train.jump_net`).

Every weight is treated alone. Its history at a jump step t is h = (w_0, w_a, w_b, w_t), a = round(0.4 t),
b = round(0.7 t) (`history_steps`); the target is w_2t. The predictor sees the history standardized per weight,
x = (h - mean(h)) / sd(h), and predicts y = (w_2t - mean(h)) / sd(h); w_2t_hat = mean(h) + sd(h) * I(x). This
scaling (the paper's is not known) makes I invariant to the scale and offset of a weight, so one trained on an
MLP applies unchanged to a CNN. I is Linear(4, 40) - ReLU - Linear(40, 1), 241 parameters, passed flat (W1 row
major, b1, W2, b2) in the run spec so that a run with jumps is fully determined by its spec. Baselines: the
least-squares line / parabola through the four points (at their actual steps), evaluated at 2t.

Jump arms at each jump step t (d = the introspection displacement I-prediction - w_t):
`introspection`: w += d; `linear` / `quadratic`: w = the extrapolation; `noise`: w += g, g Gaussian with, per
parameter tensor ("layer"), the same norm as d on that tensor; `introspection+noise`: w += d + g. The noise is
drawn from a generator seeded by (order seed, step), so a resumed run draws the same noise.
This module knows nothing of the store, the studies or the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

JUMPS = ("none", "introspection", "linear", "quadratic", "noise", "introspection+noise")
NEEDS_NET = ("introspection", "noise", "introspection+noise")
HIDDEN = 40
N_PREDICTOR = 4 * HIDDEN + HIDDEN + HIDDEN + 1  # 241
MONOTONE = 0.9  # path efficiency at or above which a weight's trajectory counts as monotone
TENTHS = (0, 4, 7, 10)  # the history's steps, in tenths of t


def history_steps(t: int) -> tuple[int, int, int, int]:
    """The steps whose weights predict step 2t: (0, round(0.4 t), round(0.7 t), t), rounding halves up."""
    return tuple((k * t + 5) // 10 for k in TENTHS)  # type: ignore[return-value]


def predictor() -> nn.Sequential:
    """A fresh 4-40-1 introspection network."""
    return nn.Sequential(nn.Linear(4, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))


def flat_predictor(net: nn.Module) -> list[float]:
    """The predictor's parameters as the flat list a spec carries (`train.jump_net`)."""
    return [float(v) for v in torch.cat([p.detach().reshape(-1) for p in net.parameters()])]


def _unpack(flat: Sequence[float]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    v = torch.as_tensor(list(flat), dtype=torch.float32)
    w1, b1 = v[: 4 * HIDDEN].view(HIDDEN, 4), v[4 * HIDDEN : 5 * HIDDEN]
    w2, b2 = v[5 * HIDDEN : 6 * HIDDEN], v[6 * HIDDEN]
    return w1, b1, w2, b2


def standardize(h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x, mean, sd) of histories h [n, 4]: x = (h - mean) / sd per row (0 where a weight never moved)."""
    h = h.to(torch.float32)
    mu = h.mean(1)
    sd = h.std(1, unbiased=False)
    safe = torch.where(sd > 0, sd, torch.ones_like(sd))
    return (h - mu[:, None]) / safe[:, None], mu, sd


def predict(flat: Sequence[float], h: Tensor, chunk: int = 1 << 20) -> Tensor:
    """The introspection prediction of w_2t for histories h [n, 4] (float32)."""
    w1, b1, w2, b2 = _unpack(flat)
    x, mu, sd = standardize(h)
    out = torch.empty(len(h))
    for i in range(0, len(h), chunk):
        out[i : i + chunk] = torch.relu(x[i : i + chunk] @ w1.T + b1) @ w2 + b2
    return mu + sd * out


def extrapolation_weights(steps: Sequence[int], target: int, degree: int) -> np.ndarray:
    """c with sum_j c_j w_j = the least-squares polynomial of `degree` through (steps, w), at `target`."""
    s = np.asarray(steps, dtype=float) / max(steps[-1], 1)
    v = np.vander(s, degree + 1)
    at = np.vander(np.array([target / max(steps[-1], 1)]), degree + 1)
    return (at @ np.linalg.pinv(v))[0]


def extrapolate(h: Tensor, steps: Sequence[int], target: int, kind: str) -> Tensor:
    """Linear (`kind="linear"`) or quadratic extrapolation of histories h [n, 4] at `steps` to `target`."""
    c = extrapolation_weights(steps, target, 1 if kind == "linear" else 2)
    return h.to(torch.float64) @ torch.as_tensor(c) if len(h) else torch.zeros(0, dtype=torch.float64)


def jump_displacement(
    kind: str,
    h: Tensor,
    steps: Sequence[int],
    sizes: Sequence[int],
    net: Sequence[float],
    generator: torch.Generator,
) -> Tensor:
    """The displacement a jump of `kind` adds to w_t = h[:, 3] (module docstring); `sizes`: numel per parameter
    tensor, in order (the per-layer blocks of the noise)."""
    w_t = h[:, 3].to(torch.float32)
    if kind in ("linear", "quadratic"):
        return (extrapolate(h, steps, 2 * steps[-1], kind) - h[:, 3].to(torch.float64)).to(torch.float32)
    d = predict(net, h) - w_t
    if kind == "introspection":
        return d
    noise = torch.randn(len(d), generator=generator)
    for block_d, block_g in zip(d.split(list(sizes)), noise.split(list(sizes)), strict=True):
        norm = float(block_g.norm())
        block_g.mul_(float(block_d.norm()) / norm if norm > 0 else 0.0)
    return noise if kind == "noise" else d + noise


def training_set(
    snapshots: Tensor, snapshot_steps: Sequence[int], ts: Sequence[int], weights: Tensor
) -> tuple[Tensor, Tensor]:
    """(h [n, 4], w_2t [n]) for every t in `ts` (t and 2t and the history steps must be snapshot steps) and
    every weight index in `weights`: the predictor's examples."""
    row = {s: i for i, s in enumerate(snapshot_steps)}
    hs, ys = [], []
    for t in ts:
        idx = [row[s] for s in history_steps(t)]
        hs.append(snapshots[idx][:, weights].T.to(torch.float32))
        ys.append(snapshots[row[2 * t], weights].to(torch.float32))
    return torch.cat(hs), torch.cat(ys)


def fit_predictor(
    h: Tensor,
    y: Tensor,
    seed: int,
    epochs: int = 5,
    batch: int = 256,
    lr: float = 1e-3,
    shuffle_targets: bool = False,
) -> list[float]:
    """Train a 4-40-1 predictor (Adam, L1 loss on the standardized target) and return its flat parameters.
    `shuffle_targets`: pair each history with another example's target (the control predictor)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = predictor()
    x, mu, sd = standardize(h)
    safe = torch.where(sd > 0, sd, torch.ones_like(sd))
    target = (y.to(torch.float32) - mu) / safe
    if shuffle_targets:
        target = target[torch.randperm(len(target), generator=gen)]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            j = perm[i : i + batch]
            loss = (net(x[j])[:, 0] - target[j]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return flat_predictor(net)


# ---------------------------------------------------------------- measurements
def prediction_errors(h: torch.Tensor, y: torch.Tensor, nets: dict, ts: list[int], n_weights: int) -> dict:
    """Mean absolute error of I, the shuffled-target I, linear, quadratic and no-change predictions of w_2t."""
    lin, quad = [], []
    for i, t in enumerate(ts):  # the extrapolation weights depend on t's rounded history steps
        block = h[i * n_weights : (i + 1) * n_weights]
        lin.append(extrapolate(block, history_steps(t), 2 * t, "linear"))
        quad.append(extrapolate(block, history_steps(t), 2 * t, "quadratic"))
    preds = {
        "introspection": predict(nets["net"], h),
        "shuffled": predict(nets["shuffled"], h),
        "linear": torch.cat(lin).float(),
        "quadratic": torch.cat(quad).float(),
        "no change": h[:, 3].float(),
    }
    return {k: float((v - y).abs().mean()) for k, v in preds.items()}


def steps_to_target(curve: list[list[float]], target: float) -> tuple[float, bool]:
    """(first step at which the test accuracy reaches `target`, linearly interpolated between evaluations;
    censored) — a run that never reaches it gives (its last step, True): a lower bound."""
    prev = None
    for step, acc, _ in curve:
        if acc >= target:
            if prev is None or prev[1] >= target:
                return float(step), False
            frac = (target - prev[1]) / (acc - prev[1])
            return float(prev[0] + frac * (step - prev[0])), False
        prev = (step, acc)
    return float(curve[-1][0]) if curve else float("nan"), True


def monotone_share(inc: torch.Tensor) -> float:
    """Share of weights (columns of increments [steps, n]) with |net change| >= MONOTONE * total variation;
    weights that never moved are left out."""
    total = inc.abs().sum(0)
    moved = total > 0
    if not bool(moved.any()):
        return float("nan")
    return float((inc.sum(0).abs()[moved] >= MONOTONE * total[moved]).double().mean())


def layer_stats(snapshots: Tensor, layers: Sequence[tuple[str, int]], seed: int) -> dict:
    """Per layer (name, size; in the order of the flat history [steps, n_params]): |w_T - w_0| quantiles and a
    histogram of log10 |w_T - w_0|, the mean second moment of w_s - w_0 relative to mean w_0^2, the monotone
    share, and the monotone share of a random walk with the same step sizes and random signs."""
    snaps = snapshots.double()
    inc = snaps[1:] - snaps[:-1]
    gen = torch.Generator().manual_seed(seed)
    rows, offset = [], 0
    for name, size in layers:
        sl = slice(offset, offset + size)
        offset += size
        w0, disp = snaps[0, sl], (snaps[-1, sl] - snaps[0, sl]).abs()
        row = {"layer": name, "n": size, "median_w0": float(w0.abs().median())}
        row |= {"median_disp": float(disp.median()), "p90_disp": float(disp.quantile(0.9))}
        row["second_moment"] = float(((snaps[:, sl] - w0) ** 2).mean() / (w0**2).mean().clamp_min(1e-30))
        row["monotone"] = monotone_share(inc[:, sl])
        signs = torch.randint(0, 2, inc[:, sl].shape, generator=gen).double() * 2 - 1
        row["walk"] = monotone_share(signs * inc[:, sl].abs())
        row["hist"] = np.histogram(np.log10(disp.clamp_min(1e-12).numpy()), bins=30, range=(-5, 1))[0].tolist()
        rows.append(row)
    return {"layers": rows, "snapshots": len(snapshots)}

"""Study `random-labels`: Zhang et al., "Understanding deep learning requires rethinking generalization" (2017).

Randomization tests: the same networks and hyperparameters are trained on true data and on data whose labels
or inputs were randomized (drawn once per seed and held fixed; test labels stay clean). Claims (STUDIES.md),
each judged by the shared rule of `genlab.studies.verdict` on a continuous per-seed quantity with a negative
control:
- RL-fit: every model reaches 100% train accuracy on every transform. Per run a *fit headroom*:
  log10(budget steps / steps to fit) for a run that fits, log10(final train accuracy) (< 0) for one that does
  not; per seed the minimum over models x transforms. Control: an MLP with 4 hidden units on random labels
  (too small to memorize them) under the same budget.
- RL-test: test accuracy falls to chance as the label-corruption level p -> 1. Per seed the fall of test
  accuracy per unit p (minus the least-squares slope of accuracy on p, mean over models; per-example test
  contributions carried, so the interval includes test-set noise), and two parts: |acc(p=1) - chance| < 5
  points (each side judged on its own, so both stay linear in the per-example correctness). Control: the same
  slope against a shuffled ordering of the p levels.
- RL-time: time (steps) to fit grows with p by a small constant factor: log10(steps to fit at p=1 / at p=0),
  mean over models, judged for direction (> 0) and magnitude (a ratio between 1 and 10). Control (A/A): the
  p=0 run against the same p=0 spec with another batch order (`order_seed`, same x0).
- RL-reg: explicit regularizers change test accuracy by a few points only. Regularized and unregularized runs
  train for the SAME fixed number of steps (no early stop) from the same x0. Per seed 5 points + the change in
  test accuracy from weight decay (mean over models; the lower side of |change| < 5 points), with parts for the
  upper side and for augmentation, and a part checking that the weight decay acts: log10(||w|| without /
  ||w|| with) > 0. Control: a very strong weight decay, which must cost more than 5 points.
- RL-pixels: shuffled pixels hurt the CNN but not the permutation-invariant MLPs: (CNN test-accuracy drop from
  shuffling) - (mean MLP drop). Control (A/A): the same with the p=0 run under another batch order in place of
  the shuffled-pixel run.

Protocol: SGD with momentum 0.9, batch 128, no regularization (except in RL-reg), one set of hyperparameters
for every transform, exponential lr decay per epoch, training until 100% train accuracy (checked after every
epoch, so steps to fit have epoch resolution) or the preset's epoch budget; runs compared across transforms are
thus compared at matched (100%) train accuracy, RL-reg's at matched steps. Undefined values (a run that did not
fit has no time to fit) are left out and counted, never replaced.

Deviations from the paper, and why:
- `quick` uses mnist1d (500 train / 2,000 test signals, generated locally) instead of CIFAR-10: on CPU, on data
  where a CNN clearly beats an MLP on clean inputs (on 8x8 digits it does not, and RL-pixels has nothing to
  show), with a test set large enough that a few points of accuracy are measurable.
- The CNN is the paper's small AlexNet (conv 5, max-pool 3/2, LRN; 1-D here) with 16/32 channels and one dense
  layer of 128: it memorizes random labels within the budget (a CNN ending in global average pooling does not).
- To fit the CPU budget (~150 s on 2 cores), `quick` uses p in {0, 0.5, 1} (paper: 0, 0.2, ..., 1; a slope
  needs three levels) and two models, MLP 1x512 and the CNN (MLP 3x512 costs as much as the CNN here; the
  `paper` preset keeps it).
- lr 0.1 in `quick` (paper: 0.01), decayed by 0.99 per epoch (paper: 0.95 per CIFAR epoch of ~390 steps; a quick
  epoch is 4 steps, and with 0.95 the lr would vanish before random labels are memorized).
- RL-reg: weight decay 5e-3 in `quick` (paper: 5e-4 over ~10^5 steps; 5e-4 does not move the weights in a
  few hundred steps), shifts of up to 3 samples of 40 as the analogue of random crops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.spec import RunSpec, TrainSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.verdict import (
    Control,
    Magnitude,
    Measure,
    Verdict,
    accuracy,
    combine,
    judge,
    log_ratio,
    part,
    shuffled,
    slope,
)
from genlab.train import Run

PAPER_P_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
INPUT_TRANSFORMS = ("shuffled-pixels", "random-pixels", "gaussian")
AA = "p=0/order"  # the A/A control: p=0 from the same x0 with another batch order
ORDER_OFFSET = 1000  # order_seed of the A/A run: seed + ORDER_OFFSET
FIXED = "fixed"  # the unregularized run of RL-reg (fixed steps, no early stop)
STRONG_WD = "strong-wd"  # RL-reg's control regularizer
MARGIN = 0.05  # "a few points": 5 points of test accuracy
CONTROL_MODEL = "mlp-1x4"  # RL-fit's control: too small to memorize random labels
_TINY = {"name": "mlp", "widths": [4]}

_SMALL_MODELS = {
    "mlp-1x512": {"name": "mlp", "widths": [512]},
    "cnn": {"name": "small-alexnet", "channels": [16, 32], "dense": [128]},
}
_PAPER_MODELS = {
    "mlp-1x512": {"name": "mlp", "widths": [512]},
    "mlp-3x512": {"name": "mlp", "widths": [512, 512, 512]},
    "cnn": {"name": "small-alexnet"},
}
CNN = "cnn"


def regularizer_options(reg: str, params: dict) -> dict:
    """Train options of an RL-reg regularizer: "wd", "aug", "wd+aug" or the control STRONG_WD."""
    if reg == STRONG_WD:
        return {"weight_decay": params["control_weight_decay"]}
    opts: dict = {}
    for r in reg.split("+"):
        if r == "wd":
            opts["weight_decay"] = params["weight_decay"]
        elif r == "aug":
            opts["augment"] = "shift"
        else:
            raise GenlabError(f"random-labels: unknown regularizer {r!r} (wd, aug)")
    return opts


def fit_conditions(params: dict) -> list[str]:
    """The conditions RL-fit asks every model to fit: each label-corruption level (`params["p_levels"]`; preset
    params or a result) and each input transform."""
    return [f"p={p:g}" for p in params["p_levels"]] + list(INPUT_TRANSFORMS)


def conditions(params: dict) -> list[str]:
    """Every condition trained per model and seed (fit runs, the A/A run, the fixed-step RL-reg runs)."""
    reg = [FIXED] + [f"{FIXED}+{r}" for r in (*params["regularizers"], STRONG_WD)]
    return [*fit_conditions(params), AA, *reg]


def condition_options(cond: str, params: dict, seed: int) -> tuple[dict, dict]:
    """(data options, train options) of a condition for a seed."""
    if cond.startswith(FIXED):
        reg = cond.partition("+")[2]
        opts = {"epochs": params["reg_epochs"], "target_train_acc": None, "eval_every": params["reg_epochs"]}
        return {}, {**opts, **(regularizer_options(reg, params) if reg else {})}
    if cond == AA:
        return {}, {"order_seed": seed + ORDER_OFFSET}
    if cond.startswith("p="):
        p = float(cond[2:])
        return ({"transform": "labels", "corrupt_p": p} if p else {}), {}
    if cond in INPUT_TRANSFORMS:
        return {"transform": cond}, {}
    raise GenlabError(f"random-labels: unknown condition {cond!r}")


def weight_norm(run: Run) -> float:
    """Euclidean norm of all the final model's weights (every floating-point tensor of its state)."""
    return math.sqrt(
        sum(float((v.double() ** 2).sum()) for v in run.final_state.values() if v.is_floating_point())
    )


# ---------------------------------------------------------------- the claims' quantities (one seed each)
def fit_headroom(row: dict) -> float:
    """log10(budget steps / steps to fit) for a run that reached 100% train accuracy (>= 0), log10(final train
    accuracy) (< 0) for one that did not; NaN for a run with train accuracy 0."""
    if row["fitted"]:
        return math.log10(row["budget_steps"] / row["steps"])
    return math.log10(row["train_acc"]) if row["train_acc"] > 0 else math.nan


def rl_fit(cells: dict, models: Sequence[str], conds: Sequence[str], seed: int) -> float:
    """RL-fit: the smallest fit headroom over models x conditions."""
    return min(fit_headroom(cells[m][c][seed]) for m in models for c in conds)


def acc(row: dict) -> Measure:
    """A run's test accuracy with its per-example 0/1 correctness (a digit string, `verdict.pack`)."""
    return accuracy(row["correct"])


def mean_of(measures: Sequence[Measure]) -> Measure:
    return combine([1 / len(measures)] * len(measures), measures)


def affine(m: Measure, scale: float, offset: float) -> Measure:
    """scale * m + offset, per-example contributions transformed alike."""
    ex = None if m.examples is None else scale * np.asarray(m.examples, float) + offset
    return Measure(scale * m.value + offset, ex)


def control_levels(p_levels: Sequence[float], seed: int, j: int) -> list[float]:
    """RL-test's control: the p levels in a fixed shuffled order (seed and model j)."""
    return shuffled(list(p_levels), 97 * seed + j)


def rl_test_fall(
    cells: dict, models: Sequence[str], p_levels: Sequence[float], seed: int, shuffle: bool = False
) -> Measure:
    """RL-test: minus the slope of test accuracy against p (mean over models); `shuffle`: against the p levels
    in a shuffled order (the control)."""
    falls = []
    for j, m in enumerate(models):
        x = control_levels(p_levels, seed, j) if shuffle else list(p_levels)
        falls.append(affine(slope(x, [acc(cells[m][f"p={p:g}"][seed]) for p in p_levels]), -1.0, 0.0))
    return mean_of(falls)


def chance_gap(cells: dict, models: Sequence[str], chance: float, seed: int) -> Measure:
    """Test accuracy at p=1 minus chance (mean over models)."""
    return affine(mean_of([acc(cells[m]["p=1"][seed]) for m in models]), 1.0, -chance)


def steps_to_fit(row: dict) -> float:
    """Steps to 100% train accuracy; NaN (undefined) for a run that did not fit."""
    return float(row["steps"]) if row["fitted"] else math.nan


def rl_time(cells: dict, models: Sequence[str], seed: int, other: str = "p=1", reference: str = "p=0") -> float:
    """RL-time: log10(steps to fit `other` / steps to fit `reference`), mean over models; NaN when a run of
    either did not fit (`other=AA`: the A/A control)."""
    ratios = [
        log_ratio(steps_to_fit(cells[m][other][seed]), steps_to_fit(cells[m][reference][seed])) for m in models
    ]
    return float(np.mean(ratios)) if all(math.isfinite(r) for r in ratios) else math.nan


def reg_change(cells: dict, models: Sequence[str], seed: int, reg: str) -> Measure:
    """Test accuracy with regularizer `reg` minus without, both after the same fixed steps (mean over models)."""
    return mean_of(
        [combine([1.0, -1.0], [acc(cells[m][f"{FIXED}+{reg}"][seed]), acc(cells[m][FIXED][seed])]) for m in models]
    )


def weight_shrink(cells: dict, models: Sequence[str], seed: int, reg: str = "wd") -> float:
    """log10(||w|| without / ||w|| with regularizer `reg`) at equal steps, mean over models."""
    return float(
        np.mean(
            [
                log_ratio(cells[m][FIXED][seed]["weight_norm"], cells[m][f"{FIXED}+{reg}"][seed]["weight_norm"])
                for m in models
            ]
        )
    )


def pixel_gap(
    cells: dict, mlps: Sequence[str], seed: int, other: str = "shuffled-pixels", cnn: str = CNN
) -> Measure:
    """RL-pixels: (CNN test-accuracy drop from p=0 to `other`) - (mean MLP drop); `other=AA`: the control."""
    names = [cnn, *mlps]
    weights = [1.0] + [-1.0 / len(mlps)] * len(mlps)
    drops = [combine([1.0, -1.0], [acc(cells[m]["p=0"][seed]), acc(cells[m][other][seed])]) for m in names]
    return combine(weights, drops)


class RandomLabelsStudy(Study):
    name = "random-labels"
    title = "Networks fit random labels (Zhang et al.)"
    paper = (
        "Zhang, Bengio, Hardt, Recht, Vinyals: Understanding deep learning requires rethinking generalization "
        "(ICLR 2017)"
    )
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "mnist1d, 60 train / 200 test, 2 seeds, MLPs and a tiny AlexNet, 4-epoch budget (seconds; for tests)",
            {
                "data": {"name": "mnist1d", "n_train": 60, "n_test": 200},
                "models": {
                    "mlp-1x32": {"name": "mlp", "widths": [32]},
                    "mlp-3x16": {"name": "mlp", "widths": [16, 16, 16]},
                    "cnn": {"name": "small-alexnet", "channels": [4, 4], "dense": [16]},
                },
                "p_levels": [0.0, 0.5, 1.0],
                "epochs": 4,
                "reg_epochs": 2,
                "regularizers": ["wd", "aug"],
                "weight_decay": 5e-3,
                "control_weight_decay": 0.2,
                "lr": 0.05,
                "decay": 0.99,
                "shift": 3,
            },
        ),
        "quick": Preset(
            5,
            "mnist1d 500 train / 2,000 test, 5 seeds, MLP 1x512 and a small AlexNet (16-32 channels), "
            "p in {0, .5, 1}, 150-epoch budget; RL-reg at 50 epochs (200 steps)",
            {
                "data": {"name": "mnist1d", "n_train": 500, "n_test": 2000},
                "models": _SMALL_MODELS,
                "p_levels": [0.0, 0.5, 1.0],
                "epochs": 150,
                "reg_epochs": 50,
                "regularizers": ["wd", "aug"],
                "weight_decay": 5e-3,
                "control_weight_decay": 0.2,
                "lr": 0.1,
                "decay": 0.99,
                "shift": 3,
            },
        ),
        "paper": Preset(
            3,
            "CIFAR-10 (--data-root), MLPs and the small AlexNet, lr 0.01, decay 0.95/epoch (GPU)",
            {
                "data": {"name": "cifar10"},
                "models": _PAPER_MODELS,
                "p_levels": list(PAPER_P_LEVELS),
                "epochs": 300,
                "reg_epochs": 100,
                "regularizers": ["wd", "aug", "wd+aug"],
                "weight_decay": 5e-4,
                "control_weight_decay": 0.1,
                "lr": 0.01,
                "decay": 0.95,
                "shift": 2,
            },
        ),
    }

    def models(self, ctx: Context) -> dict[str, dict]:
        return ctx.params["models"]

    def spec(self, ctx: Context, model: str, cond: str, seed: int) -> RunSpec:
        data_opts, train_opts = condition_options(cond, ctx.params, seed)
        data = {**ctx.params["data"], **data_opts}
        if data_opts:
            data["transform_seed"] = seed
        if data["name"] in ("cifar10", "cifar100", "mnist", "fashion-mnist"):
            if not ctx.data_root:
                raise GenlabError(
                    f"--data-root: the {ctx.preset} preset reads {data['name']} from a folder you name"
                )
            data["root"] = ctx.data_root
        train = TrainSpec(
            **{
                "optimizer": "sgd",
                "lr": ctx.params["lr"],
                "momentum": 0.9,
                "batch_size": 128,
                "epochs": ctx.params["epochs"],
                "schedule": "exponential",
                "lr_gamma": ctx.params["decay"],
                "target_train_acc": 1.0,
                "shift_pixels": ctx.params["shift"],
                **train_opts,
            }
        )
        arch = _TINY if model == CONTROL_MODEL else self.models(ctx)[model]
        return RunSpec(data=data, model=arch, train=train, seed=seed)

    def cells_plan(self, ctx: Context) -> list[tuple[str, str]]:
        """(model, condition) of every run per seed: the grid, and RL-fit's control."""
        return [(m, c) for m in self.models(ctx) for c in conditions(ctx.params)] + [(CONTROL_MODEL, "p=1")]

    def plan(self, ctx: Context) -> list[RunSpec]:
        # slowest first (the CNN, then the deep MLP) so that the executor's workers finish together
        order = sorted(self.cells_plan(ctx), key=lambda mc: mc[0] != CNN)
        return [self.spec(ctx, m, c, seed) for seed in range(ctx.seeds) for m, c in order]

    def analyze(self, ctx: Context) -> dict:
        cells: dict = {}
        accuracy_conds = {f"p={p:g}" for p in ctx.params["p_levels"]} | {"shuffled-pixels", AA}
        for m, cond in self.cells_plan(ctx):
            rows = []
            for seed in range(ctx.seeds):
                run = ctx.run(self.spec(ctx, m, cond, seed))
                first = run.history[0] if run.history else {}
                per_epoch = first.get("step", 0) / max(first.get("epoch", 1), 1)
                row = {
                    "run_id": run.spec.run_id,
                    "status": run.status,
                    "fitted": run.final.get("train_acc", 0.0) >= 1.0,
                    "steps": run.steps,
                    "budget_steps": round(per_epoch * run.spec.train.epochs),
                    "train_acc": run.final.get("train_acc", math.nan),
                    "train_loss": run.final.get("train_loss", math.nan),
                    "test_acc": run.final.get("test_acc", math.nan),
                    "weight_norm": weight_norm(run),
                    "curve_steps": [r["step"] for r in run.history],
                    "curve_train_loss": [r["train_loss"] for r in run.history],
                }
                if cond in accuracy_conds or cond.startswith(FIXED):
                    row["correct"] = ctx.correct(run)
                rows.append(row)
            cells.setdefault(m, {})[cond] = rows
        n_classes = 10  # mnist1d, digits and CIFAR-10
        models = list(self.models(ctx))
        return {
            "models": models,
            "mlps": [m for m in models if m != CNN],
            "seeds": ctx.seeds,
            "chance": 1 / n_classes,
            "p_levels": list(ctx.params["p_levels"]),
            "regularizers": list(ctx.params["regularizers"]),
            "cells": cells,
            "settings": {
                k: ctx.params[k]
                for k in ("epochs", "reg_epochs", "weight_decay", "control_weight_decay", "shift", "lr", "decay")
            },
        }

    def claims(self, result: dict) -> list[Verdict]:
        cells, seeds, chance = result["cells"], range(result["seeds"]), result["chance"]
        models, mlps, p_levels = result["models"], result["mlps"], result["p_levels"]
        regs, settings = result["regularizers"], result["settings"]
        fit_conds = fit_conditions(result)
        unfit = [
            f"{m}/{c}/seed{s}" for m in models for c in fit_conds for s in seeds if not cells[m][c][s]["fitted"]
        ]
        unfit_note = f"did not reach 100% within the budget: {', '.join(unfit)}" if unfit else "every run fitted"
        tiny = cells[CONTROL_MODEL]["p=1"]

        def curve(m: str, key: str) -> str:
            return " ".join(f"{np.mean([cells[m][f'p={p:g}'][s][key] for s in seeds]):.3g}" for p in p_levels)

        gap = [chance_gap(cells, models, chance, s) for s in seeds]
        wd_change = [reg_change(cells, models, s, "wd") for s in seeds]
        reg_parts = [
            part(f"wd: {MARGIN:g} - change", [affine(c, -1.0, MARGIN) for c in wd_change], "5 points - change")
        ]
        for r in regs:
            if r != "wd":
                ch = [reg_change(cells, models, s, r) for s in seeds]
                reg_parts.append(
                    part(f"{r}: {MARGIN:g} + change", [affine(c, 1.0, MARGIN) for c in ch], "lower side")
                )
                reg_parts.append(
                    part(f"{r}: {MARGIN:g} - change", [affine(c, -1.0, MARGIN) for c in ch], "upper side")
                )
        shrink = [weight_shrink(cells, models, s) for s in seeds]
        reg_parts.append(part("wd shrinks the weights: log10(||w|| none / ||w|| wd)", shrink, "log10 norm ratio"))
        strong = [affine(reg_change(cells, models, s, STRONG_WD), 1.0, MARGIN) for s in seeds]

        def norms(cond: str) -> str:
            return ", ".join(
                f"{m} {np.mean([cells[m][cond][s]['weight_norm'] for s in seeds]):.3g}" for m in models
            )

        def changes(reg: str) -> str:
            return " ".join(f"{reg_change(cells, models, s, reg).value:+.3f}" for s in seeds)

        def drop(m: str, s: int, other: str = "shuffled-pixels") -> float:
            return cells[m]["p=0"][s]["test_acc"] - cells[m][other][s]["test_acc"]

        time_ratio = [rl_time(cells, models, s) for s in seeds]
        return [
            judge(
                "RL-fit",
                "Every model reaches 100% train accuracy on every transform",
                [rl_fit(cells, models, fit_conds, s) for s in seeds],
                quantity="fit headroom, min over models x transforms: log10(budget steps / steps to fit) for a "
                "run that fits, log10(final train accuracy) (< 0) for one that does not",
                control=Control(
                    [fit_headroom(tiny[s]) for s in seeds],
                    "fit headroom of an MLP with 4 hidden units on random labels (train acc "
                    + ", ".join(f"{r['train_acc']:.3f}" for r in tiny)
                    + ")",
                ),
                detail=f"{unfit_note}; budget {settings['epochs']} epochs",
                paper="Table 1 (CIFAR-10): every net fits random labels, e.g. MLP 3x512 train 100.0, test 10.48",
            ),
            judge(
                "RL-test",
                "Test accuracy falls to chance as p -> 1",
                [rl_test_fall(cells, models, p_levels, s) for s in seeds],
                quantity="fall of test accuracy per unit p: -(least-squares slope of test acc on p), mean over "
                "models",
                control=Control(
                    [rl_test_fall(cells, models, p_levels, s, shuffle=True) for s in seeds],
                    "the same slope against the p levels in a shuffled order",
                ),
                also=[
                    part("acc(p=1) - chance < 5 points", [affine(g, -1.0, MARGIN) for g in gap], "5 points - gap"),
                    part("acc(p=1) - chance > -5 points", [affine(g, 1.0, MARGIN) for g in gap], "5 points + gap"),
                ],
                paper="Fig. 1c: test error rises steadily with p to ~90% (chance) at p=1",
                detail=f"mean test acc at p = {p_levels}: "
                + "; ".join(f"{m} {curve(m, 'test_acc')}" for m in models)
                + f"; acc(p=1) - chance per seed: {', '.join(f'{g.value:+.3f}' for g in gap)}",
            ),
            judge(
                "RL-time",
                "Time to fit grows with p by a small constant factor",
                time_ratio,
                quantity="log10(steps to fit at p=1 / at p=0), mean over models",
                control=Control(
                    [rl_time(cells, models, s, other=AA) for s in seeds],
                    "A/A: log10(steps to fit at p=0 with another batch order / at p=0)",
                ),
                magnitude=Magnitude(0.0, "a small constant factor (Fig. 1b)", hi=1.0, log10=True),
                detail=f"ratios per seed: {', '.join(f'{10**r:.2f}' for r in time_ratio)}; mean steps to fit at "
                f"p = {p_levels}: " + "; ".join(f"{m} {curve(m, 'steps')}" for m in models) + f"; {unfit_note}",
                paper="Fig. 1b: random labels take a small constant factor longer to fit than true labels",
            ),
            judge(
                "RL-reg",
                "Explicit regularizers change test accuracy by a few points only",
                [affine(c, 1.0, MARGIN) for c in wd_change],
                quantity="5 points + (test acc with weight decay - without), equal steps, mean over models "
                "(the lower side of |change| < 5 points; the other sides and augmentation are parts)",
                control=Control(
                    strong, f"the same with a very strong weight decay ({settings['control_weight_decay']:g})"
                ),
                also=reg_parts,
                detail=f"all runs {settings['reg_epochs']} epochs, no early stop; weight decay "
                f"{settings['weight_decay']:g}, shifts of up to {settings['shift']} pixels; change per seed: "
                + "; ".join(f"{r} {changes(r)}" for r in [*regs, STRONG_WD])
                + f"; mean weight norm without: {norms(FIXED)}; with wd: {norms(FIXED + '+wd')}",
                paper="Table 1: Inception 89.05 (crop+wd) vs 85.75 (none); MLP 1x512 50.39 vs 50.51",
            ),
            judge(
                "RL-pixels",
                "Shuffled pixels hurt the CNN but not the permutation-invariant MLP",
                [pixel_gap(cells, mlps, s) for s in seeds],
                quantity="(CNN test-acc drop from shuffling pixels) - (mean MLP drop)",
                control=Control(
                    [pixel_gap(cells, mlps, s, other=AA) for s in seeds],
                    "A/A: the same with the p=0 run under another batch order in place of shuffled pixels",
                ),
                paper="Sec. 2/Fig. 1a: shuffled pixels are fit by conv nets and test accuracy falls; an MLP is "
                "permutation-invariant by construction (the comparison is the notes' reading)",
                detail="drops per seed: "
                + "; ".join(
                    f"cnn {drop(CNN, s):.3f}, mlp {np.mean([drop(m, s) for m in mlps]):.3f}" for s in seeds
                ),
            ),
        ]

    def tables(self, result: dict) -> list[dict]:
        from genlab.studies.random_labels_figures import tables  # imported here: that module imports this one

        return tables(result)

    def figures(self, result: dict, outdir: Path) -> list[str]:
        from genlab.studies.random_labels_figures import draw_figures

        return draw_figures(result, outdir)

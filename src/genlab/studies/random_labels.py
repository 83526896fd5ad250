"""Study `random-labels`: Zhang et al., "Understanding deep learning requires rethinking generalization" (2017).

Randomization tests: the same networks and hyperparameters are trained on true data and on data whose labels
or inputs were randomized (drawn once per seed and held fixed; test labels stay clean). Claims (STUDIES.md):
- RL-fit: every model reaches 100% train accuracy on every transform.
- RL-test: test accuracy falls to chance as the label-corruption level p -> 1.
- RL-time: the time (steps) to fit grows with p only by a small constant factor.
- RL-reg: explicit regularizers (weight decay, augmentation) change test accuracy by a few points only.
- RL-pixels: shuffled pixels hurt the CNN but not the permutation-invariant MLPs.

Protocol: SGD with momentum 0.9, batch 128, no regularization (except in RL-reg), one set of hyperparameters
for every transform, exponential lr decay per epoch, training until 100% train accuracy (checked after every
epoch, so steps-to-fit has epoch resolution) or the preset's epoch budget. The paper decays the lr by 0.95 per
CIFAR epoch (~390 steps); an epoch of the `quick` preset is 5 steps, so the decay is 0.995 per epoch there —
with 0.95 the lr would vanish long before random labels are memorized. Runs that do not fit within the budget
count with the budget's steps (a lower bound) and are named in the claims' detail.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.errors import GenlabError
from genlab.spec import RunSpec, TrainSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.figures import save_figure
from genlab.studies.verdict import Verdict, judge, spearman

P_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
INPUT_TRANSFORMS = ("shuffled-pixels", "random-pixels", "gaussian")
REGULARIZERS = {
    "wd": {"weight_decay": 5e-4},
    "aug": {"augment": "shift"},
    "wd+aug": {"weight_decay": 5e-4, "augment": "shift"},
}

# Zhang et al. Table 1 (CIFAR-10), as printed in the paper: (model, random crop, weight decay, train, test).
PAPER_TABLE1 = [
    ("Inception", "yes", "yes", 100.0, 89.05),
    ("Inception", "yes", "no", 100.0, 89.31),
    ("Inception", "no", "yes", 100.0, 86.03),
    ("Inception", "no", "no", 100.0, 85.75),
    ("Inception", "random labels", "no", 100.0, 9.78),
    ("Alexnet", "yes", "yes", 99.90, 81.22),
    ("Alexnet", "yes", "no", 99.82, 79.66),
    ("Alexnet", "no", "yes", 100.0, 77.36),
    ("Alexnet", "no", "no", 100.0, 76.07),
    ("Alexnet", "random labels", "no", 99.82, 9.86),
    ("MLP 3x512", "no", "yes", 100.0, 53.35),
    ("MLP 3x512", "no", "no", 100.0, 52.39),
    ("MLP 3x512", "random labels", "no", 100.0, 10.48),
    ("MLP 1x512", "no", "yes", 99.80, 50.39),
    ("MLP 1x512", "no", "no", 100.0, 50.51),
    ("MLP 1x512", "random labels", "no", 99.34, 10.61),
]

_SMALL_MODELS = {
    "mlp-1x512": {"name": "mlp", "widths": [512]},
    "mlp-3x512": {"name": "mlp", "widths": [512, 512, 512]},
    "cnn": {"name": "cnn", "channels": [32, 64], "hidden": 128},
}
_PAPER_MODELS = {
    "mlp-1x512": {"name": "mlp", "widths": [512]},
    "mlp-3x512": {"name": "mlp", "widths": [512, 512, 512]},
    "cnn": {"name": "small-alexnet"},
}
MLPS = ("mlp-1x512", "mlp-3x512")


def conditions() -> list[tuple[str, dict, dict]]:
    """(name, data options, train options) for every cell of the protocol, per model and seed."""
    out = [(f"p={p:g}", {"transform": "labels", "corrupt_p": p} if p else {}, {}) for p in P_LEVELS]
    out += [(t, {"transform": t}, {}) for t in INPUT_TRANSFORMS]
    out += [(f"true+{r}", {}, opts) for r, opts in REGULARIZERS.items()]
    return out


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
            "digits, 60 train examples, 2 seeds, 4-epoch budget (seconds; for tests)",
            {
                "data": {"name": "digits", "train_subset": 60},
                "epochs": 4,
                "lr": 0.05,
                "decay": 0.995,
                "shift": 1,
            },
        ),
        "quick": Preset(
            3,
            "digits, 600 train examples, 3 seeds, MLP 1x512 / 3x512 / small CNN, 400-epoch budget",
            {
                "data": {"name": "digits", "train_subset": 600},
                "epochs": 400,
                "lr": 0.05,
                "decay": 0.995,
                "shift": 1,
            },
        ),
        "paper": Preset(
            3,
            "CIFAR-10 (--data-root), MLPs and the small AlexNet, lr 0.01, decay 0.95/epoch (GPU)",
            {"data": {"name": "cifar10"}, "epochs": 300, "lr": 0.01, "decay": 0.95, "shift": 2},
        ),
    }

    def models(self, ctx: Context) -> dict[str, dict]:
        return _PAPER_MODELS if ctx.preset == "paper" else _SMALL_MODELS

    def spec(self, ctx: Context, model: str, cond: str, seed: int) -> RunSpec:
        data_opts, train_opts = next((d, t) for c, d, t in conditions() if c == cond)
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
            optimizer="sgd",
            lr=ctx.params["lr"],
            momentum=0.9,
            batch_size=128,
            epochs=ctx.params["epochs"],
            schedule="exponential",
            lr_gamma=ctx.params["decay"],
            target_train_acc=1.0,
            shift_pixels=ctx.params["shift"],
            **train_opts,
        )
        return RunSpec(data=data, model=self.models(ctx)[model], train=train, seed=seed)

    def plan(self, ctx: Context) -> list[RunSpec]:
        return [
            self.spec(ctx, m, c, seed)
            for seed in range(ctx.seeds)
            for m in self.models(ctx)
            for c, _, _ in conditions()
        ]

    def analyze(self, ctx: Context) -> dict:
        cells: dict = {}
        for m in self.models(ctx):
            for cond, _, _ in conditions():
                rows = []
                for seed in range(ctx.seeds):
                    run = ctx.run(self.spec(ctx, m, cond, seed))
                    fitted = run.final.get("train_acc", 0.0) >= 1.0
                    rows.append(
                        {
                            "run_id": run.spec.run_id,
                            "status": run.status,
                            "fitted": fitted,
                            "steps_to_fit": run.steps,
                            "train_acc": run.final.get("train_acc", math.nan),
                            "test_acc": run.final.get("test_acc", math.nan),
                            "curve_steps": [r["step"] for r in run.history],
                            "curve_train_loss": [r["train_loss"] for r in run.history],
                        }
                    )
                cells.setdefault(m, {})[cond] = rows
        n_classes = 10  # digits, mnist1d and CIFAR-10
        return {
            "models": list(self.models(ctx)),
            "seeds": ctx.seeds,
            "chance": 1 / n_classes,
            "cells": cells,
            "shift_pixels": ctx.params["shift"],
        }

    def claims(self, result: dict) -> list[Verdict]:
        cells, seeds, chance = result["cells"], range(result["seeds"]), result["chance"]
        models = result["models"]
        fit_conds = [f"p={p:g}" for p in P_LEVELS] + list(INPUT_TRANSFORMS)
        unfit = [
            f"{m}/{c}/seed{s}" for m in models for c in fit_conds for s in seeds if not cells[m][c][s]["fitted"]
        ]
        min_train = [min(cells[m][c][s]["train_acc"] for m in models for c in fit_conds) for s in seeds]

        def acc(m: str, c: str, s: int) -> float:
            return cells[m][c][s]["test_acc"]

        worst_chance_gap = [max(abs(acc(m, "p=1", s) - chance) for m in models) for s in seeds]
        rho = [
            spearman(P_LEVELS * len(models), [acc(m, f"p={p:g}", s) for m in models for p in P_LEVELS])
            for s in seeds
        ]
        p_curve = {m: [float(np.mean([acc(m, f"p={p:g}", s) for s in seeds])) for p in P_LEVELS] for m in models}
        log_ratio = [
            float(
                np.mean(
                    [
                        math.log10(cells[m]["p=1"][s]["steps_to_fit"] / cells[m]["p=0"][s]["steps_to_fit"])
                        for m in models
                    ]
                )
            )
            for s in seeds
        ]
        reg_delta = [
            max(abs(acc(m, f"true+{r}", s) - acc(m, "p=0", s)) for m in models for r in REGULARIZERS)
            for s in seeds
        ]

        def drop(m: str, s: int) -> float:
            return acc(m, "p=0", s) - acc(m, "shuffled-pixels", s)

        pixel_gap = [drop("cnn", s) - float(np.mean([drop(m, s) for m in MLPS])) for s in seeds]
        unfit_note = f"did not reach 100% within the budget: {', '.join(unfit)}" if unfit else "every run fitted"
        return [
            judge(
                "RL-fit",
                "Every model reaches 100% train accuracy on every transform",
                min_train,
                quantity="lowest final train accuracy over models x transforms (label noise p, pixels, gaussian)",
                threshold=0.999,
                detail=unfit_note,
                paper="Table 1 (CIFAR-10): every net fits random labels, e.g. MLP 3x512 train 100.0, test 10.48",
            ),
            judge(
                "RL-test",
                "Test accuracy falls to chance as p -> 1",
                [0.05 - g for g in worst_chance_gap],
                quantity="0.05 - max over models |test acc at p=1 - chance|",
                paper="Fig. 1c: test error rises steadily with p to ~90% (chance) at p=1",
                detail=f"mean test acc vs p {list(P_LEVELS)}: "
                + "; ".join(f"{m} " + " ".join(f"{a:.3f}" for a in c) for m, c in p_curve.items())
                + f"; Spearman rho(p, test acc) per seed: {', '.join(f'{r:.2f}' for r in rho)}",
            ),
            judge(
                "RL-time",
                "Time to fit grows with p by a small constant factor",
                [min(r, 1.0 - r) for r in log_ratio],
                quantity="min(log10 ratio, 1 - log10 ratio), ratio = steps to fit at p=1 / at p=0 (mean over "
                "models of log10): positive iff 1 < ratio < 10",
                detail=f"ratios per seed: {', '.join(f'{10**r:.2f}' for r in log_ratio)}; {unfit_note}",
                paper="Fig. 1b: random labels take a small constant factor longer to fit than true labels",
            ),
            judge(
                "RL-reg",
                "Explicit regularizers change test accuracy by a few points only",
                [0.05 - d for d in reg_delta],
                quantity="0.05 - max over models and regularizers |test acc(regularized) - test acc(none)|",
                detail=f"largest change per seed: {', '.join(f'{d:.3f}' for d in reg_delta)}; weight decay 5e-4, "
                f"random shifts of up to {result['shift_pixels']} pixels",
                paper="Table 1: Inception 89.05 (crop+wd) vs 85.75 (none); MLP 1x512 50.39 vs 50.51",
            ),
            judge(
                "RL-pixels",
                "Shuffled pixels hurt the CNN but not the permutation-invariant MLP",
                pixel_gap,
                quantity="(CNN test-acc drop from shuffling) - (mean MLP drop)",
                paper="Sec. 2/Fig. 1a: shuffled pixels are fit by conv nets and test accuracy falls; an MLP is "
                "permutation-invariant by construction (the comparison is the notes' reading)",
                detail="drops per seed: "
                + "; ".join(
                    f"cnn {drop('cnn', s):.3f}, mlp {np.mean([drop(m, s) for m in MLPS]):.3f}" for s in seeds
                ),
            ),
        ]

    def tables(self, result: dict) -> list[dict]:
        cells, seeds = result["cells"], range(result["seeds"])
        rows = []
        for m in result["models"]:
            for cond, label in (
                ("true+wd+aug", "aug + wd"),
                ("true+aug", "aug"),
                ("true+wd", "wd"),
                ("p=0", "none"),
                ("p=1", "random labels"),
                ("shuffled-pixels", "shuffled pixels"),
                ("random-pixels", "random pixels"),
                ("gaussian", "gaussian"),
            ):
                cell = cells[m][cond]
                rows.append(
                    [
                        m,
                        label,
                        100 * np.mean([cell[s]["train_acc"] for s in seeds]),
                        100 * np.mean([cell[s]["test_acc"] for s in seeds]),
                        np.mean([cell[s]["steps_to_fit"] for s in seeds]),
                    ]
                )
        return [
            {
                "title": "Measured (Table 1 analogue, mean over seeds)",
                "columns": ["model", "regularization / transform", "train %", "test %", "steps"],
                "rows": rows,
            },
            {
                "title": "For orientation: Zhang et al. Table 1 (CIFAR-10)",
                "columns": ["model", "random crop", "weight decay", "train %", "test %"],
                "rows": [list(r) for r in PAPER_TABLE1],
                "note": "transcribed from the paper; not measured here",
            },
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        cells, models, seeds = result["cells"], result["models"], range(result["seeds"])
        names = []
        fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.5), squeeze=False)
        for ax, m in zip(axes[0], models, strict=True):
            for cond, label in (
                ("p=0", "true labels"),
                ("p=1", "random labels"),
                ("shuffled-pixels", "shuffled pixels"),
                ("random-pixels", "random pixels"),
                ("gaussian", "gaussian"),
            ):
                run = cells[m][cond][0]
                ax.plot(run["curve_steps"], run["curve_train_loss"], label=label)
            ax.set(title=f"{m} (seed 0)", xlabel="step", ylabel="training loss", yscale="log")
        axes[0][0].legend(fontsize=8)
        names.append(save_figure(fig, outdir, "rl-learning-curves.png"))
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
        for m in models:
            base = np.mean([cells[m]["p=0"][s]["steps_to_fit"] for s in seeds])
            steps = [np.mean([cells[m][f"p={p:g}"][s]["steps_to_fit"] for s in seeds]) / base for p in P_LEVELS]
            err = [1 - np.mean([cells[m][f"p={p:g}"][s]["test_acc"] for s in seeds]) for p in P_LEVELS]
            ax1.plot(P_LEVELS, steps, "o-", label=m)
            ax2.plot(P_LEVELS, err, "o-", label=m)
        ax1.set(xlabel="label corruption p", ylabel="steps to fit / steps at p=0", title="time to fit (Fig. 1b)")
        ax2.axhline(1 - result["chance"], color="k", ls=":", lw=0.8, label="chance")
        ax2.set(xlabel="label corruption p", ylabel="test error", title="test error (Fig. 1c)")
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=8)
        names.append(save_figure(fig, outdir, "rl-time-and-error.png"))
        return names

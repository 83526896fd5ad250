"""Study `pooling-geometry`: Cohen & Shashua, "Inductive bias of deep convolutional networks through pooling
geometry" (ICLR 2017). Claims PG-cross and PG-shallow of STUDIES.md, judged by the shared verdict rule.

Data: the embedded `shapes` source (32x32 binary blob images generated locally from a seed; labels: top 40% of a
score = 1, bottom 40% = 0), one task per score: closedness |I| / |closing(I)| and symmetry of the blob's tile.
Networks (`models`): `pooling-net`, one-hot pixels [x, 1-x], then log2(32) = 5 layers of 1x1 conv (breadth
channels) + ReLU + a fixed permutation of the positions + 2x2 average pooling, then a 1x1 conv to two logits;
the geometry is the permutation: `square` (contiguous windows), `mirror` (each window joins a position with
its left-right, up-down and diagonal reflections) or `random` (a fixed random permutation per layer, neither
local nor symmetric). Every geometry has exactly the same parameters. `pooling-shallow`: one hidden 1x1 layer
and global pooling, at a breadth that matches the deep net's parameter count in `quick` (234 channels: 1,172
parameters vs 1,170 at breadth 16). Training (the paper's ReLU setting): Adam lr 1e-3, batch 64, weight decay
1e-4, lr x0.1 at 80% of the budget, the same budget for every net (a fixed number of epochs; the tasks are not
fitted to 100%, so "matched training" here is matched steps on the same data order — stated, not matched loss).

Claims (accuracies carry their per-test-example correctness, so intervals include test-set noise):
- PG-cross: square pooling wins on closedness, mirror pooling wins on symmetry. Per seed the crossover
  (acc_closed(square) - acc_closed(mirror)) + (acc_sym(mirror) - acc_sym(square)); parts: each half > 0.
  Control: the same crossover between two random-permutation nets (different permutation seeds), where
  neither geometry is favoured and no crossover may appear.
- PG-shallow: a shallow network is worse on both tasks. Per seed the mean over tasks x {square, mirror} of
  (deep accuracy - shallow accuracy); parts: each of the four differences > 0. Control (A/A): the shallow net
  against itself trained with another batch order (`order_seed`), mean over tasks.
Deviations: ReLU + average pooling only (the ConvAC with product pooling is not implemented); `quick` trains
on 5,000 images per task for ~1,200 steps (paper: 20,000 images, 15,000 iterations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.spec import RunSpec, TrainSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.verdict import Control, Measure, Verdict, accuracy, combine, judge, part

TASKS = ("closedness", "symmetry")
DEEP = ("square", "mirror")
ROLES = ("square", "mirror", "randomA", "randomB", "shallow", "shallow-AA")
ORDER_OFFSET = 1000  # order_seed of the A/A shallow run
PERM_OFFSET = 5000  # perm_seed of the second random-permutation net
# Cohen & Shashua, shallow baselines quoted in the text: (net, closedness %, symmetry %)
PAPER_SHALLOW = [
    ("ConvAC, 4,096 channels", "~62", "~77"),
    ("ReLU, average pooling", "~58", "~55"),
    ("ReLU, max pooling", "chance", "chance"),
]


# ---------------------------------------------------------------- the claims' quantities (one seed each)
def acc(cell: dict, task: str, role: str) -> Measure:
    """Test accuracy of `role` on `task` with its per-example correctness."""
    return accuracy(cell[task][role]["correct"])


def crossover(cell: dict, a: str = "square", b: str = "mirror") -> Measure:
    """(acc_closed(a) - acc_closed(b)) + (acc_sym(b) - acc_sym(a)): positive when a wins closedness and b wins
    symmetry."""
    return combine(
        [1, -1, 1, -1],
        [
            acc(cell, "closedness", a),
            acc(cell, "closedness", b),
            acc(cell, "symmetry", b),
            acc(cell, "symmetry", a),
        ],
    )


def half(cell: dict, task: str) -> Measure:
    """The crossover's half on `task`: square - mirror on closedness, mirror - square on symmetry."""
    win, lose = ("square", "mirror") if task == "closedness" else ("mirror", "square")
    return combine([1, -1], [acc(cell, task, win), acc(cell, task, lose)])


def deep_minus_shallow(cell: dict, task: str, geometry: str) -> Measure:
    return combine([1, -1], [acc(cell, task, geometry), acc(cell, task, "shallow")])


def shallow_gap(cell: dict) -> Measure:
    """Mean over tasks x {square, mirror} of (deep - shallow) test accuracy."""
    parts = [deep_minus_shallow(cell, t, g) for t in TASKS for g in DEEP]
    return combine([1 / len(parts)] * len(parts), parts)


def shallow_aa(cell: dict) -> Measure:
    """The A/A control of PG-shallow: mean over tasks of (shallow with another batch order - shallow)."""
    diffs = [combine([1, -1], [acc(cell, t, "shallow-AA"), acc(cell, t, "shallow")]) for t in TASKS]
    return combine([0.5, 0.5], diffs)


class PoolingGeometryStudy(Study):
    name = "pooling-geometry"
    title = "Square vs mirror pooling on closedness and symmetry (Cohen & Shashua)"
    paper = "Cohen, Shashua: Inductive bias of deep convolutional networks through pooling geometry (ICLR 2017)"
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "400 train / 400 test images per task, breadth 4, 2 epochs (seconds; for tests)",
            {"n_train": 400, "n_test": 400, "breadth": 4, "shallow_breadth": 8, "epochs": 2, "lr_step": 2},
        ),
        "quick": Preset(
            5,
            "5,000 train / 2,000 test images per task, breadth 16, 15 epochs (~1,200 Adam steps), 5 seeds",
            {"n_train": 5000, "n_test": 2000, "breadth": 16, "shallow_breadth": 234, "epochs": 15, "lr_step": 12},
        ),
        "paper": Preset(
            5,
            "20,000 train / 4,000 test images per task, breadth 128, 48 epochs (15,000 iterations) (GPU)",
            {
                "n_train": 20000,
                "n_test": 4000,
                "breadth": 128,
                "shallow_breadth": 4096,
                "epochs": 48,
                "lr_step": 38,
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    def spec(self, ctx: Context, task: str, role: str, seed: int) -> RunSpec:
        p = ctx.params
        data = {"name": "shapes", "task": task, "n_train": p["n_train"], "n_test": p["n_test"]}
        if role.startswith("shallow"):
            model: dict = {"name": "pooling-shallow", "breadth": p["shallow_breadth"]}
        elif role.startswith("random"):
            perm = seed + (PERM_OFFSET if role == "randomB" else 0)
            model = {"name": "pooling-net", "geometry": "random", "breadth": p["breadth"], "perm_seed": perm}
        else:
            model = {"name": "pooling-net", "geometry": role, "breadth": p["breadth"]}
        train = TrainSpec(
            optimizer="adam",
            lr=1e-3,
            weight_decay=1e-4,
            batch_size=64,
            epochs=p["epochs"],
            schedule="step",
            lr_step=p["lr_step"],
            lr_gamma=0.1,
            eval_every=p["epochs"],
            order_seed=seed + ORDER_OFFSET if role == "shallow-AA" else None,
        )
        return RunSpec(data=data, model=model, train=train, seed=seed)

    def plan(self, ctx: Context) -> list[RunSpec]:
        return [self.spec(ctx, t, r, s) for s in range(ctx.seeds) for t in TASKS for r in ROLES]

    # ---------------------------------------------------------------- measurements
    def analyze(self, ctx: Context) -> dict:
        cells = []
        for seed in range(ctx.seeds):
            cell: dict = {}
            for task in TASKS:
                for role in ROLES:
                    run = ctx.run(self.spec(ctx, task, role, seed))
                    cell.setdefault(task, {})[role] = {
                        "train_acc": run.final.get("train_acc"),
                        "test_acc": run.final.get("test_acc"),
                        "train_loss": run.final.get("train_loss"),
                        "status": run.status,
                        "correct": ctx.correct(run),
                        "curve": [[r["step"], r["train_loss"], r["test_acc"]] for r in run.history],
                    }
            cells.append(cell)
        return {"seeds": ctx.seeds, "params": ctx.params, "cells": cells}

    # ---------------------------------------------------------------- claims
    def claims(self, result: dict) -> list[Verdict]:
        cells = result["cells"]
        return [
            judge(
                "PG-cross",
                "Square pooling wins on closedness, mirror pooling wins on symmetry (a crossover)",
                [crossover(c) for c in cells],
                "(acc_closed(square) - acc_closed(mirror)) + (acc_sym(mirror) - acc_sym(square))",
                control=Control(
                    [crossover(c, "randomA", "randomB") for c in cells],
                    "the same crossover between two random-permutation pooling nets (neither geometry)",
                ),
                also=[
                    part("closedness: square - mirror", [half(c, "closedness") for c in cells], "acc difference"),
                    part("symmetry: mirror - square", [half(c, "symmetry") for c in cells], "acc difference"),
                ],
                detail=self._accuracies(cells, ("square", "mirror", "randomA", "randomB")),
                paper="Figs. 3-4: square beats mirror on closedness and mirror beats square on symmetry, for "
                "ConvACs and for ReLU nets with average or max pooling (no numbers in the text)",
            ),
            judge(
                "PG-shallow",
                "A shallow network is worse on both tasks",
                [shallow_gap(c) for c in cells],
                "mean over tasks x {square, mirror} of (deep - shallow) test accuracy",
                control=Control(
                    [shallow_aa(c) for c in cells], "A/A: the shallow net vs itself with another batch order"
                ),
                also=[
                    part(f"{t}: {g} - shallow", [deep_minus_shallow(c, t, g) for c in cells], "acc difference")
                    for t in TASKS
                    for g in DEEP
                ],
                detail=self._accuracies(cells, ("shallow", "shallow-AA")),
                paper="Sec. 6: shallow ReLU net with average pooling ~58% (closedness), ~55% (symmetry)",
            ),
        ]

    @staticmethod
    def _accuracies(cells: list[dict], roles: tuple[str, ...]) -> str:
        return "mean test accuracy: " + "; ".join(
            f"{t} " + ", ".join(f"{r} {np.mean([c[t][r]['test_acc'] for c in cells]):.3f}" for r in roles)
            for t in TASKS
        )

    def tables(self, result: dict) -> list[dict]:
        cells = result["cells"]
        rows = []
        for role in ROLES:
            row = [role]
            for task in TASKS:
                a = [c[task][role]["test_acc"] for c in cells]
                tr = [c[task][role]["train_acc"] for c in cells]
                row += [100 * float(np.mean(a)), 100 * float(np.std(a)), 100 * float(np.mean(tr))]
            rows.append(row)
        return [
            {
                "title": "Test accuracy (%) per task and network, mean and sd over seeds",
                "columns": [
                    "network",
                    "closedness test %",
                    "sd",
                    "closedness train %",
                    "symmetry test %",
                    "sd",
                    "symmetry train %",
                ],
                "rows": rows,
            },
            {
                "title": "For orientation: Cohen & Shashua's shallow baselines (text)",
                "columns": ["shallow network", "closedness %", "symmetry %"],
                "rows": [list(r) for r in PAPER_SHALLOW],
                "note": "transcribed from the paper; not measured here",
            },
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        from genlab.studies.pooling_geometry_figures import draw_figures

        return draw_figures(result, outdir)

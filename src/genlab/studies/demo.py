"""Study `demo`: small- vs large-batch Adam — the smallest end-to-end study, and why regimes are compared at
matched training loss.

It uses the runs of the `large-batch` study's preset of the same name (SB, LB, the A/A control SBc, and the
fixed-epoch-budget pair), so the two studies share their runs and the demo can never disagree with the study:
DEMO-gap is LB-gap's measurement (same function, same runs, same control). Claims (ids are stable):
- DEMO-fit: trained to the same target loss, SB and LB end at similar training losses (within a factor of 2).
  Control: the fixed-epoch-budget pair, where LB has made far fewer steps and the claim must not hold.
- DEMO-gap: LB reaches a lower test accuracy than SB at matched training loss (Keskar et al.'s gap).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.spec import RunSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.figures import save_figure
from genlab.studies.large_batch import LargeBatchStudy
from genlab.studies.large_batch_claims import gap
from genlab.studies.verdict import Control, Verdict, judge, log_ratio

ROLES = ("SB", "LB", "SBc", "budget-SB", "budget-LB")
FIT_FACTOR = 0.3  # log10(2): "similar" = within a factor of 2


def fit(c: dict, sb: str = "SB", lb: str = "LB") -> float:
    """DEMO-fit: log10(2) - |log10(train loss LB / train loss SB)| (positive: within a factor of 2)."""
    return FIT_FACTOR - abs(log_ratio(c["final"][lb]["train_loss"], c["final"][sb]["train_loss"]))


class DemoStudy(Study):
    name = "demo"
    title = "SB vs LB at matched training loss (demo)"
    paper = "toy version of Keskar et al., On large-batch training for deep learning (ICLR 2017)"
    presets = {  # noqa: RUF012
        name: Preset(
            p.seeds, f"the large-batch {name} preset's SB/LB runs: {p.description}", {"large_batch": name}
        )
        for name, p in LargeBatchStudy.presets.items()
    }

    def _lb(self, ctx: Context) -> tuple[LargeBatchStudy, Context]:
        lb = LargeBatchStudy()
        return lb, lb.context(ctx.params["large_batch"], ctx.seeds, ctx.store, ctx.data_root)

    def plan(self, ctx: Context) -> list[RunSpec]:
        lb, lctx = self._lb(ctx)
        setup = lctx.params["setups"][0]
        return [lb.specs(lctx, setup, seed)[r] for seed in range(ctx.seeds) for r in ROLES]

    def analyze(self, ctx: Context) -> dict:
        lb, lctx = self._lb(ctx)
        setup = lctx.params["setups"][0]
        cells = []
        for seed in range(ctx.seeds):
            specs = lb.specs(lctx, setup, seed)
            runs = {r: ctx.run(specs[r]) for r in ROLES}
            cells.append(
                {
                    "final": {r: {k: run.final[k] for k in ("train_loss", "test_acc")} for r, run in runs.items()},
                    "curves": {r: [row["test_acc"] for row in run.history] for r, run in runs.items()},
                    "correct": {r: ctx.correct(run) for r, run in runs.items()},
                }
            )
        return {
            "seeds": ctx.seeds,
            "setup": setup["name"],
            "target_loss": lctx.params["target_loss"],
            "cells": cells,
        }

    def claims(self, result: dict) -> list[Verdict]:
        cells = result["cells"]
        return [
            judge(
                "DEMO-fit",
                "Trained to the same target loss, SB and LB reach similar training losses",
                [fit(c) for c in cells],
                "log10(2) - |log10(train loss LB / train loss SB)| at the matched target",
                control=Control(
                    [fit(c, "budget-SB", "budget-LB") for c in cells], "the same after a fixed epoch budget"
                ),
                paper="Keskar et al. Table 2: SB and LB both reach ~100% train accuracy",
            ),
            judge(
                "DEMO-gap",
                "LB reaches a lower test accuracy than SB (at matched training loss)",
                [gap(c) for c in cells],
                "test acc SB - test acc LB at matched training loss (the large-batch study's LB-gap)",
                control=Control([gap(c, "SBc") for c in cells], "A/A: SB vs SBc (same x0, another batch order)"),
                paper="Keskar et al. Table 2: e.g. F1 (MNIST) 98.03 vs 97.81, C1 (CIFAR-10) 80.04 vs 77.26",
            ),
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        for role, color in (("SB", "tab:blue"), ("LB", "tab:red"), ("SBc", "tab:gray")):
            for i, c in enumerate(result["cells"]):
                curve = c["curves"][role]
                ax1.plot(
                    np.arange(1, len(curve) + 1), curve, color=color, alpha=0.5, label=role if i == 0 else None
                )
        ax1.set(
            xscale="log", xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch (lines: seeds)"
        )
        ax1.legend()
        sb = [c["final"]["SB"]["test_acc"] for c in result["cells"]]
        lb = [c["final"]["LB"]["test_acc"] for c in result["cells"]]
        ax2.scatter(sb, lb, color="k")
        lo, hi = min(sb + lb) - 0.005, max(sb + lb) + 0.005
        ax2.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax2.set(
            xlabel="SB test accuracy",
            ylabel="LB test accuracy",
            title="per seed at matched loss (below: LB worse)",
        )
        return [save_figure(fig, outdir, "demo-accuracy.png")]

"""Study `demo`: small- vs large-batch Adam on digits — the smallest end-to-end study.

It exercises plan -> train -> analyze -> verdicts -> report with real training runs, and stands in until the
paper studies land. Protocol: MLP 64-256-256-10 on scikit-learn digits (1,437 train / 360 test), Adam lr 1e-3,
the same x0 per seed for both regimes, SB = 16 examples per batch (~1% of n), LB = 144 (10% of n), a fixed
budget of epochs per preset. Claims (ids are stable):
- DEMO-fit: SB and LB reach similar training accuracy (|difference| below one point).
- DEMO-gap: LB reaches a lower test accuracy than SB (Keskar et al.'s generalization gap, at toy scale).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.spec import RunSpec, TrainSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.figures import save_figure
from genlab.studies.verdict import Verdict, judge


class DemoStudy(Study):
    name = "demo"
    title = "SB vs LB on digits (demo)"
    paper = "toy version of Keskar et al., On large-batch training for deep learning (ICLR 2017)"
    presets = {  # noqa: RUF012
        "smoke": Preset(2, "2 seeds x 3 epochs (seconds; for tests)", {"epochs": 3}),
        "quick": Preset(5, "5 seeds x 40 epochs on digits (about a minute on 2 cores)", {"epochs": 40}),
        "paper": Preset(10, "10 seeds x 100 epochs on digits", {"epochs": 100}),
    }
    batch_sizes = {"SB": 16, "LB": 144}  # noqa: RUF012

    def spec(self, ctx: Context, regime: str, seed: int) -> RunSpec:
        return RunSpec(
            data={"name": "digits"},
            model={"name": "mlp", "widths": [256, 256]},
            train=TrainSpec(
                optimizer="adam", lr=1e-3, batch_size=self.batch_sizes[regime], epochs=ctx.params["epochs"]
            ),
            seed=seed,
        )

    def plan(self, ctx: Context) -> list[RunSpec]:
        return [self.spec(ctx, regime, seed) for seed in range(ctx.seeds) for regime in self.batch_sizes]

    def analyze(self, ctx: Context) -> dict:
        out: dict = {"seeds": list(range(ctx.seeds)), "curves": {}, "final": {}, "runs": {}}
        for regime in self.batch_sizes:
            curves, finals, ids = [], [], []
            for seed in range(ctx.seeds):
                run = ctx.run(self.spec(ctx, regime, seed))
                curves.append([row["test_acc"] for row in run.history])
                finals.append({k: run.final[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss")})
                ids.append(run.spec.run_id)
            out["curves"][regime], out["final"][regime], out["runs"][regime] = curves, finals, ids
        return out

    def claims(self, result: dict) -> list[Verdict]:
        sb, lb = result["final"]["SB"], result["final"]["LB"]
        fit = [0.01 - abs(s["train_acc"] - lb_["train_acc"]) for s, lb_ in zip(sb, lb, strict=True)]
        gap = [s["test_acc"] - lb_["test_acc"] for s, lb_ in zip(sb, lb, strict=True)]
        return [
            judge(
                "DEMO-fit",
                "SB and LB reach similar training accuracy",
                fit,
                quantity="0.01 - |train acc SB - train acc LB|",
                paper="Keskar et al. Table 2: SB and LB both reach ~100% train accuracy",
            ),
            judge(
                "DEMO-gap",
                "LB reaches a lower test accuracy than SB",
                gap,
                quantity="test acc SB - test acc LB",
                paper="Keskar et al. Table 2: e.g. F1 (MNIST) 98.03 vs 97.81, C1 (CIFAR-10) 80.04 vs 77.26",
                detail=f"mean test acc SB {np.mean([s['test_acc'] for s in sb]):.4f}, "
                f"LB {np.mean([s['test_acc'] for s in lb]):.4f}",
            ),
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        for regime, color in (("SB", "tab:blue"), ("LB", "tab:red")):
            curves = np.array(result["curves"][regime], dtype=float)
            epochs = np.arange(1, curves.shape[1] + 1)
            ax1.plot(epochs, curves.T, color=color, alpha=0.25, lw=0.8)
            ax1.plot(epochs, curves.mean(0), color=color, lw=2, label=f"{regime} (bs {self.batch_sizes[regime]})")
        ax1.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch (thin: seeds)")
        ax1.legend()
        sb = [r["test_acc"] for r in result["final"]["SB"]]
        lb = [r["test_acc"] for r in result["final"]["LB"]]
        ax2.scatter(sb, lb, color="k")
        lo, hi = min(sb + lb) - 0.005, max(sb + lb) + 0.005
        ax2.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax2.set(
            xlabel="SB final test accuracy", ylabel="LB final test accuracy", title="per seed (below: LB worse)"
        )
        return [save_figure(fig, outdir, "demo-accuracy.png")]

"""Figures of the introspection study: weight-change histograms, monotone share per layer, predictor error vs
baselines, test accuracy vs step with jump markers for every arm, steps to target per arm with intervals.
Draws `result`; trains nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.studies.figures import save_figure
from genlab.studies.introspection import ARMS, mean
from genlab.studies.verdict import accuracy, interval

COLORS = dict(zip(ARMS, ("k", "gray", "tab:blue", "tab:orange", "tab:red", "tab:purple"), strict=True))


def histograms(result: dict, outdir: Path) -> str:
    """log10 |w_T - w_0| per layer, source run and target no-jump run (seed 0)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    edges = np.linspace(-5, 1, 31)
    for ax, (title, stats) in zip(
        axes,
        (("source (seed 0)", result["source_stats"]), ("target, no jump (seed 0)", result["cells"][0]["stats"])),
        strict=True,
    ):
        for row in stats["layers"]:
            ax.stairs(np.array(row["hist"]) / row["n"], edges, label=f"{row['layer']} ({row['n']})")
        ax.set(xlabel="log10 |w_T - w_0|", ylabel="share of the layer's weights", title=f"weight change, {title}")
        ax.legend(fontsize=7)
    return save_figure(fig, outdir, "we-histograms.png")


def monotone(result: dict, outdir: Path) -> str:
    """Monotone share per layer, real trajectories vs the matched random walk (target no-jump runs)."""
    cells = result["cells"]
    names = [r["layer"] for r in cells[0]["stats"]["layers"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    x = np.arange(len(names))
    for j, (key, color) in enumerate((("monotone", "tab:blue"), ("walk", "tab:gray"))):
        vals = np.array([[r[key] for r in c["stats"]["layers"]] for c in cells])
        ax.bar(
            x + 0.4 * j, vals.mean(0), 0.4, color=color, label="trajectories" if j == 0 else "matched random walk"
        )
        ax.plot(np.repeat(x + 0.4 * j, len(cells)), vals.T.reshape(-1), "k.", ms=3)
        for xi, v in zip(x, vals.mean(0), strict=True):
            ax.annotate(f"{v:.2f}", (xi + 0.4 * j, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(0.5, color="k", ls=":", lw=1, label='"mostly": half of the weights')
    ax.set_xticks(x + 0.2, names, rotation=30, fontsize=8)
    ax.set(ylabel="share monotone (90% path efficiency)", title="monotone share per layer (target, no jump)")
    ax.legend(fontsize=8)
    return save_figure(fig, outdir, "we-monotone.png")


def errors(result: dict, outdir: Path) -> str:
    """Predictor error vs baselines, held-out weights and held-out run, per seed."""
    cells = result["cells"]
    methods = list(cells[0]["predict"]["run"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, where in zip(axes, ("weights", "run"), strict=True):
        vals = np.array([[c["predict"][where][m] for m in methods] for c in cells])
        ax.bar(range(len(methods)), vals.mean(0), color="tab:blue", alpha=0.6)
        ax.plot(np.repeat(np.arange(len(methods)), len(cells)), vals.T.reshape(-1), "k.", ms=4)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set(yscale="log", ylabel="mean |prediction - w_2t|", title=f"prediction error, held-out {where}")
    return save_figure(fig, outdir, "we-predict.png")


def curves(result: dict, outdir: Path) -> str:
    """Test accuracy and loss vs step per arm (mean over seeds), jump steps marked."""
    cells = result["cells"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    for arm in ARMS:
        curve = np.array([c["arms"][arm]["curve"] for c in cells if len(c["arms"][arm]["curve"])])
        n = min(len(c) for c in curve)
        mean = np.mean([c[:n] for c in curve], axis=0)
        ax1.plot(mean[:, 0], mean[:, 1], color=COLORS[arm], label=arm)
        ax2.plot(mean[:, 0], mean[:, 2], color=COLORS[arm], label=arm)
        jumps = [j for c in cells for j in c["arms"][arm]["jumps"]]
        for j in jumps[: len(result["params"]["jump_steps"])]:
            ax2.plot([j["step"]] * 2, [j["test_loss_before"], j["test_loss_after"]], color=COLORS[arm], lw=2)
    for ax in (ax1, ax2):
        for s in result["params"]["jump_steps"]:
            ax.axvline(s, color="k", ls=":", lw=0.8)
    ax1.axhline(result["params"]["target_acc"], color="k", ls="--", lw=0.8)
    ax1.set(xlabel="step", ylabel="test accuracy", title="test accuracy (mean over seeds); dotted: jumps")
    ax2.set(xlabel="step", ylabel="test loss", yscale="log", title="test loss; bars: seed 0's loss at each jump")
    ax1.legend(fontsize=8)
    return save_figure(fig, outdir, "we-curves.png")


def steps(result: dict, outdir: Path) -> str:
    """Steps to the target test accuracy per arm: mean with a 95% interval over seeds, seeds as points."""
    cells = result["cells"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, arm in enumerate(ARMS):
        vals = [c["arms"][arm]["steps"] for c in cells]
        iv = interval(vals)
        ax.errorbar(
            i, iv.effect, [[iv.effect - iv.lo], [iv.hi - iv.effect]], fmt="o", color=COLORS[arm], capsize=4
        )
        censored = [c["arms"][arm]["censored"] for c in cells]
        ax.scatter([i + 0.15] * len(vals), vals, c=["r" if x else "k" for x in censored], s=8)
    ax.set_xticks(range(len(ARMS)), ARMS, fontsize=8)
    ax.set(ylabel="steps to target", title=f"steps to test acc {result['params']['target_acc']} (red: censored)")
    return save_figure(fig, outdir, "we-steps.png")


def draw_figures(result: dict, outdir: Path) -> list[str]:
    """Write the study's figures into `outdir` and return their file names."""
    return [fn(result, outdir) for fn in (histograms, monotone, errors, curves, steps)]


def report_tables(result: dict) -> list[dict]:
    """The report's tables: arms, predictor errors, the source run's weight statistics."""
    cells = result["cells"]
    arms = []
    for arm in ARMS:
        rows = [c["arms"][arm] for c in cells]
        iv = interval([r["steps"] for r in rows])
        arms.append(
            [
                arm,
                iv.effect,
                f"[{iv.lo:.0f}, {iv.hi:.0f}]",
                sum(r["censored"] for r in rows),
                mean(accuracy(r["correct_at"]).value for r in rows),
                mean(r["final_test_acc"] for r in rows),
            ]
        )
    methods = list(cells[0]["predict"]["run"])
    errors = [[m, *(mean(c["predict"][w][m] for c in cells) for w in ("weights", "run"))] for m in methods]
    layers = [
        [
            row["layer"],
            row["n"],
            row["median_w0"],
            row["median_disp"],
            row["second_moment"],
            row["monotone"],
            row["walk"],
        ]
        for row in result["source_stats"]["layers"]
    ]
    return [
        {
            "title": f"Target runs per arm, mean over seeds (target acc {result['params']['target_acc']})",
            "columns": [
                "arm",
                "steps to target",
                "95% interval",
                "censored",
                f"test acc @ {result['params']['probe_step']}",
                "final test acc",
            ],
            "rows": arms,
        },
        {
            "title": "Predictor error: mean |prediction - w_2t|, mean over seeds",
            "columns": ["method", "held-out weights", "held-out run"],
            "rows": errors,
        },
        {
            "title": "Weight history: cost per run (seed 0; benchmarks/weight_history.py: a 100k-weight net)",
            "columns": ["run", "parameters", "snapshots", "dtype", "memory MiB", "disk MiB"],
            "rows": [
                [name, c["params"], c["snapshots"], c["dtype"], c["memory_mib"], c["disk_mib"]]
                for name, c in result.get("history_cost", {}).items()
            ],
        },
        {
            "title": "Source run (seed 0): weight statistics per layer",
            "columns": [
                "layer",
                "n",
                "median |w_0|",
                "median |w_T - w_0|",
                "2nd moment / w_0^2",
                "monotone",
                "walk null",
            ],
            "rows": layers,
        },
    ]

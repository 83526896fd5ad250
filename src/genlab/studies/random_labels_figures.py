"""Tables and figures of the random-labels study: the Table 1 analogue, learning curves per transform
(Fig. 1a), time to fit and test error against the label-corruption level (Fig. 1b, 1c). Draws `result` only."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.studies.figures import save_figure
from genlab.studies.random_labels import FIXED, STRONG_WD, steps_to_fit

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


def tables(result: dict) -> list[dict]:
    """The Table 1 analogue (mean over seeds) and, for orientation, the paper's Table 1."""
    cells, seeds = result["cells"], range(result["seeds"])
    fixed = [
        (f"{FIXED}+{r}", f"{r} ({result['settings']['reg_epochs']} epochs)") for r in result["regularizers"][::-1]
    ]
    labels = [
        *fixed,
        (FIXED, f"none ({result['settings']['reg_epochs']} epochs)"),
        (f"{FIXED}+{STRONG_WD}", f"wd {result['settings']['control_weight_decay']:g} (RL-reg's control)"),
        ("p=0", "none (to 100% train)"),
        ("p=1", "random labels"),
        ("shuffled-pixels", "shuffled pixels"),
        ("random-pixels", "random pixels"),
        ("gaussian", "gaussian"),
    ]
    rows = []
    for m in result["models"]:
        for cond, label in labels:
            cell = cells[m][cond]
            rows.append(
                [
                    m,
                    label,
                    100 * np.mean([cell[s]["train_acc"] for s in seeds]),
                    100 * np.mean([cell[s]["test_acc"] for s in seeds]),
                    np.mean([cell[s]["steps"] for s in seeds]),
                    np.mean([cell[s]["weight_norm"] for s in seeds]),
                ]
            )
    return [
        {
            "title": "Measured (Table 1 analogue, mean over seeds)",
            "columns": ["model", "regularization / transform", "train %", "test %", "steps", "weight norm"],
            "rows": rows,
        },
        {
            "title": "For orientation: Zhang et al. Table 1 (CIFAR-10)",
            "columns": ["model", "random crop", "weight decay", "train %", "test %"],
            "rows": [list(r) for r in PAPER_TABLE1],
            "note": "transcribed from the paper; not measured here",
        },
    ]


def draw_figures(result: dict, outdir: Path) -> list[str]:
    """Learning curves per transform (Fig. 1a), time to fit and test error against p (Fig. 1b, 1c)."""
    cells, models, seeds, p_levels = (
        result["cells"],
        result["models"],
        range(result["seeds"]),
        result["p_levels"],
    )
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
        ratio = [
            [steps_to_fit(cells[m][f"p={p:g}"][s]) / steps_to_fit(cells[m]["p=0"][s]) for s in seeds]
            for p in p_levels
        ]
        err = [[1 - cells[m][f"p={p:g}"][s]["test_acc"] for s in seeds] for p in p_levels]
        for ax, ys in ((ax1, ratio), (ax2, err)):
            mean = [np.nanmean(y) if np.isfinite(y).any() else np.nan for y in ys]
            sd = [np.nanstd(y) if np.isfinite(y).any() else np.nan for y in ys]
            ax.errorbar(p_levels, mean, yerr=sd, fmt="o-", capsize=3, label=m)
    ax1.set(xlabel="label corruption p", ylabel="steps to fit / steps at p=0", title="time to fit (Fig. 1b)")
    ax2.axhline(1 - result["chance"], color="k", ls=":", lw=0.8, label="chance")
    ax2.set(xlabel="label corruption p", ylabel="test error", title="test error (Fig. 1c)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"mean +- sd over {result['seeds']} seeds", fontsize=9)
    names.append(save_figure(fig, outdir, "rl-time-and-error.png"))
    return names

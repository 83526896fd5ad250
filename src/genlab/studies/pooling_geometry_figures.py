"""Figures of the pooling-geometry study: example images with their scores, the pooling windows of each
geometry, accuracy per task and network with intervals, and the crossover. Draws `result`; trains nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.data.shapes import closedness, render, symmetry
from genlab.models import pooling_index
from genlab.studies.figures import save_figure
from genlab.studies.pooling_geometry import ROLES, TASKS, acc
from genlab.studies.verdict import interval

COLORS = {"square": "tab:blue", "mirror": "tab:red", "randomA": "tab:gray", "randomB": "silver"}
COLORS |= {"shallow": "tab:green", "shallow-AA": "yellowgreen"}


def examples(outdir: Path, n: int = 10) -> str:
    """Rendered images ordered by each score, with the score under each."""
    images = render(200, seed=123)
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.6))
    for row, (name, score) in enumerate((("closedness", closedness), ("symmetry", symmetry))):
        values = np.array([score(im) for im in images])
        picks = np.argsort(values)[np.linspace(0, len(values) - 1, n).astype(int)]
        for ax, i in zip(axes[row], picks, strict=True):
            ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
            ax.set_title(f"{name[:6]} {values[i]:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("generated shapes ordered by score (labels: top 40% = 1, bottom 40% = 0)", fontsize=10)
    return save_figure(fig, outdir, "pg-examples.png")


def windows(outdir: Path, size: int = 8) -> str:
    """Which input positions one pooling layer joins, per geometry (one colour per output window)."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, geometry in zip(axes, ("square", "mirror", "random"), strict=True):
        index = pooling_index(size, geometry, seed=0).numpy()
        window = np.empty(size * size, dtype=int)
        for p, src in enumerate(index):  # permuted position p = (r, c) lies in window (r // 2, c // 2)
            r, c = divmod(p, size)
            window[src] = (r // 2) * (size // 2) + c // 2
        ax.imshow(window.reshape(size, size), cmap="tab20", interpolation="nearest")
        for src in range(size * size):
            ax.text(src % size, src // size, str(window[src]), ha="center", va="center", fontsize=6)
        ax.set(title=f"{geometry} pooling ({size}x{size} -> {size // 2}x{size // 2})", xticks=[], yticks=[])
    return save_figure(fig, outdir, "pg-windows.png")


def accuracies(result: dict, outdir: Path) -> str:
    """Mean test accuracy per task and network with 95% intervals (seeds and test-set noise), and the crossover."""
    cells = result["cells"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(ROLES)
    for j, role in enumerate(ROLES):
        for i, task in enumerate(TASKS):
            iv = interval([acc(c, task, role) for c in cells])
            ax1.bar(i + j * width, iv.effect, width, color=COLORS[role], label=role if i == 0 else None)
            ax1.errorbar(i + j * width, iv.effect, [[iv.effect - iv.lo], [iv.hi - iv.effect]], color="k", lw=1)
    ax1.set_xticks(np.arange(len(TASKS)) + 0.4 - width / 2, TASKS)
    ax1.axhline(0.5, color="k", ls=":", lw=0.8)
    ax1.set(ylabel="test accuracy", title="accuracy per task (95% interval: seeds + test set)", ylim=(0.4, None))
    ax1.legend(fontsize=8, ncol=2)
    for role in ("square", "mirror", "randomA", "shallow"):
        means = [np.mean([c[t][role]["test_acc"] for c in cells]) for t in TASKS]
        ax2.plot(range(len(TASKS)), means, "o-", color=COLORS[role], label=role)
        for c in cells:
            ax2.plot(range(len(TASKS)), [c[t][role]["test_acc"] for t in TASKS], color=COLORS[role], alpha=0.2)
    ax2.set_xticks(range(len(TASKS)), TASKS)
    ax2.set(ylabel="test accuracy", title="crossover: lines cross if each geometry wins one task")
    ax2.legend(fontsize=8)
    return save_figure(fig, outdir, "pg-accuracy.png")


def draw_figures(result: dict, outdir: Path) -> list[str]:
    """Write the study's figures into `outdir` and return their file names."""
    return [examples(outdir), windows(outdir), accuracies(result, outdir)]

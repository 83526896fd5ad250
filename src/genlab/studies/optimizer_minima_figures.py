"""Figures of the optimizer-minima study (matplotlib, Agg): barycentric and bilinear surfaces train | test with
the minima at the corners (the probes' own drawing helpers; w1.. are named in the file name, in order), the
barrier matrix, basin-radius distributions per optimizer, weight norms with and without BN, and the
eigenvalue-vs-gap scatter. Draws `result` only; computes nothing about models."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.probes.landscape import Landscape
from genlab.probes.plots import plot_barycentric, plot_bilinear
from genlab.studies.figures import save_figure
from genlab.studies.optimizer_minima_claims import OPTIMIZERS, gap, median_radius, pair_key, twin

_COLORS = dict(zip(OPTIMIZERS, ("tab:blue", "tab:cyan", "tab:green", "tab:orange", "tab:red"), strict=True))


def landscape(d: dict) -> Landscape:
    """A Landscape back from its stored plain data (None -> NaN)."""

    def arr(v: object) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=float)

    return Landscape(
        kind=d["kind"],
        axes={k: arr(v) for k, v in d["axes"].items()},
        train_loss=arr(d["train_loss"]),
        train_acc=arr(d["train_acc"]),
        test_loss=arr(d["test_loss"]),
        test_acc=arr(d["test_acc"]),
        mode=d["mode"],
        bn=d["bn"],
        spec=d.get("spec", {}),
    )


def barrier_matrix(cells: list[dict], split: str) -> np.ndarray:
    """Mean barrier over seeds; the diagonal holds each optimizer's A/A (twin) barrier."""
    k = len(OPTIMIZERS)
    m = np.zeros((k, k))
    for i, a in enumerate(OPTIMIZERS):
        for j, b in enumerate(OPTIMIZERS):
            key = pair_key(a, twin(a)) if i == j else pair_key(*sorted((a, b), key=OPTIMIZERS.index))
            m[i, j] = np.mean([c["paths"][key][split] for c in cells])
    return m


def draw_figures(result: dict, outdir: Path) -> list[str]:
    """Write the study's figures into `outdir` and return their file names."""
    names = []
    for arch, cells in result["archs"].items():
        for kind, draw in (("barycentric", plot_barycentric), ("bilinear", plot_bilinear)):
            s = cells[0].get("surfaces", {}).get(kind)
            if s is not None:
                name = f"om-{kind}-{arch}-" + "-".join(s["minima"]) + ".png"
                draw(landscape(s), Path(outdir) / name)
                names.append(name)
    archs = list(result["archs"])
    fig, axes = plt.subplots(len(archs), 2, figsize=(10, 4.2 * len(archs)), squeeze=False)
    for row, arch in zip(axes, archs, strict=True):
        for ax, split in zip(row, ("train", "test"), strict=True):
            m = barrier_matrix(result["archs"][arch], split)
            im = ax.imshow(m, cmap="magma")
            for i in range(len(m)):
                for j in range(len(m)):
                    dark = m[i, j] < 0.6 * m.max()
                    ax.text(
                        j, i, f"{m[i, j]:.2g}", ha="center", va="center", fontsize=7, color="w" if dark else "k"
                    )
            ax.set_xticks(range(len(OPTIMIZERS)), OPTIMIZERS, fontsize=8)
            ax.set_yticks(range(len(OPTIMIZERS)), OPTIMIZERS, fontsize=8)
            ax.set_title(f"{arch}: {split} barrier (diagonal: A/A twin)", fontsize=9)
            fig.colorbar(im, ax=ax)
    names.append(save_figure(fig, outdir, "om-barriers.png"))

    fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        cells = result["archs"][arch]
        for k, split in enumerate(("train", "test")):
            data = [[r for c in cells for r in c["min"][o]["basin"][split] if r is not None] for o in OPTIMIZERS]
            pos = np.arange(len(OPTIMIZERS)) + (k - 0.5) * 0.35
            bp = ax.boxplot(data, positions=pos, widths=0.3, patch_artist=True, showfliers=False)
            for patch in bp["boxes"]:
                patch.set_facecolor("tab:blue" if split == "train" else "tab:orange")
        ax.set_xticks(range(len(OPTIMIZERS)), OPTIMIZERS)
        ax.set(yscale="log", ylabel="basin radius (filter-normalized units)")
        ax.set_title(
            f"{arch}: basin radius, train (blue) | test (orange), delta {result['basin_delta']:g}", fontsize=9
        )
    names.append(save_figure(fig, outdir, "om-basin-radius.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, arch in enumerate(archs):
        for i, o in enumerate(OPTIMIZERS):
            v = [c["norm"][o] for c in result["archs"][arch]]
            x = i + (k - (len(archs) - 1) / 2) * 0.3 + np.linspace(-0.05, 0.05, len(v))
            ax.plot(
                x,
                v,
                "o" if result["bn"][arch] else "s",
                color=_COLORS[o],
                mfc="none" if result["bn"][arch] else _COLORS[o],
            )
    ax.set_xticks(range(len(OPTIMIZERS)), OPTIMIZERS)
    ax.set(
        ylabel="||w|| at the minimum",
        title="weight norm per seed: " + ", ".join(f"{a} ({'o' if result['bn'][a] else 's'})" for a in archs),
    )
    names.append(save_figure(fig, outdir, "om-weight-norms.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arch in archs:
        marker = "o" if result["bn"][arch] else "s"
        for o in OPTIMIZERS:
            cells = result["archs"][arch]
            lam = [c["min"][o]["top"][0] for c in cells]
            rad = [median_radius(c, o) for c in cells]
            g = [gap(c, o).value for c in cells]
            label = f"{arch} {o}"
            axes[0].scatter(lam, g, marker=marker, color=_COLORS[o], label=label, s=18)
            axes[1].scatter(
                [r if math.isfinite(r) else np.nan for r in rad], g, marker=marker, color=_COLORS[o], s=18
            )
    axes[0].set(xscale="log", xlabel="top Hessian eigenvalue", ylabel="test loss - train loss", title="OM-eig")
    axes[1].set(xscale="log", xlabel="median basin radius (train)", ylabel="test loss - train loss")
    axes[0].legend(fontsize=6, ncol=2)
    names.append(save_figure(fig, outdir, "om-eig-vs-gap.png"))
    return names

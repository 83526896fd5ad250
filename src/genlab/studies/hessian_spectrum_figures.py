"""Figures of the `hessian-spectrum` study (see `genlab.studies.hessian_spectrum` for the measurements)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.studies.figures import save_figure


def spectra_by_width(result: dict, outdir: Path) -> str:
    blobs, widths = result["blobs"], result["widths"]
    fig, axes = plt.subplots(2, len(widths), figsize=(3.0 * len(widths), 5.2), squeeze=False)
    for col, h in enumerate(widths):
        cell = blobs[f"k=2,spread=1,h={h}"][0]
        for row, which in enumerate(("init", "final")):
            ev = np.array(cell[which]["eigenvalues"])
            ax = axes[row][col]
            ax.hist(ev, bins=40, log=True, color="tab:blue" if which == "init" else "tab:red")
            ax.set_title(f"h={h} ({len(ev)} params), {which}, |g|={cell[which]['grad_norm']:.0e}", fontsize=8)
            ax.set_xlabel("eigenvalue", fontsize=8)
    axes[0][0].set_ylabel("count (log)")
    axes[1][0].set_ylabel("count (log)")
    return save_figure(fig, outdir, "hs-spectra-by-width.png")


def outliers_spread_init(result: dict, outdir: Path) -> str:
    blobs, widths, spreads = result["blobs"], result["widths"], result["spreads"]
    seeds = range(result["seeds"])
    mid = widths[len(widths) // 2]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.8))
    cells = [
        ("blobs k=2", 2, blobs[f"k=2,spread=1,h={mid}"]),
        ("blobs k=4", 4, blobs[f"k=4,spread=1,h={mid}"]),
        ("digits k=10", 10, result["digits"]),
    ]
    x = np.arange(len(cells))
    for off, which in ((-0.15, "init"), (0.15, "final")):
        means = [np.mean([c[s][which]["n_outliers"] for s in seeds]) for _, _, c in cells]
        ax1.bar(x + off, means, width=0.3, label=which)
    ax1.scatter(x, [k for _, k, _ in cells], color="k", marker="_", s=400, label="k (classes)", zorder=3)
    ax1.set_xticks(x, [name for name, _, _ in cells])
    ax1.set(ylabel="gap-count outliers", title=f"outliers vs classes (h={mid})")
    ax1.legend(fontsize=8)
    for which, style in (("final", "o-"), ("init", "x--")):
        tops = np.array(
            [[np.mean([blobs[f"k=4,spread={sp:g},h={mid}"][s][which]["top"][i] for s in seeds]) for sp in spreads]
             for i in range(4)]
        )  # fmt: skip
        for i, row in enumerate(tops):
            ax2.semilogy(spreads, row, style, color=f"C{i}", label=f"lambda_{i + 1} {which}")
    ax2.set(xlabel="blob spread", ylabel="eigenvalue", title=f"top eigenvalues vs spread (k=4, h={mid})")
    ax2.legend(fontsize=6, ncol=2)
    ax3.hist(result["init_lambda_max"], bins=30, color="tab:gray")
    ax3.set(
        xlabel="lambda_max at init",
        ylabel="count",
        title=f"top eigenvalue over {len(result['init_lambda_max'])} random inits",
    )
    return save_figure(fig, outdir, "hs-outliers-spread-init.png")


def negative_part(result: dict, outdir: Path) -> str:
    seeds = range(result["seeds"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    trained = [c[s]["final"] for c in [*result["blobs"].values(), result["digits"]] for s in seeds]
    convex = [c[s]["final"] for c in result["convex"].values() for s in seeds]
    for name, cells, color in (("trained nets", trained, "tab:red"), ("convex control", convex, "tab:gray")):
        ax.scatter([c["grad_norm"] for c in cells], [c["neg_ratio"] for c in cells], s=12, color=color, label=name)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-8)
    ax.axvline(result["grad_target"], color="k", ls=":", lw=0.8)
    ax.set(
        xlabel="gradient norm at the spectrum",
        ylabel="-lambda_min / lambda_max of H + wd I",
        title="negative part",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, outdir, "hs-negative.png")


def slq_density(result: dict, outdir: Path) -> str:
    real = result["real"]
    fig, axes = plt.subplots(1, len(real), figsize=(6 * len(real), 3.6), squeeze=False)
    for ax, (name, runs) in zip(axes[0], real.items(), strict=True):
        for which, color in (("init", "tab:blue"), ("final", "tab:red")):
            r = runs[0][which]
            ax.semilogy(r["grid"], np.maximum(r["density"], 1e-12), color=color, label=which)
        ax.set(
            title=f"{name} ({runs[0]['final']['n_params']:,} params): SLQ density, seed 0",
            xlabel="eigenvalue",
            ylabel="density (log)",
            ylim=(1e-8, None),
        )
        ax.legend(fontsize=8)
    return save_figure(fig, outdir, "hs-slq-density.png")


def figures(result: dict, outdir: Path) -> list[str]:
    """All of the study's figures; returns the png names."""
    return [
        spectra_by_width(result, outdir),
        outliers_spread_init(result, outdir),
        negative_part(result, outdir),
        slq_density(result, outdir),
    ]

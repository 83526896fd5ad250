"""Figures of the large-batch study (matplotlib, Agg): parametric plots, sharpness bars, spectral densities,
warm start, sharpness-vs-loss trajectories and the batch-size sweep. Draws `result` only; computes nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from genlab.studies.figures import save_figure
from genlab.studies.large_batch_claims import phi


def draw_figures(result: dict, outdir: Path) -> list[str]:
    """Write the study's figures into `outdir` and return their file names."""
    names = []
    for setup, cells in result["setups"].items():
        tag = setup.replace("/", "-")
        c0 = cells[0]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for ax, path in zip(axes, ("linear", "sine"), strict=True):
            p = c0["paths"]["LB"][path]
            acc_ax = ax.twinx()
            for split, style in (("train", "-"), ("test", "--")):
                ax.semilogy(
                    p["alpha"],
                    np.clip(p[f"{split}_loss"], 1e-8, None),
                    style,
                    color="tab:blue",
                    label=f"{split} loss",
                )
                acc_ax.plot(p["alpha"], p[f"{split}_acc"], style, color="tab:red", label=f"{split} accuracy")
            for a, lab in ((0, "x_s (SB)"), (1, "x_l (LB)")):
                ax.axvline(a, color="k", lw=0.6, ls=":")
                ax.text(a, ax.get_ylim()[1], lab, fontsize=8, ha="center", va="bottom")
            ax.set(xlabel="alpha", ylabel="cross-entropy (log)", title=f"{setup}: {path} path, seed 0")
            acc_ax.set_ylabel("accuracy")
            lines = ax.get_lines()[:2] + acc_ax.get_lines()
            ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper center")
        names.append(save_figure(fig, outdir, f"lb-parametric-{tag}.png"))

        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        keys = list(c0["min"]["SB"]["phi"])
        width = 0.8 / (2 * len(cells))
        for i, c in enumerate(cells):
            x = np.arange(len(keys))
            axes[0].bar(
                x + (2 * i) * width,
                [c["min"]["SB"]["phi"][k] or 0.0 for k in keys],
                width,
                color="tab:blue",
                label="SB" if i == 0 else None,
            )
            axes[0].bar(
                x + (2 * i + 1) * width,
                [c["min"]["LB"]["phi"][k] or 0.0 for k in keys],
                width,
                color="tab:red",
                label="LB" if i == 0 else None,
            )
        axes[0].set_xticks(
            np.arange(len(keys)) + 0.4 - width / 2, [k.replace("/", "\n") for k in keys], fontsize=8
        )
        axes[0].set(
            yscale="log", ylabel="phi (eps / subspace)", title="Keskar sharpness at matched loss, per seed"
        )
        axes[0].legend()
        for name, color in (("SB", "tab:blue"), ("LB", "tab:red")):
            m = c0["min"][name]
            axes[1].semilogy(m["grid"], np.clip(m["density"], 1e-10, None), color=color, label=name)
        axes[1].set(
            xlabel="eigenvalue",
            ylabel="SLQ density (log)",
            title="Hessian spectral density, seed 0",
            ylim=(1e-8, None),
        )
        axes[1].legend()
        for name, color in (("SB", "tab:blue"), ("LB", "tab:red"), ("SBc", "tab:gray")):
            for j, c in enumerate(cells):
                rows = [r for r in c["traj"][name] if r["phi"]]
                axes[2].loglog(
                    [r["loss"] for r in rows],
                    [r["phi"] for r in rows],
                    "o-",
                    ms=3,
                    color=color,
                    alpha=0.8,
                    label=name if j == 0 else None,
                )
        axes[2].invert_xaxis()
        axes[2].set(
            xlabel="training cross-entropy (decreasing ->)",
            ylabel="phi (eps 1e-3)",
            title="sharpness along the iterates (Fig. 6)",
        )
        axes[2].legend()
        names.append(save_figure(fig, outdir, f"lb-sharpness-{tag}.png"))

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        ks = [0, *result["warm"]]
        runs = ["LB", *(f"warm{k}" for k in result["warm"])]

        acc = np.array([[c["final"][n]["test_acc"] for n in runs] for c in cells])
        sharp = np.array([[phi(c, n) for n in runs] for c in cells])
        ax2 = axes[0].twinx()
        axes[0].errorbar(ks, acc.mean(0), acc.std(0), color="tab:green", marker="o", label="test accuracy")
        ax2.errorbar(ks, sharp.mean(0), sharp.std(0), color="tab:purple", marker="s", label="phi")
        axes[0].set(
            xlabel="SB warm-up epochs k (then LB to the matched loss)",
            ylabel="test accuracy",
            title="warm start (Fig. 5)",
        )
        ax2.set_ylabel("phi (eps 1e-3)")
        sweep = sorted(
            {
                c["final"][n]["batch_size"]
                for c in cells
                for n in c["final"]
                if n in ("SB", "LB") or n.startswith("bs")
            }
        )

        def by_bs(c: dict, b: int, key: str) -> float:
            n = next(
                n
                for n in c["final"]
                if (n in ("SB", "LB") or n.startswith("bs")) and c["final"][n]["batch_size"] == b
            )
            return c["final"][n]["test_acc"] if key == "acc" else phi(c, n)

        acc = np.array([[by_bs(c, b, "acc") for b in sweep] for c in cells])
        sharp = np.array([[by_bs(c, b, "phi") for b in sweep] for c in cells])
        ax3 = axes[1].twinx()
        axes[1].errorbar(sweep, acc.mean(0), acc.std(0), color="tab:green", marker="o")
        ax3.errorbar(sweep, sharp.mean(0), sharp.std(0), color="tab:purple", marker="s")
        axes[1].set(
            xscale="log", xlabel="batch size", ylabel="test accuracy (green)", title="batch-size sweep (Fig. 4)"
        )
        ax3.set_ylabel("phi (purple)")
        names.append(save_figure(fig, outdir, f"lb-warm-sweep-{tag}.png"))
    return names

"""Study `hessian-spectrum`: Sagun, Bottou & LeCun, "Eigenvalues of the Hessian in deep learning" (2016/17).

Exact Hessian spectra (`probes.full_spectrum`, float64) of small MLPs 2 -> h -> h -> k on 2-D Gaussian blobs
(centers on a circle, so `spread` alone sets the difficulty), at init and after full-batch gradient descent
with a constant step (until the gradient norm is below 1e-4 or the preset's step budget); the same for a
~1.5k-parameter MLP on digits; and, for bigger nets on real data (an 85k-parameter MLP and a CNN on digits),
the spectral density by stochastic Lanczos quadrature plus the top eigenvalues by Lanczos.

Rules, applied the same way everywhere (lambda_max: the largest eigenvalue of that Hessian):
- bulk share: the fraction of eigenvalues with |lambda| < 1e-3 lambda_max (1e-2 for SLQ, whose quadrature
  nodes blur the bulk);
- outliers: the eigenvalues above 5% of lambda_max (for SLQ: n_params x the estimated mass above it);
- negative eigenvalues: lambda < -1e-6 lambda_max ("small" when above -0.1 lambda_max).
Claims (STUDIES.md): HS-bulk, HS-outliers, HS-data, HS-neg, HS-real. The top eigenvalue at random inits is
sampled over `inits` initial points (the paper used 5,000; `quick` uses 50).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from genlab.probes import Objective, full_spectrum, spectral_density, top_eigenvalues
from genlab.spec import RunSpec, TrainSpec
from genlab.store import model_from_state
from genlab.studies.base import Context, Preset, Study
from genlab.studies.figures import save_figure
from genlab.studies.verdict import Verdict, judge
from genlab.studies.verdict import spearman as rho
from genlab.train import Run, build_model, load_data

BULK_TAU, SLQ_BULK_TAU, OUTLIER_TAU, NEG_TAU = 1e-3, 1e-2, 0.05, 1e-6
_REAL_NETS = {"mlp-256x2": {"name": "mlp", "widths": [256, 256]}, "cnn": {"name": "cnn"}}


def spectrum_stats(ev: np.ndarray) -> dict:
    """Bulk share, outlier count, extreme eigenvalues of an exact spectrum (rules in the module docstring)."""
    lmax = float(ev.max())
    return {
        "lambda_max": lmax,
        "lambda_min": float(ev.min()),
        "top": sorted(ev.tolist(), reverse=True)[:10],
        "bulk_share": float(np.mean(np.abs(ev) < BULK_TAU * lmax)),
        "n_outliers": int(np.sum(ev > OUTLIER_TAU * lmax)),
        "n_negative": int(np.sum(ev < -NEG_TAU * lmax)),
        "neg_ratio": float(-min(ev.min(), 0.0) / lmax),
    }


class HessianSpectrumStudy(Study):
    name = "hessian-spectrum"
    title = "Bulk and outliers of the Hessian spectrum (Sagun et al.)"
    paper = "Sagun, Bottou, LeCun: Eigenvalues of the Hessian in deep learning: singularity and beyond (2016)"
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "2 seeds, widths 2/6, 30 GD steps, 5 inits, tiny SLQ (seconds; for tests)",
            {
                "widths": [2, 6],
                "spreads": [0.5, 1.0],
                "steps": 30,
                "digits_steps": 10,
                "real_epochs": 1,
                "inits": 5,
                "digits_widths": [4],
                "slq": (2, 16),
                "n_train": 200,
                "real": {"name": "digits", "train_subset": 300},
                "nets": {"mlp-32": {"name": "mlp", "widths": [32]}, "cnn": {"name": "cnn", "channels": [4, 8]}},
            },
        ),
        "quick": Preset(
            3,
            "3 seeds, widths 2-18, 600 GD steps, 50 inits, SLQ on an 85k MLP and a CNN",
            {
                "widths": [2, 6, 10, 14, 18],
                "spreads": [0.5, 1.0, 1.5, 2.0],
                "steps": 600,
                "digits_steps": 300,
                "real_epochs": 10,
                "inits": 50,
                "digits_widths": [20],
                "slq": (5, 48),
                "n_train": 1000,
                "real": {"name": "digits"},
                "nets": _REAL_NETS,
            },
        ),
        "paper": Preset(
            5,
            "5 seeds, widths 2-18 on blobs, 5,000 inits, MNIST (--data-root) for the real nets",
            {
                "widths": [2, 6, 10, 14, 18],
                "spreads": [0.5, 1.0, 1.5, 2.0],
                "steps": 20000,
                "digits_steps": 5000,
                "real_epochs": 20,
                "inits": 5000,
                "digits_widths": [20],
                "slq": (10, 100),
                "n_train": 1000,
                "real": {"name": "mnist"},
                "nets": _REAL_NETS,
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    def blob_spec(self, ctx: Context, k: int, spread: float, h: int, seed: int) -> RunSpec:
        n = ctx.params["n_train"]
        data = {
            "name": "blobs",
            "n_classes": k,
            "dim": 2,
            "n_train": n,
            "n_test": n // 2,
            "spread": spread,
            "layout": "circle",
            "center_scale": 2.0,
        }
        steps = ctx.params["steps"]
        train = TrainSpec(
            optimizer="sgd",
            lr=1.0,
            batch_size=n,
            epochs=steps,
            target_grad_norm=1e-4,
            eval_every=max(1, steps // 20),
        )
        return RunSpec(data=data, model={"name": "mlp", "widths": [h, h]}, train=train, seed=seed)

    def blob_configs(self, ctx: Context) -> list[tuple[int, float, int]]:
        """(k, spread, width): both k at spread 1 over all widths; the spread sweep at k=4, width 10."""
        widths, mid = ctx.params["widths"], ctx.params["widths"][len(ctx.params["widths"]) // 2]
        configs = [(k, 1.0, h) for k in (2, 4) for h in widths]
        return configs + [(4, s, mid) for s in ctx.params["spreads"] if (4, s, mid) not in configs]

    def digits_spec(self, ctx: Context, seed: int) -> RunSpec:
        steps = ctx.params["digits_steps"]
        train = TrainSpec(optimizer="sgd", lr=0.5, batch_size=1437, epochs=steps, eval_every=max(1, steps // 20))
        model = {"name": "mlp", "widths": ctx.params["digits_widths"]}
        return RunSpec(data={"name": "digits"}, model=model, train=train, seed=seed)

    def real_specs(self, ctx: Context, seed: int) -> dict[str, RunSpec]:
        data = dict(ctx.params["real"])
        if data["name"] == "mnist":
            data["root"] = ctx.data_root or ""
        train = TrainSpec(optimizer="adam", lr=1e-3, batch_size=64, epochs=ctx.params["real_epochs"])
        return {
            name: RunSpec(data=data, model=model, train=train, seed=seed)
            for name, model in ctx.params["nets"].items()
        }

    def plan(self, ctx: Context) -> list[RunSpec]:
        specs = []
        for seed in range(ctx.seeds):
            specs += [self.blob_spec(ctx, k, s, h, seed) for k, s, h in self.blob_configs(ctx)]
            specs += [self.digits_spec(ctx, seed), *self.real_specs(ctx, seed).values()]
        return specs

    # ---------------------------------------------------------------- analyze
    @staticmethod
    def objective(run: Run, state: dict, dtype: torch.dtype | None = None) -> Objective:
        """The training-set objective at `state`. Small nets skip the HVP-method timing (reuse-graph)."""
        data = load_data(run.spec)
        model = model_from_state(run.spec, state, data)
        method = "reuse-graph" if dtype == torch.float64 else "auto"
        return Objective(model, data=(data.x_train, data.y_train), dtype=dtype, hvp_method=method)

    def exact(self, ctx: Context, run: Run) -> dict:
        out = {}
        for which, state in (("init", run.init_state), ("final", run.final_state)):

            def compute(state: dict = state) -> dict:
                ev = full_spectrum(self.objective(run, state, torch.float64)).eigenvalues.numpy()
                return {"eigenvalues": ev.tolist(), **spectrum_stats(ev)}

            out[which] = ctx.store.cached_probe(
                run.spec.run_id, "full_spectrum", {"at": which, "dtype": "float64"}, compute
            )
        out["train_acc"], out["steps"] = run.final["train_acc"], run.steps
        out["grad_norm"] = run.final.get("grad_norm")
        return out

    def slq(self, ctx: Context, run: Run) -> dict:
        n_probes, steps = ctx.params["slq"]

        def compute() -> dict:
            obj = self.objective(run, run.final_state)
            top = top_eigenvalues(obj, k=10)
            dens = spectral_density(obj, n_probes=n_probes, lanczos_steps=steps)
            lmax = float(top.eigenvalues[0])
            near_zero = float(((dens.nodes.abs() < SLQ_BULK_TAU * lmax) * dens.weights).sum(1).mean())
            return {
                "top": top.eigenvalues.tolist(),
                "lambda_max": lmax,
                "bulk_share": near_zero,
                "n_outliers": round(obj.n_params * dens.fraction_above(OUTLIER_TAU * lmax)),
                "n_params": obj.n_params,
                "grid": dens.grid.tolist(),
                "density": dens.density.tolist(),
                "n_hvp": top.n_hvp + dens.n_hvp,
            }

        return ctx.store.cached_probe(run.spec.run_id, "slq", {"probes": n_probes, "steps": steps}, compute)

    def init_distribution(self, ctx: Context) -> list[float]:
        """Largest Hessian eigenvalue at `inits` random initial points (k=2, spread 1, middle width)."""
        h = ctx.params["widths"][len(ctx.params["widths"]) // 2]
        spec = self.blob_spec(ctx, 2, 1.0, h, 0)
        data = load_data(spec)
        values = []
        for i in range(ctx.params["inits"]):
            model = build_model(spec.replace(seed=10_000 + i), data)
            obj = Objective(
                model, data=(data.x_train, data.y_train), dtype=torch.float64, hvp_method="reuse-graph"
            )
            values.append(float(full_spectrum(obj).eigenvalues[-1]))
        return values

    def analyze(self, ctx: Context) -> dict:
        blobs: dict = {}
        for k, s, h in self.blob_configs(ctx):
            blobs[f"k={k},spread={s:g},h={h}"] = [
                {"k": k, "spread": s, "width": h, **self.exact(ctx, ctx.run(self.blob_spec(ctx, k, s, h, seed)))}
                for seed in range(ctx.seeds)
            ]
        digits = [{"k": 10, **self.exact(ctx, ctx.run(self.digits_spec(ctx, seed)))} for seed in range(ctx.seeds)]
        real = {
            name: [self.slq(ctx, ctx.run(self.real_specs(ctx, seed)[name])) for seed in range(ctx.seeds)]
            for name in self.real_specs(ctx, 0)
        }
        return {
            "seeds": ctx.seeds,
            "widths": ctx.params["widths"],
            "spreads": ctx.params["spreads"],
            "blobs": blobs,
            "digits": digits,
            "real": real,
            "init_lambda_max": self.init_distribution(ctx),
        }

    # ---------------------------------------------------------------- claims
    def claims(self, result: dict) -> list[Verdict]:
        seeds, blobs = range(result["seeds"]), result["blobs"]
        width_cells = [c for c in blobs.values() if c[0]["spread"] == 1.0]

        bulk_rho = [
            rho([c[s]["width"] for c in width_cells], [c[s]["final"]["bulk_share"] for c in width_cells])
            for s in seeds
        ]
        by_width = {
            h: np.mean([c[s]["final"]["bulk_share"] for c in width_cells if c[0]["width"] == h for s in seeds])
            for h in result["widths"]
        }
        out_cells = [c for c in width_cells if c[0]["width"] >= 6] + [result["digits"]]
        out_rho = [
            rho([c[s]["k"] for c in out_cells], [c[s]["final"]["n_outliers"] for c in out_cells]) for s in seeds
        ]
        by_k = {
            k: np.mean([c[s]["final"]["n_outliers"] for c in out_cells if c[0]["k"] == k for s in seeds])
            for k in (2, 4, 10)
        }
        spread_cells = [blobs[key] for key in blobs if blobs[key][0]["k"] == 4]
        mid = result["widths"][len(result["widths"]) // 2]
        spread_cells = sorted((c for c in spread_cells if c[0]["width"] == mid), key=lambda c: c[0]["spread"])
        data_rho = [
            rho([c[s]["spread"] for c in spread_cells], [c[s]["final"]["lambda_max"] for c in spread_cells])
            for s in seeds
        ]
        all_cells = [*blobs.values(), result["digits"]]
        neg = [
            np.mean([0 < c[s]["final"]["neg_ratio"] < 0.1 and c[s]["final"]["n_negative"] > 0 for c in all_cells])
            for s in seeds
        ]
        real = result["real"]
        real_bulk = [min(real[name][s]["bulk_share"] for name in real) for s in seeds]
        return [
            judge(
                "HS-bulk",
                "The spectrum is a bulk at zero plus a few outliers; the bulk's share grows with width",
                bulk_rho,
                quantity="Spearman rho(width, bulk share |lambda| < 1e-3 lambda_max), k=2 and k=4",
                detail="mean bulk share by width: " + ", ".join(f"h={h}: {v:.2f}" for h, v in by_width.items()),
                paper="Fig. 3-4: most eigenvalues sit at zero; more so for larger networks",
            ),
            judge(
                "HS-outliers",
                "The number of outliers tracks the number of classes",
                out_rho,
                quantity="Spearman rho(classes, outliers > 5% of lambda_max) over blobs k=2,4 (h>=6) and digits",
                detail="mean outliers by classes: " + ", ".join(f"k={k}: {v:.1f}" for k, v in by_k.items()),
                paper="Sec. 3: roughly as many large eigenvalues as classes/clusters",
            ),
            judge(
                "HS-data",
                "Outliers grow as the data get harder (larger spread)",
                data_rho,
                quantity=f"Spearman rho(spread, lambda_max), k=4, h={mid}",
                detail="bulk share by spread: "
                + ", ".join(
                    f"{c[0]['spread']:g}: {np.mean([c[s]['final']['bulk_share'] for s in seeds]):.2f}"
                    for c in spread_cells
                ),
                paper="Fig. 5: top eigenvalues increase with the data's spread while the bulk stays at zero",
            ),
            judge(
                "HS-neg",
                "Small negative eigenvalues remain after training",
                [v - 0.5 for v in neg],
                quantity="share of trained nets with eigenvalues in (-0.1, -1e-6) x lambda_max, minus 0.5",
                detail="shares per seed: " + ", ".join(f"{v:.2f}" for v in neg),
                paper="Sec. 3: a few small negative eigenvalues persist at the end of training",
            ),
            judge(
                "HS-real",
                "Bigger nets on real data show the same bulk (SLQ)",
                [v - 0.9 for v in real_bulk],
                quantity="lowest SLQ mass with |lambda| < 1e-2 lambda_max (MLP and CNN on digits), minus 0.9",
                detail="; ".join(
                    f"{name}: bulk {np.mean([r['bulk_share'] for r in rs]):.3f}, outliers "
                    f"{np.mean([r['n_outliers'] for r in rs]):.1f}, lambda_max "
                    f"{np.mean([r['lambda_max'] for r in rs]):.3g}, {rs[0]['n_params']} params"
                    for name, rs in real.items()
                ),
                paper="the researcher's request: the same picture on real data with bigger nets",
            ),
        ]

    # ---------------------------------------------------------------- figures
    def figures(self, result: dict, outdir: Path) -> list[str]:
        blobs, widths = result["blobs"], result["widths"]
        names = []
        fig, axes = plt.subplots(2, len(widths), figsize=(3.0 * len(widths), 5.2), squeeze=False)
        for col, h in enumerate(widths):
            cell = blobs[f"k=2,spread=1,h={h}"][0]
            for row, which in enumerate(("init", "final")):
                ev = np.array(cell[which]["eigenvalues"])
                ax = axes[row][col]
                ax.hist(ev, bins=40, log=True, color="tab:blue" if which == "init" else "tab:red")
                ax.set_title(f"h={h} ({len(ev)} params), {which}", fontsize=9)
                ax.set_xlabel("eigenvalue", fontsize=8)
        axes[0][0].set_ylabel("count (log)")
        axes[1][0].set_ylabel("count (log)")
        names.append(save_figure(fig, outdir, "hs-spectra-by-width.png"))

        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.8))
        seeds = range(result["seeds"])
        for k in (2, 4):
            cells = [blobs[f"k={k},spread=1,h={h}"] for h in widths]
            ax1.plot(
                widths,
                [np.mean([c[s]["final"]["n_outliers"] for s in seeds]) for c in cells],
                "o-",
                label=f"blobs, k={k}",
            )
        ax1.axhline(2, color="tab:blue", ls=":", lw=0.8)
        ax1.axhline(4, color="tab:orange", ls=":", lw=0.8)
        digits = np.mean([r["final"]["n_outliers"] for r in result["digits"]])
        ax1.scatter([widths[-1]], [digits], color="k", marker="s", label="digits (k=10, 1.5k params)")
        ax1.set(xlabel="width h", ylabel="outliers (> 5% of lambda_max)", title="outlier count vs classes")
        ax1.legend(fontsize=8)
        mid = widths[len(widths) // 2]
        spreads = result["spreads"]
        tops = np.array(
            [
                [
                    np.mean([blobs[f"k=4,spread={sp:g},h={mid}"][s]["final"]["top"][i] for s in seeds])
                    for sp in spreads
                ]
                for i in range(5)
            ]
        )
        for i, row in enumerate(tops):
            ax2.plot(spreads, row, "o-", label=f"lambda_{i + 1}")
        ax2.set(xlabel="blob spread", ylabel="eigenvalue", title=f"top eigenvalues vs spread (k=4, h={mid})")
        ax2.legend(fontsize=8)
        ax3.hist(result["init_lambda_max"], bins=30, color="tab:gray")
        ax3.set(
            xlabel="lambda_max at init",
            ylabel="count",
            title=f"top eigenvalue over {len(result['init_lambda_max'])} random inits",
        )
        names.append(save_figure(fig, outdir, "hs-outliers-spread-init.png"))

        fig, axes = plt.subplots(1, len(result["real"]), figsize=(6 * len(result["real"]), 3.6), squeeze=False)
        for ax, (name, runs) in zip(axes[0], result["real"].items(), strict=True):
            r = runs[0]
            ax.semilogy(r["grid"], np.maximum(r["density"], 1e-12))
            ax.set(
                title=f"{name} ({r['n_params']:,} params): SLQ density, seed 0",
                xlabel="eigenvalue",
                ylabel="density (log)",
                ylim=(1e-8, None),
            )
        names.append(save_figure(fig, outdir, "hs-slq-density.png"))
        return names

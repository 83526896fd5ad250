"""Study `hessian-spectrum`: Sagun, Bottou & LeCun, "Eigenvalues of the Hessian in deep learning" (2016/17).

Protocol. Exact Hessian spectra (`probes.full_spectrum`, float64) of the data loss of small MLPs 2 -> h -> h -> k
on 2-D Gaussian blobs (centers on a circle, so `spread` alone sets the difficulty) and of a 64 -> 16 -> 16 -> 10
MLP on digits, at init and at a critical point of the training objective: full-batch Adam (lr 0.01) for
`steps` steps, then full-batch float64 L-BFGS (`train.polish="lbfgs"`) until the gradient norm is <= 1e-5 or
`polish_steps` iterations. Beside every spectrum the float64 gradient norm of the objective is recorded, measured
at the stored parameters the spectrum is computed at; the claims' details say how many spectra reached 1e-5.
For bigger nets on real data (an 85k-parameter MLP and a CNN, Adam mini-batches, not critical points) the
spectral density by stochastic Lanczos quadrature (SLQ) plus the top eigenvalues by Lanczos, at init and trained.

Deviations from the paper, and why:
- tanh instead of ReLU: with ReLU the loss is only piecewise smooth, and neither L-BFGS nor damped Newton with
  the exact Hessian got below gradient norm 1e-3 (kinks); critical points need a smooth loss.
- L2 weight decay `wd` (1e-3) in the objective: cross-entropy on data a net can separate has no finite
  minimizer (the loss falls to 0 as the weights grow, and "gradient norm -> 0" happens only at infinity; without
  it L-BFGS kept descending and lambda_max kept growing). The spectra are of the *data loss* Hessian H at the
  critical point of loss + wd/2 ||theta||^2, whose Hessian is H + wd I. Two consequences, handled explicitly:
  eigenvalues of H down to -wd are what a minimum of the objective allows (measured: lambda_min(H) sits at
  -0.5..-1 wd in almost every trained net), so HS-neg is judged on H + wd I; and flat directions sit within wd
  (~3e-3 lambda_max) of zero, so "at zero" is |lambda| < 1e-2 lambda_max (as for SLQ).
- Adam then L-BFGS instead of constant-step GD: the endpoint is set by the polish's line search, so the
  stability limit 2/lr of GD cannot pin lambda_max (the old protocol found lambda_max ~ 2/lr).

Rules (lambda_max: the largest eigenvalue of that Hessian), the same at init and trained:
- bulk share: the fraction of eigenvalues with |lambda| < 1e-2 lambda_max (the same for SLQ);
- outliers (gap count): among the top `GAP_TOP` positive eigenvalues (descending), the number above the largest
  gap in log(lambda) between neighbours;
- negative part: -lambda_min / lambda_max of the objective's Hessian H + wd I (continuous; <= 0 when PSD);
  the same ratio of H alone is kept as `loss_neg_ratio` and quoted in HS-neg's detail.
Claims (STUDIES.md) and their controls:
- HS-bulk: per seed, the least-squares slope of bulk share on log2(width) (k=2, spread 1); control: at init;
  part: the bulk share at the widest net exceeds 0.5.
- HS-outliers: per seed, 1 - mean over cells |log2(gap count / k)| (blobs k=2 and k=4 at the middle width,
  digits k=10): > 0 means the count is within a factor 2 of k on average; control: at init.
- HS-data: per seed, the slope of log10(mean of the top-k eigenvalues) on spread (k=4, middle width); control:
  at init; part: the bulk share stays above 0.5 at every spread.
- HS-neg: per seed, the mean over trained nets of the negative part, threshold 1e-6 (a numerical floor);
  control: the convex model (multinomial logistic regression, `widths: []`, PSD Hessian) on the same data,
  trained the same way; part: "small": 0.1 minus the largest ratio is > 0.
- HS-real: per seed, the lowest SLQ bulk mass over the big nets minus 0.9; control: at init.
The top eigenvalue at random inits is sampled over `inits` initial points (the paper used 5,000) for a figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from genlab.probes import Objective, full_spectrum, spectral_density, top_eigenvalues
from genlab.spec import RunSpec, TrainSpec
from genlab.store import model_from_state
from genlab.studies.base import Context, Preset, Study
from genlab.studies.verdict import Control, Verdict, judge, part, slope
from genlab.train import Run, build_model, load_data

BULK_TAU, SLQ_BULK_TAU, OUTLIER_TAU, NEG_FLOOR, SMALL_NEG = 1e-2, 1e-2, 0.05, 1e-6, 0.1
GAP_TOP, GRAD_TARGET, WD = 30, 1e-5, 1e-3
_REAL_NETS = {"mlp-256x2": {"name": "mlp", "widths": [256, 256]}, "cnn": {"name": "cnn"}}
_BLOBS = {"dim": 2, "layout": "circle", "center_scale": 2.0}


# ---------------------------------------------------------------- measurements and claim quantities
def gap_count(ev: np.ndarray, top: int = GAP_TOP) -> int:
    """Outliers by the largest log-gap: among the `top` largest positive eigenvalues (descending), the number
    above the largest gap log(lambda_i / lambda_{i+1}); 0 when fewer than two are positive."""
    pos = np.sort(np.asarray(ev, dtype=float)[np.asarray(ev) > 0])[::-1][:top]
    if len(pos) < 2:
        return 0
    return int(np.argmax(np.log(pos[:-1] / pos[1:])) + 1)


def spectrum_stats(ev: np.ndarray, wd: float = 0.0) -> dict:
    """Bulk share, outlier counts, extreme eigenvalues of an exact spectrum of the data loss (rules in the module
    docstring); `neg_ratio` is that of the objective's Hessian H + wd I, `loss_neg_ratio` that of H."""
    lmax, lmin = float(ev.max()), float(ev.min())
    return {
        "lambda_max": lmax,
        "lambda_min": lmin,
        "top": sorted(ev.tolist(), reverse=True)[:10],
        "bulk_share": float(np.mean(np.abs(ev) < BULK_TAU * lmax)),
        "n_outliers": gap_count(ev),
        "n_above_5pct": int(np.sum(ev > OUTLIER_TAU * lmax)),
        "neg_ratio": neg_ratio(lmin + wd, lmax + wd),
        "loss_neg_ratio": neg_ratio(lmin, lmax),
    }


def neg_ratio(lambda_min: float, lambda_max: float) -> float:
    """-lambda_min / lambda_max (continuous, <= 0 for a PSD Hessian); NaN when lambda_max <= 0."""
    return -lambda_min / lambda_max if lambda_max > 0 else math.nan


def bulk_width_slope(cells: list[dict]) -> float:
    """Least-squares slope of bulk share on log2(width) over one seed's cells ({"width", "bulk_share"})."""
    return slope([math.log2(c["width"]) for c in cells], [c["bulk_share"] for c in cells]).value


def outlier_score(cells: list[dict]) -> float:
    """1 - mean over cells |log2(count / k)| ({"k", "n_outliers"}); NaN if a count is 0."""
    if any(c["n_outliers"] <= 0 for c in cells):
        return math.nan
    return 1.0 - float(np.mean([abs(math.log2(c["n_outliers"] / c["k"])) for c in cells]))


def top_k_mean(stats: dict, k: int) -> float:
    return float(np.mean(stats["top"][:k]))


def data_slope(cells: list[dict]) -> float:
    """Slope of log10(mean of the top-k eigenvalues) on spread ({"spread", "k", "top"}); NaN if one is <= 0."""
    tops = [top_k_mean(c, c["k"]) for c in cells]
    if min(tops) <= 0:
        return math.nan
    return slope([c["spread"] for c in cells], [math.log10(t) for t in tops]).value


def mean_neg_ratio(cells: list[dict]) -> float:
    """Mean over one seed's spectra of -lambda_min / lambda_max."""
    return float(np.mean([c["neg_ratio"] for c in cells]))


def real_bulk(cells: list[dict]) -> float:
    """The lowest SLQ bulk mass over one seed's big nets, minus 0.9."""
    return min(c["bulk_share"] for c in cells) - 0.9


class HessianSpectrumStudy(Study):
    name = "hessian-spectrum"
    title = "Bulk and outliers of the Hessian spectrum (Sagun et al.)"
    paper = "Sagun, Bottou, LeCun: Eigenvalues of the Hessian in deep learning: singularity and beyond (2016)"
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "2 seeds, widths 2/6, 30 Adam steps + 50 L-BFGS, 5 inits, tiny SLQ (seconds; for tests)",
            {
                "widths": [2, 6],
                "spreads": [0.5, 1.0],
                "steps": 30,
                "polish_steps": 50,
                "inits": 5,
                "digits_widths": [4],
                "slq": (2, 16),
                "n_train": 200,
                "real_epochs": 1,
                "real": {"name": "digits", "train_subset": 300},
                "nets": {"mlp-32": {"name": "mlp", "widths": [32]}, "cnn": {"name": "cnn", "channels": [4, 8]}},
            },
        ),
        "quick": Preset(
            5,
            "5 seeds, widths 2-18, Adam + L-BFGS to |g| <= 1e-5, 30 inits, SLQ on an 85k MLP and a CNN",
            {
                "widths": [2, 6, 10, 14, 18],
                "spreads": [0.5, 1.0, 1.5, 2.0],
                "steps": 300,
                "polish_steps": 1500,
                "inits": 30,
                "digits_widths": [16, 16],
                "slq": (3, 32),
                "n_train": 1000,
                "real_epochs": 10,
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
                "steps": 2000,
                "polish_steps": 20000,
                "inits": 5000,
                "digits_widths": [16, 16],
                "slq": (10, 100),
                "n_train": 1000,
                "real_epochs": 20,
                "real": {"name": "mnist"},
                "nets": _REAL_NETS,
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    def critical_train(self, ctx: Context, n: int) -> TrainSpec:
        """Full-batch Adam, then float64 L-BFGS on loss + WD/2 ||theta||^2 to gradient norm GRAD_TARGET."""
        steps = ctx.params["steps"]
        return TrainSpec(
            optimizer="adam", lr=0.01, batch_size=n, epochs=steps, weight_decay=WD, eval_every=max(1, steps // 10),
            polish="lbfgs", polish_steps=ctx.params["polish_steps"], target_grad_norm=GRAD_TARGET,
        )  # fmt: skip

    def blob_spec(self, ctx: Context, k: int, spread: float, h: int | None, seed: int) -> RunSpec:
        """Blobs with k classes; h None: the convex model (logistic regression, no hidden layer)."""
        n = ctx.params["n_train"]
        data = {"name": "blobs", "n_classes": k, "n_train": n, "n_test": n // 2, "spread": spread, **_BLOBS}
        model = {"name": "mlp", "widths": [] if h is None else [h, h], "activation": "tanh"}
        return RunSpec(data=data, model=model, train=self.critical_train(ctx, n), seed=seed)

    def blob_configs(self, ctx: Context) -> list[tuple[int, float, int]]:
        """(k, spread, width): k=2 at spread 1 over all widths; the spread sweep at k=4, middle width."""
        widths = ctx.params["widths"]
        mid = widths[len(widths) // 2]
        return [(2, 1.0, h) for h in widths] + [(4, s, mid) for s in ctx.params["spreads"]]

    def convex_configs(self, ctx: Context) -> list[tuple[int, float]]:
        return sorted({(k, s) for k, s, _ in self.blob_configs(ctx)})

    def digits_spec(self, ctx: Context, seed: int, convex: bool = False) -> RunSpec:
        widths = [] if convex else ctx.params["digits_widths"]
        model = {"name": "mlp", "widths": widths, "activation": "tanh"}
        return RunSpec(data={"name": "digits"}, model=model, train=self.critical_train(ctx, 1437), seed=seed)

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
            specs += [self.blob_spec(ctx, k, s, None, seed) for k, s in self.convex_configs(ctx)]
            specs += [self.digits_spec(ctx, seed), self.digits_spec(ctx, seed, convex=True)]
            specs += list(self.real_specs(ctx, seed).values())
        return specs

    # ---------------------------------------------------------------- analyze
    @staticmethod
    def objective(run: Run, state: dict, dtype: torch.dtype | None = None) -> Objective:
        """The training-set data loss at `state`. Small nets skip the HVP-method timing (reuse-graph)."""
        data = load_data(run.spec)
        model = model_from_state(run.spec, state, data)
        method = "reuse-graph" if dtype == torch.float64 else "auto"
        return Objective(model, data=(data.x_train, data.y_train), dtype=dtype, hvp_method=method)

    def exact(self, ctx: Context, run: Run, which: tuple[str, ...] = ("init", "final")) -> dict:
        """Spectrum statistics at init and/or the final state, each with the float64 gradient norm of the
        training objective (data loss + wd/2 ||theta||^2) at exactly the parameters the spectrum is taken at."""
        out = {}
        wd = run.spec.train.weight_decay
        for at in which:
            state = run.init_state if at == "init" else run.final_state

            def compute(state: dict = state) -> dict:
                obj = self.objective(run, state, torch.float64)
                theta = obj.params()
                grad = obj.grad(theta) + wd * theta
                ev = full_spectrum(obj, theta).eigenvalues.numpy()
                return {"eigenvalues": ev.tolist(), **spectrum_stats(ev, wd), "grad_norm": float(grad.norm())}

            params = {"at": at, "dtype": "float64", "wd": wd, "v": 3}
            out[at] = ctx.store.cached_probe(run.spec.run_id, "full_spectrum", params, compute)
        out["train_acc"], out["steps"] = run.final["train_acc"], run.steps
        out["polish_iterations"] = run.final.get("polish_iterations")
        return out

    def slq(self, ctx: Context, run: Run, at: str) -> dict:
        n_probes, steps = ctx.params["slq"]

        def compute() -> dict:
            obj = self.objective(run, run.init_state if at == "init" else run.final_state)
            top = top_eigenvalues(obj, k=3)
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

        params = {"probes": n_probes, "steps": steps, "at": at, "top": 3}
        return ctx.store.cached_probe(run.spec.run_id, "slq", params, compute)

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
        seeds = range(ctx.seeds)
        blobs = {
            f"k={k},spread={s:g},h={h}": [
                {"k": k, "spread": s, "width": h, **self.exact(ctx, ctx.run(self.blob_spec(ctx, k, s, h, seed)))}
                for seed in seeds
            ]
            for k, s, h in self.blob_configs(ctx)
        }
        convex = {
            f"k={k},spread={s:g}": [
                {
                    "k": k,
                    "spread": s,
                    **self.exact(ctx, ctx.run(self.blob_spec(ctx, k, s, None, seed)), ("final",)),
                }
                for seed in seeds
            ]
            for k, s in self.convex_configs(ctx)
        }
        convex["digits"] = [
            {"k": 10, **self.exact(ctx, ctx.run(self.digits_spec(ctx, seed, True)), ("final",))} for seed in seeds
        ]
        digits = [{"k": 10, **self.exact(ctx, ctx.run(self.digits_spec(ctx, seed)))} for seed in seeds]
        real = {
            name: [
                {at: self.slq(ctx, ctx.run(self.real_specs(ctx, seed)[name]), at) for at in ("init", "final")}
                for seed in seeds
            ]
            for name in self.real_specs(ctx, 0)
        }
        return {
            "seeds": ctx.seeds,
            "widths": ctx.params["widths"],
            "spreads": ctx.params["spreads"],
            "grad_target": GRAD_TARGET,
            "weight_decay": WD,
            "blobs": blobs,
            "digits": digits,
            "convex": convex,
            "real": real,
            "init_lambda_max": self.init_distribution(ctx),
        }

    # ---------------------------------------------------------------- claims
    @staticmethod
    def _cells(result: dict) -> dict[str, list[list[dict]]]:
        """The cell groups each claim reads (each a list of cells; a cell is a list over seeds)."""
        blobs, widths = result["blobs"], result["widths"]
        mid = widths[len(widths) // 2]
        return {
            "width": [blobs[f"k=2,spread=1,h={h}"] for h in widths],
            "outliers": [blobs[f"k=2,spread=1,h={mid}"], blobs[f"k=4,spread=1,h={mid}"], result["digits"]],
            "spread": [blobs[f"k=4,spread={s:g},h={mid}"] for s in result["spreads"]],
            "trained": [*blobs.values(), result["digits"]],
        }

    def claims(self, result: dict) -> list[Verdict]:
        seeds, groups, target = range(result["seeds"]), self._cells(result), result["grad_target"]

        def at(cells: list[list[dict]], s: int, which: str) -> list[dict]:
            return [
                {**{k: v for k, v in c[s].items() if k not in ("init", "final")}, **c[s][which]} for c in cells
            ]

        def per_seed(fn, group: str, which: str) -> list[float]:
            return [fn(at(groups[group], s, which)) for s in seeds]

        def critical(cells: list[list[dict]]) -> str:
            norms = [c[s]["final"]["grad_norm"] for c in cells for s in seeds]
            ok = sum(g <= target for g in norms)
            return f"{ok} of {len(norms)} trained spectra at gradient norm <= {target:g} (max {max(norms):.1e})"

        widest = [groups["width"][-1][s]["final"]["bulk_share"] - 0.5 for s in seeds]
        mid_bulk = [min(c["bulk_share"] for c in at(groups["spread"], s, "final")) - 0.5 for s in seeds]
        trained_neg = per_seed(mean_neg_ratio, "trained", "final")
        convex = list(result["convex"].values())
        convex_neg = [mean_neg_ratio([c[s]["final"] for c in convex]) for s in seeds]
        loss_neg = float(
            np.mean([c[s]["final"].get("loss_neg_ratio", math.nan) for c in groups["trained"] for s in seeds])
        )
        max_neg = [max(c[s]["final"]["neg_ratio"] for c in groups["trained"]) for s in seeds]
        real = list(result["real"].values())
        real_at = {w: [real_bulk([r[s][w] for r in real]) for s in seeds] for w in ("init", "final")}

        def mean_of(group: str, key: str, which: str = "final") -> str:
            return ", ".join(f"{np.mean([c[s][which][key] for s in seeds]):.3g}" for c in groups[group])

        return [
            judge(
                "HS-bulk",
                "The spectrum is a bulk at zero plus a few outliers; the bulk's share grows with width",
                per_seed(bulk_width_slope, "width", "final"),
                "slope of bulk share (|lambda| < 1e-2 lambda_max) on log2(width), k=2 blobs, trained",
                control=Control(per_seed(bulk_width_slope, "width", "init"), "the same slope at init"),
                also=[part("bulk share at the widest net > 0.5", widest, "bulk share - 0.5")],
                detail=f"bulk share by width {result['widths']}: trained {mean_of('width', 'bulk_share')}, "
                f"init {mean_of('width', 'bulk_share', 'init')}; {critical(groups['width'])}",
                paper="Fig. 3-4: most eigenvalues sit at zero; more so for larger networks",
            ),
            judge(
                "HS-outliers",
                "The number of outliers tracks the number of classes",
                per_seed(outlier_score, "outliers", "final"),
                "1 - mean |log2(gap count / k)| over blobs k=2, k=4 (middle width) and digits k=10, trained",
                control=Control(per_seed(outlier_score, "outliers", "init"), "the same score at init"),
                detail=f"mean gap count for k=2, 4, 10: trained {mean_of('outliers', 'n_outliers')}, init "
                f"{mean_of('outliers', 'n_outliers', 'init')}; {critical(groups['outliers'])}",
                paper="Sec. 3 (and Sagun et al. 2017): roughly as many large eigenvalues as classes/clusters",
            ),
            judge(
                "HS-data",
                "Outliers grow as the data get harder (larger spread) while the bulk stays at zero",
                per_seed(data_slope, "spread", "final"),
                "slope of log10(mean top-k eigenvalue) on blob spread, k=4, middle width, trained",
                control=Control(per_seed(data_slope, "spread", "init"), "the same slope at init"),
                also=[part("bulk share > 0.5 at every spread", mid_bulk, "min bulk share - 0.5")],
                detail=f"top-4 mean by spread {result['spreads']}: trained "
                + ", ".join(
                    f"{np.mean([top_k_mean(c[s]['final'], 4) for s in seeds]):.3g}" for c in groups["spread"]
                )
                + f"; bulk share {mean_of('spread', 'bulk_share')}; {critical(groups['spread'])}",
                paper="Fig. 5: top eigenvalues increase with the data's spread while the bulk stays at zero",
            ),
            judge(
                "HS-neg",
                "Small negative eigenvalues remain after training",
                trained_neg,
                "mean over trained nets (blobs, digits) of -lambda_min / lambda_max of H + wd I",
                control=Control(convex_neg, "the same for the convex model (logistic regression, PSD Hessian)"),
                threshold=NEG_FLOOR,
                also=[part("small: largest ratio < 0.1", [SMALL_NEG - v for v in max_neg], "0.1 - max ratio")],
                detail=f"threshold {NEG_FLOOR:g} is a numerical floor; of the data-loss Hessian H alone the "
                f"mean ratio is {loss_neg:.3g}, but at a minimum of loss + wd/2||theta||^2 "
                f"(wd={result['weight_decay']:g}) any lambda_min(H) >= -wd is allowed; "
                f"{critical(groups['trained'])}; convex: {critical(convex)}",
                paper="Sec. 3: a few small negative eigenvalues persist at the end of training",
            ),
            judge(
                "HS-real",
                "Bigger nets on real data show the same bulk (SLQ)",
                real_at["final"],
                "lowest SLQ mass with |lambda| < 1e-2 lambda_max over the big nets, minus 0.9, trained",
                control=Control(real_at["init"], "the same at init"),
                detail="; ".join(
                    f"{name}: bulk trained {np.mean([r['final']['bulk_share'] for r in rs]):.3f} / init "
                    f"{np.mean([r['init']['bulk_share'] for r in rs]):.3f}, outliers "
                    f"{np.mean([r['final']['n_outliers'] for r in rs]):.1f}, lambda_max "
                    f"{np.mean([r['final']['lambda_max'] for r in rs]):.3g}, {rs[0]['final']['n_params']} params"
                    for name, rs in result["real"].items()
                )
                + "; Adam mini-batch training, not a critical point",
                paper="the researcher's request: the same picture on real data with bigger nets",
            ),
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        from genlab.studies.hessian_spectrum_figures import figures

        return figures(result, outdir)

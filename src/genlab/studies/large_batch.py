"""Study `large-batch`: Keskar et al., "On large-batch training for deep learning: generalization gap and sharp
minima" (ICLR 2017). Every claim of STUDIES.md's large-batch section, measured per seed.

Protocol. Per setup (data + network) and seed, small-batch (SB, ~1% of n) and large-batch (LB, 10% of n) Adam
runs start from the same x0 (the init depends on the seed only) and train for the preset's fixed epoch budget
(the paper trains until the training loss stops improving; a fixed, documented budget keeps runs comparable
and cacheable). Measurements at both minimizers, on the training set in eval mode:
- Keskar sharpness phi (`probes.eps_sharpness`) at eps 1e-3 and 5e-4, full space and a 100-dim random subspace
  (A with orthonormal columns), 10 L-BFGS-B iterations;
- top-5 Hessian eigenvalues (Lanczos) and the SLQ spectral density; "steep" eigenvalues are those above 1% of
  lambda_max, and the steep fraction is the SLQ mass above that threshold;
- parametric plots f(alpha x_l + (1-alpha) x_s), alpha in [-1, 2], linear and sine paths, train and test, loss
  and accuracy; "which side rises faster" = train-loss rise 0.25 units of alpha beyond each endpoint;
- distances ||x - x0||.
Warm start (LB-warm): SB for k epochs, then LB for the rest of the budget (k = 0 is the LB run, k = budget the
SB run). Trajectories (LB-traj): the SB and LB runs record flat parameter snapshots (`train.snapshot_every`, the
loop's built-in callback, so they survive caching) at ~10 points; phi (eps 1e-3) and lambda_max are measured at
each against the training cross-entropy. (For BatchNorm nets, snapshots hold parameters only; probes along the
trajectory use the final running statistics.) Batch-size sweep (LB-sweep): test accuracy and phi vs batch size.
A claim's per-seed value is averaged over the preset's setups (one in smoke/quick, F1/MNIST and C1/CIFAR-10
in paper); details list each setup.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import torch

from genlab.probes import Objective, eps_sharpness, spectral_density, top_eigenvalues
from genlab.probes.landscape import interpolate
from genlab.spec import RunSpec, TrainSpec
from genlab.store import model_from_state
from genlab.studies.base import Context, Preset, Study
from genlab.studies.large_batch_figures import draw_figures
from genlab.studies.verdict import Verdict, judge
from genlab.studies.verdict import spearman as rho
from genlab.train import Run, batch_loss, load_data

SHARPNESS = [(1e-3, None), (5e-4, None), (1e-3, 100), (5e-4, 100)]  # (eps, subspace dim)
STEEP_TAU, RISE_STEP = 1e-2, 0.25
PHI_FLOOR = 1e-6  # log ratios count values below this (e.g. a phi of exactly 0: no ascent found) as this

_DIGITS_MLP = {"name": "digits", "data": {"name": "digits"}, "model": {"name": "mlp", "widths": [256, 256]}}
_PAPER = [
    {"name": "F1/MNIST", "data": {"name": "mnist"}, "model": {"name": "keskar-f1"}},
    {"name": "C1/CIFAR-10", "data": {"name": "cifar10"}, "model": {"name": "keskar-c1"}},
]


class LargeBatchStudy(Study):
    name = "large-batch"
    title = "Large-batch training and sharp minima (Keskar et al.)"
    paper = "Keskar, Mudigere, Nocedal, Smelyanskiy, Tang: On large-batch training for deep learning (ICLR 2017)"
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "digits subset (200), MLP 16, 2 epochs, 3 L-BFGS-B iterations (seconds; for tests)",
            {
                "setups": [
                    {
                        **_DIGITS_MLP,
                        "data": {"name": "digits", "train_subset": 200},
                        "model": {"name": "mlp", "widths": [16]},
                    }
                ],
                "sb": 8,
                "epochs": 2,
                "warm": [1],
                "sweep": [64],
                "snapshots": 2,
                "slq": (2, 8),
                "lr": 1e-3,
                "sharpness_iter": 3,
            },
        ),
        "quick": Preset(
            3,
            "digits, MLP 64-256-256-10, SB 16 / LB 144, Adam 1e-3, 30 epochs, 3 seeds",
            {
                "setups": [_DIGITS_MLP],
                "sb": 16,
                "epochs": 30,
                "warm": [2, 5, 10],
                "sweep": [32, 64, 288, 718],
                "snapshots": 10,
                "slq": (5, 40),
                "lr": 1e-3,
                "sharpness_iter": 10,
            },
        ),
        "paper": Preset(
            5,
            "F1 on MNIST and C1 on CIFAR-10 (--data-root), SB 256 / LB 10%, 100 epochs (GPU)",
            {
                "setups": _PAPER,
                "sb": 256,
                "epochs": 100,
                "warm": [5, 10, 25, 50],
                "sweep": [512, 1024, 2048, 4096],
                "snapshots": 10,
                "slq": (10, 80),
                "lr": 1e-3,
                "sharpness_iter": 10,
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    def n_train(self, ctx: Context, setup: dict) -> int:
        return _n_train(json.dumps(self.data(ctx, setup), sort_keys=True))

    @staticmethod
    def data(ctx: Context, setup: dict) -> dict:
        data = dict(setup["data"])
        if data["name"] in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
            data["root"] = ctx.data_root or ""
        return data

    def lb(self, ctx: Context, setup: dict) -> int:
        return max(1, round(0.1 * self.n_train(ctx, setup)))

    def spec(
        self, ctx: Context, setup: dict, bs: int, seed: int, warm: int | None = None, snapshots: bool = False
    ) -> RunSpec:
        opts: dict = {
            "optimizer": "adam",
            "lr": ctx.params["lr"],
            "batch_size": bs,
            "epochs": ctx.params["epochs"],
        }
        if warm is not None:
            opts.update(batch_size=ctx.params["sb"], switch_batch_epoch=warm, switch_batch_size=bs)
        if snapshots:
            steps = ctx.params["epochs"] * math.ceil(self.n_train(ctx, setup) / bs)
            opts["snapshot_every"] = max(1, steps // ctx.params["snapshots"])
        return RunSpec(data=self.data(ctx, setup), model=setup["model"], train=TrainSpec(**opts), seed=seed)

    def specs(self, ctx: Context, setup: dict, seed: int) -> dict[str, RunSpec]:
        sb, lb = ctx.params["sb"], self.lb(ctx, setup)
        out = {
            "SB": self.spec(ctx, setup, sb, seed, snapshots=True),
            "LB": self.spec(ctx, setup, lb, seed, snapshots=True),
        }
        out.update({f"warm{k}": self.spec(ctx, setup, lb, seed, warm=k) for k in ctx.params["warm"]})
        out.update({f"bs{b}": self.spec(ctx, setup, b, seed) for b in ctx.params["sweep"]})
        return out

    def plan(self, ctx: Context) -> list[RunSpec]:
        return [
            s
            for setup in ctx.params["setups"]
            for seed in range(ctx.seeds)
            for s in self.specs(ctx, setup, seed).values()
        ]

    # ---------------------------------------------------------------- measurements
    @staticmethod
    def objectives(run: Run, state: dict) -> tuple[Objective, Objective]:
        data = load_data(run.spec)
        model = model_from_state(run.spec, state, data)

        def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return batch_loss(logits, y, run.spec.train.loss)

        return (
            Objective(model, loss, data=(data.x_train, data.y_train)),
            Objective(model, loss, data=(data.x_test, data.y_test)),
        )

    def minimizer(self, ctx: Context, run: Run, full: bool) -> dict:
        """Sharpness (and, if `full`, eigenvalues and SLQ) at the run's final point; cached in the store."""
        n_probes, steps = ctx.params["slq"]
        iters = ctx.params["sharpness_iter"]

        def compute() -> dict:
            obj = self.objectives(run, run.final_state)[0]
            out = {"loss": obj.loss(obj.params()), "phi": {}}
            for eps, dim in SHARPNESS if full else SHARPNESS[:1]:
                out["phi"][f"{eps:g}/{dim or 'full'}"] = eps_sharpness(obj, eps, dim, iters).phi
            if full:
                top = top_eigenvalues(obj, k=5)
                dens = spectral_density(obj, n_probes=n_probes, lanczos_steps=steps)
                lmax = float(top.eigenvalues[0])
                out.update(
                    top=top.eigenvalues.tolist(),
                    steep_fraction=dens.fraction_above(STEEP_TAU * lmax),
                    grid=dens.grid.tolist(),
                    density=dens.density.tolist(),
                    n_params=obj.n_params,
                )
            return out

        params = {"sharpness": [list(s) for s in SHARPNESS], "slq": [n_probes, steps], "full": full, "iter": iters}
        return ctx.store.cached_probe(run.spec.run_id, "large-batch-minimizer", params, compute)

    def trajectory(self, ctx: Context, run: Run) -> dict:
        iters = ctx.params["sharpness_iter"]

        def compute() -> dict:
            obj = self.objectives(run, run.final_state)[0]
            rows = []
            for step, theta in zip(run.snapshot_steps, run.snapshots, strict=True):
                theta = theta.to(obj.params())
                rows.append(
                    {
                        "step": step,
                        "loss": obj.loss(theta),
                        "phi": eps_sharpness(obj, 1e-3, max_iter=iters, theta=theta).phi,
                        "lambda_max": float(top_eigenvalues(obj, k=1, theta=theta).eigenvalues[0]),
                    }
                )
            return {"rows": rows}

        return ctx.store.cached_probe(
            run.spec.run_id, "large-batch-trajectory", {"eps": 1e-3, "iter": iters}, compute
        )

    def paths(self, ctx: Context, sb: Run, lb: Run) -> dict:
        def compute() -> dict:
            obj, test = self.objectives(sb, sb.final_state)
            lb_model = model_from_state(lb.spec, lb.final_state, load_data(lb.spec))
            out = {}
            for path in ("linear", "sine"):
                res = interpolate(obj, lb_model, obj.params(), path=path, test=test)
                out[path] = {
                    k: np.asarray(v).tolist()
                    for k, v in (
                        ("alpha", res.axes["alpha"]),
                        ("train_loss", res.train_loss),
                        ("train_acc", res.train_acc),
                        ("test_loss", res.test_loss),
                        ("test_acc", res.test_acc),
                    )
                }
            return out

        return ctx.store.cached_probe(sb.spec.run_id, "large-batch-paths", {"lb": lb.spec.run_id}, compute)

    def analyze(self, ctx: Context) -> dict:
        setups = {}
        for setup in ctx.params["setups"]:
            seeds = []
            for seed in range(ctx.seeds):
                specs = self.specs(ctx, setup, seed)
                runs = {name: ctx.run(spec) for name, spec in specs.items()}
                sb, lb = runs["SB"], runs["LB"]
                x0 = flat(sb.init_state)
                seeds.append(
                    {
                        "final": {
                            n: {k: r.final.get(k) for k in ("train_acc", "test_acc", "train_loss")}
                            | {
                                "status": r.status,
                                "batch_size": r.spec.train.switch_batch_size or r.spec.train.batch_size,
                            }
                            for n, r in runs.items()
                        },
                        "SB": self.minimizer(ctx, sb, True),
                        "LB": self.minimizer(ctx, lb, True),
                        "others": {
                            n: self.minimizer(ctx, r, False) for n, r in runs.items() if n not in ("SB", "LB")
                        },
                        "dist": {n: float((flat(runs[n].final_state) - x0).norm()) for n in ("SB", "LB")},
                        "traj": {n: self.trajectory(ctx, runs[n])["rows"] for n in ("SB", "LB")},
                        "paths": self.paths(ctx, sb, lb),
                    }
                )
            setups[setup["name"]] = seeds
        return {
            "seeds": ctx.seeds,
            "setups": setups,
            "sb": ctx.params["sb"],
            "epochs": ctx.params["epochs"],
            "warm": ctx.params["warm"],
            "sweep": ctx.params["sweep"],
        }

    # ---------------------------------------------------------------- claims
    def claims(self, result: dict) -> list[Verdict]:
        setups, seeds = result["setups"], range(result["seeds"])

        def per_seed(fn) -> list[float]:
            return [float(np.mean([fn(cells[s]) for cells in setups.values()])) for s in seeds]

        def each(fn, fmt="{:.3g}") -> str:
            return "; ".join(
                f"{name}: " + ", ".join(fmt.format(fn(c)) for c in cells) for name, cells in setups.items()
            )

        def log_ratio(a: float, b: float) -> float:
            return math.log10(max(a, PHI_FLOOR) / max(b, PHI_FLOOR))

        def rise(c: dict, path: str, side: str) -> float:
            p = c["paths"][path]
            alpha, loss = np.asarray(p["alpha"]), np.asarray(p["train_loss"])

            def at(a: float) -> float:
                return float(loss[np.argmin(np.abs(alpha - a))])

            return at(1 + RISE_STEP) - at(1.0) if side == "LB" else at(-RISE_STEP) - at(0.0)

        def steeper(c: dict, path: str) -> float:
            lb, sb = rise(c, path, "LB"), rise(c, path, "SB")
            return (lb - sb) / max(abs(lb) + abs(sb), 1e-12)

        def warm_rho(c: dict, key: str) -> float:
            ks = [0, *result["warm"], result["epochs"]]
            names = ["LB", *(f"warm{k}" for k in result["warm"]), "SB"]
            ys = [c["final"][n]["test_acc"] if key == "test_acc" else phi1(c, n) for n in names]
            return rho(ks, ys)

        def phi1(c: dict, name: str) -> float:
            cell = c[name] if name in ("SB", "LB") else c["others"][name]
            return cell["phi"]["0.001/full"]

        def sweep(c: dict) -> tuple[list, list, list]:
            names = ["SB", "LB", *(f"bs{b}" for b in result["sweep"])]
            order = sorted(names, key=lambda n: c["final"][n]["batch_size"])
            return (
                [c["final"][n]["batch_size"] for n in order],
                [c["final"][n]["test_acc"] for n in order],
                [phi1(c, n) for n in order],
            )

        def traj_growth(c: dict, name: str) -> float:
            rows = c["traj"][name]
            return log_ratio(rows[-1]["phi"], rows[0]["phi"])

        return [
            judge(
                "LB-gap",
                "LB reaches similar train accuracy but lower test accuracy",
                per_seed(lambda c: c["final"]["SB"]["test_acc"] - c["final"]["LB"]["test_acc"]),
                quantity="test acc SB - test acc LB",
                detail="train acc SB/LB: "
                + each(lambda c: f"{c['final']['SB']['train_acc']:.3f}/{c['final']['LB']['train_acc']:.3f}", "{}"),
                paper="Table 2: e.g. C1 test 80.04 (SB) vs 77.26 (LB); F1 98.03 vs 97.81; train ~100% both",
            ),
            judge(
                "LB-sharp",
                "LB minimizers are sharper (Keskar phi)",
                per_seed(
                    lambda c: np.mean([log_ratio(c["LB"]["phi"][k], c["SB"]["phi"][k]) for k in c["SB"]["phi"]])
                ),
                quantity="mean over eps {1e-3, 5e-4} x {full, 100-dim subspace} of log10(phi_LB / phi_SB)",
                detail=" | ".join(
                    f"{k}: SB "
                    + each(lambda c, k=k: c["SB"]["phi"][k])
                    + " vs LB "
                    + each(lambda c, k=k: c["LB"]["phi"][k])
                    for k in next(iter(setups.values()))[0]["SB"]["phi"]
                ),
                paper="Table 3: LB 1-2 orders of magnitude sharper (F1 full eps=1e-3: 1.23 vs 205.14)",
            ),
            judge(
                "LB-eig",
                "The largest Hessian eigenvalues are larger at LB minimizers",
                per_seed(lambda c: log_ratio(c["LB"]["top"][0], c["SB"]["top"][0])),
                quantity="log10(lambda_max LB / lambda_max SB)",
                detail="lambda_max SB: "
                + each(lambda c: c["SB"]["top"][0])
                + "; LB: "
                + each(lambda c: c["LB"]["top"][0]),
                paper="Sec. 4: heuristic evidence from the top Hessian eigenvalues",
            ),
            judge(
                "LB-lowdim",
                "The loss rises steeply only along a small subspace (~5% of directions)",
                per_seed(lambda c: 0.05 - c["LB"]["steep_fraction"]),
                quantity="0.05 - fraction of the LB Hessian spectrum above 1% of lambda_max (SLQ)",
                detail="steep fraction SB: "
                + each(lambda c: c["SB"]["steep_fraction"])
                + "; LB: "
                + each(lambda c: c["LB"]["steep_fraction"])
                + "; phi subspace/full (LB, eps 1e-3): "
                + each(lambda c: c["LB"]["phi"]["0.001/100"] / max(c["LB"]["phi"]["0.001/full"], 1e-12)),
                paper="Sec. 4: sharpness in a random 100-dim subspace is lower; the notes: ~5% of directions",
            ),
            judge(
                "LB-interp",
                "On the parametric plot the LB side rises faster",
                per_seed(lambda c: steeper(c, "linear")),
                quantity=f"(rise_LB - rise_SB) / (|rise_LB| + |rise_SB|), rise = train-loss increase {RISE_STEP} "
                "alpha beyond the endpoint (linear path)",
                detail="sine path: "
                + each(lambda c: steeper(c, "sine"))
                + "; rises SB/LB (linear): "
                + each(lambda c: f"{rise(c, 'linear', 'SB'):.3g}/{rise(c, 'linear', 'LB'):.3g}", "{}"),
                paper="Fig. 3: the loss rises more steeply on the LB side, for train and test",
            ),
            judge(
                "LB-warm",
                "After a few SB epochs, LB training is flatter and generalizes better",
                per_seed(lambda c: warm_rho(c, "test_acc")),
                quantity=f"Spearman rho(SB warm-up epochs k in 0,{result['warm']},{result['epochs']}; test acc)",
                detail="rho(k, phi): " + each(lambda c: warm_rho(c, "phi")),
                paper="Fig. 5: test accuracy rises and sharpness falls with the SB warm-up epochs",
            ),
            judge(
                "LB-dist",
                "SB minimizers are farther from x0",
                per_seed(lambda c: log_ratio(c["dist"]["SB"], c["dist"]["LB"])),
                quantity="log10(||x_s - x0|| / ||x_l - x0||)",
                detail="ratio: " + each(lambda c: c["dist"]["SB"] / c["dist"]["LB"]),
                paper="Table 4: ||x_s - x0|| / ||x_l - x0|| between 3 and 10",
            ),
            judge(
                "LB-traj",
                "Along training, LB sharpness rises as the loss falls; SB stays flat, then falls",
                per_seed(lambda c: traj_growth(c, "LB") - traj_growth(c, "SB")),
                quantity="log10(phi_end / phi_start) along the LB run minus the same along the SB run",
                detail="growth SB: "
                + each(lambda c: traj_growth(c, "SB"))
                + "; LB: "
                + each(lambda c: traj_growth(c, "LB")),
                paper="Fig. 6: sharpness vs cross-entropy: LB rises, SB flat then falling",
            ),
            judge(
                "LB-sweep",
                "Beyond a threshold batch size, test accuracy falls and sharpness rises",
                per_seed(lambda c: rho(sweep(c)[0], sweep(c)[2])),
                quantity="Spearman rho(batch size, phi eps 1e-3)",
                detail="rho(batch size, test acc): " + each(lambda c: rho(sweep(c)[0], sweep(c)[1])),
                paper="Fig. 4: test accuracy drops and sharpness grows past a batch size threshold",
            ),
        ]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        return draw_figures(result, outdir)


@functools.lru_cache(maxsize=8)
def _n_train(data_json: str) -> int:
    return load_data(RunSpec(data=json.loads(data_json))).n_train


def flat(state: dict) -> torch.Tensor:
    """Trainable parameters of a state dict, flattened (buffers such as BN statistics left out)."""
    return torch.cat([v.reshape(-1).double() for k, v in state.items() if not _is_buffer(k)])


def _is_buffer(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))

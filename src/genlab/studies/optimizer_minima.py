"""Study `optimizer-minima`: Im, Tao & Branson, "An empirical analysis of the optimization of deep network loss
surfaces" (arXiv 1612.04010). Every claim of STUDIES.md's optimizer-minima section, measured per seed; the
claims (quantities, controls) are in `optimizer_minima_claims`, the figures in `optimizer_minima_figures`.

Protocol. Per architecture (an MLP without and with BatchNorm; a VGG-like conv net without and with BN in
`paper`) and seed, SGD, SGD+momentum (sgdm), RMSprop, Adadelta and Adam start from the SAME x0 and see the SAME
batch order (both fixed by the seed), and every run trains until the full training cross-entropy reaches the
preset's `target_loss` (`train.target_train_loss`): minima are compared at MATCHED TRAINING LOSS, never after a
fixed epoch count. Each optimizer's lr was tuned once per preset so that it reaches the target in a reasonable
number of epochs (quick, digits, batch 64, target 0.02: epochs without/with BN measured on seed 0: SGD 0.1:
30/13, sgdm 0.02 + momentum 0.9: 15/8, RMSprop 1e-3: 13/11, Adadelta 1.0: 9/7, Adam 1e-3: 20/18).
Further runs per seed: the A/A twin of every optimizer (`order_seed` = seed + 1000: same x0, another batch
order) and optimizer switches A>B (A until `switch_epoch[A]`, where A's train loss has nearly plateaued (the loss
at the switch is recorded), then a fresh B with B's lr until the target loss). OM-switch's control is A's twin,
not an A>A switch: the training loop keeps the optimizer when the name does not change, so A>A is A's run bit
for bit and its distance to x_A is 0.

Measurements (train AND test data in every probe, eval mode; BN nets: running statistics recomputed at every
point of a path or surface, `bn="recompute"`):
- barriers (`probes.barrier`, linear path, `barrier_steps` points + 4 golden-section steps) between every pair
  of optimizers, every optimizer and its twin, and every switch endpoint and A's / B's minimum; with the
  barrier height the path excess (mean loss over the interior grid points over the mean endpoint loss);
- basin radius (`probes.basin_radius`) along `basin_dirs` filter-normalized random directions drawn with the
  same seed for every minimum, delta = `basin_delta` above the minimum's loss, train and test radii;
- top Hessian eigenvalues (Lanczos, k = `eig_k`) and the trace (Hutch++, `trace_probes` HVPs);
- weight norm ||w|| of the trainable parameters, distances between endpoints, per-example test losses (the
  generalization gap test loss - train loss carries its test-set noise into OM-eig's interval);
- surfaces (seed 0 of each architecture, for the figures): barycentric over `barycentric` (three optimizers'
  minima) and bilinear over `bilinear` (four), train and test.
Deviations from the paper: small MLPs on digits in `quick` (the paper: NIN / VGG on CIFAR-10); no dropout; the
switch pairs avoid momentum leaking into RMSprop (the training loop gives `train.momentum` to both phases), so
SGD+momentum and RMSprop are each switched with Adam; the paper's VGG with and without BN is a VGG-layout `cnn`
(the registry's `vgg` always has BN) so that BN is the only difference; the paper states no numbers, so every
claim is judged for direction only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.probes import Objective, barrier, barycentric, basin_radius, bilinear, top_eigenvalues, trace
from genlab.spec import RunSpec, TrainSpec
from genlab.store import model_from_state
from genlab.studies.base import Context, Preset, Study, objectives
from genlab.studies.optimizer_minima_claims import OPTIMIZERS, claims, pair_key, summary_table, switch_name, twin
from genlab.studies.optimizer_minima_figures import draw_figures
from genlab.studies.verdict import Verdict
from genlab.train import Run, load_data

CONTROL_ORDER = 1000  # twins: order_seed = seed + CONTROL_ORDER (same x0, another batch order)
OPT = {  # optimizer name -> (TrainSpec optimizer, momentum)
    "sgd": ("sgd", 0.0),
    "sgdm": ("sgd", 0.9),
    "rmsprop": ("rmsprop", 0.0),
    "adadelta": ("adadelta", 0.0),
    "adam": ("adam", 0.0),
}
SWITCHES = [["sgdm", "adam"], ["adam", "sgdm"], ["rmsprop", "adam"], ["adam", "rmsprop"]]
_SURFACES = {"barycentric": ["sgd", "sgdm", "adam"], "bilinear": ["sgd", "adadelta", "rmsprop", "adam"]}


def _mlp_archs(widths: list[int], switch_epoch: list[dict] | None = None) -> list[dict]:
    """The MLP without and with BN; `switch_epoch` (per architecture) overrides the preset's."""
    archs = [
        {"name": "mlp", "model": {"name": "mlp", "widths": widths}},
        {"name": "mlp-bn", "model": {"name": "mlp", "widths": widths, "batchnorm": True}},
    ]
    return [a | {"switch_epoch": e} for a, e in zip(archs, switch_epoch, strict=True)] if switch_epoch else archs


def _vgg_like(bn: bool) -> dict:
    chans = [64, 64, 128, 128, 256, 256, 512, 512]
    return {"name": "cnn", "channels": chans, "pool_after": [1, 3, 5, 7], "batchnorm": bn}


_QUICK_LR = {"sgd": 0.1, "sgdm": 0.02, "rmsprop": 1e-3, "adadelta": 1.0, "adam": 1e-3}
_PROBES_QUICK = {
    "barrier_steps": 21,
    "basin_dirs": 50,
    "basin_delta": 0.1,
    "eig_k": 3,
    "trace_probes": 30,
    "surface_steps": {"barycentric": 13, "bilinear": 11},
}


class OptimizerMinimaStudy(Study):
    name = "optimizer-minima"
    title = "Different optimizers, different minima: loss surfaces on train and test (Im, Tao & Branson)"
    paper = "Im, Tao, Branson: An empirical analysis of the optimization of deep network loss surfaces (2016)"
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "digits subset (200), MLP 16 with/without BN, trained to loss 0.5, tiny probes (seconds; for tests)",
            {
                "data": {"name": "digits", "train_subset": 200},
                "archs": _mlp_archs([16]),
                "lr": _QUICK_LR | {"sgd": 0.2},
                "batch_size": 32,
                "target_loss": 0.5,
                "max_epochs": 200,
                "switch_epoch": {"sgdm": 2, "adam": 3, "rmsprop": 2},
                "switches": SWITCHES,
                "surfaces": _SURFACES,
                "barrier_steps": 5,
                "basin_dirs": 6,
                "basin_delta": 0.1,
                "eig_k": 2,
                "trace_probes": 6,
                "surface_steps": {"barycentric": 4, "bilinear": 3},
            },
        ),
        "quick": Preset(
            5,
            "digits (1,437 train / 360 test), MLP 64-64 with and without BN; SGD 0.1, SGD+momentum 0.02/0.9, "
            "RMSprop 1e-3, Adadelta 1.0, Adam 1e-3, batch 64, all trained to train loss 0.02; 5 seeds",
            {
                "data": {"name": "digits"},
                "archs": _mlp_archs(  # ~75% of the epochs to the target: nearly plateaued
                    [64, 64], [{"sgdm": 11, "adam": 15, "rmsprop": 10}, {"sgdm": 6, "adam": 13, "rmsprop": 8}]
                ),
                "lr": _QUICK_LR,
                "batch_size": 64,
                "target_loss": 0.02,
                "max_epochs": 300,
                "switch_epoch": {"sgdm": 6, "adam": 11, "rmsprop": 7},
                "switches": SWITCHES,
                "surfaces": _SURFACES,
                **_PROBES_QUICK,
            },
        ),
        "paper": Preset(
            5,
            "CIFAR-10 (--data-root), VGG-layout conv net with/without BN, batch 128, trained to loss 0.05 (GPU)",
            {
                "data": {"name": "cifar10"},
                "archs": [
                    {"name": "vgg", "model": _vgg_like(False)},
                    {"name": "vgg-bn", "model": _vgg_like(True)},
                ],
                "lr": {"sgd": 0.05, "sgdm": 0.01, "rmsprop": 1e-4, "adadelta": 1.0, "adam": 1e-4},
                "batch_size": 128,
                "target_loss": 0.05,
                "max_epochs": 200,
                "switch_epoch": {"sgdm": 40, "adam": 40, "rmsprop": 40},
                "switches": SWITCHES,
                "surfaces": _SURFACES,
                **_PROBES_QUICK,
                "surface_steps": {"barycentric": 21, "bilinear": 21},
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    @staticmethod
    def data(ctx: Context) -> dict:
        return ctx.data(ctx.params["data"])

    def spec(self, ctx: Context, arch: dict, opt: str, seed: int, **opts: object) -> RunSpec:
        """`opt` from x0(seed) with the seed's batch order until the matched target train loss."""
        p = ctx.params
        name, momentum = OPT[opt]
        train = {
            "optimizer": name,
            "lr": p["lr"][opt],
            "momentum": momentum,
            "batch_size": p["batch_size"],
            "epochs": p["max_epochs"],
            "target_train_loss": p["target_loss"],
            **opts,
        }
        return RunSpec(data=self.data(ctx), model=arch["model"], train=TrainSpec(**train), seed=seed)

    def specs(self, ctx: Context, arch: dict, seed: int) -> dict[str, RunSpec]:
        """The runs of one architecture and seed by role: each optimizer, its twin, the switches A>B."""
        out = {o: self.spec(ctx, arch, o, seed) for o in OPTIMIZERS}
        out |= {twin(o): self.spec(ctx, arch, o, seed, order_seed=seed + CONTROL_ORDER) for o in OPTIMIZERS}
        for a, b in ctx.params["switches"]:
            momentum = max(OPT[a][1], OPT[b][1])  # one momentum for both phases (the loop's TrainSpec)
            if momentum and "rmsprop" in (a, b):
                raise GenlabError(f"switches: {a}>{b} would give RMSprop the SGD momentum {momentum:g}")
            out[switch_name(a, b)] = self.spec(
                ctx,
                arch,
                a,
                seed,
                momentum=momentum,
                switch_optimizer_epoch=arch.get("switch_epoch", ctx.params["switch_epoch"])[a],
                switch_optimizer=OPT[b][0],
                switch_lr=ctx.params["lr"][b],
            )
        return out

    def plan(self, ctx: Context) -> list[RunSpec]:
        return [
            s
            for arch in ctx.params["archs"]
            for seed in range(ctx.seeds)
            for s in self.specs(ctx, arch, seed).values()
        ]

    # ---------------------------------------------------------------- measurements
    @staticmethod
    def objectives(run: Run) -> tuple[Objective, Objective]:
        """Train and test objectives of the run's final model (eval mode)."""
        return objectives(run)

    @staticmethod
    def bn(arch: dict) -> str:
        return "recompute" if arch["model"].get("batchnorm") else "interpolate"

    def minimum(self, ctx: Context, run: Run, curvature: bool) -> dict:
        """At a run's final point: weight norm, basin radii (train, test), per-example test losses and, with
        `curvature`, the top Hessian eigenvalues and the trace; cached."""
        p = ctx.params

        def compute() -> dict:
            obj, test = self.objectives(run)
            br = basin_radius(obj, n_directions=p["basin_dirs"], delta=p["basin_delta"], seed=0, test=test)
            data = load_data(run.spec)
            model = model_from_state(run.spec, run.final_state, data).eval()
            with torch.no_grad():  # per-example cross-entropy (the study's loss), in chunks
                losses = torch.cat(
                    [
                        torch.nn.functional.cross_entropy(model(x), y, reduction="none")
                        for x, y in zip(data.x_test.split(4096), data.y_test.split(4096), strict=True)
                    ]
                )
            out = {
                "norm": float(obj.params().double().norm()),
                "train_loss": obj.loss(obj.params()),
                "test_losses": [round(float(v), 7) for v in losses],
                "basin": {
                    "train": [float(r) if np.isfinite(r) else None for r in br.train_radii],
                    "test": [float(r) if np.isfinite(r) else None for r in br.test_radii],
                    "train_f0": br.train_f0,
                    "test_f0": br.test_f0,
                    "directions": br.directions["checksum"],
                },
            }
            if curvature:
                out["top"] = top_eigenvalues(obj, k=p["eig_k"]).eigenvalues.tolist()
                out["trace"] = trace(obj, n_probes=p["trace_probes"]).value
            return out

        params = {"dirs": p["basin_dirs"], "delta": p["basin_delta"], "k": p["eig_k"], "curv": curvature}
        params["trace"] = p["trace_probes"]
        return ctx.store.cached_probe(run.spec.run_id, "optimizer-minima-minimum", params, compute)

    def path(self, ctx: Context, arch: dict, a: Run, b: Run) -> dict:
        """Barrier on the straight path from b's minimum (alpha 0) to a's (alpha 1), train and test; cached."""
        steps = ctx.params["barrier_steps"]

        def compute() -> dict:
            obj, test = self.objectives(b)
            ma, mb = (model_from_state(r.spec, r.final_state, load_data(r.spec)) for r in (a, b))
            res = barrier(obj, ma, mb, steps=steps, refine=4, test=test, bn=self.bn(arch))
            prof = res.profile
            alpha = np.asarray(prof.axes["alpha"])
            grid = np.isclose(alpha * (steps - 1), np.round(alpha * (steps - 1)), atol=1e-9)
            out = {"train": res.train_barrier, "test": res.test_barrier, "alpha_max": res.alpha_max}
            for split in ("train", "test"):
                loss = np.asarray(getattr(prof, f"{split}_loss"))[grid]
                out[f"{split}_excess"] = float(np.log10(loss[1:-1].mean() / loss[[0, -1]].mean()))
                out[f"{split}_profile"] = loss.tolist()
            out["dist"] = float((flat(a.final_state) - flat(b.final_state)).norm())
            return out

        params = {"other": a.spec.run_id, "steps": steps, "refine": 4, "bn": self.bn(arch)}
        return ctx.store.cached_probe(b.spec.run_id, "optimizer-minima-barrier", params, compute)

    def surface(self, ctx: Context, arch: dict, kind: str, runs: list[Run]) -> dict:
        """Barycentric (3 minima) or bilinear (4 minima) surface, train and test; cached on the first run."""
        steps = ctx.params["surface_steps"][kind]
        probe = {"barycentric": barycentric, "bilinear": bilinear}[kind]

        def compute() -> dict:
            obj, test = self.objectives(runs[0])
            models = [model_from_state(r.spec, r.final_state, load_data(r.spec)) for r in runs]
            res = probe(obj, models, steps=steps, test=test, bn=self.bn(arch)).to_dict()
            return {
                k: res[k]
                for k in ("kind", "axes", "train_loss", "train_acc", "test_loss", "test_acc", "mode", "bn", "spec")
            }

        params = {"kind": kind, "runs": [r.spec.run_id for r in runs], "steps": steps, "bn": self.bn(arch)}
        return ctx.store.cached_probe(runs[0].spec.run_id, "optimizer-minima-surface", params, compute)

    def cell(self, ctx: Context, arch: dict, seed: int) -> dict:
        """Every measurement of one architecture and seed (see the module docstring)."""
        runs = {n: ctx.run(s) for n, s in self.specs(ctx, arch, seed).items()}
        paths = {}
        for i, a in enumerate(OPTIMIZERS):
            for b in OPTIMIZERS[i + 1 :]:
                paths[pair_key(a, b)] = self.path(ctx, arch, runs[b], runs[a])
            paths[pair_key(a, twin(a))] = self.path(ctx, arch, runs[twin(a)], runs[a])
        for a, b in ctx.params["switches"]:
            for end in (a, b):
                paths[pair_key(switch_name(a, b), end)] = self.path(ctx, arch, runs[end], runs[switch_name(a, b)])
        dist = {}
        for a, b in ctx.params["switches"]:
            for e in (switch_name(a, b), twin(a)):
                for end in (a, b):
                    dist[pair_key(e, end)] = float(
                        (flat(runs[e].final_state) - flat(runs[end].final_state)).norm()
                    )
        mins = {o: self.minimum(ctx, runs[o], True) for o in OPTIMIZERS}
        mins |= {twin(o): self.minimum(ctx, runs[twin(o)], False) for o in ("sgd", "adam")}
        out = {
            "final": {n: _final(r) for n, r in runs.items()},
            "norm": {n: float(flat(r.final_state).norm()) for n, r in runs.items()},
            "paths": paths,
            "dist": dist,
            "min": mins,
        }
        if seed == 0:
            out["surfaces"] = {
                k: self.surface(ctx, arch, k, [runs[o] for o in names]) | {"minima": names}
                for k, names in ctx.params["surfaces"].items()
            }
        return out

    def analyze(self, ctx: Context) -> dict:
        p = ctx.params
        return {
            "seeds": ctx.seeds,
            "archs": {a["name"]: [self.cell(ctx, a, s) for s in range(ctx.seeds)] for a in p["archs"]},
            "bn": {a["name"]: bool(a["model"].get("batchnorm")) for a in p["archs"]},
            "target_loss": p["target_loss"],
            "switches": p["switches"],
            "switch_epoch": {a["name"]: a.get("switch_epoch", p["switch_epoch"]) for a in p["archs"]},
            "lr": p["lr"],
            "basin_delta": p["basin_delta"],
        }

    def claims(self, result: dict) -> list[Verdict]:
        return claims(result)

    def tables(self, result: dict) -> list[dict]:
        return [summary_table(result)]

    def figures(self, result: dict, outdir: Path) -> list[str]:
        return draw_figures(result, outdir)


def _final(run: Run) -> dict:
    """The run's end: losses, accuracies, epochs, and for a switch the train loss when it switched."""
    rows = run.history
    out = {k: run.final.get(k) for k in ("train_loss", "test_loss", "train_acc", "test_acc", "epoch")}
    out |= {"steps": run.steps, "status": run.status, "stop_reason": run.stop_reason}
    t = run.spec.train
    if t.switch_optimizer_epoch is not None:
        before = [r for r in rows if r["epoch"] <= t.switch_optimizer_epoch]
        out["switched"] = any(r["epoch"] > t.switch_optimizer_epoch for r in rows)
        out["loss_at_switch"] = before[-1]["train_loss"] if before else None
    return out


def flat(state: dict) -> torch.Tensor:
    """Trainable parameters of a state dict, flattened (buffers such as BN statistics left out)."""
    keys = ("running_mean", "running_var", "num_batches_tracked")
    return torch.cat([v.reshape(-1).double() for k, v in state.items() if not k.endswith(keys)])

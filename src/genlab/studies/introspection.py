"""Study `introspection`: Sinha, Mukherjee, Sarkar, Krishnamurthy, "Introspection: accelerating neural network
training by learning weight evolution" (ICLR 2017). Claims WE-stats, WE-predict, WE-jump, WE-noise and
WE-noise-jump of STUDIES.md, judged by the shared verdict rule; figures in `introspection_figures`, the predictor
and jump math in `genlab.introspect`.

Protocol. Source: an MLP on mnist1d (MNIST in `paper`) trained with plain SGD, every weight kept every
`snap` steps in float16 (`train.snapshot_every`, `train.snapshot_dtype`). Per seed k a 4-40-1 predictor I_k
(inputs w at 0, 0.4t, 0.7t, t standardized per weight; target w at 2t; L1 loss, Adam) is trained on source run k,
on t in `ts` and 80% of its weights; it is evaluated on the other 20% (held-out weights) and on source run k+1
(a held-out run), against least-squares linear / quadratic extrapolation of the same four points and against a
control predictor trained on shuffled targets. The predictors are trained while planning (they are part of the
target runs' specs: `train.jump_net`) and cached in the store.
Target: a different network and dataset (a CNN on digits; CIFAR-10 in `paper`), plain SGD, per seed k six runs
from the same x0: no jump, the A/A control (no jump, another batch order), and jumps at `jump_steps` with I_k
(`introspection`), linear extrapolation (`linear`), Gaussian noise of the introspection jump's per-layer norm
(`noise`) and both (`introspection+noise`). Steps to target = the first step at which the test accuracy (one
evaluation per epoch, linearly interpolated between evaluations) reaches `target_acc`; a run that never reaches
it counts at its budget (a lower bound, flagged `censored`); a seed whose no-jump run never reaches it is
undefined (left out and counted). Fixed-step comparisons use the per-example test correctness at step
`probe_step` (from the run's weight history), so their intervals include test-set noise.
WE-stats is measured on the target no-jump runs' histories: a weight's trajectory (its snapshots) is monotone
when |w_T - w_0| >= 0.9 * sum_s |w_{s+1} - w_s| (10% back-tracking tolerated), compared with a random walk with
the same step sizes and random signs.

Claims (per seed; T = steps to target; positive = the claim holds; A/A = no jump vs no jump, other batch order):
- WE-stats: monotone share - 1/2 ("mostly": more than half of the weights; control: the same for the matched
  random walk); part: log10(median |w_0| / median |w_T - w_0|) > 0, averaged over layers ("most weights move
  little"). The walk's share is given beside it: monotone beyond chance is not the same as mostly monotone.
- WE-predict: log10(MAE linear / MAE I) on the held-out run (control: the shuffled-target predictor in I's
  place); parts: vs quadratic on the held-out run, vs linear on the held-out weights, vs "no change"
  (w_2t = w_t, the strongest trivial baseline here) on the held-out run.
- WE-jump: log10(T(no jump) / T(introspection)) (control A/A); parts: log10(test loss just after / before the
  jump) > 0 (the loss rises), test accuracy at `probe_step` jump - no jump (recovers to a better point).
- WE-noise: log10(T(noise) / T(introspection)): the matched noise does not give the jump's gain (control A/A;
  noise vs no jump is reported beside it); part: accuracy at `probe_step`, jump - noise.
- WE-noise-jump: log10(T(jump + noise) / T(jump)) > 0: noise added at the jump loses (part of) its gain, i.e.
  the gain is the predicted direction's, not a perturbation's (control A/A); part: accuracy, jump - jump+noise.

Deviations: the paper's input scaling, training-set sampling and jump steps were not retrievable (papers.md
section 5); ours are stated above. The predictor has 241 parameters (4x40 + 40 + 40 + 1, with biases). No Adam
after the jump. Claims are directional: the paper's numbers were not retrievable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.introspect import (
    fit_predictor,
    layer_stats,
    prediction_errors,
    steps_to_target,
    training_set,
)
from genlab.spec import RunSpec, TrainSpec
from genlab.studies.base import Context, Preset, Study
from genlab.studies.verdict import (
    Control,
    Measure,
    Verdict,
    accuracy,
    combine,
    interval,
    judge,
    log_ratio,
    pack,
    part,
)
from genlab.train import Run, build_model, load_data

ARMS = ("nojump", "nojump-AA", "introspection", "linear", "noise", "introspection+noise")
CONTROL_ORDER = 1000  # nojump-AA: order_seed = seed + CONTROL_ORDER
HELD_OUT = 0.2  # share of the source run's weights kept out of the predictor's training set
MOSTLY = 0.5  # "mostly monotone": more than half of the weights


def _source(data: dict, widths: list[int]) -> dict:
    return {"data": data, "model": {"name": "mlp", "widths": widths}}


class IntrospectionStudy(Study):
    name = "introspection"
    title = "Learning weight evolution: introspection jumps and the fair noise test (Sinha et al.)"
    paper = (
        "Sinha, Mukherjee, Sarkar, Krishnamurthy: Introspection: accelerating neural network training (ICLR 2017)"
    )
    presets = {  # noqa: RUF012
        "smoke": Preset(
            2,
            "mnist1d MLP 16 source (400 steps), CNN 4-8 on 400 digits, jumps at 20/40 (seconds; for tests)",
            {
                "source": _source({"name": "mnist1d", "n_train": 400, "n_test": 100}, [16]),
                "source_lr": 0.05,
                "source_steps": 400,
                "snap": 10,
                "ts": [100, 200],
                "pred_epochs": 1,
                "target": {
                    "data": {"name": "digits", "train_subset": 400},
                    "model": {"name": "cnn", "channels": [4, 8]},
                },
                "lr": 0.2,
                "batch_size": 32,
                "epochs": 6,
                "target_snap": 20,
                "jump_steps": [20, 40],
                "target_acc": 0.3,
                "probe_step": 60,
            },
        ),
        "quick": Preset(
            5,
            "mnist1d MLP 40-64-10 source (3,000 SGD steps), CNN 16-32 on digits (1,350 steps), jumps at "
            "80/160/320, target test accuracy 0.9, 5 seeds",
            {
                "source": _source({"name": "mnist1d"}, [64]),
                "source_lr": 0.05,
                "source_steps": 3000,
                "snap": 10,
                "ts": list(range(100, 1501, 100)),
                "pred_epochs": 5,
                "target": {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [16, 32]}},
                "lr": 0.05,
                "batch_size": 32,
                "epochs": 30,
                "target_snap": 30,
                "jump_steps": [80, 160, 320],
                "target_acc": 0.9,
                "probe_step": 480,
            },
        ),
        "paper": Preset(
            5,
            "MNIST MLP 784-256-10 source (6,000 steps), CNN 32-64-128 on CIFAR-10 (30 epochs), jumps at "
            "500/1,000/2,000, target test accuracy 0.6 (GPU; --data-root)",
            {
                "source": _source({"name": "mnist"}, [256]),
                "source_lr": 0.05,
                "source_steps": 6000,
                "snap": 20,
                "ts": list(range(200, 3001, 200)),
                "pred_epochs": 5,
                "target": {"data": {"name": "cifar10"}, "model": {"name": "cnn", "channels": [32, 64, 128]}},
                "lr": 0.05,
                "batch_size": 64,
                "epochs": 30,
                "target_snap": 250,
                "jump_steps": [500, 1000, 2000],
                "target_acc": 0.6,
                "probe_step": 3000,
            },
        ),
    }

    # ---------------------------------------------------------------- plan
    @staticmethod
    def data(ctx: Context, data: dict) -> dict:
        return ctx.data(data)

    def source_spec(self, ctx: Context, seed: int) -> RunSpec:
        p = ctx.params
        train = TrainSpec(
            lr=p["source_lr"],
            batch_size=64,
            epochs=10**6,
            max_steps=p["source_steps"],
            eval_every=10**6,
            snapshot_every=p["snap"],
            snapshot_dtype="float16",
            checkpoint_every=10**6,
        )
        src = p["source"]
        return RunSpec(data=self.data(ctx, src["data"]), model=dict(src["model"]), train=train, seed=seed)

    def predictors(self, ctx: Context, seed: int) -> dict:
        """I_seed and its shuffled-target control, trained on source run `seed` (cached in the store)."""
        run = ctx.run(self.source_spec(ctx, seed))
        params = {"ts": ctx.params["ts"], "epochs": ctx.params["pred_epochs"], "held_out": HELD_OUT}

        def compute() -> dict:
            h, y = training_set(run.snapshots, run.snapshot_steps, ctx.params["ts"], train_weights(run, seed)[0])
            fit = {"seed": seed, "epochs": ctx.params["pred_epochs"]}
            return {
                "net": fit_predictor(h, y, **fit),
                "shuffled": fit_predictor(h, y, **fit, shuffle_targets=True),
            }

        return ctx.store.cached_probe(run.spec.run_id, "introspection-predictor", params, compute)

    def spec(self, ctx: Context, arm: str, seed: int, net: list[float] | None = None) -> RunSpec:
        p = ctx.params
        jumps = arm not in ("nojump", "nojump-AA")
        if jumps and arm != "linear" and net is None:
            net = self.predictors(ctx, seed)["net"]
        train = TrainSpec(
            lr=p["lr"],
            batch_size=p["batch_size"],
            epochs=p["epochs"],
            snapshot_every=p["target_snap"],
            order_seed=seed + CONTROL_ORDER if arm == "nojump-AA" else None,
            jump=arm if jumps else "none",
            jump_steps=tuple(p["jump_steps"]) if jumps else (),
            jump_net=tuple(net) if jumps and arm != "linear" else (),
        )
        tgt = p["target"]
        return RunSpec(data=self.data(ctx, tgt["data"]), model=dict(tgt["model"]), train=train, seed=seed)

    def plan(self, ctx: Context) -> list[RunSpec]:
        sources = [self.source_spec(ctx, s) for s in range(ctx.seeds + 1)]
        nets = {s: self.predictors(ctx, s)["net"] for s in range(ctx.seeds)}
        return sources + [self.spec(ctx, a, s, nets[s]) for s in range(ctx.seeds) for a in ARMS]

    # ---------------------------------------------------------------- measurements
    def analyze(self, ctx: Context) -> dict:
        cells = []
        for seed in range(ctx.seeds):
            cell: dict = {"predict": self.predict_errors(ctx, seed), "arms": {}}
            for arm in ARMS:
                run = ctx.run(self.spec(ctx, arm, seed))
                cell["arms"][arm] = self.arm(ctx, run)
            cell["stats"] = weight_stats(ctx.run(self.spec(ctx, "nojump", seed)), seed)
            cells.append(cell)
        source = ctx.run(self.source_spec(ctx, 0))
        target = ctx.run(self.spec(ctx, "nojump", 0))
        return {
            "seeds": ctx.seeds,
            "params": ctx.params,
            "cells": cells,
            "source_stats": weight_stats(source, 0),
            "history_cost": {"source": history_cost(ctx, source), "target": history_cost(ctx, target)},
        }

    def arm(self, ctx: Context, run: Run) -> dict:
        p = ctx.params
        curve = [[r["step"], r["test_acc"], r["test_loss"]] for r in run.history]
        steps, censored = steps_to_target(curve, p["target_acc"])
        jumps = [j for r in run.history for j in r.get("jumps", [])]

        def compute() -> dict:
            data = load_data(run.spec)
            model = build_model(run.spec, data)
            flat = run.snapshots[run.snapshot_steps.index(p["probe_step"])].float()
            torch.nn.utils.vector_to_parameters(flat, model.parameters())
            with torch.no_grad():
                pred = model.eval()(data.x_test).argmax(1)
            return {"correct": pack((pred == data.y_test).numpy())}

        at = ctx.store.cached_probe(run.spec.run_id, "test-correct-at", {"step": p["probe_step"]}, compute)
        return {
            "steps": steps,
            "censored": censored,
            "curve": curve,
            "jumps": jumps,
            "correct_at": at["correct"],
            "final_test_acc": run.final.get("test_acc"),
            "status": run.status,
        }

    def predict_errors(self, ctx: Context, seed: int) -> dict:
        """Mean |prediction - w_2t| per method, on the held-out weights and on the held-out run (cached)."""
        nets = self.predictors(ctx, seed)
        run, other = ctx.run(self.source_spec(ctx, seed)), ctx.run(self.source_spec(ctx, seed + 1))

        def compute() -> dict:
            held = train_weights(run, seed)[1]
            out = {}
            for name, r, idx in (("weights", run, held), ("run", other, torch.arange(other.snapshots.shape[1]))):
                h, y = training_set(r.snapshots, r.snapshot_steps, ctx.params["ts"], idx)
                out[name] = prediction_errors(h, y, nets, ctx.params["ts"], len(idx))
            return out

        params = {"ts": ctx.params["ts"], "other": other.spec.run_id, "held_out": HELD_OUT}
        return ctx.store.cached_probe(run.spec.run_id, "introspection-errors", params, compute)

    # ---------------------------------------------------------------- claims, tables, figures
    def claims(self, result: dict) -> list[Verdict]:
        cells = result["cells"]
        aa = Control([speedup(c, "nojump-AA") for c in cells], "A/A: log10(T(no jump) / T(no jump, other order))")
        return [
            judge(
                "WE-stats",
                "Weight trajectories are mostly monotone and most weights move little",
                [stat(c, "monotone") - MOSTLY for c in cells],
                "share of weights with a monotone trajectory (|w_T - w_0| >= 0.9 x path length) minus 1/2",
                control=Control(
                    [stat(c, "walk") - MOSTLY for c in cells],
                    "the same share for a random walk with the weights' step sizes and random signs, minus 1/2",
                ),
                also=[
                    part(
                        "most weights move little",
                        [move_little(c) for c in cells],
                        "mean over layers of log10(median |w_0| / median |w_T - w_0|)",
                    )
                ],
                detail=(
                    "target no-jump runs' histories; monotone share "
                    f"{mean(stat(c, 'monotone') for c in cells):.3f} vs "
                    f"{mean(stat(c, 'walk') for c in cells):.3f} for the matched random walk"
                ),
                paper="monotone trends and small changes for most weights (figures; no numbers retrieved)",
            ),
            judge(
                "WE-predict",
                "The 4-40-1 predictor beats linear/quadratic extrapolation of w at 2t",
                [error_ratio(c, "run", "linear") for c in cells],
                "log10(MAE linear / MAE introspection), held-out run",
                control=Control(
                    [error_ratio(c, "run", "linear", "shuffled") for c in cells],
                    "the same with the predictor trained on shuffled targets",
                ),
                also=[
                    part(
                        "vs quadratic, held-out run", [error_ratio(c, "run", "quadratic") for c in cells], "log10"
                    ),
                    part(
                        "vs linear, held-out weights",
                        [error_ratio(c, "weights", "linear") for c in cells],
                        "log10",
                    ),
                    part(
                        "vs no change (w_2t = w_t), held-out run",
                        [error_ratio(c, "run", "no change") for c in cells],
                        "log10",
                    ),
                ],
                paper="introspection beats linear/quadratic extrapolation (no numbers retrieved)",
            ),
            judge(
                "WE-jump",
                "Introspection jumps reach the target test accuracy in fewer steps; the loss rises, then recovers",
                [speedup(c, "introspection") for c in cells],
                "log10(T(no jump) / T(introspection jumps)), T = steps to the target test accuracy",
                control=aa,
                also=[
                    part(
                        "test loss rises at the jumps",
                        [loss_rise(c) for c in cells],
                        "mean log10(loss after / before)",
                    ),
                    part(
                        "test acc at the probe step: jump - no jump",
                        [acc_diff(c, "introspection", "nojump") for c in cells],
                        "accuracy difference",
                    ),
                ],
                detail=arms_detail(cells) + "; " + versus(cells, "linear"),
                paper="fewer steps to a given accuracy on MNIST, CIFAR-10 and ImageNet (numbers not retrieved)",
            ),
            judge(
                "WE-noise",
                "Noise of the jump's per-layer norm does not give the jump's gain",
                [speedup(c, "introspection", "noise") for c in cells],
                "log10(T(noise jumps) / T(introspection jumps))",
                control=aa,
                also=[
                    part(
                        "test acc at the probe step: jump - noise",
                        [acc_diff(c, "introspection", "noise") for c in cells],
                        "accuracy difference",
                    )
                ],
                detail=f"log10(T(no jump) / T(noise)): {mean(speedup(c, 'noise') for c in cells):.3g}",
                paper="noise at the jump points does not give the gain (no numbers retrieved)",
            ),
            judge(
                "WE-noise-jump",
                "Noise added at the jump (jump + noise) loses the jump's gain: jump alone is faster",
                [speedup(c, "introspection", "introspection+noise") for c in cells],
                "log10(T(jump + noise) / T(jump))",
                control=aa,
                also=[
                    part(
                        "test acc at the probe step: jump - (jump + noise)",
                        [acc_diff(c, "introspection", "introspection+noise") for c in cells],
                        "accuracy difference",
                    )
                ],
                paper="not in the paper: the researcher's fairer test (a reviewer noted it was missing)",
            ),
        ]

    def tables(self, result: dict) -> list[dict]:
        from genlab.studies.introspection_figures import report_tables

        return report_tables(result)

    def figures(self, result: dict, outdir: Path) -> list[str]:
        from genlab.studies.introspection_figures import draw_figures

        return draw_figures(result, outdir)


# ---------------------------------------------------------------- the claims' quantities (one seed each)
def mean(values: object) -> float:
    v = [x for x in values if x is not None and np.isfinite(x)]  # type: ignore[union-attr]
    return float(np.mean(v)) if v else float("nan")


def stat(cell: dict, key: str) -> float:
    """A weight statistic averaged over layers, weighted by their size."""
    layers = cell["stats"]["layers"]
    return float(sum(r[key] * r["n"] for r in layers) / sum(r["n"] for r in layers))


def move_little(cell: dict) -> float:
    """Mean over layers of log10(median |w_0| / median |w_T - w_0|): > 0 when the median weight moves less than
    the typical initial weight of its layer."""
    return mean(log_ratio(r["median_w0"], r["median_disp"]) for r in cell["stats"]["layers"])


def error_ratio(cell: dict, where: str, baseline: str, method: str = "introspection") -> float:
    return log_ratio(cell["predict"][where][baseline], cell["predict"][where][method])


def speedup(cell: dict, arm: str, reference: str = "nojump") -> float:
    """log10(T(reference) / T(arm)); undefined when the no-jump run never reaches the target."""
    if cell["arms"]["nojump"]["censored"]:
        return float("nan")
    return log_ratio(cell["arms"][reference]["steps"], cell["arms"][arm]["steps"])


def loss_rise(cell: dict, arm: str = "introspection") -> float:
    """Mean over the jumps of log10(test loss just after / just before the jump)."""
    return mean(log_ratio(j["test_loss_after"], j["test_loss_before"]) for j in cell["arms"][arm]["jumps"])


def acc_diff(cell: dict, a: str, b: str) -> Measure:
    """Test accuracy at the probe step, a - b, with per-example correctness."""
    return combine([1, -1], [accuracy(cell["arms"][a]["correct_at"]), accuracy(cell["arms"][b]["correct_at"])])


def versus(cells: list[dict], arm: str) -> str:
    """log10(T(arm) / T(introspection)) with its 95% interval, as a sentence."""
    iv = interval([speedup(c, "introspection", arm) for c in cells])
    return f"vs {arm} jumps: log10(T({arm}) / T(introspection)) = {iv.effect:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]"


def arms_detail(cells: list[dict]) -> str:
    parts = [f"{a} {mean(c['arms'][a]['steps'] for c in cells):.0f}" for a in ARMS]
    censored = sum(c["arms"][a]["censored"] for c in cells for a in ARMS)
    return "mean steps to target: " + ", ".join(parts) + f"; {censored} censored run(s) counted at their budget"


# ---------------------------------------------------------------- measurement helpers
def train_weights(run: Run, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, held-out) weight indices of a source run: a fixed random HELD_OUT share is held out."""
    n = run.snapshots.shape[1]
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(n))
    cut = round(HELD_OUT * n)
    return perm[cut:].sort().values, perm[:cut].sort().values


def history_cost(ctx: Context, run: Run) -> dict:
    """What a run's weight history costs: parameters, snapshots, dtype, MiB in memory and on disk."""
    snaps = run.snapshots
    path = ctx.store.run_dir(run.spec) / "trajectory.pt"
    return {
        "params": int(snaps.shape[1]),
        "snapshots": int(snaps.shape[0]),
        "dtype": str(snaps.dtype).removeprefix("torch."),
        "memory_mib": snaps.numel() * snaps.element_size() / 2**20,
        "disk_mib": path.stat().st_size / 2**20 if path.exists() else float("nan"),
    }


def weight_stats(run: Run, seed: int) -> dict:
    """`introspect.layer_stats` of a run's weight history, one row per parameter tensor."""
    model = build_model(run.spec, load_data(run.spec))
    return layer_stats(run.snapshots, [(n, p.numel()) for n, p in model.named_parameters()], seed)

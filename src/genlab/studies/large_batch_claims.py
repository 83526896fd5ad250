"""The claims of the `large-batch` study: one small named quantity per claim, with its control beside it.

Every function below maps one seed's measurements (a "cell" of `LargeBatchStudy.analyze`) to a number or a
`Measure` (a number with per-test-example contributions). All regime comparisons are at matched training loss
(see `large_batch`). Controls: the A/A comparison SB vs SBc (same x0, another batch order) for every two-regime
claim; the network at x0 for LB-lowdim; a shuffled pairing for the slopes of LB-warm and LB-sweep.
Undefined values (a log of a non-positive number, a sharpness ascent that never moved) are NaN: the verdict
rule leaves them out and counts them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from genlab.studies.verdict import (
    Control,
    Magnitude,
    Measure,
    Verdict,
    accuracy,
    combine,
    judge,
    log_ratio,
    part,
    shuffled,
    slope,
)

SHARPNESS = [(1e-3, None), (5e-4, None), (1e-3, 100), (5e-4, 100)]  # (eps, subspace dim)
STEEP_TAU, RISE_STEP, LOWDIM_SHARE = 1e-2, 0.25, 0.05
PHI_KEY = "0.001/full"


# ---------------------------------------------------------------- small readers
def acc(c: dict, run: str) -> Measure:
    return accuracy(c["correct"][run])


def phi(c: dict, run: str, key: str = PHI_KEY) -> float:
    cell = c["min"][run] if run in c["min"] else c["others"][run]
    v = cell["phi"].get(key)
    return math.nan if v is None else float(v)


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def rise(path: dict, split: str, side: str) -> float:
    """Loss RISE_STEP units of alpha beyond an endpoint minus the loss at it (side 'far': alpha 1, 'near': 0)."""
    alpha, loss = np.asarray(path["alpha"]), np.asarray(path[f"{split}_loss"])

    def at(a: float) -> float:
        return float(loss[np.argmin(np.abs(alpha - a))])

    return at(1 + RISE_STEP) - at(1.0) if side == "far" else at(-RISE_STEP) - at(0.0)


def traj_slope(rows: list[dict]) -> float:
    """Least-squares slope of log10 phi against log10 training loss along a run's snapshots after x0 (the
    snapshot at step 0 is the random network, not an iterate of the method)."""
    pts = [
        (math.log10(r["loss"]), math.log10(r["phi"]))
        for r in rows
        if r["step"] > 0 and (r["phi"] or 0) > 0 and r["loss"] > 0
    ]
    if len(pts) < 3:
        return math.nan
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


# ---------------------------------------------------------------- quantities (claim, control)
def gap(c: dict, other: str = "LB") -> Measure:
    """LB-gap: test acc SB - test acc of `other` (LB; SBc for the control)."""
    return combine([1, -1], [acc(c, "SB"), acc(c, other)])


def sharp(c: dict, other: str = "LB") -> float:
    """LB-sharp: mean over eps x {full, subspace} of log10(phi_other / phi_SB)."""
    keys = [f"{e:g}/{d or 'full'}" for e, d in SHARPNESS]
    return nanmean([log_ratio(phi(c, other, k), phi(c, "SB", k)) for k in keys])


def eig(c: dict, other: str = "LB") -> float:
    """LB-eig: log10(lambda_max of `other` / lambda_max SB)."""
    return log_ratio(c["min"][other]["top"][0], c["min"]["SB"]["top"][0])


def lowdim(c: dict, at: str = "LB") -> float:
    """LB-lowdim: log10(5% / steep fraction at `at`) (positive: steep directions are under 5%)."""
    return log_ratio(LOWDIM_SHARE, c["min"][at]["steep_fraction"])


def interp(c: dict, other: str = "LB") -> float:
    """LB-interp: log10(rise beyond `other` / rise beyond SB) on the linear path, mean of train and test."""
    p = c["paths"][other]["linear"]
    return nanmean([log_ratio(rise(p, s, "far"), rise(p, s, "near")) for s in ("train", "test")])


def warm_points(c: dict, warm: list[int]) -> tuple[list[int], list[str]]:
    return [0, *warm], ["LB", *(f"warm{k}" for k in warm)]


def warm_acc(c: dict, warm: list[int], seed: int | None = None) -> Measure:
    """LB-warm: slope of test accuracy against SB warm-up epochs k (k = 0: LB); `seed`: shuffled pairing."""
    ks, names = warm_points(c, warm)
    return slope(ks if seed is None else shuffled(ks, seed), [acc(c, n) for n in names])


def warm_flat(c: dict, warm: list[int]) -> float:
    """LB-warm part: minus the slope of log10 phi against k (positive: flatter after warm-up)."""
    ks, names = warm_points(c, warm)
    logs = [math.log10(v) if v > 0 else math.nan for v in (phi(c, n) for n in names)]
    return -slope(ks, logs).value


def sweep_points(c: dict, sweep: list[int]) -> tuple[list[float], list[str]]:
    names = sorted(["SB", "LB", *(f"bs{b}" for b in sweep)], key=lambda n: c["final"][n]["batch_size"])
    return [math.log2(c["final"][n]["batch_size"]) for n in names], names


def sweep_acc(c: dict, sweep: list[int], seed: int | None = None) -> Measure:
    """LB-sweep: minus the slope of test accuracy against log2 batch size (positive: accuracy falls)."""
    x, names = sweep_points(c, sweep)
    s = slope(x if seed is None else shuffled(x, seed), [acc(c, n) for n in names])
    return Measure(-s.value, None if s.examples is None else -s.examples)


def sweep_sharp(c: dict, sweep: list[int]) -> float:
    """LB-sweep part: slope of log10 phi against log2 batch size (positive: sharper with larger batches)."""
    x, names = sweep_points(c, sweep)
    return slope(x, [math.log10(v) if v > 0 else math.nan for v in (phi(c, n) for n in names)]).value


def dist(c: dict, other: str = "LB") -> float:
    """LB-dist: log10(||x_SB - x0|| / ||x_other - x0||)."""
    return log_ratio(c["dist"]["SB"], c["dist"][other])


def traj(c: dict, other: str = "LB") -> float:
    """LB-traj: slope(SB) - slope(other) of log10 phi against log10 loss: LB sharpness rises as the loss falls
    (negative slope), SB stays flat then falls (slope >= 0)."""
    return traj_slope(c["traj"]["SB"]) - traj_slope(c["traj"][other])


# ---------------------------------------------------------------- aggregation over setups and seeds
def per_seed(result: dict, fn: Callable[[dict], float | Measure]) -> list[float | Measure]:
    """`fn` per seed, averaged over the setups (per-example contributions kept when there is one setup)."""
    setups = list(result["setups"].values())
    out = []
    for s in range(result["seeds"]):
        vals = [fn(cells[s]) for cells in setups]
        if len(vals) == 1:
            out.append(vals[0])
        else:
            out.append(nanmean([v.value if isinstance(v, Measure) else v for v in vals]))
    return out


def each(result: dict, fn: Callable[[dict], object], fmt: str = "{:.3g}") -> str:
    """`fn` per seed for the detail text, per setup."""
    return "; ".join(
        f"{name}: " + ", ".join(fmt.format(fn(c)) for c in cells) for name, cells in result["setups"].items()
    )


def rises(c: dict) -> str:
    p = c["paths"]["LB"]["linear"]
    return f"{rise(p, 'train', 'near'):.3g}/{rise(p, 'train', 'far'):.3g}"


def value(x: float | Measure) -> float:
    return x.value if isinstance(x, Measure) else x


def claims(result: dict) -> list[Verdict]:
    """Every claim of the large-batch study from its measurements (module docstring)."""
    warm, sweep = result["warm"], result["sweep"]
    aa = "A/A: the same quantity for SB vs SBc (same x0, another batch order)"

    def ps(fn: Callable[[dict], float | Measure]) -> list[float | Measure]:
        return per_seed(result, fn)

    def shuffled_per_seed(fn: Callable[[dict, int], float | Measure]) -> list[float | Measure]:
        setups = list(result["setups"].values())
        one = len(setups) == 1
        return [nanmean([value(fn(cells[s], s)) for cells in setups]) if not one else fn(setups[0][s], s)
                for s in range(result["seeds"])]  # fmt: skip

    matched = "at matched training loss {:g}".format(result["target_loss"])
    return [
        judge(
            "LB-gap",
            "LB reaches similar train accuracy but lower test accuracy",
            ps(gap),
            f"test acc SB - test acc LB, {matched}",
            control=Control(ps(lambda c: gap(c, "SBc")), aa),
            detail="train acc SB/LB: "
            + each(
                result, lambda c: f"{c['final']['SB']['train_acc']:.3f}/{c['final']['LB']['train_acc']:.3f}", "{}"
            ),
            paper="Table 2: e.g. C1 test 80.04 (SB) vs 77.26 (LB); F1 98.03 vs 97.81; train ~100% both",
        ),
        judge(
            "LB-sharp",
            "LB minimizers are sharper (Keskar phi)",
            ps(sharp),
            f"mean over eps {{1e-3, 5e-4}} x {{full, 100-dim subspace}} of log10(phi_LB / phi_SB), {matched}",
            control=Control(ps(lambda c: sharp(c, "SBc")), aa),
            magnitude=Magnitude(
                1.0, "1-2 orders of magnitude (F1 full space eps 1e-3: 205.14 vs 1.23)", log10=True
            ),
            detail="phi (eps 1e-3, full) SB: "
            + each(result, lambda c: phi(c, "SB"))
            + "; LB: "
            + each(result, lambda c: phi(c, "LB"))
            + "; log10(phi_LB / phi_SB) per eps/space: "
            + ", ".join(
                f"{k} " + each(result, lambda c, k=k: log_ratio(phi(c, "LB", k), phi(c, "SB", k)), "{:+.2f}")
                for k in (f"{e:g}/{d or 'full'}" for e, d in SHARPNESS)
            ),
            paper="Table 3: LB 1-2 orders of magnitude sharper",
        ),
        judge(
            "LB-eig",
            "The largest Hessian eigenvalues are larger at LB minimizers",
            ps(eig),
            f"log10(lambda_max LB / lambda_max SB), {matched}",
            control=Control(ps(lambda c: eig(c, "SBc")), aa),
            detail="lambda_max SB: "
            + each(result, lambda c: c["min"]["SB"]["top"][0])
            + "; LB: "
            + each(result, lambda c: c["min"]["LB"]["top"][0]),
            paper="Sec. 4: heuristic evidence from the top Hessian eigenvalues",
        ),
        judge(
            "LB-lowdim",
            "The loss rises steeply only along a small subspace (~5% of directions)",
            ps(lowdim),
            f"log10(0.05 / fraction of the LB Hessian spectrum above {STEEP_TAU:g} lambda_max) (SLQ)",
            control=Control(ps(lambda c: lowdim(c, "init")), "the same at x0 (the network at initialization)"),
            detail="steep fraction SB: "
            + each(result, lambda c: c["min"]["SB"]["steep_fraction"])
            + "; LB: "
            + each(result, lambda c: c["min"]["LB"]["steep_fraction"])
            + "; x0: "
            + each(result, lambda c: c["min"]["init"]["steep_fraction"]),
            paper="Sec. 4: sharpness in a random 100-dim subspace is lower; the notes: ~5% of directions",
        ),
        judge(
            "LB-interp",
            "On the parametric plot the LB side rises faster",
            ps(interp),
            f"log10(rise beyond x_l / rise beyond x_s), rise = loss {RISE_STEP} alpha beyond the endpoint minus "
            "the loss there (linear path), mean of train and test",
            control=Control(ps(lambda c: interp(c, "SBc")), aa + " (the path SB -> SBc)"),
            detail="rises SB/LB (train, linear): " + each(result, rises, "{}"),
            paper="Fig. 3: the loss rises more steeply on the LB side, for train and test",
        ),
        judge(
            "LB-warm",
            "After a few SB epochs, LB training is flatter and generalizes better",
            ps(lambda c: warm_acc(c, warm)),
            f"slope of test accuracy against SB warm-up epochs k in {[0, *warm]} (then LB to the matched loss)",
            control=Control(
                shuffled_per_seed(lambda c, s: warm_acc(c, warm, s)), "the slope against a shuffled pairing of k"
            ),
            also=[
                part(
                    "flatter: -slope of log10 phi against k", ps(lambda c: warm_flat(c, warm)), "-d log10 phi / dk"
                )
            ],
            detail="-d log10 phi/dk per seed: " + each(result, lambda c: warm_flat(c, warm)),
            paper="Fig. 5: test accuracy rises and sharpness falls with the SB warm-up epochs",
        ),
        judge(
            "LB-dist",
            "SB minimizers are farther from x0",
            ps(dist),
            f"log10(||x_s - x0|| / ||x_l - x0||), {matched}",
            control=Control(ps(lambda c: dist(c, "SBc")), aa),
            magnitude=Magnitude(math.log10(3), "ratio between 3 and 10 (Table 4)", hi=1.0, log10=True),
            detail="ratio: " + each(result, lambda c: c["dist"]["SB"] / c["dist"]["LB"]),
            paper="Table 4: ||x_s - x0|| / ||x_l - x0|| between 3 and 10",
        ),
        judge(
            "LB-traj",
            "Along training, LB sharpness rises as the loss falls; SB stays flat, then falls",
            ps(traj),
            "slope of log10 phi against log10 train loss along the SB snapshots minus the same along LB",
            control=Control(ps(lambda c: traj(c, "SBc")), aa),
            detail="slope SB: "
            + each(result, lambda c: traj_slope(c["traj"]["SB"]))
            + "; LB: "
            + each(result, lambda c: traj_slope(c["traj"]["LB"])),
            paper="Fig. 6: sharpness vs cross-entropy: LB rises, SB flat then falling",
        ),
        judge(
            "LB-sweep",
            "Beyond a threshold batch size, test accuracy falls and sharpness rises",
            ps(lambda c: sweep_acc(c, sweep)),
            "minus the slope of test accuracy against log2 batch size (every batch size at the matched loss)",
            control=Control(
                shuffled_per_seed(lambda c, s: sweep_acc(c, sweep, s)),
                "the slope against a shuffled pairing of batch sizes",
            ),
            also=[
                part(
                    "sharper: slope of log10 phi against log2 batch size", ps(lambda c: sweep_sharp(c, sweep)), ""
                )
            ],
            detail="d log10 phi / d log2 bs per seed: " + each(result, lambda c: sweep_sharp(c, sweep)),
            paper="Fig. 4: test accuracy drops and sharpness grows past a batch size threshold",
        ),
    ]


def end_of_budget_table(result: dict) -> dict:
    """SB vs LB at matched loss and after the fixed epoch budget (means over seeds): the confound, shown."""
    rows = []
    for name, cells in result["setups"].items():
        for label, sb, lb in (("matched loss", "SB", "LB"), ("end of budget", "budget-SB", "budget-LB")):

            def mean(fn: Callable[[dict], float], cells: list = cells) -> float:
                return nanmean([fn(c) for c in cells])

            rows.append(
                [
                    name,
                    label,
                    mean(lambda c, r=sb: c["final"][r]["steps"]),
                    mean(lambda c, r=lb: c["final"][r]["steps"]),
                    mean(lambda c, r=sb: c["final"][r]["train_loss"]),
                    mean(lambda c, r=lb: c["final"][r]["train_loss"]),
                    mean(lambda c, r=sb, q=lb: c["final"][r]["test_acc"] - c["final"][q]["test_acc"]),
                    mean(lambda c, r=sb, q=lb: log_ratio(phi(c, q), phi(c, r))),
                    mean(lambda c, r=sb, q=lb: log_ratio(c["dist"][r], c["dist"][q])),
                ]
            )
    return {
        "title": "SB vs LB: at matched training loss (judged) and after a fixed epoch budget (not judged)",
        "columns": [
            "setup",
            "compared",
            "SB steps",
            "LB steps",
            "SB train loss",
            "LB train loss",
            "test acc SB - LB",
            "log10 phi LB/SB (eps 1e-3, full)",
            "log10 dist SB/LB",
        ],
        "rows": rows,
        "note": "means over seeds; a fixed epoch budget gives SB many more steps and a lower loss than LB, "
        f"which is why the claims compare the runs at matched training loss {result['target_loss']:g}",
    }

"""The claims of the `optimizer-minima` study: one small named quantity per claim, with its control beside it.

Each function maps one seed's measurements (a "cell" of `OptimizerMinimaStudy.analyze`, or the result and a
seed where the quantity spans architectures or seeds) to a number or a `Measure`, oriented so that a positive
value means "the claim holds". Every run is at the matched training loss. A claim's per-seed value is the mean
over the architectures (MLP without and with BN) unless it names one.

- OM-distinct: path excess = log10(mean train loss over the interior of the straight path between two minima /
  mean of the two endpoint losses), mean over the 10 pairs of different optimizers; > 0 when a ridge separates
  them (it is < 0 inside one convex basin, so the quantity does not stop at 0 as a barrier height does).
  Control: the same over the A/A pairs (each optimizer and its twin: same x0, another batch order). Part: the
  Im et al. barrier height, log10(mean barrier between optimizers / mean A/A barrier).
- OM-switch: log10(d(E, x_A) / d(E, x_B)), E the endpoint of the switch A>B: > 0 when E ends closer to B's
  minimum than to A's. Control: the same with E = A's twin (no switch, another batch order; an A>A switch is
  A's run bit for bit, see `optimizer_minima`). Part: the switch leaves A's minimum farther than batch-order
  noise does, log10(d(E_AB, x_A) / d(x_A~, x_A)).
- OM-basin: log10(median basin radius of Adam / of SGD) (train loss, filter-normalized directions, the same for
  both). Control: log10(median radius of SGD's twin / of SGD) (two runs of one optimizer).
- OM-norm: log10(between / within): between = SD of log10 ||w|| over the optimizers at this seed; within = the
  RMS deviation of each optimizer's log10 ||w|| from its mean over the other seeds (other x0 and batch order),
  rescaled to one run's SD. Judged on the BN architectures; part: BN minus no BN > 0 ("BN makes this
  consistent"). Control: the same ratio with the optimizer labels permuted within the seed (a cyclic shift).
- OM-traintest (the researcher's request, made a measurement): do the test surfaces tell the story the train
  surfaces tell? Least-squares slope of the test barrier against the train barrier over the 15 pairs (10
  between optimizers, 5 A/A), > 0 when a higher train barrier means a higher test barrier. Control: the slope
  against a shuffled pairing. Part: OM-distinct's path excess measured on the TEST loss.
- OM-eig (the researcher's question): the slope of the generalization gap (test loss - train loss, per-example
  test losses kept: the interval includes test-set noise) against log10 lambda_max over every optimizer and
  architecture of the seed (10 minima); > 0: sharper minima generalize worse. Part: minus the slope against
  log10 median basin radius (> 0: larger basins, smaller gap). Control: the slope against a shuffled pairing.
  "No relation" shows as an interval containing 0 (inconclusive).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from genlab.studies.verdict import Control, Measure, Verdict, combine, judge, log_ratio, part, shuffled, slope

OPTIMIZERS = ("sgd", "sgdm", "rmsprop", "adadelta", "adam")


def twin(opt: str) -> str:
    """The A/A twin of an optimizer's run: same x0, another batch order."""
    return f"{opt}~"


def switch_name(a: str, b: str) -> str:
    return f"{a}>{b}"


def pair_key(a: str, b: str) -> str:
    return f"{a}|{b}"


def distinct_pairs() -> list[str]:
    return [pair_key(a, b) for i, a in enumerate(OPTIMIZERS) for b in OPTIMIZERS[i + 1 :]]


def twin_pairs() -> list[str]:
    return [pair_key(a, twin(a)) for a in OPTIMIZERS]


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def median_radius(c: dict, run: str, split: str = "train") -> float:
    r = [math.inf if v is None else v for v in c["min"][run]["basin"][split]]
    return float(np.median(r))


# ---------------------------------------------------------------- quantities (claim, control)
def distinct(c: dict, control: bool = False, split: str = "train") -> float:
    """OM-distinct: mean path excess over pairs of different optimizers (control: over the A/A pairs)."""
    return nanmean([c["paths"][k][f"{split}_excess"] for k in (twin_pairs() if control else distinct_pairs())])


def barrier_ratio(c: dict, split: str = "train") -> float:
    """OM-distinct part: log10(mean barrier between optimizers / mean A/A barrier)."""
    mean = [float(np.mean([c["paths"][k][split] for k in keys])) for keys in (distinct_pairs(), twin_pairs())]
    return log_ratio(*mean)


def switch(c: dict, switches: list, control: bool = False) -> float:
    """OM-switch: mean over pairs of log10(d(E, x_A) / d(E, x_B)), E the end of A>B (control: A's twin)."""
    vals = []
    for a, b in switches:
        e = twin(a) if control else switch_name(a, b)
        ok = control or c["final"][e].get("switched", False)
        vals.append(log_ratio(c["dist"][pair_key(e, a)], c["dist"][pair_key(e, b)]) if ok else math.nan)
    return nanmean(vals)


def switch_away(c: dict, switches: list) -> float:
    """OM-switch part: mean of log10(d(E_AB, x_A) / d(x_A~, x_A))."""
    return nanmean(
        [
            log_ratio(c["dist"][pair_key(switch_name(a, b), a)], c["dist"][pair_key(twin(a), a)])
            for a, b in switches
        ]
    )


def basin(c: dict, control: bool = False) -> float:
    """OM-basin: log10(median radius Adam / SGD) (control: SGD's twin / SGD)."""
    return log_ratio(median_radius(c, twin("sgd") if control else "adam"), median_radius(c, "sgd"))


def norm_consistency(cells: list[dict], seed: int, shift: int = 0) -> float:
    """OM-norm: log10(between / within) of log10 ||w|| at `seed` (module docstring); `shift` > 0 permutes the
    optimizer labels cyclically (the control)."""
    n = np.array([[math.log10(c["norm"][o]) for o in OPTIMIZERS] for c in cells])  # [seeds, optimizers]
    if len(n) < 2:
        return math.nan
    others = (n.sum(0) - n[seed]) / (len(n) - 1)
    d = np.roll(n[seed], shift) - others
    within = math.sqrt(float(np.mean(d**2)) * (len(n) - 1) / len(n))
    return log_ratio(float(np.std(n[seed], ddof=1)), within)


def traintest(c: dict, seed: int | None = None) -> Measure:
    """OM-traintest: slope of the test barrier on the train barrier over all 15 pairs (`seed`: shuffled)."""
    keys = distinct_pairs() + twin_pairs()
    x = [c["paths"][k]["train"] for k in keys]
    return slope(x if seed is None else shuffled(x, seed), [c["paths"][k]["test"] for k in keys])


def gap(c: dict, opt: str) -> Measure:
    """Generalization gap test loss - train loss of an optimizer's minimum, with per-example contributions."""
    m = c["min"][opt]
    ex = np.asarray(m["test_losses"], dtype=float) - m["train_loss"]
    return Measure(float(ex.mean()), ex)


def eig(result: dict, seed: int, x: str = "lambda", shuffle: bool = False) -> Measure:
    """OM-eig: slope of the gap against log10 lambda_max (x="lambda") or minus the slope against log10 median
    basin radius (x="radius") over every optimizer and architecture at `seed`; `shuffle`: shuffled pairing."""
    cells = [cells[seed] for cells in result["archs"].values()]
    if x == "lambda":
        xs = [
            math.log10(c["min"][o]["top"][0]) if c["min"][o]["top"][0] > 0 else math.nan
            for c in cells
            for o in OPTIMIZERS
        ]
    else:
        xs = [math.log10(median_radius(c, o)) for c in cells for o in OPTIMIZERS]
    ys = [gap(c, o) for c in cells for o in OPTIMIZERS]
    keep = [i for i, v in enumerate(xs) if math.isfinite(v)]
    xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
    if len(xs) < 3:
        return Measure(math.nan)
    s = slope(shuffled(xs, seed) if shuffle else xs, ys)
    sign = 1.0 if x == "lambda" else -1.0
    return Measure(sign * s.value, None if s.examples is None else sign * s.examples)


# ---------------------------------------------------------------- aggregation and the claims
def per_seed(result: dict, fn: Callable[[dict, int], float | Measure], archs: list[str] | None = None) -> list:
    """fn(cell, seed) per seed, averaged over the architectures (`archs`: only these); per-example
    contributions are averaged with them (the architectures share the test set)."""
    names = archs or list(result["archs"])
    out = []
    for s in range(result["seeds"]):
        vals = [fn(result["archs"][a][s], s) for a in names]
        if all(isinstance(v, Measure) for v in vals):
            out.append(combine([1 / len(vals)] * len(vals), vals))
        else:
            out.append(nanmean([v.value if isinstance(v, Measure) else v for v in vals]))
    return out


def each(result: dict, fn: Callable[[dict], float], fmt: str = "{:.3g}") -> str:
    return "; ".join(
        f"{a}: " + ", ".join(fmt.format(fn(c)) for c in cells) for a, cells in result["archs"].items()
    )


def claims(result: dict) -> list[Verdict]:
    """Every claim of the optimizer-minima study from its measurements (module docstring)."""
    sw = result["switches"]
    bn = [a for a, v in result["bn"].items() if v]
    plain = [a for a, v in result["bn"].items() if not v]
    matched = "at matched training loss {:g}".format(result["target_loss"])
    aa = "A/A: the same quantity between each optimizer's minimum and its twin (same x0, another batch order)"

    def ps(fn: Callable[[dict], float | Measure], archs: list[str] | None = None) -> list:
        return per_seed(result, lambda c, _s: fn(c), archs)

    def norm_q(archs: list[str], shift: bool = False) -> list[float]:
        return [
            nanmean([norm_consistency(result["archs"][a], s, 1 + s % 4 if shift else 0) for a in archs])
            for s in range(result["seeds"])
        ]

    bn_minus_plain = [b - p for b, p in zip(norm_q(bn), norm_q(plain), strict=True)]
    return [
        judge(
            "OM-distinct",
            "Different optimizers reach different minima separated by loss barriers",
            ps(distinct),
            "log10(mean train loss on the interior of the straight path / mean endpoint loss), mean over the 10 "
            f"pairs of different optimizers, same x0 and batch order, {matched}",
            control=Control(ps(lambda c: distinct(c, control=True)), aa),
            also=[part("barrier between optimizers above the A/A barrier", ps(barrier_ratio), "log10 ratio")],
            detail="train barrier between optimizers (mean over pairs): "
            + each(result, lambda c: float(np.mean([c["paths"][k]["train"] for k in distinct_pairs()])))
            + "; A/A: "
            + each(result, lambda c: float(np.mean([c["paths"][k]["train"] for k in twin_pairs()]))),
            paper="barycentric/bilinear surfaces: barriers between optimizers' solutions (figures, no numbers)",
        ),
        judge(
            "OM-switch",
            "Switching optimizer late moves to a different minimum, resembling the second optimizer's",
            ps(lambda c: switch(c, sw)),
            "log10(d(E, x_A) / d(E, x_B)), E the endpoint of A>B, mean over the pairs "
            + ", ".join(f"{a}>{b}" for a, b in sw),
            control=Control(ps(lambda c: switch(c, sw, control=True)), "the same with E = A's twin (no switch)"),
            also=[part("leaves A's minimum farther than A's twin is", ps(lambda c: switch_away(c, sw)), "")],
            detail="train loss at the switch / target: "
            + each(
                result,
                lambda c: nanmean([c["final"][switch_name(a, b)]["loss_at_switch"] or math.nan for a, b in sw]),
            )
            + f" / {result['target_loss']:g}",
            paper="after a switch near convergence the endpoint looks like the second optimizer's",
        ),
        judge(
            "OM-basin",
            "Adam's basins are larger than SGD's",
            ps(basin),
            f"log10(median basin radius Adam / SGD), train loss, delta {result['basin_delta']:g}, "
            "filter-normalized directions (the same draws for every minimum)",
            control=Control(ps(lambda c: basin(c, control=True)), "log10(median radius SGD twin / SGD)"),
            detail="median radius SGD: "
            + each(result, lambda c: median_radius(c, "sgd"))
            + "; Adam: "
            + each(result, lambda c: median_radius(c, "adam")),
            paper="basin volume proxy along random directions (no numbers retrieved)",
        ),
        judge(
            "OM-norm",
            "Each optimizer's minima have a characteristic weight norm; BatchNorm makes this consistent",
            norm_q(bn),
            "log10(SD of log10 ||w|| between optimizers / its SD across seeds within an optimizer), BN nets",
            control=Control(norm_q(bn, shift=True), "the same with the optimizer labels permuted within the seed"),
            also=[part("BN minus no BN", bn_minus_plain, "difference of log10 ratios")],
            detail="without BN: " + ", ".join(f"{v:.3g}" for v in norm_q(plain)),
            paper="each optimizer selects a characteristic weight norm; BN makes re-runs consistent",
        ),
        judge(
            "OM-traintest",
            "The train surfaces tell the test story: test barriers track train barriers and optimizers' minima "
            "are separated on the test loss too",
            ps(traintest),
            "slope of the test barrier against the train barrier over the 15 pairs (10 between optimizers, 5 A/A)",
            control=Control(
                per_seed(result, lambda c, s: traintest(c, s)), "the slope against a shuffled pairing of pairs"
            ),
            also=[part("OM-distinct on the test loss", ps(lambda c: distinct(c, split="test")), "path excess")],
            detail="mean test / train barrier between optimizers: "
            + each(
                result,
                lambda c: (
                    float(np.mean([c["paths"][k]["test"] for k in distinct_pairs()]))
                    / max(float(np.mean([c["paths"][k]["train"] for k in distinct_pairs()])), 1e-12)
                ),
            ),
            paper="the researcher's request: every surface on train AND test, side by side",
        ),
        judge(
            "OM-eig",
            "A smaller top Hessian eigenvalue / a larger basin goes with a smaller generalization gap",
            [eig(result, s) for s in range(result["seeds"])],
            "slope of (test loss - train loss) against log10 lambda_max over the 5 optimizers x architectures",
            control=Control([eig(result, s, shuffle=True) for s in range(result["seeds"])], "a shuffled pairing"),
            also=[
                part(
                    "-slope against log10 median basin radius",
                    [eig(result, s, "radius") for s in range(result["seeds"])],
                    "",
                )
            ],
            detail="lambda_max per optimizer (seed 0): "
            + "; ".join(
                f"{a}: " + ", ".join(f"{o} {cells[0]['min'][o]['top'][0]:.3g}" for o in OPTIMIZERS)
                for a, cells in result["archs"].items()
            ),
            paper="the researcher's question (no paper number)",
        ),
    ]


def summary_table(result: dict) -> dict:
    """Per architecture and optimizer, means over seeds: epochs, test accuracy, gap, norm, lambda_max, radius."""
    rows = []
    for a, cells in result["archs"].items():
        for o in OPTIMIZERS:
            rows.append(
                [
                    a,
                    o,
                    result["lr"][o],
                    nanmean([c["final"][o]["epoch"] for c in cells]),
                    nanmean([c["final"][o]["test_acc"] for c in cells]),
                    nanmean([gap(c, o).value for c in cells]),
                    nanmean([c["norm"][o] for c in cells]),
                    nanmean([c["min"][o]["top"][0] for c in cells]),
                    nanmean([c["min"][o]["trace"] for c in cells]),
                    nanmean([median_radius(c, o) for c in cells]),
                    nanmean([median_radius(c, o, "test") for c in cells]),
                ]
            )
    return {
        "title": "Each optimizer's minimum at the matched training loss (means over seeds)",
        "columns": [
            "arch",
            "optimizer",
            "lr",
            "epochs",
            "test acc",
            "gap",
            "||w||",
            "lambda_max",
            "trace",
            "radius (train)",
            "radius (test)",
        ],
        "rows": rows,
        "note": f"every run stops at train loss {result['target_loss']:g}; radius: median basin radius",
    }

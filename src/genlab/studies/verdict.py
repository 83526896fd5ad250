"""Claims and the shared verdict rule: direction, magnitude, a negative control, and honest intervals.

A claim is judged from one number per seed, oriented so that a positive value means "the claim holds" (e.g. SB
test accuracy minus LB test accuracy for "LB generalizes worse"), compared with a `threshold` (0: direction).

The interval. Over the finite per-seed values v_1..v_n (undefined ones, NaN/inf, are left out and counted):
effect = their mean, and the 95% interval is mean +- t_{0.975, n-1} * se with
    se^2 = s^2 / n + var_test,
s^2 the sample variance over seeds. `var_test` is the test-set sampling error: for quantities built from test
examples (accuracies, differences and linear combinations of accuracies) a study passes, per seed, the
per-example contributions e_s (a vector whose mean is v_s, see `Measure`). With a shared test set the seeds
see the same examples, so this error is common to all seeds and does not show in s^2: var_test is the variance
over examples of d_i = mean_s e_{s,i}, divided by the number of examples (independent test sets per seed:
sum_s var(e_s) / m_s / n^2). Without examples var_test = 0 and the interval is the plain Student-t interval.

The rule:
- direction: `supported` when the interval lies above the threshold, `not supported` when below it,
  `inconclusive` otherwise and with fewer than two usable seeds. A *degenerate* claim (every usable seed gives
  the same value, up to a relative 1e-9 of rounding) is flagged; when its interval also has zero width it is
  `inconclusive`: a saturated quantity carries no evidence about variation.
- parts (`also`): further quantities a claim needs (e.g. "test accuracy rises AND sharpness falls"), each judged
  by the same rule; the claim is `not supported` if any part is, `supported` only if all are.
- control: the same quantity on a comparison where the claim must not hold (an A/A comparison, the network at
  initialization, a shuffled pairing), judged by the same rule and threshold. A claim that would be
  `supported` while its control is `supported` too is reported `inconclusive` ("the control passes too").
- magnitude: where the paper states a size, the same interval is compared with it: `supported` when the interval
  lies inside [lo, hi] (hi optional), `not supported` when it lies outside, `inconclusive` otherwise. It is
  reported beside the verdict ("direction reproduced, magnitude not reproduced (paper: X, ours: Y)"); the
  verdict itself is the direction's.
Studies never choose a verdict themselves; they choose the quantity, its orientation, control and magnitude.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

VERDICTS = ("supported", "not supported", "inconclusive")
SAME = 1e-9  # relative tolerance under which per-seed values count as identical (rounding only)
UNCERTAINTY_SEEDS = "Student-t over seeds (n-1 df)"
UNCERTAINTY_TEST = (
    "Student-t over seeds (n-1 df), standard error widened by the test-set sampling error "
    "(variance over test examples of the seed-averaged per-example contributions / n_examples)"
)


@dataclass(frozen=True)
class Measure:
    """One seed's value; `examples` (optional): per-test-example contributions whose mean is `value`."""

    value: float
    examples: np.ndarray | None = None


@dataclass(frozen=True)
class Control:
    """A negative control: per-seed values of the same quantity where the claim must not hold."""

    per_seed: Sequence[float | Measure]
    quantity: str


@dataclass(frozen=True)
class Magnitude:
    """The paper's size, in the claim's units: the interval should lie in [lo, hi] (hi None: above lo).
    `log10`: the quantity is a log10 ratio, shown to the reader as a ratio."""

    lo: float
    paper: str
    hi: float | None = None
    log10: bool = False


@dataclass
class Interval:
    effect: float
    lo: float
    hi: float
    n: int
    n_undefined: int
    degenerate: bool
    with_examples: bool


@dataclass
class Verdict:
    """One claim: its per-seed quantity, the effect with a 95% interval, the verdict and its evidence."""

    id: str
    text: str
    verdict: str
    effect: float
    ci: list[float]
    per_seed: list[float]
    detail: str = ""
    threshold: float = 0.0
    quantity: str = ""
    paper: str = ""
    direction: str = "inconclusive"
    reason: str = ""
    control: dict | None = None
    magnitude: dict | None = None
    degenerate: bool = False
    uncertainty: str = UNCERTAINTY_SEEDS
    summary: str = ""
    n_undefined: int = 0
    parts: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def mean_ci(values: list[float], level: float = 0.95, extra_var: float = 0.0) -> tuple[float, float, float]:
    """(mean, lo, hi): the Student-t interval of the mean with `extra_var` added to the squared standard
    error; lo = hi = mean for one value."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd2 = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * math.sqrt(sd2 / n + extra_var)
    return mean, mean - half, mean + half


def _split(per_seed: Sequence[float | Measure]) -> tuple[list[float], list[np.ndarray | None]]:
    values, examples = [], []
    for m in per_seed:
        if isinstance(m, Measure):
            values.append(float(m.value))
            examples.append(None if m.examples is None else np.asarray(m.examples, dtype=float))
        else:
            values.append(float(m))
            examples.append(None)
    return values, examples


def examples_variance(examples: list[np.ndarray]) -> float:
    """The test-set sampling variance of the mean over seeds (module docstring)."""
    if not examples:
        return 0.0
    sizes = {len(e) for e in examples}
    if len(sizes) == 1 and sizes.pop() > 1:
        d = np.mean(np.stack(examples), axis=0)
        return float(np.var(d, ddof=1) / len(d))
    n = len(examples)
    return float(sum(np.var(e, ddof=1) / len(e) for e in examples if len(e) > 1) / n**2)


def interval(per_seed: Sequence[float | Measure]) -> Interval:
    """Effect and 95% interval of per-seed values (undefined ones left out and counted)."""
    values, examples = _split(per_seed)
    keep = [i for i, v in enumerate(values) if math.isfinite(v)]
    finite = [values[i] for i in keep]
    ex = [examples[i] for i in keep if examples[i] is not None]
    with_examples = bool(ex) and len(ex) == len(keep)
    var_test = examples_variance(ex) if with_examples else 0.0
    mean, lo, hi = mean_ci(finite, extra_var=var_test)
    degenerate = len(finite) >= 2 and max(finite) - min(finite) <= SAME * max(abs(max(finite)), abs(min(finite)))
    return Interval(mean, lo, hi, len(finite), len(values) - len(finite), degenerate, with_examples)


def rule(iv: Interval, threshold: float) -> tuple[str, str]:
    """(verdict, reason) of the direction rule for an interval."""
    if iv.n < 2:
        return "inconclusive", f"only {iv.n} usable seed(s)"
    if iv.degenerate and iv.hi - iv.lo <= SAME * max(abs(iv.hi), abs(iv.lo)):
        return "inconclusive", "degenerate: every seed gives the same value and the interval has zero width"
    if iv.lo > threshold:
        return "supported", ""
    if iv.hi < threshold:
        return "not supported", ""
    return "inconclusive", f"the interval contains {threshold:g}"


def _fmt(x: float, log10: bool) -> str:
    return f"{10**x:.3g}x" if log10 else f"{x:.3g}"


def _magnitude(iv: Interval, m: Magnitude) -> dict:
    if iv.n < 2 or not math.isfinite(iv.lo):
        verdict = "inconclusive"
    elif iv.lo > m.lo and (m.hi is None or iv.hi < m.hi):
        verdict = "supported"
    elif iv.hi < m.lo or (m.hi is not None and iv.lo > m.hi):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    ours = f"{_fmt(iv.effect, m.log10)} [{_fmt(iv.lo, m.log10)}, {_fmt(iv.hi, m.log10)}]"
    return {"threshold": m.lo, "upper": m.hi, "verdict": verdict, "paper": m.paper, "ours": ours}


_WORD = {"supported": "reproduced", "not supported": "not reproduced", "inconclusive": "undecided"}


def judge(
    claim_id: str,
    text: str,
    per_seed: Sequence[float | Measure],
    quantity: str,
    *,
    control: Control | None,
    threshold: float = 0.0,
    magnitude: Magnitude | None = None,
    also: Sequence[Verdict] = (),
    detail: str = "",
    paper: str = "",
    **extra: object,
) -> Verdict:
    """Apply the shared rule (module docstring) to per-seed values of `quantity`; `paper` says what the paper
    measured, for the report. `control` is required: pass None only where no comparison can fail the claim,
    and say why in `detail`."""
    iv = interval(per_seed)
    direction, reason = rule(iv, threshold)
    verdict = direction
    part_verdicts = [p.verdict for p in also]
    if also:
        if "not supported" in (direction, *part_verdicts):
            verdict = "not supported"
        elif direction == "supported" and all(v == "supported" for v in part_verdicts):
            verdict = "supported"
        else:
            verdict = "inconclusive"
            reason = reason or "a part of the claim is inconclusive"
    ctrl = None
    if control is not None:
        civ = interval(control.per_seed)
        cverdict, creason = rule(civ, threshold)
        ctrl = {
            "effect": civ.effect,
            "ci": [civ.lo, civ.hi],
            "verdict": cverdict,
            "reason": creason,
            "per_seed": _split(control.per_seed)[0],
            "quantity": control.quantity,
            "degenerate": civ.degenerate,
        }
        if verdict == "supported" and cverdict == "supported":
            verdict, reason = "inconclusive", "the control passes too"
    mag = _magnitude(iv, magnitude) if magnitude is not None else None
    summary = f"direction {_WORD[direction]}"
    summary += "".join(f", part '{p.id}' {_WORD[p.verdict]}" for p in also)
    if mag is not None:
        summary += f", magnitude {_WORD[mag['verdict']]} (paper: {mag['paper']}, ours: {mag['ours']})"
    notes = [detail] if detail else []
    if iv.n_undefined:
        notes.append(f"{iv.n_undefined} of {iv.n + iv.n_undefined} seeds undefined (not finite) and left out")
    notes.append(f"{iv.n} seeds; supported when the 95% interval lies above {threshold:g}")
    return Verdict(
        id=claim_id,
        text=text,
        verdict=verdict,
        effect=iv.effect,
        ci=[iv.lo, iv.hi],
        per_seed=_split(per_seed)[0],
        detail="; ".join(notes),
        threshold=threshold,
        quantity=quantity,
        paper=paper,
        direction=direction,
        reason=reason,
        control=ctrl,
        magnitude=mag,
        degenerate=iv.degenerate,
        uncertainty=UNCERTAINTY_TEST if iv.with_examples else UNCERTAINTY_SEEDS,
        summary=summary,
        n_undefined=iv.n_undefined,
        parts=[p.to_dict() for p in also],
        extra=dict(extra),
    )


def part(name: str, per_seed: Sequence[float | Measure], quantity: str, threshold: float = 0.0) -> Verdict:
    """A part of a claim (see `judge(also=...)`): judged by the direction rule alone."""
    return judge(name, name, per_seed, quantity, control=None, threshold=threshold)


# ---------------------------------------------------------------- small quantities the studies share
def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when undefined (a constant input) — left out and counted, never 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        r = stats.spearmanr(x, y)[0]
    return float(r) if math.isfinite(r) else math.nan


def log_ratio(a: float, b: float) -> float:
    """log10(a / b); NaN (undefined) unless both are positive and finite."""
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return math.log10(a / b)


def slope_weights(x: Sequence[float]) -> np.ndarray:
    """w with sum_j w_j y_j = the least-squares slope of y on x (a linear function of y)."""
    x = np.asarray(x, dtype=float)
    xc = x - x.mean()
    denom = float((xc**2).sum())
    if denom == 0:
        return np.full(len(x), math.nan)
    return xc / denom


def slope(x: Sequence[float], y: Sequence[float | Measure]) -> Measure:
    """Least-squares slope of y on x; with per-example y's, per-example contributions of the slope too."""
    w = slope_weights(x)
    values, examples = _split(y)
    value = float(np.dot(w, values))
    if all(e is not None for e in examples) and len({len(e) for e in examples}) == 1:
        return Measure(value, np.tensordot(w, np.stack(examples), axes=1))
    return Measure(value)


def combine(weights: Sequence[float], measures: Sequence[Measure]) -> Measure:
    """sum_j w_j m_j, per-example contributions combined the same way when every measure has them."""
    value = float(sum(w * m.value for w, m in zip(weights, measures, strict=True)))
    ex = [m.examples for m in measures]
    if all(e is not None for e in ex) and len({len(e) for e in ex}) == 1:
        return Measure(value, sum(w * np.asarray(e, float) for w, e in zip(weights, ex, strict=True)))
    return Measure(value)


def accuracy(correct: str | Sequence[float] | np.ndarray) -> Measure:
    """A test accuracy from the per-example 0/1 correctness: a vector, or a string of '0'/'1' digits (`pack`)."""
    if isinstance(correct, str):
        c = (np.frombuffer(correct.encode(), dtype=np.uint8) - ord("0")).astype(float)
    else:
        c = np.asarray(correct, dtype=float)
    return Measure(float(c.mean()), c)


def pack(correct: Sequence[float] | np.ndarray) -> str:
    """Per-example 0/1 correctness as a string of digits: how studies keep it compact in result.json."""
    return "".join("1" if v else "0" for v in np.asarray(correct).astype(bool))


def shuffled(values: Sequence, seed: int) -> list:
    """A fixed pseudo-random permutation of `values` (a shuffled-pairing control), never the identity when
    there are at least two distinct positions."""
    rng = np.random.default_rng(10_007 + seed)
    n = len(values)
    order = rng.permutation(n)
    if n >= 2 and np.array_equal(order, np.arange(n)):
        order = np.roll(order, 1)
    return [values[i] for i in order]

"""Claims and the shared verdict rule.

A claim is judged from one number per seed, oriented so that a positive value means "the claim holds"
(e.g. SB test accuracy minus LB test accuracy for "LB generalizes worse"), compared with a `threshold`
(0 unless the claim states a size, e.g. "at least 10x sharper" on a log10 scale is threshold 1).

The rule, over the finite per-seed values (diverged seeds are dropped and counted in `detail`):
- effect = their mean; ci = the 95% Student-t interval of the mean (n >= 2);
- `supported` when ci lies entirely above the threshold,
- `not supported` when ci lies entirely below it,
- `inconclusive` otherwise — including fewer than two usable seeds.
Studies never choose a verdict themselves; they only choose the quantity, its orientation and threshold.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

from scipy import stats

VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass
class Verdict:
    """One claim, its measured per-seed quantity, the effect with a 95% CI and the verdict."""

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
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): the Student-t confidence interval of the mean; lo = hi = mean for one value."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def judge(
    claim_id: str,
    text: str,
    per_seed: list[float],
    quantity: str,
    threshold: float = 0.0,
    detail: str = "",
    paper: str = "",
    **extra: object,
) -> Verdict:
    """Apply the shared rule (module docstring) to per-seed values of `quantity`; `paper` says what the paper
    measured, for the report."""
    values = [float(v) for v in per_seed]
    finite = [v for v in values if math.isfinite(v)]
    mean, lo, hi = mean_ci(finite)
    if len(finite) < 2:
        verdict = "inconclusive"
    elif lo > threshold:
        verdict = "supported"
    elif hi < threshold:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    notes = [detail] if detail else []
    if len(finite) < len(values):
        notes.append(f"{len(values) - len(finite)} of {len(values)} seeds not finite (diverged) and left out")
    notes.append(f"{len(finite)} seeds; supported when the 95% CI of the mean lies above {threshold:g}")
    return Verdict(
        id=claim_id,
        text=text,
        verdict=verdict,
        effect=mean,
        ci=[lo, hi],
        per_seed=values,
        detail="; ".join(notes),
        threshold=threshold,
        quantity=quantity,
        paper=paper,
        extra=dict(extra),
    )


def spearman(x: list, y: list) -> float:
    """Spearman rank correlation; 0 when undefined (a constant input)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        r = stats.spearmanr(x, y)[0]
    return float(r) if math.isfinite(r) else 0.0

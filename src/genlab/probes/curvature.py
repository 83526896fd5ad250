"""Whole-Hessian probes through an `Objective`: the exact spectrum of small models, and the trace.

`full_spectrum` builds H column block by column block with `Objective.hmp` on identity blocks (one pass over
the data per block), symmetrizes it, 0.5 (H + H^T), and diagonalizes it with `torch.linalg.eigh` in float64.
Above `max_params` it refuses (memory n^2 and time n^3) and points to `spectral_density` (SLQ).

`trace`: Hutchinson, tr H = E[z^T H z] with Rademacher z, standard error std / sqrt(N); or Hutch++ (Meyer,
Musco, Musco & Woodruff 2021): with a budget of N products, S (N/3 Rademacher vectors), Q = orth(H S),
tr H = tr(Q^T H Q) + E[g'^T H g'] with g' = (I - Q Q^T) g for the remaining vectors g; the standard error is
that of the second term (the first is exact given Q). Hutch++ wins when a few outliers dominate the trace.

This module must not train, touch the store, or import genlab.train, genlab.store, genlab.studies or genlab.cli.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from genlab.errors import GenlabError, check_choice, check_positive
from genlab.probes.objective import Objective

TRACE_METHODS = ("hutchinson", "hutch++")


def _cost_since(obj: Objective, start: dict) -> dict:
    return {key: v - start[key] for key, v in obj.cost.to_dict().items()}


@dataclass
class FullSpectrum:
    """All Hessian eigenvalues (ascending, float64), optionally eigenvectors (columns) and the matrix."""

    eigenvalues: torch.Tensor  # [n]
    eigenvectors: torch.Tensor | None  # [n, n], column i belongs to eigenvalue i
    hessian: torch.Tensor | None  # [n, n] symmetrized, if asked for
    asymmetry: float  # max |H - H^T| / max |H| before symmetrizing (numerical noise of the products)
    n_hvp: int
    n_passes: int
    seconds: float
    mode: str
    hvp_method: str

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("eigenvectors", "hessian")}
        out["eigenvalues"] = self.eigenvalues.tolist()
        return out


def hessian_matrix(obj: Objective, theta: torch.Tensor | None = None, block: int = 64) -> torch.Tensor:
    """The dense Hessian [n, n] (not symmetrized) from hmp on identity blocks of `block` columns."""
    check_positive("block", block, integer=True)
    theta = obj.params() if theta is None else obj._check(theta)
    n = obj.n_params
    H = torch.empty(n, n, dtype=theta.dtype, device=theta.device)
    for i in range(0, n, block):
        j = min(n, i + block)
        E = torch.zeros(j - i, n, dtype=theta.dtype, device=theta.device)
        E[:, i:j] = torch.eye(j - i, dtype=theta.dtype, device=theta.device)
        H[i:j] = obj.hmp(theta, E)
    return H


def full_spectrum(
    obj: Objective,
    theta: torch.Tensor | None = None,
    max_params: int = 12_000,
    vectors: bool = False,
    return_hessian: bool = False,
    block: int = 64,
) -> FullSpectrum:
    """Exact Hessian spectrum of a small model: n HVPs (n / block passes), then eigh in float64."""
    check_positive("max_params", max_params, integer=True)
    n = obj.n_params
    if n > max_params:
        raise GenlabError(
            f"full_spectrum: the model has n_params={n} > max_params={max_params} (an n x n Hessian); "
            "use spectral_density (SLQ) or top_eigenvalues instead"
        )
    start, t0 = obj.cost.to_dict(), time.perf_counter()
    H = hessian_matrix(obj, theta, block).to(torch.float64).cpu()
    asym = float((H - H.T).abs().max() / H.abs().max().clamp_min(1e-300))
    H = 0.5 * (H + H.T)
    if vectors:
        evals, evecs = torch.linalg.eigh(H)
    else:
        evals, evecs = torch.linalg.eigvalsh(H), None
    cost = _cost_since(obj, start)
    return FullSpectrum(
        evals, evecs, H if return_hessian else None, asym, cost["n_hvp"], cost["n_passes"],
        time.perf_counter() - t0, obj.mode, obj.hvp_method,
    )  # fmt: skip


@dataclass
class TraceEstimate:
    """Stochastic estimate of tr H with its standard error."""

    value: float
    se: float
    method: str
    n_probes: int
    n_hvp: int
    n_passes: int
    seconds: float
    mode: str
    hvp_method: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _rademacher(count: int, n: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.randint(0, 2, (count, n), generator=gen) * 2 - 1).to(like)


def _quadratic_forms(obj, theta, Z, block):
    """z_i^T H z_i for the rows of Z, `block` products per pass."""
    out = [(obj.hmp(theta, Z[i : i + block]) * Z[i : i + block]).sum(dim=1) for i in range(0, len(Z), block)]
    return torch.cat(out).to(torch.float64).cpu()


def trace(
    obj: Objective,
    n_probes: int = 99,
    method: str = "hutch++",
    seed: int = 0,
    theta: torch.Tensor | None = None,
    block: int = 33,
) -> TraceEstimate:
    """tr H by Hutchinson or Hutch++ with Rademacher vectors; n_probes = number of Hessian-vector products."""
    check_choice("method", method, TRACE_METHODS)
    check_positive("n_probes", n_probes, integer=True)
    check_positive("block", block, integer=True)
    if n_probes < (4 if method == "hutch++" else 2):
        raise GenlabError(f"n_probes: expected >= {4 if method == 'hutch++' else 2} for {method}, got {n_probes}")
    theta = obj.params() if theta is None else obj._check(theta)
    start, t0 = obj.cost.to_dict(), time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    n = obj.n_params
    if method == "hutchinson":
        q = _quadratic_forms(obj, theta, _rademacher(n_probes, n, gen, theta), block)
        value, se = float(q.mean()), float(q.std() / math.sqrt(len(q)))
    else:
        s = min(n_probes // 3, n)
        S = _rademacher(s, n, gen, theta)
        HS = torch.cat([obj.hmp(theta, S[i : i + block]) for i in range(0, s, block)])
        Q = torch.linalg.qr(HS.T)[0].T  # [s, n] orthonormal rows
        HQ = torch.cat([obj.hmp(theta, Q[i : i + block]) for i in range(0, s, block)])
        head = float((HQ * Q).sum().to(torch.float64))
        G = _rademacher(n_probes - 2 * s, n, gen, theta)
        G = G - (G @ Q.T) @ Q
        q = _quadratic_forms(obj, theta, G, block)
        value, se = head + float(q.mean()), float(q.std() / math.sqrt(len(q)))
    cost = _cost_since(obj, start)
    return TraceEstimate(
        value, se, method, n_probes, cost["n_hvp"], cost["n_passes"], time.perf_counter() - t0, obj.mode,
        obj.hvp_method,
    )  # fmt: skip

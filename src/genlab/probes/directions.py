"""Random directions in parameter space (Li et al. 2018 normalization) and the basin radius measured along them.

Also holds small helpers shared with landscape.py (JSON plain data, the train/test Objective pair).

A direction is a flat vector over the Objective's trainable parameters (buffers such as BatchNorm running
statistics are never part of it, so they are never perturbed). Normalization works on "units" of coordinates;
each unit of a direction is rescaled to the norm of the same unit of the center theta:
  "filter"  each filter (row along dim 0) of every conv/linear weight, as in Li et al.; every other parameter
            (biases, norm-layer parameters, other 1-d tensors) is its own unit;
  "layer"   each parameter tensor;
  "model"   the whole support (one unit; the norm of theta over the same coordinates);
  "unit"    the whole support, rescaled to Euclidean norm 1 (distances in parameter units);
  None      raw standard Gaussian, not rescaled.
ignore="biasbn" gives biases and norm-layer (BatchNorm/LayerNorm/GroupNorm/RMSNorm) parameters zero direction;
ignore=None perturbs them too (normalized as their own units; Li et al. copy theta there instead, which makes
two directions parallel on those coordinates). A unit whose theta is zero gets zero direction.
orthogonal=True applies Gram-Schmidt within every unit before rescaling, so the directions are exactly orthogonal
(globally, as each unit is) and keep their per-unit norms; units with fewer coordinates than directions cannot
be made orthogonal and are left as drawn (`Directions.orthogonal` is then False).

Directions are drawn on the CPU in float32 from `torch.Generator().manual_seed(seed)`, so the same seed gives the
same directions on any device and dtype.

basin_radius: per direction, the first distance where the loss exceeds f(theta) + delta (scan, then bisection).
This module must not import genlab.train / store / studies / cli / runner, and never modifies a model.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError, check_positive
from genlab.probes.fasteval import PointEvaluator
from genlab.probes.objective import Objective, ParamSpace

NORMALIZATIONS = ("filter", "layer", "model", "unit", None)
IGNORES = ("biasbn", None)


def _check(normalization, ignore) -> None:
    if normalization not in NORMALIZATIONS:
        raise GenlabError(
            f"normalization: unknown value {normalization!r}; accepted: filter, layer, model, unit, None"
        )
    if ignore not in IGNORES:
        raise GenlabError(f"ignore: unknown value {ignore!r}; accepted: biasbn, None")


@dataclass
class Directions:
    """n flat directions [n, P] with what is needed to redraw them exactly (seed, normalization, ignore)."""

    vectors: torch.Tensor
    seed: int
    normalization: str | None
    ignore: str | None
    orthogonal: bool

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.vectors[i]

    def checksum(self) -> str:
        """sha256 of the float32 bytes of the vectors (first 16 hex digits)."""
        data = self.vectors.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.sha256(data).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "n": len(self),
            "n_params": int(self.vectors.shape[1]),
            "seed": self.seed,
            "normalization": self.normalization,
            "ignore": self.ignore,
            "orthogonal": self.orthogonal,
            "norms": [float(v) for v in self.vectors.double().norm(dim=1)],
            "checksum": self.checksum(),
        }

    def save(self, path: str | Path) -> Path:
        """torch.save of the vectors and the metadata; read back with `Directions.load`."""
        path = Path(path)
        meta = {k: v for k, v in self.to_dict().items() if k in ("seed", "normalization", "ignore", "orthogonal")}
        torch.save({"vectors": self.vectors.detach().cpu(), **meta}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Directions:
        d = torch.load(path, weights_only=True)
        return cls(d["vectors"], d["seed"], d["normalization"], d["ignore"], d["orthogonal"])


def unit_ids(space: ParamSpace, normalization: str | None, ignore: str | None) -> torch.Tensor:
    """Int64 [P]: the normalization unit of each coordinate; -1 where the direction is zero (ignored)."""
    _check(normalization, ignore)
    ids = torch.full((space.n,), -1, dtype=torch.int64)
    unit = 0
    for p in space.params:
        if ignore == "biasbn" and (p.is_bias or p.is_norm):
            continue
        if normalization == "filter" and p.has_filters:
            rows = p.shape[0]
            ids[p.slice] = torch.arange(unit, unit + rows).repeat_interleave(p.numel // rows)
            unit += rows
        elif normalization == "layer" or normalization == "filter":
            ids[p.slice] = unit
            unit += 1
        else:  # model, unit, None: one unit
            ids[p.slice] = 0
            unit = 1
    return ids


def _unit_dot(a: torch.Tensor, b: torch.Tensor, ids: torch.Tensor, n_units: int) -> torch.Tensor:
    return torch.zeros(n_units + 1, dtype=a.dtype).index_add_(0, ids + 1, a * b)[1:]


def normalize_directions(
    vectors: torch.Tensor,
    center: torch.Tensor,
    space: ParamSpace,
    normalization: str | None = "filter",
    ignore: str | None = "biasbn",
    orthogonal: bool = False,
) -> tuple[torch.Tensor, bool]:
    """Zero ignored coordinates, optionally orthogonalize per unit, rescale each unit; -> (vectors, orthogonal)."""
    ids = unit_ids(space, normalization, ignore)
    n_units = int(ids.max()) + 1 if (ids >= 0).any() else 0
    d = vectors.detach().to("cpu", torch.float64).clone()
    d[:, ids < 0] = 0
    c = center.detach().to("cpu", torch.float64)
    is_orth = False
    if orthogonal and len(d) > 1:
        sizes = torch.zeros(n_units + 1, dtype=torch.int64).index_add_(0, ids + 1, torch.ones_like(ids))[1:]
        ok = (sizes >= len(d))[ids.clamp(min=0)] & (ids >= 0)
        for _ in range(2):  # twice is enough in floating point
            for i in range(len(d)):
                for j in range(i):
                    coef = _unit_dot(d[i], d[j], ids, n_units) / _unit_dot(d[j], d[j], ids, n_units).clamp(
                        min=1e-300
                    )
                    d[i] -= torch.where(ok, coef[ids.clamp(min=0)], 0.0) * d[j]
        is_orth = bool(ok[ids >= 0].all())
    if normalization is not None:
        target = torch.ones(n_units, dtype=torch.float64)
        if normalization != "unit":
            target = _unit_dot(c, c, ids, n_units).sqrt()
        for i in range(len(d)):
            have = _unit_dot(d[i], d[i], ids, n_units).sqrt()
            scale = torch.where(have > 0, target / have.clamp(min=1e-300), 0.0)
            d[i] *= torch.where(ids >= 0, scale[ids.clamp(min=0)], 0.0)
    return d.to(device=vectors.device, dtype=vectors.dtype), is_orth


def random_directions(
    obj: Objective,
    n: int = 2,
    normalization: str | None = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
    center: torch.Tensor | None = None,
    orthogonal: bool = False,
) -> Directions:
    """n Gaussian directions normalized against `center` (default: obj.params()); see the module docstring."""
    check_positive("n", n, integer=True)
    _check(normalization, ignore)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise GenlabError(f"seed: expected an integer, got {seed!r}")
    center = obj.params() if center is None else center
    if not isinstance(center, torch.Tensor) or center.shape != (obj.n_params,):
        raise GenlabError(f"center: expected a flat tensor of shape [{obj.n_params}]")
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, obj.n_params, generator=gen, dtype=torch.float32)
    vecs, is_orth = normalize_directions(raw, center, obj.space, normalization, ignore, orthogonal)
    ref = obj.params()
    return Directions(vecs.to(device=ref.device, dtype=ref.dtype), seed, normalization, ignore, is_orth)


# ---------------------------------------------------------------------------------------------- shared helpers
def plain_data(x: object) -> object:
    """numpy/float/dict/list -> JSON-serializable plain data (NaN -> None, inf -> "inf")."""
    if isinstance(x, np.ndarray):
        return plain_data(x.tolist())
    if isinstance(x, dict):
        return {str(k): plain_data(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain_data(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, np.floating | np.integer):
        return plain_data(x.item())
    return x


def objectives(obj: Objective, test: Objective | None) -> list[Objective]:
    """[obj] or [obj, test], checking test is an Objective of the same model and mode."""
    if not isinstance(obj, Objective):
        raise GenlabError(f"obj: expected an Objective, got {type(obj).__name__}")
    if test is None:
        return [obj]
    if not isinstance(test, Objective):
        raise GenlabError(f"test: expected an Objective or None, got {type(test).__name__}")
    if test.space.shapes != obj.space.shapes or test.mode != obj.mode:
        raise GenlabError("test: must be an Objective of the same model and mode as obj (only its data is used)")
    return [obj, test]


def flat_vector(obj: Objective, d, name: str) -> torch.Tensor:
    """A flat [n] tensor (or the first row of Directions) on obj's device and dtype."""
    if isinstance(d, Directions):
        d = d.vectors[0]
    if not isinstance(d, torch.Tensor) or d.shape != (obj.n_params,):
        raise GenlabError(f"{name}: expected a flat tensor of shape [{obj.n_params}] or Directions")
    return d.detach().to(obj.params())


def resolve_point(obj: Objective, point, field_name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """A flat theta, an nn.Module or a state dict -> (flat theta, float buffers or None for a flat theta)."""
    if isinstance(point, torch.Tensor):
        if point.shape != (obj.n_params,):
            raise GenlabError(
                f"{field_name}: expected a flat tensor of shape [{obj.n_params}], got {tuple(point.shape)}"
            )
        return point.detach().to(device=obj.params().device, dtype=obj.dtype), None
    if isinstance(point, nn.Module):
        tensors = {**dict(point.named_parameters()), **dict(point.named_buffers())}
    elif isinstance(point, Mapping):
        tensors = dict(point)
    else:
        raise GenlabError(
            f"{field_name}: expected a flat tensor, an nn.Module or a state dict, got {type(point).__name__}"
        )
    ref = obj.params()
    shapes = obj.space.shapes
    wrong = [k for k, shape in shapes.items() if k in tensors and tuple(tensors[k].shape) != shape]
    if wrong:
        raise GenlabError(f"{field_name}: parameter {wrong[0]} has the wrong shape for this Objective's model")
    theta = obj.space.from_dict({k: v.detach().to(ref) for k, v in tensors.items() if k in shapes})
    own = dict(obj.network.named_buffers())  # the Objective's model copy: which buffers the model has
    bufs = {k: tensors[k].detach().to(b) for k, b in own.items() if b.is_floating_point() and k in tensors}
    return theta, bufs


@dataclass
class BasinRadius:
    """Per random direction, the distance where the loss first exceeds f(theta) + delta (inf: not within r_max)."""

    train_radii: np.ndarray
    test_radii: np.ndarray | None
    train_f0: float
    test_f0: float | None
    delta: float
    max_radius: float
    directions: dict
    summary: dict
    mode: str
    cost: dict = field(default_factory=dict)
    evaluator: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return plain_data(vars(self))


def basin_radius(
    obj: Objective,
    theta: torch.Tensor | None = None,
    n_directions: int = 16,
    delta: float = 0.1,
    normalization: str | None = "filter",
    *,
    ignore: str | None = "biasbn",
    seed: int = 0,
    test: Objective | None = None,
    max_radius: float = 10.0,
    rtol: float = 1e-3,
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> BasinRadius:
    """Per random direction d (see `random_directions`), the smallest r with f(theta + r d) > f(theta) + delta.

    A geometric scan r = max_radius 2^-t (t = 12..0, all directions together) brackets the first crossing, then
    bisection narrows it to (hi - lo) <= rtol hi; the radius is the bracket's midpoint. Radii are in units of
    the directions ("unit": Euclidean distance; "filter": relative to the filters of theta). inf: no crossing
    up to max_radius. With `test`, the test loss gets its own radii (threshold f_test(theta) + delta).
    """
    objs = objectives(obj, test)
    check_positive("n_directions", n_directions, integer=True)
    check_positive("delta", delta)
    check_positive("max_radius", max_radius)
    check_positive("rtol", rtol)
    theta = obj.params() if theta is None else flat_vector(obj, theta, "theta")
    dirs = random_directions(obj, n_directions, normalization, ignore, seed, theta)
    t0 = time.perf_counter()
    ev = PointEvaluator(objs, theta, dirs.vectors, None, False, method, first_layer, None, channels_last)
    k, n_sets = n_directions, len(objs)
    f0 = ev.evaluate(np.zeros((1, k)))[:, 0, 0]
    lo = np.zeros((n_sets, k))
    hi = np.full((n_sets, k), np.inf)

    def losses_at(points):  # points: list of (direction, r) -> [n_sets, len]
        coords = np.zeros((len(points), k))
        for row, (j, r) in enumerate(points):
            coords[row, j] = r
        return ev.evaluate(coords)[:, 0]

    for r in max_radius * 2.0 ** -np.arange(12, -1, -1):
        open_ = np.isinf(hi)
        todo = sorted(set(np.nonzero(open_)[1].tolist()))
        if not todo:
            break
        vals = losses_at([(j, r) for j in todo])
        for col, j in enumerate(todo):
            for s in range(n_sets):
                if np.isinf(hi[s, j]):
                    if vals[s, col] > f0[s] + delta:
                        hi[s, j] = r
                    else:
                        lo[s, j] = r
    while True:
        active = np.isfinite(hi) & (hi - lo > rtol * hi)
        if not active.any():
            break
        mids = (lo + hi) / 2
        points = sorted({(int(j), float(mids[s, j])) for s, j in zip(*np.nonzero(active), strict=True)})
        vals = losses_at(points)
        index = {p: i for i, p in enumerate(points)}
        for s, j in zip(*np.nonzero(active), strict=True):
            above = vals[s, index[(int(j), float(mids[s, j]))]] > f0[s] + delta
            hi[s, j], lo[s, j] = (mids[s, j], lo[s, j]) if above else (hi[s, j], mids[s, j])
    radii = np.where(np.isfinite(hi), (lo + hi) / 2, np.inf)

    def summary(r):
        fin = r[np.isfinite(r)]
        q = np.quantile(fin, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist() if len(fin) else [math.nan] * 5
        mean = float(fin.mean()) if len(fin) else math.nan
        return {"mean": mean, "quantiles_10_25_50_75_90": q, "n_not_reached": int((~np.isfinite(r)).sum())}

    cost = {"forward_passes": ev.forward_passes, "examples": ev.examples, "seconds": time.perf_counter() - t0}
    return BasinRadius(
        train_radii=radii[0],
        test_radii=radii[1] if n_sets > 1 else None,
        train_f0=float(f0[0]),
        test_f0=float(f0[1]) if n_sets > 1 else None,
        delta=float(delta),
        max_radius=float(max_radius),
        directions=dirs.to_dict(),
        summary={"train": summary(radii[0]), **({"test": summary(radii[1])} if n_sets > 1 else {})},
        mode=obj.mode,
        cost=cost,
        evaluator=ev.plan.to_dict() if ev.plan else {},
    )

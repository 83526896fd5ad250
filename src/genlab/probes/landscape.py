"""Loss landscapes: 1-d paths, planes, triangles and squares of models, barriers and basin radii.

Train and test together. Every probe takes `obj` (the training objective: model, buffers, mode, train data) and
`test: Objective | None` (the same model's test data; only its data and loss are used, its mode must match).
Each point is evaluated on both, for loss and accuracy, in the same call: results carry `train_loss`,
`train_acc`, `test_loss`, `test_acc` (the test arrays are None without `test`), so a figure never has to mix
sets from different runs.

Geometry (coordinates are exact: computed from integers, symmetric, 0 and 1 hit exactly):
  interpolate  theta(alpha) = alpha theta_a + (1 - alpha) theta_b ("linear", Keskar et al.'s parametric plot;
               alpha = 1 is theta_a, 0 is theta_b) or sin(alpha pi/2) theta_a + cos(alpha pi/2) theta_b
               ("sine"); default alphas = (i - 20)/20, i = 0..60, i.e. [-1, 2] in steps of 0.05.
  line, plane  theta(x, y) = center + x d1 + y d2, x_i = extent (2i - (steps-1)) / (steps-1): symmetric grid on
               [-extent, extent]; units are the directions' (with filter normalization, 1 = a step as large as
               each filter of the center). `center_*` holds the values at (0, 0) (= the model's loss).
  barycentric  theta(a, b) = a w1 + b w2 + (1 - a - b) w3 (Im et al.), a, b = (i - m)/s with s = steps - 1 and
               m = round(extend s): corners (1,0) = w1, (0,1) = w2, (0,0) = w3; points outside the triangle
               extended by `extend` (a, b, 1-a-b >= -extend) are NaN and not evaluated.
  bilinear     theta(u, v) = (1-u)(1-v) w1 + u(1-v) w2 + (1-u) v w3 + u v w4, u, v = i/s on [0, 1].
2-d arrays are indexed [i, j] = (first axis, second axis) ("ij" indexing), e.g. plane values[i, j] at (x_i, y_j).

BatchNorm. Running statistics are buffers, never part of theta, so directions never perturb them; lines and
planes keep the center model's. For paths between models (interpolate, barrier, barycentric, bilinear), `bn`:
"interpolate" uses the same combination of the endpoints' statistics as of their parameters, "recompute"
recomputes them per point by a pass over `obj`'s data (cumulative average with BatchNorm in train mode; needs
mode="eval"). Endpoints given as an nn.Module or a state dict bring their statistics; a flat theta brings none
and uses `obj`'s. The choice is recorded in the result.

Evaluation goes through `fasteval.PointEvaluator`: `method` ("auto", "loop", "vmap"), `first_layer` and
`channels_last` ("auto", "on", "off") force its choices; "auto" measures them. It also applies exact rewrites
of its private model copies (see fasteval). Probes never train,
never modify `obj`, `test` or the models passed in, and must not import genlab.train / store / studies / cli /
runner.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.errors import GenlabError, check_choice, check_positive
from genlab.probes.directions import (
    Directions,
    flat_vector,
    objectives,
    plain_data,
    random_directions,
    resolve_point,
)
from genlab.probes.fasteval import PointEvaluator
from genlab.probes.objective import Objective

PATHS = ("linear", "sine")
BN_MODES = ("interpolate", "recompute")


@dataclass
class Landscape:
    """Values of a landscape probe on a grid; 2-d arrays are indexed [i, j] over (axes[0], axes[1])."""

    kind: str
    axes: dict[str, np.ndarray]
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray | None
    test_acc: np.ndarray | None
    mode: str
    bn: str
    spec: dict = field(default_factory=dict)
    center: dict | None = None
    directions: dict | None = None
    cost: dict = field(default_factory=dict)
    evaluator: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serializable plain data (NaN -> None, inf -> "inf")."""
        return plain_data({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass
class Barrier:
    """Highest loss on the straight path from theta_b (alpha 0) to theta_a (alpha 1) above the larger endpoint."""

    train_barrier: float
    test_barrier: float | None
    alpha_max: float
    train_acc_drop: float
    test_acc_drop: float | None
    profile: Landscape
    mode: str
    bn: str
    cost: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return plain_data({k: (v.to_dict() if k == "profile" else v) for k, v in vars(self).items()})


# ---------------------------------------------------------------------------------------------- helpers
def _steps(value, minimum: int = 2) -> int:
    check_positive("steps", value, integer=True)
    if value < minimum:
        raise GenlabError(f"steps: expected an integer >= {minimum}, got {value!r}")
    return value


def _symmetric(extent: float, steps: int) -> np.ndarray:
    i = np.arange(steps, dtype=np.float64)
    return extent * (2 * i - (steps - 1)) / (steps - 1)


def _endpoints(obj: Objective, points, n: int, name: str, bn: str):
    check_choice("bn", bn, BN_MODES)
    if not isinstance(points, list | tuple) or len(points) != n:
        got = len(points) if isinstance(points, list | tuple) else type(points).__name__
        raise GenlabError(
            f"{name}: expected a list of {n} models (flat tensors, nn.Modules or state dicts), got {got}"
        )
    resolved = [resolve_point(obj, p, f"{name}[{i}]") for i, p in enumerate(points)]
    thetas = torch.stack([t for t, _ in resolved])
    bufs = [b for _, b in resolved]
    source = "endpoints" if any(b for b in bufs) else "objective"
    buffers = [b or {} for b in bufs] if bn == "interpolate" and source == "endpoints" else None
    return thetas, buffers, source


def _run(objs, base, dirs, coords, buffers, recompute, method, first_layer, channels_last):
    t0 = time.perf_counter()
    ev = PointEvaluator(objs, base, dirs, buffers, recompute, method, first_layer, channels_last=channels_last)
    vals = ev.evaluate(coords)
    seconds = time.perf_counter() - t0
    for s, o in enumerate(objs):
        o.cost.n_loss += len(coords)
        o.cost.n_passes += len(coords) * (1 + (recompute and s == 0))
    cost = {
        "points": len(coords),
        "forward_passes": ev.forward_passes,
        "examples": ev.examples,
        "seconds": seconds,
    }
    return vals, cost, ev.plan.to_dict() if ev.plan else {}


def _landscape(kind, objs, axes, vals, shape, mask, cost, plan, bn, spec, center=None, directions=None):
    def fill(row):
        out = np.full(shape, np.nan)
        out[mask] = row
        return out

    test = len(objs) > 1
    return Landscape(
        kind=kind,
        axes=axes,
        train_loss=fill(vals[0, 0]),
        train_acc=fill(vals[0, 1]),
        test_loss=fill(vals[1, 0]) if test else None,
        test_acc=fill(vals[1, 1]) if test else None,
        mode=objs[0].mode,
        bn=bn,
        spec=spec,
        center=center,
        directions=directions,
        cost=cost,
        evaluator=plan,
    )


def _center_dict(vals: np.ndarray, test: bool) -> dict:
    out = {"train_loss": float(vals[0, 0]), "train_acc": float(vals[0, 1])}
    if test:
        out.update(test_loss=float(vals[1, 0]), test_acc=float(vals[1, 1]))
    return out


# ---------------------------------------------------------------------------------------------- probes
def interpolate(
    obj: Objective,
    theta_a,
    theta_b,
    alphas=None,
    path: str = "linear",
    *,
    test: Objective | None = None,
    bn: str = "interpolate",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Landscape:
    """Loss/accuracy along alpha theta_a + (1 - alpha) theta_b (or the sine path); see the module docstring."""
    check_choice("path", path, PATHS)
    objs = objectives(obj, test)
    thetas, buffers, source = _endpoints(obj, [theta_a, theta_b], 2, "thetas", bn)
    alphas = (np.arange(61) - 20) / 20 if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    if len(alphas) == 0 or not np.isfinite(alphas).all():
        raise GenlabError("alphas: expected a non-empty sequence of finite numbers")
    if path == "linear":
        coords = np.stack([alphas, 1 - alphas], 1)
    else:
        coords = np.stack([np.sin(alphas * np.pi / 2), np.cos(alphas * np.pi / 2)], 1)
    vals, cost, plan = _run(
        objs, None, thetas, coords, buffers, bn == "recompute", method, first_layer, channels_last
    )
    spec = {"path": path, "bn_source": source, "units": "alpha: 1 = theta_a, 0 = theta_b"}
    n = len(alphas)
    return _landscape("interpolate", objs, {"alpha": alphas}, vals, (n,), slice(None), cost, plan, bn, spec)


def line(
    obj: Objective,
    center: torch.Tensor | None = None,
    d: torch.Tensor | Directions | None = None,
    extent: float = 1.0,
    steps: int = 51,
    *,
    test: Objective | None = None,
    seed: int = 0,
    normalization: str | None = "filter",
    ignore: str | None = "biasbn",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Landscape:
    """Loss/accuracy at center + x d on the symmetric grid x in [-extent, extent] (d random if None)."""
    opts = (method, first_layer, channels_last)
    return _grid("line", obj, center, [d], extent, steps, test, seed, normalization, ignore, opts)


def plane(
    obj: Objective,
    center: torch.Tensor | None = None,
    d1: torch.Tensor | Directions | None = None,
    d2: torch.Tensor | None = None,
    extent: float = 1.0,
    steps: int = 51,
    *,
    test: Objective | None = None,
    seed: int = 0,
    normalization: str | None = "filter",
    ignore: str | None = "biasbn",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Landscape:
    """Loss/accuracy at center + x d1 + y d2 on a steps x steps symmetric grid; d1 may be 2 Directions."""
    opts = (method, first_layer, channels_last)
    return _grid("plane", obj, center, [d1, d2], extent, steps, test, seed, normalization, ignore, opts)


def _grid(kind, obj, center, ds, extent, steps, test, seed, normalization, ignore, opts):
    objs = objectives(obj, test)
    steps = _steps(steps)
    check_positive("extent", extent)
    center = obj.params() if center is None else flat_vector(obj, center, "center")
    meta = None
    if isinstance(ds[0], Directions):  # Directions: its rows give the missing directions too
        meta, given = ds[0].to_dict(), ds[0].vectors
        ds = [given[i] if (i == 0 or d is None) and i < len(given) else d for i, d in enumerate(ds)]
    elif all(d is None for d in ds):
        drawn = random_directions(obj, len(ds), normalization, ignore, seed, center)
        meta, ds = drawn.to_dict(), list(drawn.vectors)
    if any(d is None for d in ds):
        raise GenlabError("d2: give both directions or neither (then they are drawn with `seed`)")
    dirs = torch.stack([flat_vector(obj, d, f"d{i + 1}" if kind == "plane" else "d") for i, d in enumerate(ds)])
    xs = _symmetric(float(extent), steps)
    if kind == "line":
        coords, shape, axes = xs[:, None], (steps,), {"x": xs}
    else:
        gx, gy = np.meshgrid(xs, xs, indexing="ij")
        coords, shape, axes = np.stack([gx.ravel(), gy.ravel()], 1), (steps, steps), {"x": xs, "y": xs}
    coords = np.concatenate([coords, np.zeros((1, len(ds)))])  # the center itself, last
    vals, cost, plan = _run(objs, center, dirs, coords, None, False, *opts)
    spec = {"extent": float(extent), "steps": steps, "units": "direction lengths (see directions.normalization)"}
    center_vals = _center_dict(vals[:, :, -1], len(objs) > 1)
    mask = np.ones(shape, dtype=bool)
    out = _landscape(kind, objs, axes, vals[:, :, :-1], shape, mask, cost, plan, "fixed", spec, center_vals, meta)
    return out


def barycentric(
    obj: Objective,
    thetas,
    steps: int = 21,
    extend: float = 0.0,
    *,
    test: Objective | None = None,
    bn: str = "interpolate",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Landscape:
    """Loss/accuracy at a w1 + b w2 + (1-a-b) w3 over the (extended) triangle; see the module docstring."""
    objs = objectives(obj, test)
    steps = _steps(steps)
    check_positive("extend", extend, allow_zero=True)
    basis, buffers, source = _endpoints(obj, thetas, 3, "thetas", bn)
    s = steps - 1
    m = round(extend * s)
    idx = np.arange(s + 2 * m + 1)
    ab = (idx - m) / s
    ii, jj = np.meshgrid(idx, idx, indexing="ij")
    mask = ii + jj <= s + 3 * m  # 1 - a - b >= -extend
    a, b = ab[ii[mask]], ab[jj[mask]]
    coords = np.stack([a, b, 1 - a - b], 1)
    vals, cost, plan = _run(
        objs, None, basis, coords, buffers, bn == "recompute", method, first_layer, channels_last
    )
    spec = {"steps": steps, "extend": m / s, "bn_source": source, "units": "barycentric weights of w1, w2"}
    return _landscape("barycentric", objs, {"a": ab, "b": ab}, vals, mask.shape, mask, cost, plan, bn, spec)


def bilinear(
    obj: Objective,
    thetas,
    steps: int = 21,
    *,
    test: Objective | None = None,
    bn: str = "interpolate",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Landscape:
    """Loss/accuracy at (1-u)(1-v) w1 + u(1-v) w2 + (1-u) v w3 + u v w4 on u, v in [0, 1]."""
    objs = objectives(obj, test)
    steps = _steps(steps)
    basis, buffers, source = _endpoints(obj, thetas, 4, "thetas", bn)
    uv = np.arange(steps) / (steps - 1)
    gu, gv = np.meshgrid(uv, uv, indexing="ij")
    u, v = gu.ravel(), gv.ravel()
    coords = np.stack([(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v], 1)
    vals, cost, plan = _run(
        objs, None, basis, coords, buffers, bn == "recompute", method, first_layer, channels_last
    )
    spec = {"steps": steps, "bn_source": source, "units": "u: w1 -> w2, v: w1 -> w3"}
    mask = np.ones((steps, steps), dtype=bool)
    return _landscape("bilinear", objs, {"u": uv, "v": uv}, vals, mask.shape, mask, cost, plan, bn, spec)


def barrier(
    obj: Objective,
    theta_a,
    theta_b,
    steps: int = 21,
    refine: int = 8,
    *,
    test: Objective | None = None,
    bn: str = "interpolate",
    method: str = "auto",
    first_layer: str = "auto",
    channels_last: str = "auto",
) -> Barrier:
    """max over alpha in [0, 1] of f(alpha theta_a + (1-alpha) theta_b) - max(f(theta_a), f(theta_b)).

    The path is sampled at alpha = i/(steps-1); then `refine` golden-section steps around the highest train
    point. The test barrier uses the same points. Accuracy drops are min(endpoint accuracies) - min over the path.
    """
    objs = objectives(obj, test)
    steps = _steps(steps, 3)
    check_positive("refine", refine, integer=True, allow_zero=True)
    basis, buffers, source = _endpoints(obj, [theta_a, theta_b], 2, "thetas", bn)
    t0 = time.perf_counter()
    ev = PointEvaluator(objs, None, basis, buffers, bn == "recompute", method, first_layer, None, channels_last)
    alphas = list(np.arange(steps) / (steps - 1))
    vals = ev.evaluate(np.stack([alphas, 1 - np.asarray(alphas)], 1))
    i = int(np.argmax(vals[0, 0]))
    lo, hi = alphas[max(i - 1, 0)], alphas[min(i + 1, steps - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(refine):  # golden section on the bracket around the grid maximum (train loss)
        a1, a2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        new = ev.evaluate(np.array([[a1, 1 - a1], [a2, 1 - a2]]))
        alphas += [a1, a2]
        vals = np.concatenate([vals, new], axis=2)
        lo, hi = (lo, a2) if new[0, 0, 0] >= new[0, 0, 1] else (a1, hi)
    order = np.argsort(alphas, kind="stable")
    alphas = np.asarray(alphas)[order]
    vals = vals[:, :, order]
    ends = [0, len(alphas) - 1]
    cost = {
        "points": len(alphas),
        "forward_passes": ev.forward_passes,
        "examples": ev.examples,
        "seconds": time.perf_counter() - t0,
    }
    spec = {"path": "linear", "bn_source": source, "steps": steps, "refine": refine}
    plan = ev.plan.to_dict() if ev.plan else {}
    n = len(alphas)
    profile = _landscape("interpolate", objs, {"alpha": alphas}, vals, (n,), slice(None), cost, plan, bn, spec)

    def height(s):
        return float(vals[s, 0].max() - vals[s, 0, ends].max())

    def drop(s):
        return float(vals[s, 1, ends].min() - vals[s, 1].min())

    t = len(objs) > 1
    return Barrier(
        train_barrier=height(0),
        test_barrier=height(1) if t else None,
        alpha_max=float(alphas[int(np.argmax(vals[0, 0]))]),
        train_acc_drop=drop(0),
        test_acc_drop=drop(1) if t else None,
        profile=profile,
        mode=obj.mode,
        bn=bn,
        cost=cost,
    )

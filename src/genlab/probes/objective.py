"""The spine of all probes: an `Objective` = (model, loss, data, mode) seen as a function of a flat vector.

Math. With chunks c of sizes n_c (N = sum n_c) and a mean loss per chunk l_c(theta), the objective is the exact
example mean f(theta) = sum_c (n_c / N) l_c(theta). Everything goes through
`torch.func.functional_call(model, (params, buffers), x)` on a private deep copy of the model, so the module the
user passed is never modified (parameters, buffers, train/eval flag). The copy is a snapshot taken at construction.

Mode. "eval": BatchNorm uses running statistics, dropout is off. "train": BatchNorm uses the statistics of each
chunk and never updates running statistics (the private copy has `track_running_stats` switched off), dropout is
on (randomness shared across the vectors of one vmap).

Hessian-vector products (`hvp_method`):
  "fwd-rev"          jvp of grad (forward-over-reverse); least memory.
  "double-backward"  a fresh create_graph gradient per call, then a backward per vector (one vmapped backward
                     for all vectors on GPU).
  "reuse-graph"      the create_graph gradient of every chunk is kept for the current theta and reused by every
                     later product at the same theta (keyed on theta's values); memory: every chunk's graph.
  "auto"             measured once on a small slice of the first chunk; reuse-graph unless its estimated memory
                     (bytes saved for backward, scaled to the dataset) exceeds `REUSE_GRAPH_MAX_BYTES`.
`hmp(theta, V)` multiplies K vectors in one pass over the data (vmap / batched backward).

This module must not import genlab.train, genlab.store, genlab.studies or genlab.cli, must not train, and must
never write into the user's model.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from genlab.errors import GenlabError, check_choice, check_positive

HVP_METHODS = ("auto", "fwd-rev", "double-backward", "reuse-graph")
MODES = ("eval", "train")
REUSE_GRAPH_MAX_BYTES = 4 * 2**30  # CPU limit for auto's reuse-graph; on CUDA half of the free memory
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


@dataclass(frozen=True)
class ParamInfo:
    """One trainable parameter: where it lives in the flat vector and what kind of layer owns it."""

    name: str
    shape: tuple[int, ...]
    slice: slice
    module_type: str  # class name of the owning module, e.g. "Conv2d"
    is_norm: bool  # owned by a BatchNorm/LayerNorm/GroupNorm/RMSNorm
    is_bias: bool  # the leaf name is "bias"
    has_filters: bool  # a weight with >= 2 dims: filters are its rows (first dim), as in Li et al.

    @property
    def numel(self) -> int:
        return self.slice.stop - self.slice.start


class ParamSpace:
    """Flat vector <-> named tensors, plus layer and filter structure of a model's trainable parameters."""

    def __init__(self, model: nn.Module):
        owner = {}
        for mod_name, module in model.named_modules():
            for leaf, _ in module.named_parameters(recurse=False):
                owner[f"{mod_name}.{leaf}" if mod_name else leaf] = module
        infos, start = [], 0
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            module = owner[name]
            sl = slice(start, start + p.numel())
            start = sl.stop
            infos.append(
                ParamInfo(
                    name=name,
                    shape=tuple(p.shape),
                    slice=sl,
                    module_type=type(module).__name__,
                    is_norm=isinstance(module, _NORM_TYPES),
                    is_bias=name.rsplit(".", 1)[-1] == "bias",
                    has_filters=p.dim() >= 2 and not isinstance(module, _NORM_TYPES),
                )
            )
        self.params: tuple[ParamInfo, ...] = tuple(infos)
        self.n: int = start

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape for p in self.params}

    @property
    def slices(self) -> dict[str, slice]:
        return {p.name: p.slice for p in self.params}

    def __len__(self) -> int:
        return self.n

    def to_dict(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of the flat `theta` (shape [n]) as named tensors; works under vmap and autograd."""
        return {p.name: theta[p.slice].view(p.shape) for p in self.params}

    def from_dict(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate named tensors (all names of this space) into one flat vector."""
        missing = [p.name for p in self.params if p.name not in tensors]
        if missing:
            raise GenlabError(f"tensors: missing parameters {missing[:3]}; expected the names of ParamSpace.names")
        return torch.cat([tensors[p.name].reshape(-1) for p in self.params])

    def filters(self, vec: torch.Tensor) -> Iterator[tuple[str, int, torch.Tensor]]:
        """Yield (name, index, view) for every filter (row along dim 0) of every conv/linear weight of `vec`.

        The views share memory with `vec`, so a direction can be filter-normalized in place. Parameters without
        filters (biases, norm parameters, 1-d tensors) are skipped; see `ParamInfo` to treat them.
        """
        for p in self.params:
            if p.has_filters:
                w = vec[p.slice].view(p.shape)
                for i in range(p.shape[0]):
                    yield p.name, i, w[i]

    def filter_ids(self) -> torch.Tensor:
        """Int64 [n]: the filter index (0, 1, ...) of each coordinate, -1 where the parameter has no filters.

        With `torch.zeros(n_filters).index_add_(0, ids[ids >= 0], vec[ids >= 0] ** 2)` one gets all filter norms
        at once.
        """
        ids = torch.full((self.n,), -1, dtype=torch.int64)
        offset = 0
        for p in self.params:
            if p.has_filters:
                rows, per_row = p.shape[0], p.numel // p.shape[0]
                ids[p.slice] = torch.arange(offset, offset + rows).repeat_interleave(per_row)
                offset += rows
        return ids


@dataclass
class Cost:
    """Work done through an Objective: loss points, gradients, Hessian-vector products, passes over the data."""

    n_loss: int = 0
    n_grad: int = 0
    n_hvp: int = 0
    n_passes: int = 0

    def __sub__(self, other: Cost) -> Cost:
        return Cost(*(a - b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True)))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _materialize(data, chunk_size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        batches = [(data[0], data[1])]
    elif isinstance(data, Iterable):
        batches = []
        for batch in data:
            if not isinstance(batch, tuple | list) or len(batch) < 2:
                raise GenlabError("data: each batch must be an (x, y) pair of tensors")
            batches.append((batch[0], batch[1]))
    else:
        raise GenlabError(
            f"data: expected (x, y) tensors or an iterable of (x, y) batches, got {type(data).__name__}"
        )
    if not batches or sum(len(x) for x, _ in batches) == 0:
        raise GenlabError("data: no examples")
    if chunk_size is None:
        return [b for b in batches if len(b[0]) > 0]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    return list(zip(x.split(chunk_size), y.split(chunk_size), strict=True))


class Objective:
    """f(theta) = exact example-mean loss of `model` with flat parameters `theta` on `data`, in `mode`."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        data=None,
        mode: str = "eval",
        chunk_size: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        hvp_method: str = "auto",
    ):
        check_choice("mode", mode, MODES)
        check_choice("hvp_method", hvp_method, HVP_METHODS)
        if chunk_size is not None:
            check_positive("chunk_size", chunk_size, integer=True)
        if data is None:
            raise GenlabError("data: required, (x, y) tensors or an iterable of (x, y) batches")
        first = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None else None)
        net = copy.deepcopy(model)
        if dtype is not None:
            net = net.to(dtype)
        if self.device is not None:
            net = net.to(self.device)
        net.train(mode == "train")
        if mode == "train":
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = False  # batch statistics, and running stats are never touched
        for p in net.parameters():
            p.requires_grad_(False)
        self._net = net
        self.mode = mode
        self.space = ParamSpace(model)
        trainable = set(self.space.names)
        self._fixed = {k: v for k, v in net.named_parameters() if k not in trainable}
        self._fixed.update(dict(net.named_buffers()))
        self._theta0 = torch.cat([p.detach().reshape(-1) for k, p in net.named_parameters() if k in trainable])
        self.dtype = self._theta0.dtype
        self.loss_fn = loss_fn if loss_fn is not None else torch.nn.functional.cross_entropy
        self._chunks = []
        for x, y in _materialize(data, chunk_size):
            x = x.to(self.device) if self.device is not None else x
            y = y.to(self.device) if self.device is not None else y
            x = x.to(self.dtype) if x.is_floating_point() else x
            y = y.to(self.dtype) if y.is_floating_point() else y
            self._chunks.append((x, y))
        self.n_examples = sum(len(x) for x, _ in self._chunks)
        self._weights = [len(x) / self.n_examples for x, _ in self._chunks]
        self._requested_method = hvp_method
        self._method = None if hvp_method == "auto" else hvp_method
        self._graph_key: torch.Tensor | None = None
        self._graphs: list[tuple[torch.Tensor, torch.Tensor]] = []
        # one vmapped backward for K vectors pays off on GPU; on CPU a loop over the kept graph was measured faster
        # (5 vectors, 85k-param MLP: 92 ms looped vs 143 ms batched)
        self._batched_backward = self._theta0.is_cuda
        self.cost = Cost()
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------------------------------- basics
    @property
    def n_params(self) -> int:
        return self.space.n

    @property
    def hvp_method(self) -> str:
        """The HVP method in use ("auto" is resolved by a one-time measurement on first access)."""
        if self._method is None:
            self._method = self._measure_method()
        return self._method

    @property
    def network(self) -> nn.Module:
        """The private model copy every evaluation runs (read-only: probes copy it before changing anything)."""
        return self._net

    @property
    def chunks(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The data as resident (x, y) chunks, on the Objective's device and dtype (read-only)."""
        return self._chunks

    @property
    def chunk_weights(self) -> list[float]:
        """Each chunk's share of the examples: f = sum_c weight_c * (mean loss on chunk c)."""
        return self._weights

    @property
    def fixed_tensors(self) -> dict[str, torch.Tensor]:
        """Buffers and frozen parameters of the model copy, by name (what functional_call needs besides theta)."""
        return self._fixed

    def params(self) -> torch.Tensor:
        """Flat detached copy of the model's trainable parameters (as snapshotted, in this dtype/device)."""
        return self._theta0.clone()

    def _check(self, theta: torch.Tensor) -> torch.Tensor:
        if not isinstance(theta, torch.Tensor) or theta.shape[-1:] != (self.n_params,):
            got = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
            raise GenlabError(f"theta: expected a tensor with last dimension {self.n_params}, got {got}")
        return theta.to(device=self._theta0.device, dtype=self.dtype)

    def _logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._net, (self.space.to_dict(theta), self._fixed), (x,), strict=False)

    def _chunk_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self._logits(theta, x), y)

    def _chunk_eval(self, theta, x, y):
        out = self._logits(theta, x)
        loss = self.loss_fn(out, y)
        if out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
            acc = (out.argmax(-1) == y).to(loss.dtype).mean()
        else:
            acc = torch.full_like(loss, math.nan)
        return loss, acc

    # ----------------------------------------------------------------------------------------- values
    def loss(self, theta: torch.Tensor) -> float:
        """f(theta), the example-mean loss."""
        theta = self._check(theta)
        with torch.no_grad():
            total = sum(
                w * self._chunk_loss(theta, x, y) for w, (x, y) in zip(self._weights, self._chunks, strict=True)
            )
        self.cost.n_loss += 1
        self.cost.n_passes += 1
        return float(total)

    def accuracy(self, theta: torch.Tensor) -> float:
        """Fraction of examples whose argmax logit equals the integer label; NaN if not classification."""
        return float(self.evaluate_many(theta[None])[1][0])

    def loss_many(self, thetas: torch.Tensor) -> torch.Tensor:
        """Losses at P points, thetas [P, n] -> [P], in one pass over the data (vmap over points)."""
        return self.evaluate_many(thetas)[0]

    def evaluate_many(self, thetas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses [P], accuracies [P]) at P points in one pass; accuracy is NaN if not classification."""
        thetas = self._check(thetas)
        if thetas.dim() != 2:
            raise GenlabError(f"thetas: expected shape [P, {self.n_params}], got {tuple(thetas.shape)}")
        loss = torch.zeros(len(thetas), dtype=self.dtype, device=thetas.device)
        acc = torch.zeros_like(loss)
        with torch.no_grad():
            for w, (x, y) in zip(self._weights, self._chunks, strict=True):
                lc, ac = vmap(self._chunk_eval, in_dims=(0, None, None), randomness="same")(thetas, x, y)
                loss += w * lc
                acc += w * ac
        self.cost.n_loss += len(thetas)
        self.cost.n_passes += 1
        return loss, acc

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(f(theta), grad f(theta)) in one pass."""
        theta = self._check(theta)
        g = torch.zeros_like(theta)
        value = 0.0
        for w, (x, y) in zip(self._weights, self._chunks, strict=True):
            gc, lc = grad_and_value(self._chunk_loss)(theta, x, y)
            g += w * gc
            value += w * float(lc)
        self.cost.n_grad += 1
        self.cost.n_passes += 1
        return value, g

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """grad f(theta), flat [n]."""
        return self.loss_and_grad(theta)[1]

    # ----------------------------------------------------------------------------------------- curvature
    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H(theta) v for one flat vector v [n]."""
        return self.hmp(theta, v[None])[0]

    def hmp(self, theta: torch.Tensor, vs: torch.Tensor) -> torch.Tensor:
        """H(theta) V^T for K vectors at once: V [K, n] -> [K, n], one pass over the data."""
        theta = self._check(theta)
        vs = self._check(vs)
        if vs.dim() != 2:
            raise GenlabError(f"V: expected shape [K, {self.n_params}], got {tuple(vs.shape)}")
        method = self.hvp_method
        out = torch.zeros_like(vs)
        if method == "reuse-graph":
            for leaf_grad, leaf in self._graphs_at(theta):
                out += self._backward(leaf_grad, leaf, vs, retain=True)
        else:
            for w, (x, y) in zip(self._weights, self._chunks, strict=True):
                out += w * self._chunk_hmp(method, theta, vs, x, y)
        self.cost.n_hvp += len(vs)
        self.cost.n_passes += 1
        return out

    def clear_cache(self) -> None:
        """Free the graphs kept by "reuse-graph"."""
        self._graph_key, self._graphs = None, []

    def _backward(self, g: torch.Tensor, leaf: torch.Tensor, vs: torch.Tensor, retain: bool) -> torch.Tensor:
        if self._batched_backward and len(vs) > 1:
            try:
                return torch.autograd.grad(g, leaf, vs, retain_graph=retain, is_grads_batched=True)[0]
            except RuntimeError:
                self._batched_backward = False  # some op lacks a batching rule: fall back to a loop
        last = len(vs) - 1
        rows = [torch.autograd.grad(g, leaf, v, retain_graph=retain or i < last)[0] for i, v in enumerate(vs)]
        return torch.stack(rows)

    def _graph(self, theta, x, y, weight=1.0):
        leaf = theta.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(weight * self._chunk_loss(leaf, x, y), leaf, create_graph=True)[0]
        return g, leaf

    def _chunk_hmp(self, method, theta, vs, x, y):
        if method == "fwd-rev":
            gradf = grad(self._chunk_loss)

            def one(v):
                return jvp(lambda t: gradf(t, x, y), (theta,), (v,))[1]

            return vmap(one, randomness="same")(vs)
        g, leaf = self._graph(theta, x, y)
        return self._backward(g, leaf, vs, retain=False)

    def _graphs_at(self, theta):
        key = self._graph_key
        if key is None or not (key is theta or (key.shape == theta.shape and torch.equal(key, theta))):
            self._graphs = []  # free the old graphs first
            self._graphs = [
                self._graph(theta, x, y, w) for w, (x, y) in zip(self._weights, self._chunks, strict=True)
            ]
            self._graph_key = theta.detach().clone()
        return self._graphs

    def _measure_method(self) -> str:
        """Time each HVP method on a slice of the first chunk and estimate reuse-graph's memory."""
        x, y = self._chunks[0]
        m = min(len(x), 256)
        x, y = x[:m], y[:m]
        theta = self._theta0
        gen = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(1, self.n_params, generator=gen, dtype=self.dtype).to(theta.device)

        def timed(fn, reps=2):
            fn()  # warm-up
            best = math.inf
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                if theta.is_cuda:
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            return best

        saved = {}

        def pack(t):
            saved[id(t)] = t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            g, leaf = self._graph(theta, x, y)
        graph_bytes = sum(saved.values()) * self.n_examples / m
        self.timings = {
            "fwd-rev": timed(lambda: self._chunk_hmp("fwd-rev", theta, v, x, y)),
            "double-backward": timed(lambda: self._chunk_hmp("double-backward", theta, v, x, y)),
            "reuse-graph": timed(lambda: self._backward(g, leaf, v, retain=True)),
        }
        self.graph_bytes_estimate = graph_bytes
        limit = REUSE_GRAPH_MAX_BYTES
        if theta.is_cuda:
            limit = torch.cuda.mem_get_info(theta.device)[0] // 2
        candidates = dict(self.timings)
        if graph_bytes > limit:
            candidates.pop("reuse-graph")
        return min(candidates, key=candidates.get)

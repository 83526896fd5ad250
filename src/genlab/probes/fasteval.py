"""Fast loss and accuracy at many points of an affine family of parameters, on the train and test data at once.

Landscape probes evaluate theta(c) = base + sum_k c_k D_k for coordinate rows c (plane, line: base = center;
paths, triangles, squares: base = 0 and D_k = the endpoint models, so a corner is the model itself, bit for bit).
`PointEvaluator.evaluate(C [P, k])` returns (loss, accuracy) per point for every data set given. All exact:
  * data stay resident as the Objective's chunks; no loaders, no per-point host copies or syncs (per-chunk
    values are collected on the device and summed once per request);
  * "loop": a private model copy whose parameters are bound to one flat vector (`fastmodel.Bound`); a point
    costs one axpy (base + c D, the leading coordinates' part kept while they repeat, `fastmodel.Combination`)
    and a plain forward per chunk;
  * "vmap": blocks of points through `vmap(functional_call)` (stacked weights -> bmm); for GPUs and
    overhead-bound models with little data;
  * first-layer precompute (`firstlayer`): a first Linear/Conv fed by the input is affine in c, so its outputs
    are computed once per chunk and a point costs an axpy over N x out instead of the layer;
  * channels_last (models with Conv2d): 4-d weights, inputs and precomputed first-layer outputs in NHWC;
  * exact rewrites of the copies (`fastmodel`): activation/max-pool pairs commuted, and cross-entropy with
    accuracy from one max over the logits when the loss is the plain `cross_entropy`;
  * method "auto" times the candidate plans on the first points of the request (results kept), then runs the
    fastest; `method`, `first_layer`, `channels_last`, `points_per_batch` force a choice. Every model copy is
    checked against the Objective's model (functional_call) at one point before use; a rewritten copy that
    differs is rebuilt without rewrites, a fast path that differs is dropped (and the plan says so).
BatchNorm running statistics are fixed (the Objective's), affine in c like the parameters (`buffers`, one dict
per direction, base None), or recomputed per point by a pass over the first set's data with BatchNorm in train
mode (cumulative average, as torch.optim.swa_utils.update_bn; plain copies only).

Reads the Objective only through its public accessors (network, chunks, chunk_weights, fixed_tensors, loss_fn).
Must not train, must not modify the Objective or the user's model, and must not import genlab.train / store /
studies / cli / runner.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from genlab.errors import GenlabError, check_choice, check_positive
from genlab.probes.fastmodel import (
    Bound,
    Combination,
    Injected,
    accuracy,
    ce_and_accuracy,
    frozen_copy,
    has_conv2d,
    is_plain_cross_entropy,
    plain_labels,
)
from genlab.probes.firstlayer import FirstLayer
from genlab.probes.objective import Objective

METHODS = ("auto", "loop", "vmap")
FIRST_LAYER = ("auto", "on", "off")
CHANNELS_LAST = ("auto", "on", "off")
MEMORY_BUDGET_BYTES = 2**30  # CPU; on CUDA a quarter of the free memory
VMAP_CPU_MAX_POINT_SECONDS = 5e-4
CE_BLOCK_NUMEL = 2**22  # logits kept per chunk before their cross-entropy is computed (16 MB in float32)


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    return MEMORY_BUDGET_BYTES


@dataclass
class Plan:
    """How points are evaluated: method, first-layer precompute, NHWC, points per vmap batch, timings [s/pt]."""

    method: str = "loop"
    first_layer: bool = False
    points_per_batch: int = 1
    timings: dict[str, float] = field(default_factory=dict)
    note: str = ""
    channels_last: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> str:
        return f"{self.method}/first_layer={self.first_layer}/nhwc={self.channels_last}/{self.points_per_batch}"


class PointEvaluator:
    """Loss and accuracy at theta(c) = base + c @ D for coordinate rows c, on each Objective's data.

    `objs`: the first gives the model, its buffers and the mode; later ones (e.g. the test set) contribute
    only data and loss. `base`: [n] or None (zero). `dirs`: [k, n]. `buffers`: None (the model's), or k dicts of
    float buffers (then buffers(c) = sum_k c_k buffers_k, missing names taken from the model; base must be
    None). `recompute_bn`: recompute running statistics per point on objs[0]'s data.
    """

    def __init__(
        self,
        objs: Sequence[Objective],
        base: torch.Tensor | None,
        dirs: torch.Tensor,
        buffers: Sequence[Mapping[str, torch.Tensor]] | None = None,
        recompute_bn: bool = False,
        method: str = "auto",
        first_layer: str = "auto",
        points_per_batch: int | None = None,
        channels_last: str = "auto",
    ):
        check_choice("method", method, METHODS)
        check_choice("first_layer", first_layer, FIRST_LAYER)
        check_choice("channels_last", channels_last, CHANNELS_LAST)
        if points_per_batch is not None:
            check_positive("points_per_batch", points_per_batch, integer=True)
        train = objs[0]
        self.net0, self.fixed0 = train.network, train.fixed_tensors
        ref = train.params()
        self.device, self.dtype = ref.device, ref.dtype
        self.k = dirs.shape[0]
        self.space = train.space
        self.sets = [(o.chunks, o.chunk_weights, o.loss_fn) for o in objs]
        self.fused = [
            is_plain_cross_entropy(loss_fn) and all(plain_labels(y) for _, y in chunks)
            for chunks, _, loss_fn in self.sets
        ]
        self.requested = (method, first_layer, points_per_batch, channels_last)
        self.recompute_bn = recompute_bn
        self.forward_passes = self.examples = 0
        self.plan: Plan | None = None
        self.notes: list[str] = []
        if recompute_bn and self.net0.training:
            raise GenlabError("bn: 'recompute' needs an Objective with mode='eval'; accepted here: interpolate")
        self.base = base.to(ref) if base is not None else None
        self.dirs = dirs.to(ref)
        # buffers: fixed (each copy keeps the model's), or affine in c (views into one shared flat vector)
        own = {k: b for k, b in self.net0.named_buffers() if b.is_floating_point()}
        self.buf_names: list[str] = sorted(own) if buffers is not None else []
        if buffers is not None and base is not None:
            raise GenlabError("buffers: per-direction buffers need base=None (a combination of models)")
        if self.buf_names:
            cols = [
                torch.cat([bd.get(k, own[k]).reshape(-1).to(own[k]) for k in self.buf_names]) for bd in buffers
            ]
            self.bufs = torch.stack(cols)  # [k, n_buffers]
            self.bflat = torch.zeros(self.bufs.shape[1], dtype=self.dtype, device=self.device)
        self.buf_views, offset = {}, 0
        for k in self.buf_names:
            self.buf_views[k] = self.bflat[offset : offset + own[k].numel()].view(own[k].shape)
            offset += own[k].numel()
        self.buf_shapes = {k: (v.numel(), v.shape) for k, v in self.buf_views.items()}
        self.rewrite = not recompute_bn  # BN recompute runs the plain copy only
        self._bounds: dict[tuple[bool, bool], Bound | None] = {}
        self._sets_nhwc: list | None = None
        self.plain = self._bound(False, False)
        self.bn_modules = [
            m
            for m in self.plain.net.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        self.first: FirstLayer | None = None
        if first_layer != "off" and not recompute_bn:
            self._setup_first()
        elif first_layer == "on":
            self.notes.append("first-layer precompute not used with bn='recompute'")
        self.nhwc_ok = channels_last != "off" and not recompute_bn and has_conv2d(self.net0)
        if channels_last == "on" and not self.nhwc_ok:
            self.notes.append("channels_last not used (no Conv2d, or bn='recompute')")

    # ------------------------------------------------------------------------------------------ model copies
    def _bound(self, first: bool, nhwc: bool) -> Bound | None:
        """The model copy for (first-layer precompute, channels_last), built and verified on first use."""
        key = (first, nhwc)
        if key not in self._bounds:
            self._bounds[key] = None
            bound = self._build(first, nhwc, self.rewrite)
            changed = self.rewrite or first or nhwc  # else the copy runs the model's own function
            if changed and bound is not None and not self._verify(bound, first, nhwc):
                bound = self._build(first, nhwc, False) if self.rewrite else None
                if bound is not None and not self._verify(bound, first, nhwc):
                    bound = None
                self.notes.append(
                    f"copy first_layer={first} channels_last={nhwc} differed from the model at a check point; "
                    + ("rebuilt without rewrites" if bound is not None else "not used")
                )
            if bound is None and key == (False, False):
                bound = self._build(False, False, False)  # the plain copy is the reference's own function
            self._bounds[key] = bound
        return self._bounds[key]

    def _build(self, first: bool, nhwc: bool, rewrite: bool) -> Bound | None:
        net = frozen_copy(self.net0, rewrite)
        mask = torch.ones(self.space.n, dtype=torch.bool, device=self.device)
        injected = None
        if first:
            if self.first.layout(nhwc) is None:
                return None
            layer = net.get_submodule(self.first.name)
            for leaf, _ in layer.named_parameters(recurse=False):
                mask[self.space.slices[f"{self.first.name}.{leaf}"]] = False
            parent, _, leaf = self.first.name.rpartition(".")
            injected = Injected()
            setattr(net.get_submodule(parent), leaf, injected)
        bound = Bound(net, self.space, mask, self.base, self.dirs, self.buf_views, nhwc)
        bound.injected = injected
        return bound

    def _sets_for(self, nhwc: bool) -> list:
        """Data chunks per set, with 4-d inputs in NHWC for channels_last copies."""
        if not nhwc:
            return [chunks for chunks, _, _ in self.sets]
        if self._sets_nhwc is None:
            self._sets_nhwc = [
                [(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x, y) for x, y in chunks]
                for chunks, _, _ in self.sets
            ]
        return self._sets_nhwc

    # ------------------------------------------------------------------------------------------ first layer
    def _setup_first(self) -> None:
        self.first, note = FirstLayer.build(
            self.net0, self.space, self.sets, self.base, self.dirs, _budget(self.device)
        )
        if note:
            self.notes.append(note)
        if self.first is not None and self._bound(True, False) is None:
            self.first = None

    def _verify(self, bound: Bound, first: bool, nhwc: bool) -> bool:
        """Compare a copy against the Objective's model (functional_call) at a point with all c_k != 0."""
        gen = torch.Generator().manual_seed(12345)
        c = (torch.rand(1, self.k, generator=gen, dtype=torch.float64) * 0.5 + 0.25).to(self.dtype)
        counts = (self.forward_passes, self.examples)
        fast = self._run_loop(c.to(self.device), bound, first, nhwc)[:, :, 0].cpu().numpy()
        self.forward_passes, self.examples = counts
        c = c[0].to(self.dirs)
        theta = (self.base if self.base is not None else torch.zeros_like(self.dirs[0])) + c @ self.dirs
        fixed = dict(self.fixed0)
        fixed.update(dict(bound.net.named_buffers()))  # the buffers at c (affine ones were just set)
        ref = np.zeros_like(fast)
        with torch.no_grad():
            for s, (chunks, weights, loss_fn) in enumerate(self.sets):
                for w, (x, y) in zip(weights, chunks, strict=True):
                    logits = functional_call(self.net0, (self.space.to_dict(theta), fixed), (x,), strict=False)
                    loss = loss_fn(logits, y)
                    ref[s, 0] += w * float(loss)
                    ref[s, 1] += w * float(accuracy(logits, y, loss))
        return bool(np.allclose(fast, ref, rtol=1e-4, atol=1e-5, equal_nan=True))

    # ------------------------------------------------------------------------------------------ evaluation
    def _recompute_stats(self) -> None:
        for m in self.bn_modules:
            m.reset_running_stats()
            m.momentum = None
            m.train(True)
        with torch.no_grad():
            for x, _ in self.sets[0][0]:
                self.plain.net(x)
        for m in self.bn_modules:
            m.train(False)
        self.forward_passes += 1
        self.examples += sum(len(x) for x, _ in self.sets[0][0])

    def _weigh(self, cols: list[list[list]], n_points: int) -> torch.Tensor:
        """Per set and chunk, (loss [b], acc [b]) blocks in point order -> [n_sets, 2, P], chunk-weighted."""
        out = torch.zeros(len(self.sets), 2, n_points, dtype=torch.float64, device=self.device)
        for s, (_, weights, _) in enumerate(self.sets):
            for w, blocks in zip(weights, cols[s], strict=True):
                for j in range(2):
                    out[s, j] += w * torch.cat([b[j].reshape(-1) for b in blocks]).to(torch.float64)
        return out

    def _run_loop(self, cs: torch.Tensor, m: Bound, first: bool, nhwc: bool) -> torch.Tensor:
        """[P, k] -> [n_sets, 2, P] (loss, accuracy) one point at a time with the copy `m`.

        Plain cross-entropy is computed for blocks of points at once from their kept logits (one set of small
        ops per block instead of per point); other losses per point.
        """
        zs = self.first.layout(nhwc) if first else None
        combos = [[Combination(z0, zk) for z0, zk, _, _ in per] for per in zs] if zs is not None else None
        bufs = Combination(None, self.bufs) if self.buf_names else None
        sets = self._sets_for(nhwc)
        cols = [[[] for _ in chunks] for chunks in sets]  # per set and chunk: [(loss, acc) tensors]
        pending = [[[] for _ in chunks] for chunks in sets]  # kept logits of plain cross-entropy chunks
        with torch.no_grad():
            for c in cs.tolist():
                m.set_point(c)
                if bufs is not None:
                    bufs(c, out=self.bflat)
                if self.recompute_bn and self.bn_modules:
                    self._recompute_stats()
                for s, chunks in enumerate(sets):
                    loss_fn, fused = self.sets[s][2], self.fused[s]
                    for i, (x, y) in enumerate(chunks):
                        if combos is not None:
                            _, _, shape, z_nhwc = zs[s][i]
                            m.injected.value = FirstLayer.inject(combos[s][i](c), shape, z_nhwc)
                        logits = m.net(x)
                        if fused and logits.dim() == 2:
                            pending[s][i].append(logits)
                            if len(pending[s][i]) * logits.numel() >= CE_BLOCK_NUMEL:
                                cols[s][i].append(ce_and_accuracy(torch.stack(pending[s][i]), y))
                                pending[s][i] = []
                        else:
                            loss = loss_fn(logits, y)
                            cols[s][i].append((loss[None], accuracy(logits, y, loss)[None]))
            for s, chunks in enumerate(sets):
                for i, (_, y) in enumerate(chunks):
                    if pending[s][i]:
                        cols[s][i].append(ce_and_accuracy(torch.stack(pending[s][i]), y))
        if m.injected is not None:
            m.injected.value = None
        self._count(len(cs))
        return self._weigh(cols, len(cs))

    def _run_vmap(self, cs: torch.Tensor, m: Bound, first: bool, batch: int) -> torch.Tensor:
        out = torch.empty(len(self.sets), 2, len(cs), dtype=torch.float64, device=self.device)
        buf_shapes = self.buf_shapes
        zs = self.first.layout(False) if first else None

        def one(theta, bflat, z, x, y, loss_fn):
            params = {name: theta[sl].view(shape) for name, (sl, shape) in m.slices.items()}
            offset = 0
            for k, (n, shape) in buf_shapes.items():
                params[k] = bflat[offset : offset + n].view(shape)
                offset += n
            if z is not None:
                m.injected.value = z
            logits = functional_call(m.net, params, (x,), strict=False)
            loss = loss_fn(logits, y)
            return loss, accuracy(logits, y, loss)

        with torch.no_grad():
            for start in range(0, len(cs), batch):
                cb = cs[start : start + batch]
                thetas = torch.addmm(m.base, cb, m.dirs) if m.base is not None else cb @ m.dirs
                bflats = cb @ self.bufs if self.buf_names else torch.zeros(len(cb), 0, device=self.device)
                for s, (chunks, weights, loss_fn) in enumerate(self.sets):
                    acc = torch.zeros(2, len(cb), dtype=torch.float64, device=self.device)
                    for i, (x, y) in enumerate(chunks):
                        zb = None
                        if zs is not None:
                            z0, zk, shape, _ = zs[s][i]
                            zb = (torch.addmm(z0[None], cb, zk) if z0 is not None else cb @ zk).view(-1, *shape)
                        dims = (0, 0, 0 if zb is not None else None, None, None, None)
                        lc, ac = vmap(one, in_dims=dims, randomness="same")(thetas, bflats, zb, x, y, loss_fn)
                        acc[0] += weights[i] * lc.double()
                        acc[1] += weights[i] * ac.double()
                    out[s, :, start : start + len(cb)] = acc
        if m.injected is not None:
            m.injected.value = None
        self._count(len(cs))
        return out

    def _count(self, n_points: int) -> None:
        self.forward_passes += n_points * len(self.sets)
        self.examples += n_points * sum(sum(len(x) for x, _ in chunks) for chunks, _, _ in self.sets)

    def _run(self, cs: torch.Tensor, plan: Plan) -> torch.Tensor:
        m = self._bound(plan.first_layer, plan.channels_last)
        if plan.method == "vmap":
            return self._run_vmap(cs, m, plan.first_layer, plan.points_per_batch)
        return self._run_loop(cs, m, plan.first_layer, plan.channels_last)

    def _point_bytes(self) -> int:
        """Rough activation bytes of one point over all chunks (outputs of every leaf module)."""
        total = [0]

        def hook(mod, inp, out):
            if isinstance(out, torch.Tensor):
                total[0] += out.numel() * out.element_size()

        hooks = [m.register_forward_hook(hook) for m in self.plain.net.modules() if not list(m.children())]
        counts = (self.forward_passes, self.examples)
        try:
            self._run_loop(torch.zeros(1, self.k, dtype=self.dtype, device=self.device), self.plain, False, False)
        finally:
            for h in hooks:
                h.remove()
        self.forward_passes, self.examples = counts
        return max(total[0], 1)

    def _candidates(self) -> list[Plan]:
        """Plans allowed by the request and the model, most promising first (the default when not measured)."""
        method, first_layer, ppb, channels_last = self.requested
        firsts = [True, False] if self.first is not None else [False]
        if first_layer == "on":
            firsts = firsts[:1]
        nhwcs = [True, False] if self.nhwc_ok else [False]
        if channels_last == "on":
            nhwcs = nhwcs[:1]
        cands = []
        if method in ("auto", "loop"):
            cands += [Plan("loop", f, 1, channels_last=c) for f in firsts for c in nhwcs]
        if method in ("auto", "vmap"):
            if ppb:
                batches = [ppb]
            elif self.device.type == "cuda" and method == "auto":
                max_batch = max(1, min(256, _budget(self.device) // self._point_bytes()))
                batches = sorted({min(b, max_batch) for b in (32, 128)})
            else:
                batches = [16 if method == "vmap" else 8]  # on CPU vmap rarely wins: one candidate
            cands += [Plan("vmap", f, b) for f in firsts for b in batches]
        return cands

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Coordinates [P, k] -> float64 array [n_sets, 2, P]: (loss, accuracy) per set and point."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, self.k)
        cs = torch.as_tensor(coords).to(device=self.device, dtype=self.dtype)
        if len(cs) == 0:
            return np.zeros((len(self.sets), 2, 0))
        if self.plan is None:
            cands = self._candidates()
            if len(cands) == 1 or len(cs) < 64 or self.recompute_bn:
                best = cands[0]
                self.plan = Plan(best.method, best.first_layer, best.points_per_batch, {}, "; ".join(self.notes),
                                 best.channels_last)  # fmt: skip
            else:
                return self._measure_and_run(cs, cands)
        return self._run(cs, self.plan).cpu().numpy()

    def _measure_and_run(self, cs: torch.Tensor, cands: list[Plan]) -> np.ndarray:
        """Time each candidate plan on the next few points of `cs` (results kept), then run the fastest.

        On CPU, vmap only removes per-point dispatch overhead (~0.1-0.2 ms a point here), so its candidates are
        timed only when the fastest loop point costs less than VMAP_CPU_MAX_POINT_SECONDS.
        """
        for plan in cands:
            self._bound(plan.first_layer, plan.channels_last)  # build and verify outside the timings
        cands = [p for p in cands if self._bounds.get((p.first_layer, p.channels_last)) is not None]
        results, done, timings = [], 0, {}
        for plan in cands:
            if done + 2 * plan.points_per_batch + 1 > len(cs) // 2:
                break
            loops = [p.timings["self"] for p in cands if p.method == "loop" and "self" in p.timings]
            if (
                plan.method == "vmap"
                and self.device.type == "cpu"
                and loops
                and min(loops) > VMAP_CPU_MAX_POINT_SECONDS
            ):
                continue
            sync(self.device)
            t0 = time.perf_counter()
            results.append(self._run(cs[done : done + plan.points_per_batch], plan))  # warm-up, kept
            sync(self.device)
            done += plan.points_per_batch
            warm = (time.perf_counter() - t0) / plan.points_per_batch
            n = plan.points_per_batch * max(1, min(32, int(0.05 / max(warm * plan.points_per_batch, 1e-9))))
            n = min(n, len(cs) // 2 - done)
            t0 = time.perf_counter()
            results.append(self._run(cs[done : done + n], plan))
            sync(self.device)
            plan.timings["self"] = (time.perf_counter() - t0) / n
            timings[plan.key] = plan.timings["self"]
            done += n
        best = min((p for p in cands if "self" in p.timings), key=lambda p: p.timings["self"])
        self.plan = Plan(best.method, best.first_layer, best.points_per_batch, timings, "; ".join(self.notes),
                         best.channels_last)  # fmt: skip
        results.append(self._run(cs[done:], self.plan))
        return torch.cat(results, dim=2).cpu().numpy()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

"""First-layer precompute for `fasteval.PointEvaluator`.

If the first parametrized module of a model is a Linear/Conv fed by the parameter-free input, its output is
affine in the coordinates c of theta(c) = base + c @ D: Z(c) = Z(base) + sum_k c_k Z(D_k), where Z(D) is the
layer run with D's weight and bias. The Z's are computed once per data chunk; a point then costs one axpy over
N x out (`fastmodel.Combination`) instead of the layer. For channels_last copies, 4-d outputs are also kept in
NHWC order (built on first use).

Must not train, must not touch the Objective's model or the user's, and must not import genlab.train / store /
studies / cli / runner.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.probes.fastmodel import find_first_layer, frozen_copy


class FirstLayer:
    """Precomputed outputs of the first layer per data set and chunk: (z_base | None, Z_dirs [k, M], shape)."""

    def __init__(self, name: str, zs: list, nbytes: int, budget: int):
        self.name, self.nbytes, self.budget = name, nbytes, budget
        self._layouts: dict[bool, list | None] = {False: [[(*z, False) for z in per] for per in zs]}

    @classmethod
    def build(cls, net0: nn.Module, space, sets, base, dirs, budget: int) -> tuple[FirstLayer | None, str]:
        """(the precompute, "") or (None, why not) for the model `net0` on the chunks of `sets`."""
        net = frozen_copy(net0, False)
        name = find_first_layer(net, sets[0][0][0][0])
        if name is None:
            return None, "first-layer precompute not applicable to this model"
        layer = net.get_submodule(name)
        names = [f"{name}.{leaf}" for leaf, _ in layer.named_parameters(recurse=False)]
        if not all(nm in space.slices for nm in names):
            return None, "first layer has frozen parameters; precompute not used"
        captured: list[torch.Tensor] = []
        hook = layer.register_forward_pre_hook(lambda mod, inp: captured.append(inp[0]))
        pieces = ([base] if base is not None else []) + list(dirs)
        zs, total = [], 0
        try:
            for chunks, _, _ in sets:
                per = []
                for x, _ in chunks:
                    captured.clear()
                    with torch.no_grad():
                        net(x)
                    outs = [_layer_at(layer, name, space, captured[0], p) for p in pieces]
                    total += sum(o.numel() for o in outs) * outs[0].element_size()
                    if total > budget:
                        return None, "first-layer outputs exceed the memory budget; precompute not used"
                    z0 = outs[0].reshape(-1) if base is not None else None
                    zk = torch.stack([o.reshape(-1) for o in outs[len(pieces) - len(dirs) :]])  # [k, N * out]
                    per.append((z0, zk, tuple(outs[0].shape)))
                zs.append(per)
        finally:
            hook.remove()
        return cls(name, zs, total, budget), ""

    def layout(self, nhwc: bool) -> list | None:
        """Per set and chunk (z_base, Z_dirs, shape, stored NHWC); None if the NHWC copy does not fit."""
        if nhwc not in self._layouts:
            if 3 * self.nbytes > self.budget:  # + the NCHW copy and the combinations' partials
                self._layouts[nhwc] = None
                return None

            def perm(t, shape):
                return None if t is None else t.view(-1, *shape).permute(0, 1, 3, 4, 2).reshape(t.shape)

            self._layouts[nhwc] = [
                [(perm(z0, shape), perm(zk, shape), shape, True) if len(shape) == 4 else (z0, zk, shape, False)
                 for z0, zk, shape, _ in per]
                for per in self._layouts[False]
            ]  # fmt: skip
        return self._layouts[nhwc]

    @staticmethod
    def inject(z: torch.Tensor, shape: tuple[int, ...], nhwc: bool) -> torch.Tensor:
        """The flat combination z viewed as the layer's output (NCHW shape, NHWC memory if so stored)."""
        if nhwc:
            n, c, h, w = shape
            return z.view(n, h, w, c).permute(0, 3, 1, 2)
        return z.view(shape)


def _layer_at(layer: nn.Module, name: str, space, inp: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    w = theta[space.slices[f"{name}.weight"]].view(layer.weight.shape)
    b = theta[space.slices[f"{name}.bias"]] if layer.bias is not None else None
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(inp, w, b)
        return layer._conv_forward(inp, w, b)

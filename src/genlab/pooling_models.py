"""Cohen & Shashua (2016) pooling-geometry networks: `pooling-net` (one-hot pixels, 1x1 convs and 2x2 pooling
down to 1x1 with a square, mirror or random geometry) and its shallow baseline `pooling-shallow`; registered
in `genlab.models.MODELS`. Like every model module it knows nothing of training, data loading or the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError, check_choice, check_positive

# --- Cohen & Shashua (2016): pooling geometry ----------------------------------------------------------------
#
# Layout: inside these nets a feature map is N x P x C with P = S*S positions flattened row-major (p = r*S + c),
# i.e. NHWC. A 1x1 conv is then a plain nn.Linear over the channel axis (same parameters as nn.Conv2d(k=1)).

GEOMETRIES = ("square", "mirror", "random")
POOLS = ("avg", "max")


def _check_size(size: object, power_of_two: bool = False) -> int:
    ok = isinstance(size, int) and not isinstance(size, bool) and size >= 2 and size % 2 == 0
    if power_of_two:
        ok = ok and size & (size - 1) == 0
    if not ok:
        need = "a power of two >= 2" if power_of_two else "an even integer >= 2"
        raise GenlabError(f"pooling_index: size must be {need}, got {size!r}")
    return size


def pooling_index(size: int, geometry: str, seed: int = 0) -> torch.Tensor:
    """The spatial permutation applied before the 2x2/2 pooling of an S x S map (S = `size`).

    Returns a LongTensor `index` of length S*S over row-major positions: position p of the permuted map takes
    input position index[p]. The 2x2 stride-2 pooling that follows pools permuted positions (2i, 2j), (2i, 2j+1),
    (2i+1, 2j), (2i+1, 2j+1) into output (i, j), 0 <= i, j < S/2.

    - "square": the identity, so window (i, j) pools the contiguous block rows 2i..2i+1, cols 2j..2j+1.
    - "mirror": separable, index[(R, C)] = (rho(R), rho(C)) with rho(2i) = i, rho(2i+1) = S-1-i; so window
      (i, j) pools (i, j), (i, S-1-j), (S-1-i, j), (S-1-i, S-1-j): a node and its horizontal, vertical and
      diagonal reflections (in that order inside the block). This is caffe-simnets' `Permutation` layer of type
      QUAD2 (src_h = h/2 for even h, S-1-h/2 for odd h), which HUJI-Deep/inductive-pooling puts between the
      ReLU and the pooling of every hidden layer.
    - "random": a uniformly random permutation of the S*S positions from numpy `default_rng((seed, S))` (never
      the global RNG), so each layer (each S) of a net gets its own fixed permutation: neither local nor
      mirror-symmetric, a control.
    """
    check_choice("model.geometry", geometry, GEOMETRIES)
    _check_size(size)
    if geometry == "square":
        return torch.arange(size * size)
    if geometry == "mirror":
        half = torch.arange(size) // 2
        rho = torch.where(torch.arange(size) % 2 == 0, half, size - 1 - half)
        return (rho[:, None] * size + rho[None, :]).reshape(-1)
    check_positive("model.perm_seed", seed, integer=True, allow_zero=True)
    perm = np.random.default_rng((seed, size)).permutation(size * size)
    return torch.from_numpy(perm).long()


def folded_pooling_index(size: int, geometry: str, seed: int = 0) -> torch.Tensor:
    """All per-layer permutations of a `pooling-net` on S x S inputs (S a power of two) folded into one
    permutation `Pi` of the input pixels: the net with `pooling_index(s, ...)` before the pooling at every
    layer (s = S, S/2, ..., 2) equals the same net with square pooling everywhere applied to x[Pi].

    Why: 1x1 convs and ReLU act per position, so they commute with permutations of positions; and a
    permutation pi of the S/2 x S/2 pooled map equals pooling after the block permutation B(pi) of the S x S map
    (B(pi) moves the 2x2 block of window q, in order, to window pi^-1(q)). Hence Pi_S = index_S[B(Pi_{S/2})],
    Pi_1 = [0]. The order inside each window is kept, so the two forms compute the same numbers.
    """
    _check_size(size, power_of_two=True)
    h = size // 2
    inner = folded_pooling_index(h, geometry, seed) if h > 1 else torch.zeros(1, dtype=torch.long)
    r, c = (inner // h).view(h, 1, h, 1), (inner % h).view(h, 1, h, 1)
    offset = torch.arange(2)
    rows, cols = 2 * r + offset.view(1, 2, 1, 1), 2 * c + offset.view(1, 1, 1, 2)  # dims (i, a, j, b)
    block = (rows * size + cols).reshape(-1)  # position (2i+a)*S + 2j+b takes (2 r_q + a, 2 c_q + b)
    return pooling_index(size, geometry, seed)[block]


class PermutedOneHot(nn.Module):
    """Pixels permuted by a fixed index (a buffer), then one-hot [x, 1 - x] (M = 2: identity and negation).

    (..., 1, S, S) -> (..., S*S, 2): out[..., p, :] = [x_q, 1 - x_q] with q = index[p] (row-major positions).
    No parameters; the identity (square geometry) is skipped at run time (a flag fixed at construction)."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.identity = bool(torch.equal(index, torch.arange(index.numel())))
        self.register_buffer("index", index.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(-3)
        if not self.identity:
            x = x.index_select(-1, self.index)
        return torch.stack((x, 1 - x), dim=-1)

    def extra_repr(self) -> str:
        return f"positions={self.index.numel()}, identity={self.identity}"


class Pool2x2(nn.Module):
    """2x2 stride-2 average or max pooling of an S x S map in the flattened layout: (..., S*S, C) ->
    (..., S*S/4, C); output (i, j) pools positions (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1)."""

    def __init__(self, size: int, pool: str = "avg"):
        super().__init__()
        self.size, self.pool = size, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, lead, c = self.size, x.shape[:-2], x.shape[-1]
        # an NCHW view in channels_last memory: the pooling kernels run in NHWC without copies (measured 3x
        # faster than a mean over the window dims of a 6-d view)
        x = x.reshape(-1, s, s, c).permute(0, 3, 1, 2)
        x = F.avg_pool2d(x, 2) if self.pool == "avg" else F.max_pool2d(x, 2)
        return x.permute(0, 2, 3, 1).reshape(*lead, (s // 2) ** 2, c)

    def extra_repr(self) -> str:
        return f"size={self.size}, pool={self.pool!r}"


class OneHotReluGlobalPool(nn.Module):
    """The shallow net's body for binary pixels: one-hot [x, 1-x] -> 1x1 conv `conv` (nn.Linear(2, B)) -> ReLU
    -> global average or max pooling, (..., 1, H, W) -> (..., B).

    With x in {0, 1} a pixel's feature is one of two vectors, u1 = relu(W[:, 0] + b) (x = 1) or
    u0 = relu(W[:, 1] + b) (x = 0), so the pooled features are computed from the pixel histogram, exactly (up to
    float rounding) and without an H*W x B map: average m u1 + (1 - m) u0 with m = mean(x); max
    max(max(x) u1, max(1 - x) u0) (u >= 0). For inputs outside {0, 1} this is the expectation over independent
    Bernoulli(x_p) pixels (avg), not the per-pixel net."""

    def __init__(self, breadth: int, pool: str = "avg"):
        super().__init__()
        self.pool = pool
        self.conv = nn.Linear(2, breadth)
        self.register_buffer("basis", torch.eye(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.relu(self.conv(self.basis))  # [2, B]: rows u1 (one-hot [1, 0]), u0 (one-hot [0, 1])
        x = x.flatten(-3)
        if self.pool == "avg":
            m = x.mean(dim=-1, keepdim=True)
            return m * u[0] + (1 - m) * u[1]
        hi, lo = x.amax(dim=-1, keepdim=True), (1 - x).amax(dim=-1, keepdim=True)
        return torch.maximum(hi * u[0], lo * u[1])

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}"


def _caffe_xavier(model: nn.Module) -> nn.Module:
    """The reference code's init: Caffe "xavier" weights U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)), zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(3.0 / m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
    return model


def _binary_image_size(name: str, input_shape: Sequence[int], power_of_two: bool) -> int:
    shape = tuple(input_shape)
    ok = len(shape) == 3 and shape[0] == 1 and all(isinstance(s, int) and s >= 1 for s in shape)
    if power_of_two:
        ok = ok and shape[1] == shape[2] and shape[1] >= 2 and shape[1] & (shape[1] - 1) == 0
        need = "1 x S x S images with S a power of two >= 2"
    else:
        need = "1 x H x W images"
    if not ok:
        raise GenlabError(f"model.input_shape: {name} needs {need}, got {shape}")
    return shape[1]


def pooling_net(
    input_shape: Sequence[int],
    n_classes: int,
    geometry: str = "square",
    breadth: int = 16,
    pool: str = "avg",
    perm_seed: int = 0,
) -> nn.Sequential:
    """Cohen & Shashua's deep network for N x 1 x S x S binary images (values {0, 1}), S = 2^L.

    one-hot [x, 1-x] -> L x (1x1 conv to `breadth` channels with bias -> ReLU -> permutation of the positions
    (`pooling_index(s, geometry, perm_seed)`) -> 2x2/2 `pool`ing), s halving each layer down to 1x1 -> 1x1 conv
    (Linear) to `n_classes` logits. Geometry "square" (identity), "mirror" (QUAD2: each window joins a node with
    its reflections) or "random" (a fixed random permutation per layer from `perm_seed`).
    Implementation: the L permutations are folded into one permutation of the input pixels
    (`folded_pooling_index`, module `PermutedOneHot`), then square 2x2 pooling at every layer; this computes the
    same numbers as the per-layer form (tested against it), and costs the same for every geometry.
    No parameters in the permutation, so all geometries have the same parameter count:
    3B + (L-1)(B^2 + B) + (B + 1) n_classes (1,170 at S = 32, B = 16, 2 classes).
    With mirror pooling, the first pooled map is already a symmetric function of each orbit {(i, j),
    (i, S-1-j), (S-1-i, j), (S-1-i, S-1-j)}, so the net is exactly invariant to flipping the input left-right
    or up-down (and to any permutation within the orbits), up to float rounding.

    Deviations from the paper: ReLU + average (or max) pooling only, the variant the paper also reports; the
    ConvAC (linear activation, product pooling) is not implemented. Init as in the reference code (Caffe
    "xavier" weights, zero biases); PyTorch's default init (biases U(+-1/sqrt(fan_in))) left the outputs of a
    fresh 32 x 32 net nearly independent of the input (differences ~1e-9).
    """
    size = _binary_image_size("pooling-net", input_shape, power_of_two=True)
    check_choice("model.geometry", geometry, GEOMETRIES)
    check_positive("model.breadth", breadth, integer=True)
    check_choice("model.pool", pool, POOLS)
    check_positive("model.perm_seed", perm_seed, integer=True, allow_zero=True)
    layers: list[nn.Module] = [PermutedOneHot(folded_pooling_index(size, geometry, perm_seed))]
    c_in = 2
    while size > 1:
        layers += [nn.Linear(c_in, breadth), nn.ReLU(), Pool2x2(size, pool)]
        c_in, size = breadth, size // 2
    layers += [nn.Flatten(-2), nn.Linear(c_in, n_classes)]
    return _caffe_xavier(nn.Sequential(*layers))


def pooling_shallow(
    input_shape: Sequence[int], n_classes: int, breadth: int = 234, pool: str = "avg"
) -> nn.Sequential:
    """Cohen & Shashua's shallow baseline for N x 1 x H x W binary images: one-hot [x, 1-x] -> 1x1 conv to
    `breadth` channels (bias) -> ReLU -> global average (or max) pooling -> Linear to `n_classes`.
    Parameters: 3B + (B + 1) n_classes; the default B = 234 gives 1,172 for 2 classes, next to the deep
    `pooling-net`'s 1,170 at breadth 16 on 32 x 32 (the paper's ConvAC baseline used 64-4,096 channels).
    The body is computed from the pixel histogram (`OneHotReluGlobalPool`): exact for inputs in {0, 1}. So the
    net sees only the fraction of ones (avg) or which values occur (max: a near-constant function, hence the
    paper's chance accuracy for max-pooled shallow ReLU nets). Init as in `pooling_net` (Caffe xavier)."""
    _binary_image_size("pooling-shallow", input_shape, power_of_two=False)
    check_positive("model.breadth", breadth, integer=True)
    check_choice("model.pool", pool, POOLS)
    return _caffe_xavier(nn.Sequential(OneHotReluGlobalPool(breadth, pool), nn.Linear(breadth, n_classes)))

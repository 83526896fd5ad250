"""Model registry: `build(name, input_shape, n_classes, **options) -> nn.Module`.

Networks used by the studies, all plain `nn.Sequential` stacks so that probes can walk their layers and filters:
- `mlp`: fully connected, `widths` (or `width` x `depth`), activation, optional BatchNorm, init scheme.
- `cnn`: a small conv net for 8x8 (or any) images, or 1-D signals when the input is N x C x L.
- `keskar-f1`: F1-like MLP with BatchNorm (Keskar et al.: 5 hidden layers of 512 for MNIST).
- `keskar-c1`: C1-like shallow conv net (two conv+pool layers, then two dense layers, BatchNorm).
- `vgg`: a VGG-like deep conv net for 32x32 inputs (Keskar's C3/C4 analogues).
- `small-alexnet`: Zhang et al.'s small AlexNet for the randomization tests.
- `pooling-net`: Cohen & Shashua's deep 1x1-conv net with square, mirror or random pooling geometry.
- `pooling-shallow`: its shallow baseline (one 1x1-conv layer, global pooling).

Inits: `default` (PyTorch's), `he` (Kaiming normal, fan-in, ReLU gain), `normal` (N(0, init_std^2) for every
weight, biases zero: the "Simple" init of Neelakantan et al.), `zero` (all weights and biases zero).
This module knows nothing of data loading or training.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

from torch import nn

from genlab.errors import GenlabError, check_choice, check_positive, choice_error, unknown_key_error
from genlab.pooling_models import pooling_index as pooling_index  # re-exported: genlab.models.pooling_index
from genlab.pooling_models import pooling_net, pooling_shallow

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}
INITS = ("default", "he", "normal", "zero")


def _act(name: str) -> nn.Module:
    check_choice("model.activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, scheme: str = "default", std: float = 0.1) -> nn.Module:
    """Re-initialize the Linear/Conv layers of `model` in place with `scheme` (see module docstring)."""
    check_choice("model.init", scheme, INITS)
    check_positive("model.init_std", std, allow_zero=True)
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif scheme == "normal":
                nn.init.normal_(m.weight, 0.0, std)
            else:
                nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _flat_dim(input_shape: Sequence[int]) -> int:
    return math.prod(input_shape)


def mlp(
    input_shape: Sequence[int],
    n_classes: int,
    widths: Sequence[int] | None = None,
    width: int = 256,
    depth: int = 2,
    activation: str = "relu",
    batchnorm: bool = False,
    init: str = "default",
    init_std: float = 0.1,
) -> nn.Sequential:
    """Flatten, then hidden layers `widths` (default `depth` layers of `width`), then a linear classifier."""
    if widths is None:
        check_positive("model.width", width, integer=True)
        check_positive("model.depth", depth, integer=True, allow_zero=True)
        widths = [width] * depth
    widths = list(widths)
    for i, w in enumerate(widths):
        check_positive(f"model.widths[{i}]", w, integer=True)
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = _flat_dim(input_shape)
    for w in widths:
        layers.append(nn.Linear(fan_in, w))
        if batchnorm:
            layers.append(nn.BatchNorm1d(w))
        layers.append(_act(activation))
        fan_in = w
    layers.append(nn.Linear(fan_in, n_classes))
    return init_weights(nn.Sequential(*layers), init, init_std)


def _conv_block(
    dims: int, c_in: int, c_out: int, kernel: int, batchnorm: bool, activation: str
) -> list[nn.Module]:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    block: list[nn.Module] = [conv(c_in, c_out, kernel, padding=kernel // 2)]
    if batchnorm:
        block.append(norm(c_out))
    block.append(_act(activation))
    return block


def _spatial(input_shape: Sequence[int]) -> int:
    if len(input_shape) not in (2, 3):
        raise GenlabError(
            f"model: conv nets need inputs shaped C x L or C x H x W, got input shape {tuple(input_shape)}"
        )
    return len(input_shape) - 1


def cnn(
    input_shape: Sequence[int],
    n_classes: int,
    channels: Sequence[int] = (16, 32),
    kernel: int = 3,
    pool_after: Sequence[int] = (0, 1),
    hidden: int = 0,
    activation: str = "relu",
    batchnorm: bool = False,
    init: str = "default",
    init_std: float = 0.1,
) -> nn.Sequential:
    """Conv layers `channels` (same padding), 2x max-pooling after the layers listed in `pool_after`, global
    average pooling, an optional dense layer of `hidden` units, then a linear classifier. 1-D or 2-D by input."""
    dims = _spatial(input_shape)
    check_positive("model.kernel", kernel, integer=True)
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    gap = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
    layers: list[nn.Module] = []
    c_in, size = input_shape[0], min(input_shape[1:])
    for i, c in enumerate(channels):
        check_positive(f"model.channels[{i}]", c, integer=True)
        layers += _conv_block(dims, c_in, c, kernel, batchnorm, activation)
        if i in pool_after and size >= 2:
            layers.append(pool(2))
            size //= 2
        c_in = c
    layers += [gap, nn.Flatten()]
    if hidden:
        layers += [nn.Linear(c_in, hidden), _act(activation)]
        c_in = hidden
    layers.append(nn.Linear(c_in, n_classes))
    return init_weights(nn.Sequential(*layers), init, init_std)


def keskar_f1(input_shape: Sequence[int], n_classes: int, width: int = 512, depth: int = 5) -> nn.Sequential:
    """F1-like: `depth` fully connected layers of `width` with BatchNorm and ReLU (Keskar et al., Table 1)."""
    return mlp(input_shape, n_classes, width=width, depth=depth, batchnorm=True)


def keskar_c1(
    input_shape: Sequence[int], n_classes: int, channels: Sequence[int] = (64, 64), dense: int = 384
) -> nn.Sequential:
    """C1-like shallow conv net: 2 x (conv 5x5, BN, ReLU, max-pool), 2 dense layers with BN, classifier."""
    dims = _spatial(input_shape)
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    layers: list[nn.Module] = []
    c_in, size = input_shape[0], list(input_shape[1:])
    for c in channels:
        layers += [*_conv_block(dims, c_in, c, 5, True, "relu"), pool(2)]
        c_in, size = c, [s // 2 for s in size]
    fan_in = c_in * math.prod(size)
    layers.append(nn.Flatten())
    for w in (dense, dense // 2):
        layers += [nn.Linear(fan_in, w), nn.BatchNorm1d(w), nn.ReLU()]
        fan_in = w
    layers.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*layers)


def vgg(
    input_shape: Sequence[int],
    n_classes: int,
    stages: Sequence[int] = (64, 128, 256, 512),
    convs_per_stage: int = 2,
) -> nn.Sequential:
    """VGG-like deep conv net: per stage `convs_per_stage` 3x3 conv+BN+ReLU, then 2x max-pool; GAP; classifier."""
    dims = _spatial(input_shape)
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    gap = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
    layers: list[nn.Module] = []
    c_in, size = input_shape[0], min(input_shape[1:])
    for c in stages:
        for _ in range(convs_per_stage):
            layers += _conv_block(dims, c_in, c, 3, True, "relu")
            c_in = c
        if size >= 2:
            layers.append(pool(2))
            size //= 2
    layers += [gap, nn.Flatten(), nn.Linear(c_in, n_classes)]
    return nn.Sequential(*layers)


def small_alexnet(
    input_shape: Sequence[int],
    n_classes: int,
    channels: Sequence[int] = (64, 64),
    dense: Sequence[int] = (384, 192),
    batchnorm: bool = False,
) -> nn.Sequential:
    """Zhang et al.'s small AlexNet: 2 x (conv 5x5, ReLU, max-pool 3x3/2, local response normalization), then
    dense layers `dense` with ReLU and a linear classifier (LRN as in the TF CIFAR-10 tutorial: radius 4)."""
    dims = _spatial(input_shape)
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    layers: list[nn.Module] = []
    c_in, size = input_shape[0], list(input_shape[1:])
    for c in channels:
        layers += [*_conv_block(dims, c_in, c, 5, batchnorm, "relu"), pool(3, 2, padding=1)]
        layers.append(nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0))
        c_in, size = c, [(s + 1) // 2 for s in size]
    fan_in = c_in * math.prod(size)
    layers.append(nn.Flatten())
    for w in dense:
        layers += [nn.Linear(fan_in, w), nn.ReLU()]
        fan_in = w
    layers.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "keskar-f1": keskar_f1,
    "keskar-c1": keskar_c1,
    "vgg": vgg,
    "small-alexnet": small_alexnet,
    "pooling-net": pooling_net,
    "pooling-shallow": pooling_shallow,
}


def model_options(name: str) -> list[str]:
    """The options `build(name, ...)` accepts."""
    return list(inspect.signature(MODELS[name]).parameters)[2:]


def build(name: str, input_shape: Sequence[int], n_classes: int, **options: object) -> nn.Module:
    """Build registered model `name` for inputs of `input_shape` (without batch dim) and `n_classes` outputs."""
    if name not in MODELS:
        raise choice_error("model.name", name, MODELS)
    accepted = model_options(name)
    for key in options:
        if key not in accepted:
            raise unknown_key_error(f"model.{key}", name, accepted)
    return MODELS[name](tuple(input_shape), n_classes, **options)


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

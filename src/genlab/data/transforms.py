"""Fixed, seeded data transforms for the randomization tests (Zhang et al.).

Each transform is drawn ONCE from its seed and then held fixed, so every epoch (and every run with the same
seed) sees the same corrupted data. Label corruption touches the training labels only; the test labels stay
clean. Input transforms (shuffled pixels, random pixels, Gaussian inputs) are applied to train and test inputs
alike, as in the paper, so that a model that learned the transformed task can be evaluated on it.

This module works on tensors only; it knows nothing of models or training.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import GenlabError, check_choice

TRANSFORMS = ("none", "labels", "shuffled-pixels", "random-pixels", "gaussian")


def corrupt_labels(y: Tensor, n_classes: int, p: float, generator: torch.Generator) -> Tensor:
    """With probability p replace each label by a class drawn uniformly from all classes (it may stay the same)."""
    hit = torch.rand(len(y), generator=generator) < p
    random = torch.randint(0, n_classes, (len(y),), generator=generator)
    return torch.where(hit, random, y)


def shuffle_pixels(x: Tensor, perm: Tensor) -> Tensor:
    """Apply one permutation of the flattened input features to every example."""
    flat = x.reshape(len(x), -1)
    return flat[:, perm].reshape(x.shape)


def random_pixels(x: Tensor, generator: torch.Generator) -> Tensor:
    """Apply an independent random permutation of the flattened features to each example."""
    flat = x.reshape(len(x), -1)
    perms = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
    return torch.gather(flat, 1, perms).reshape(x.shape)


def gaussian_like(x: Tensor, mean: float, std: float, generator: torch.Generator) -> Tensor:
    """Gaussian inputs with the given (data's) mean and standard deviation, same shape as x."""
    return mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def apply_transform(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    n_classes: int,
    transform: str = "none",
    p: float = 1.0,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Return (x_train, y_train, x_test, info) after `transform`, drawn from `seed` and held fixed.

    `p` is the label-corruption probability (transform "labels"; p=1 gives fully random labels). `info` records
    what was done (e.g. the measured fraction of changed labels).
    """
    check_choice("data.transform", transform, TRANSFORMS)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise GenlabError(f"data.corrupt_p: expected a probability in [0, 1], got {p!r}")
    g = torch.Generator().manual_seed(int(seed))
    info: dict = {"transform": transform, "transform_seed": int(seed)}
    if transform == "labels":
        new_y = corrupt_labels(y_train, n_classes, p, g)
        info.update(corrupt_p=p, changed_fraction=float((new_y != y_train).float().mean()))
        return x_train, new_y, x_test, info
    if transform == "shuffled-pixels":
        perm = torch.randperm(x_train[0].numel(), generator=g)
        return shuffle_pixels(x_train, perm), y_train, shuffle_pixels(x_test, perm), info
    if transform == "random-pixels":
        return random_pixels(x_train, g), y_train, random_pixels(x_test, g), info
    if transform == "gaussian":
        mean, std = float(x_train.mean()), float(x_train.std())
        info.update(mean=mean, std=std)
        return gaussian_like(x_train, mean, std, g), y_train, gaussian_like(x_test, mean, std, g), info
    return x_train, y_train, x_test, info

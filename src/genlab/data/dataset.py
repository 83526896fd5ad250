"""The `Dataset` container and the source registry behind `genlab.data.load`.

Sources return numpy arrays; `load` turns them into float tensors in their natural shape (images N x C x H x W,
signals N x 1 x L, feature vectors N x d), applies the optional seeded transform and subsampling, and moves them
to the requested device. Batches are index slices of these tensors: no DataLoader anywhere in genlab's hot loops.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from genlab.data import files
from genlab.data.transforms import apply_transform
from genlab.errors import GenlabError, check_choice, check_positive, choice_error, unknown_key_error


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of one classification task, plus what a report needs to describe it."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int
    description: str
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def to(self, device: str | torch.device) -> Dataset:
        """The same data on `device`."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _standardize(x_train: np.ndarray, x_test: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Standardize with train statistics over `axis`; constant features keep scale 1."""
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True)
    std = np.where(std < 1e-8, 1.0, std)
    return (x_train - mean) / std, (x_test - mean) / std


@functools.lru_cache(maxsize=4)
def _digits_arrays(test_fraction: float, split_seed: int) -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.astype(np.float64).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    x_tr, x_te = _standardize(x_tr, x_te, axis=(0,))
    return x_tr, y_tr, x_te, y_te


def _digits(test_fraction: float = 0.2, split_seed: int = 0) -> tuple[Arrays, int, str]:
    if not 0.0 < test_fraction < 1.0:
        raise GenlabError(f"data.test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    arrays = _digits_arrays(float(test_fraction), int(split_seed))
    desc = f"scikit-learn digits, 8x8 grey images, stratified split (test {test_fraction:g}, seed {split_seed})"
    return arrays, 10, desc


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(n_train: int, n_test: int, seed: int) -> Arrays:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_train + n_test
    args.train_split = n_train / (n_train + n_test)
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # mnist1d seeds numpy's and python's global generators: leave the caller's untouched
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x_tr = d["x"].astype(np.float64)[:, None, :]
    x_te = d["x_test"].astype(np.float64)[:, None, :]
    return x_tr, d["y"].astype(np.int64), x_te, d["y_test"].astype(np.int64)


def _mnist1d(n_train: int = 4000, n_test: int = 1000, seed: int = 42) -> tuple[Arrays, int, str]:
    check_positive("data.n_train", n_train, integer=True)
    check_positive("data.n_test", n_test, integer=True)
    arrays = _mnist1d_arrays(n_train, n_test, seed)
    return arrays, 10, f"mnist1d (generated locally, seed {seed}), 40-sample 1-D signals"


def _blobs(
    n_classes: int = 2,
    dim: int = 10,
    n_train: int = 1000,
    n_test: int = 500,
    spread: float = 1.0,
    center_scale: float = 3.0,
    layout: str = "random",
    seed: int = 0,
) -> tuple[Arrays, int, str]:
    """k Gaussian clusters, points = center + spread * N(0, I_d). Centers: `random` ~ N(0, center_scale^2 I_d);
    `circle`: equally spaced on a circle of radius center_scale in the first two dimensions (a fixed geometry,
    so that `spread` alone sets how hard the task is)."""
    for name, v in (("n_classes", n_classes), ("dim", dim), ("n_train", n_train), ("n_test", n_test)):
        check_positive(f"data.{name}", v, integer=True)
    check_positive("data.spread", spread)
    check_positive("data.center_scale", center_scale)
    check_choice("data.layout", layout, ("random", "circle"))
    if layout == "circle" and dim < 2:
        raise GenlabError(f"data.layout: circle needs dim >= 2, got dim={dim}")
    rng = np.random.default_rng(seed)
    centers = center_scale * rng.standard_normal((n_classes, dim))
    if layout == "circle":
        angle = 2 * np.pi * np.arange(n_classes) / n_classes
        centers = np.zeros((n_classes, dim))
        centers[:, 0], centers[:, 1] = center_scale * np.cos(angle), center_scale * np.sin(angle)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % n_classes
        rng.shuffle(y)
        return centers[y] + spread * rng.standard_normal((n, dim)), y.astype(np.int64)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return (x_tr, y_tr, x_te, y_te), n_classes, f"{n_classes} Gaussian blobs in {dim} dims, spread {spread:g}"


def _shapes(
    task: str = "closedness", n_train: int = 20000, n_test: int = 4000, size: int = 32, seed: int = 0
) -> tuple[Arrays, int, str]:
    """Cohen & Shashua's blob images (genlab.data.shapes), labelled by the lowest/highest 40% of one score."""
    from genlab.data import shapes

    t = shapes.make_task(task, n_train, n_test, size, seed)
    # fresh float32 copies: the cached bool arrays stay untouched whatever callers do with the tensors
    x_tr, x_te = t.x_train[:, None].astype(np.float32), t.x_test[:, None].astype(np.float32)
    arrays = (x_tr, t.y_train.copy(), x_te, t.y_test.copy())
    desc = (
        f"shapes {task} ({size}x{size} binary blobs, seed {seed}; {t.n_rendered} rendered, "
        f"class 0: score <= {t.low:.3f}, class 1: score >= {t.high:.3f})"
    )
    return arrays, 2, desc


def _idx_source(name: str) -> Callable[..., tuple[Arrays, int, str]]:
    def source(root: str | None = None) -> tuple[Arrays, int, str]:
        if root is None:
            raise GenlabError(
                f"data.root: {name} is read from a folder you name, e.g. --set data.root=/path/to/{name}"
            )
        x_tr, y_tr, x_te, y_te = files.load_idx_dataset(root, name)
        x_tr = x_tr.astype(np.float64)[:, None] / 255.0
        x_te = x_te.astype(np.float64)[:, None] / 255.0
        x_tr, x_te = _standardize(x_tr, x_te, axis=(0, 1, 2, 3))
        return (x_tr, y_tr, x_te, y_te), 10, f"{name} from {root} (28x28 grey, standardized)"

    return source


def _cifar_source(n_classes: int) -> Callable[..., tuple[Arrays, int, str]]:
    def source(root: str | None = None) -> tuple[Arrays, int, str]:
        if root is None:
            raise GenlabError(
                f"data.root: cifar{n_classes} is read from a folder you name, e.g. --set data.root=..."
            )
        x_tr, y_tr, x_te, y_te = files.load_cifar(root, n_classes)
        x_tr = x_tr.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
        x_te = x_te.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
        x_tr, x_te = _standardize(x_tr, x_te, axis=(0, 2, 3))
        return (x_tr, y_tr, x_te, y_te), n_classes, f"CIFAR-{n_classes} from {root} (32x32 RGB, per-channel std)"

    return source


_SOURCES: dict[str, Callable[..., tuple[Arrays, int, str]]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "blobs": _blobs,
    "shapes": _shapes,
    "mnist": _idx_source("mnist"),
    "fashion-mnist": _idx_source("fashion-mnist"),
    "cifar10": _cifar_source(10),
    "cifar100": _cifar_source(100),
}

_COMMON = ("transform", "corrupt_p", "transform_seed", "train_subset")


def sources() -> dict[str, list[str]]:
    """Every data source and the options it accepts (source options, then the common ones)."""
    return {name: [*inspect.signature(fn).parameters, *_COMMON] for name, fn in _SOURCES.items()}


def load(
    name: str,
    *,
    transform: str = "none",
    corrupt_p: float = 1.0,
    transform_seed: int = 0,
    train_subset: int | None = None,
    device: str = "cpu",
    **options: object,
) -> Dataset:
    """Load dataset `name` as float32 tensors on `device`.

    `options` go to the source (see `sources()`); `transform` is one of `genlab.data.TRANSFORMS`, drawn from
    `transform_seed` (label corruption uses `corrupt_p`); `train_subset` keeps the first n training examples.
    """
    if name not in _SOURCES:
        raise choice_error("data.name", name, _SOURCES)
    accepted = inspect.signature(_SOURCES[name]).parameters
    for key in options:
        if key not in accepted:
            raise unknown_key_error(f"data.{key}", name, [*accepted, *_COMMON])
    (x_tr, y_tr, x_te, y_te), n_classes, desc = _SOURCES[name](**options)
    if train_subset is not None:
        check_positive("data.train_subset", train_subset, integer=True)
        x_tr, y_tr = x_tr[:train_subset], y_tr[:train_subset]
    xt, yt = torch.as_tensor(x_tr, dtype=torch.float32), torch.as_tensor(y_tr, dtype=torch.int64)
    xv, yv = torch.as_tensor(x_te, dtype=torch.float32), torch.as_tensor(y_te, dtype=torch.int64)
    xt, yt, xv, info = apply_transform(xt, yt, xv, n_classes, transform, corrupt_p, transform_seed)
    if transform != "none":
        desc += f"; transform {transform}" + (f" p={corrupt_p:g}" if transform == "labels" else "")
    data = Dataset(name, xt, yt, xv, yv, n_classes, desc, info)
    return data.to(device) if device != "cpu" else data

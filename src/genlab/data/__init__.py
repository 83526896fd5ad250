"""Datasets as in-memory tensors.

`load(name, **options)` returns a `Dataset`: train/test tensors, the number of classes, the input shape and a
one-line description. Embedded sources (`digits`, `mnist1d`, `blobs`, `shapes`) are generated or shipped
locally; `mnist`, `fashion-mnist`, `cifar10` and `cifar100` are read from a folder the user names (`root=`).
Transforms used by the randomization studies (label corruption, shuffled/random pixels, Gaussian inputs) are
options of `load`, drawn once from `transform_seed` and held fixed.

This package knows nothing of models, training or the store. It never downloads anything.
"""

from __future__ import annotations

from genlab.data.dataset import Dataset, load, sources
from genlab.data.transforms import TRANSFORMS, apply_transform

__all__ = ["TRANSFORMS", "Dataset", "apply_transform", "load", "sources"]

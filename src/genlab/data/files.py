"""Loaders (and writers) for standard dataset files in a folder the user names: MNIST-style IDX and CIFAR pickles.

This module only reads files that are already on disk. It must not download anything, open any network
connection or depend on torchvision: it imports only numpy, the standard library and `genlab.errors`. Every
problem with the user's files (missing folder or file, bad magic, truncated data, count mismatch) is raised as a
one-line `GenlabError` that names the file or folder.

CIFAR files are Python pickles, and unpickling can run arbitrary code: only load CIFAR files from a trusted
source (such as the official archives from https://www.cs.toronto.edu/~kriz/cifar.html).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError, choice_error

# IDX type codes (third magic byte) -> dtype as stored (big-endian).
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}
_IDX_FILES = tuple(f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1)))
_IDX_SUBDIRS = {
    "mnist": ("", "MNIST/raw", "mnist/raw", "MNIST", "mnist"),
    "fashion-mnist": ("", "FashionMNIST/raw", "fashion-mnist/raw", "FashionMNIST", "fashion-mnist"),
}
_CIFAR = {  # n_classes -> (dataset name, subfolder, label key)
    10: ("cifar10", "cifar-10-batches-py", b"labels"),
    100: ("cifar100", "cifar-100-python", b"fine_labels"),
}
_HINT = "(folder given by --set data.root=... / root=...)"


def _check_folder(dataset: str, folder: str | os.PathLike) -> Path:
    root = Path(folder).expanduser()
    if not root.exists():
        raise GenlabError(f"{dataset}: data folder {root} does not exist {_HINT}")
    if not root.is_dir():
        raise GenlabError(f"{dataset}: data folder {root} is not a directory {_HINT}")
    return root


def _find(directory: Path, stem: str) -> Path | None:
    """`directory/stem` or `directory/stem.gz`, whichever exists (plain first)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip detected by its magic bytes); returns a native-endian, writable array."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise GenlabError(f"{path}: not a valid gzip file ({e})") from None
    if len(raw) < 4:
        raise GenlabError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs 4)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise GenlabError(f"{path}: bad IDX magic {raw[:4].hex()}; expected 0000 + type code (08,09,0b-0e) + ndim")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GenlabError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have != need:
        what = "truncated IDX file" if have < need else "IDX file has extra bytes"
        raise GenlabError(f"{path}: {what}: shape {list(dims)} needs {need} data bytes, found {have}")
    array = np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize, offset=header)
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzip-compressed if `path` ends with .gz)."""
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind == "b":
        raise GenlabError(f"write_idx: dtype {array.dtype} not storable in IDX; accepted: u1, i1, i2, i4, f4, f8")
    if not 1 <= array.ndim <= 255:
        raise GenlabError(f"write_idx: array must have 1..255 dimensions, got {array.ndim}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


_Arrays4 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_idx_dataset(folder: str | os.PathLike, name: str) -> _Arrays4:
    """Load MNIST or Fashion-MNIST from the four standard IDX files (plain or .gz) in `folder`.

    `name` is "mnist" or "fashion-mnist". The files may sit in `folder` itself or in a torchvision-style
    subfolder (`MNIST/raw`, `FashionMNIST/raw`, ...). Returns x_train uint8 [N,28,28], y_train int64 [N],
    x_test, y_test.
    """
    if name not in _IDX_SUBDIRS:
        raise choice_error("dataset", name, _IDX_SUBDIRS)
    root = _check_folder(name, folder)
    directory = next((root / s for s in _IDX_SUBDIRS[name] if _find(root / s, _IDX_FILES[0])), None)
    if directory is None:
        where = f"{root} (or its {_IDX_SUBDIRS[name][1]} subfolder)"
        raise GenlabError(f"{name}: expected {_IDX_FILES[0]}[.gz] in {where} {_HINT}")
    paths = []
    for stem in _IDX_FILES:
        path = _find(directory, stem)
        if path is None:
            raise GenlabError(f"{name}: expected {stem}[.gz] in {directory} {_HINT}")
        paths.append(path)
    out = []
    for img_path, lab_path in (paths[0:2], paths[2:4]):
        images, labels = _read_idx(img_path), _read_idx(lab_path)
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise GenlabError(f"{img_path}: expected uint8 images [N,28,28], got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise GenlabError(f"{lab_path}: expected 1-D integer labels, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise GenlabError(
                f"{name}: {img_path.name} has {len(images)} images but {lab_path.name} has {len(labels)} labels"
                f" (in {directory})"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise GenlabError(f"{lab_path}: labels must be in 0..9, found {labels.min()}..{labels.max()}")
        out += [images, labels.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


def _read_cifar_batch(path: Path, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle -> (uint8 [N,32,32,3] NHWC, int64 [N]). Only for files from a trusted source."""
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # any unpickling failure (truncated, not a pickle, ...)
        raise GenlabError(f"{path}: not a readable CIFAR pickle ({type(e).__name__})") from None
    if not isinstance(batch, dict):
        raise GenlabError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(label_key, batch.get(label_key.decode()))
    if data is None or labels is None:
        raise GenlabError(f"{path}: expected keys b'data' and {label_key!r} in the pickled dict")
    data, labels = np.asarray(data), np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise GenlabError(f"{path}: expected data uint8 [N,3072], got {data.dtype} {list(data.shape)}")
    if labels.shape != (len(data),) or (labels.size and labels.dtype.kind not in "iu"):
        raise GenlabError(f"{path}: expected {len(data)} integer labels, got {labels.dtype} {list(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise GenlabError(f"{path}: labels must be in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.astype(np.int64)


def load_cifar(folder: str | os.PathLike, n_classes: int) -> _Arrays4:
    """Load CIFAR-10 or CIFAR-100 (`n_classes` 10 or 100) from the python-pickle batches in `folder`.

    CIFAR-10: `data_batch_1`, `data_batch_2`, ... (consecutive, normally 5) and `test_batch`; CIFAR-100: `train`
    and `test` (fine labels). Either directly in `folder` or in its `cifar-10-batches-py` / `cifar-100-python`
    subfolder. Returns x_train uint8 [N,32,32,3] (NHWC), y_train int64 [N], x_test, y_test.
    The files are pickles: load them only from a trusted source.
    """
    if n_classes not in _CIFAR:
        raise GenlabError(f"load_cifar: n_classes must be 10 or 100, got {n_classes!r}")
    dataset, subdir, label_key = _CIFAR[n_classes]
    root = _check_folder(dataset, folder)
    first = "data_batch_1" if n_classes == 10 else "train"
    directory = next((d for d in (root, root / subdir) if (d / first).is_file()), None)
    if directory is None:
        raise GenlabError(f"{dataset}: expected {first} in {root} (or its {subdir} subfolder) {_HINT}")
    if n_classes == 10:
        train_names = []
        while (directory / f"data_batch_{len(train_names) + 1}").is_file():
            train_names.append(f"data_batch_{len(train_names) + 1}")
        gap = f"data_batch_{len(train_names) + 1}"
        stray = sorted(p.name for p in directory.glob("data_batch_*") if p.name not in train_names)
        if stray:
            raise GenlabError(f"{dataset}: {stray[0]} found in {directory} but {gap} missing")
        test_name = "test_batch"
    else:
        train_names, test_name = ["train"], "test"
    if not (directory / test_name).is_file():
        raise GenlabError(f"{dataset}: expected {test_name} in {directory} {_HINT}")
    parts = [_read_cifar_batch(directory / n, label_key, n_classes) for n in train_names]
    x_test, y_test = _read_cifar_batch(directory / test_name, label_key, n_classes)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train, y_train, x_test, y_test


def write_cifar(
    folder: str | os.PathLike,
    n_classes: int,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_train_batches: int = 5,
) -> None:
    """Write uint8 NHWC images and labels in the CIFAR python-pickle format into `folder` (created if needed).

    CIFAR-10 splits the training set into `n_train_batches` files `data_batch_i`; CIFAR-100 writes `train`/`test`.
    """
    if n_classes not in _CIFAR:
        raise GenlabError(f"write_cifar: n_classes must be 10 or 100, got {n_classes!r}")
    if isinstance(n_train_batches, bool) or not isinstance(n_train_batches, int) or n_train_batches < 1:
        raise GenlabError(f"write_cifar: n_train_batches must be an integer >= 1, got {n_train_batches!r}")
    if len(x_train) != len(y_train):
        raise GenlabError(f"write_cifar: {len(x_train)} training images but {len(y_train)} labels")
    _, _, label_key = _CIFAR[n_classes]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or y.shape != (len(x),):
            raise GenlabError(
                f"write_cifar: {name}: expected uint8 [N,32,32,3] and N labels, got {x.shape}, {y.shape}"
            )
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))
        batch = {b"batch_label": name.encode(), b"data": data, label_key: [int(v) for v in y]}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)

    if n_classes == 10:
        for i, idx in enumerate(np.array_split(np.arange(len(x_train)), n_train_batches), start=1):
            dump(f"data_batch_{i}", np.asarray(x_train)[idx], np.asarray(y_train)[idx])
        dump("test_batch", x_test, y_test)
    else:
        dump("train", x_train, y_train)
        dump("test", x_test, y_test)

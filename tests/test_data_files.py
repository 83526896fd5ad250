"""Tests for genlab.data.files: tiny IDX / CIFAR files written by hand and by the writers, then loaded back."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from genlab.data.files import _read_idx, load_cifar, load_idx_dataset, write_cifar, write_idx
from genlab.errors import GenlabError

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _mnist_arrays(seed: int = 0, n_train: int = 12, n_test: int = 5):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.int64),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.int64),
    )


def _write_mnist(folder, arrays, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / (stem + (".gz" if gz else "")), array.astype(np.uint8))


def _assert_same(loaded, expected) -> None:
    assert len(loaded) == 4
    for got, want, dtype in zip(loaded, expected, (np.uint8, np.int64, np.uint8, np.int64), strict=True):
        assert got.dtype == dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def _one_line_error(match: str, call, *args) -> str:
    with pytest.raises(GenlabError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    assert match in message, message
    return message


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_roundtrip(tmp_path, gz, name):
    arrays = _mnist_arrays()
    _write_mnist(tmp_path, arrays, gz)
    _assert_same(load_idx_dataset(tmp_path, name), arrays)


@pytest.mark.parametrize(("name", "sub"), [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")])
def test_idx_torchvision_layout(tmp_path, name, sub):
    arrays = _mnist_arrays(seed=1)
    _write_mnist(tmp_path / sub, arrays, gz=True)
    _assert_same(load_idx_dataset(str(tmp_path), name), arrays)


def test_idx_handwritten_bytes(tmp_path):
    """Bytes laid out per the IDX spec by hand, independent of write_idx."""
    x_train = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 251
    y_train = [7, 0, 9]
    x_test = (np.arange(2 * 28 * 28).reshape(2, 28, 28) * 7) % 256
    y_test = [3, 1]

    def images(x):
        pixels = bytes(x.astype(np.uint8).ravel().tolist())
        return b"\x00\x00\x08\x03" + struct.pack(">III", len(x), 28, 28) + pixels

    def labels(y):
        return b"\x00\x00\x08\x01" + struct.pack(">I", len(y)) + bytes(y)

    (tmp_path / IDX_NAMES[0]).write_bytes(images(x_train))
    (tmp_path / (IDX_NAMES[1] + ".gz")).write_bytes(gzip.compress(labels(y_train)))
    with gzip.open(tmp_path / (IDX_NAMES[2] + ".gz"), "wb") as f:
        f.write(images(x_test))
    (tmp_path / IDX_NAMES[3]).write_bytes(labels(y_test))
    got = load_idx_dataset(tmp_path, "mnist")
    _assert_same(got, (x_train, np.array(y_train), x_test, np.array(y_test)))
    assert got[0][1, 2, 3] == (28 * 28 + 2 * 28 + 3) % 251  # row-major: image, row, column


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8", "<i4", "<f8"])
def test_write_idx_dtypes_handwritten_header(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype) if dtype != "u1" else np.arange(24, dtype="u1")
    path = tmp_path / "a.idx"
    write_idx(path, array)
    raw = path.read_bytes()
    code = {"u": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    key = "u" if dtype == "u1" else dtype.lstrip("<>")
    assert raw[:4] == bytes([0, 0, code[key], array.ndim])
    assert struct.unpack(f">{array.ndim}I", raw[4 : 4 + 4 * array.ndim]) == array.shape
    body = np.frombuffer(raw[4 + 4 * array.ndim :], dtype=np.dtype(dtype).newbyteorder(">"))
    np.testing.assert_array_equal(body, array.ravel())
    back = _read_idx(path)  # and the reader gives the same values, native byte order
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_int32_labels_accepted(tmp_path):
    arrays = _mnist_arrays()
    _write_mnist(tmp_path, arrays, gz=False)
    write_idx(tmp_path / IDX_NAMES[1], arrays[1].astype(">i4"))
    _assert_same(load_idx_dataset(tmp_path, "mnist"), arrays)


def test_write_idx_rejects_unsupported(tmp_path):
    _one_line_error("write_idx", write_idx, tmp_path / "a", np.zeros(3, dtype=np.uint32))
    _one_line_error("write_idx", write_idx, tmp_path / "a", np.array(3, dtype=np.uint8))


def test_idx_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    msg = _one_line_error("does not exist", load_idx_dataset, missing, "mnist")
    assert msg.startswith("mnist:") and str(missing) in msg


def test_idx_unknown_name(tmp_path):
    _one_line_error("mnist", load_idx_dataset, tmp_path, "kmnist")


def test_idx_missing_file(tmp_path):
    msg = _one_line_error("train-images-idx3-ubyte[.gz]", load_idx_dataset, tmp_path, "fashion-mnist")
    assert msg.startswith("fashion-mnist:") and str(tmp_path) in msg and "data.root" in msg
    _write_mnist(tmp_path, _mnist_arrays(), gz=False)
    (tmp_path / IDX_NAMES[3]).unlink()
    msg = _one_line_error("t10k-labels-idx1-ubyte[.gz]", load_idx_dataset, tmp_path, "mnist")
    assert str(tmp_path) in msg


def test_idx_bad_magic(tmp_path):
    _write_mnist(tmp_path, _mnist_arrays(), gz=False)
    path = tmp_path / IDX_NAMES[0]
    path.write_bytes(b"\x00\x01\x08\x03" + path.read_bytes()[4:])
    msg = _one_line_error("magic", load_idx_dataset, tmp_path, "mnist")
    assert IDX_NAMES[0] in msg


@pytest.mark.parametrize("cut", [2, 10, 100])
def test_idx_truncated(tmp_path, cut):
    _write_mnist(tmp_path, _mnist_arrays(), gz=False)
    path = tmp_path / IDX_NAMES[2]
    path.write_bytes(path.read_bytes()[:cut])
    msg = _one_line_error("truncated", load_idx_dataset, tmp_path, "mnist")
    assert IDX_NAMES[2] in msg


def test_idx_truncated_gzip(tmp_path):
    _write_mnist(tmp_path, _mnist_arrays(), gz=True)
    path = tmp_path / (IDX_NAMES[0] + ".gz")
    path.write_bytes(path.read_bytes()[:-20])
    msg = _one_line_error("gzip", load_idx_dataset, tmp_path, "mnist")
    assert IDX_NAMES[0] in msg


def test_idx_count_mismatch(tmp_path):
    x_train, y_train, x_test, y_test = _mnist_arrays()
    _write_mnist(tmp_path, (x_train, y_train[:-1], x_test, y_test), gz=True)
    msg = _one_line_error("12 images", load_idx_dataset, tmp_path, "mnist")
    assert "11 labels" in msg and IDX_NAMES[0] in msg and IDX_NAMES[1] in msg


def test_idx_wrong_shape_or_labels(tmp_path):
    x_train, y_train, x_test, y_test = _mnist_arrays()
    _write_mnist(tmp_path, (x_train[:, :27], y_train, x_test, y_test), gz=False)
    _one_line_error(IDX_NAMES[0], load_idx_dataset, tmp_path, "mnist")
    _write_mnist(tmp_path, (x_train, y_train + 10, x_test, y_test), gz=False)
    _one_line_error("0..9", load_idx_dataset, tmp_path, "mnist")


# ---------------------------------------------------------------- CIFAR


def _cifar_arrays(n_classes: int, n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, n_classes, n_train).astype(np.int64),
        rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, n_classes, n_test).astype(np.int64),
    )


@pytest.mark.parametrize(("n_classes", "batches"), [(10, 5), (10, 2), (100, 5)])
def test_cifar_roundtrip(tmp_path, n_classes, batches):
    arrays = _cifar_arrays(n_classes)
    write_cifar(tmp_path, n_classes, *arrays, n_train_batches=batches)
    _assert_same(load_cifar(tmp_path, n_classes), arrays)


@pytest.mark.parametrize(("n_classes", "sub"), [(10, "cifar-10-batches-py"), (100, "cifar-100-python")])
def test_cifar_subfolder(tmp_path, n_classes, sub):
    arrays = _cifar_arrays(n_classes, seed=3)
    write_cifar(tmp_path / sub, n_classes, *arrays)
    _assert_same(load_cifar(str(tmp_path), n_classes), arrays)


def _handwritten_cifar_batch(rows: list[bytes], labels: list[int], key: bytes) -> bytes:
    data = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), 3072)
    return pickle.dumps({b"batch_label": b"x", b"data": data, key: labels}, protocol=2)


def _planes(r: int, g: int, b: int, special: tuple[int, int, int] | None = None) -> bytes:
    """One CIFAR row: 1024 R bytes, then G, then B (each row-major 32x32); pixel (5, 7) gets `special`."""
    planes = [bytearray([v]) * 1024 for v in (r, g, b)]
    if special is not None:
        for plane, value in zip(planes, special, strict=True):
            plane[5 * 32 + 7] = value
    return b"".join(bytes(p) for p in planes)


@pytest.mark.parametrize("n_classes", [10, 100])
def test_cifar_handwritten_hwc_order(tmp_path, n_classes):
    """Pickles built by hand (channel-major rows) must load as NHWC with the right R, G, B per pixel."""
    key = b"labels" if n_classes == 10 else b"fine_labels"
    train = [_planes(10, 20, 30, special=(200, 150, 100)), _planes(1, 2, 3)]
    names = ["data_batch_1", "data_batch_2"] if n_classes == 10 else ["train"]
    if n_classes == 10:
        (tmp_path / "data_batch_1").write_bytes(_handwritten_cifar_batch(train[:1], [4], key))
        (tmp_path / "data_batch_2").write_bytes(_handwritten_cifar_batch(train[1:], [9], key))
    else:
        (tmp_path / names[0]).write_bytes(_handwritten_cifar_batch(train, [4, 99], key))
    test_name = "test_batch" if n_classes == 10 else "test"
    (tmp_path / test_name).write_bytes(_handwritten_cifar_batch([_planes(7, 8, 9)], [0], key))
    x_train, y_train, x_test, y_test = load_cifar(tmp_path, n_classes)
    assert x_train.shape == (2, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (1, 32, 32, 3) and y_test.dtype == np.int64
    assert x_train.flags.c_contiguous
    assert x_train[0, 5, 7].tolist() == [200, 150, 100]
    assert x_train[0, 7, 5].tolist() == [10, 20, 30]  # transposed position is untouched
    assert x_train[0, 0, 0].tolist() == [10, 20, 30]
    assert x_train[1, 31, 31].tolist() == [1, 2, 3]
    assert x_test[0, 3, 4].tolist() == [7, 8, 9]
    assert y_train.tolist() == ([4, 9] if n_classes == 10 else [4, 99]) and y_test.tolist() == [0]


def test_write_cifar_layout_matches_spec(tmp_path):
    """write_cifar's bytes are channel-major (R plane, G plane, B plane), checked without load_cifar."""
    x = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    x[0, 5, 7] = (200, 150, 100)
    write_cifar(tmp_path, 10, x, np.array([3]), x, np.array([1]), n_train_batches=1)
    with open(tmp_path / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    row = np.asarray(batch[b"data"])[0]
    assert row.shape == (3072,) and [row[c * 1024 + 5 * 32 + 7] for c in range(3)] == [200, 150, 100]
    assert list(batch[b"labels"]) == [3]


def test_cifar_errors(tmp_path):
    msg = _one_line_error("does not exist", load_cifar, tmp_path / "nope", 10)
    assert msg.startswith("cifar10:") and str(tmp_path / "nope") in msg
    msg = _one_line_error("expected data_batch_1", load_cifar, tmp_path, 10)
    assert str(tmp_path) in msg and "cifar-10-batches-py" in msg
    _one_line_error("expected train", load_cifar, tmp_path, 100)
    _one_line_error("10 or 100", load_cifar, tmp_path, 20)

    write_cifar(tmp_path, 10, *_cifar_arrays(10))
    (tmp_path / "test_batch").unlink()
    _one_line_error("expected test_batch", load_cifar, tmp_path, 10)
    write_cifar(tmp_path, 10, *_cifar_arrays(10))
    (tmp_path / "data_batch_3").unlink()
    _one_line_error("data_batch_3 missing", load_cifar, tmp_path, 10)


def test_cifar_corrupt_files(tmp_path):
    write_cifar(tmp_path, 100, *_cifar_arrays(100))
    good = (tmp_path / "test").read_bytes()
    (tmp_path / "test").write_bytes(good[: len(good) // 2])
    msg = _one_line_error("not a readable CIFAR pickle", load_cifar, tmp_path, 100)
    assert str(tmp_path / "test") in msg
    (tmp_path / "test").write_bytes(_handwritten_cifar_batch([_planes(1, 2, 3)] * 2, [1], b"fine_labels"))
    _one_line_error("integer labels", load_cifar, tmp_path, 100)
    (tmp_path / "test").write_bytes(_handwritten_cifar_batch([_planes(1, 2, 3)], [1], b"labels"))
    _one_line_error("fine_labels", load_cifar, tmp_path, 100)
    (tmp_path / "test").write_bytes(pickle.dumps({b"data": np.zeros((1, 3000), np.uint8), b"fine_labels": [0]}))
    _one_line_error("[N,3072]", load_cifar, tmp_path, 100)
    (tmp_path / "test").write_bytes(_handwritten_cifar_batch([_planes(1, 2, 3)], [100], b"fine_labels"))
    _one_line_error("0..99", load_cifar, tmp_path, 100)

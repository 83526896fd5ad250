"""Embedded data sources and the seeded transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data import TRANSFORMS, apply_transform, load, sources
from genlab.errors import GenlabError


def test_digits_split_is_stratified_and_standardized():
    d = load("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.n_classes == 10 and d.input_shape == (1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    # standardized per pixel with train statistics (constant pixels stay 0)
    mean = d.x_train.mean(0).flatten()
    std = d.x_train.std(0, unbiased=False).flatten()
    assert mean.abs().max() < 1e-5
    nonconst = std > 1e-3
    assert torch.allclose(std[nonconst], torch.ones(int(nonconst.sum())), atol=1e-4)
    # stratified: class proportions agree between splits within one example per class
    tr = torch.bincount(d.y_train, minlength=10).float() / d.n_train
    te = torch.bincount(d.y_test, minlength=10).float() / d.n_test
    assert (tr - te).abs().max() < 1.5 / 36
    assert torch.equal(load("digits").x_train, d.x_train)  # fixed split


def test_mnist1d_generated_locally_and_leaves_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    d = load("mnist1d", n_train=400, n_test=100)
    assert np.array_equal(np.random.get_state()[1], before)
    assert d.x_train.shape == (400, 1, 40) and d.x_test.shape == (100, 1, 40)
    assert set(d.y_train.tolist()) <= set(range(10))
    assert torch.equal(load("mnist1d", n_train=400, n_test=100).x_train, d.x_train)


def test_blobs_spread_and_determinism():
    a = load("blobs", n_classes=4, dim=5, n_train=400, n_test=100, spread=0.1, seed=3)
    b = load("blobs", n_classes=4, dim=5, n_train=400, n_test=100, spread=0.1, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.shape == (400, 5) and a.n_classes == 4
    assert torch.bincount(a.y_train).tolist() == [100] * 4
    # within-class spread is the option
    for k in range(4):
        assert abs(float(a.x_train[a.y_train == k].std(0).mean()) - 0.1) < 0.03
    c = load("blobs", n_classes=4, dim=5, n_train=400, n_test=100, spread=0.1, seed=4)
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("p", [0.0, 0.4, 1.0])
def test_label_corruption_rate_and_clean_test_labels(p):
    clean = load("digits")
    d = load("digits", transform="labels", corrupt_p=p, transform_seed=1)
    changed = float((d.y_train != clean.y_train).float().mean())
    expected = p * 9 / 10  # a corrupted label is uniform over 10 classes, so 1/10 stay the same
    assert abs(changed - expected) < 0.04
    assert d.info["changed_fraction"] == pytest.approx(changed)
    assert torch.equal(d.y_test, clean.y_test) and torch.equal(d.x_train, clean.x_train)
    again = load("digits", transform="labels", corrupt_p=p, transform_seed=1)
    assert torch.equal(again.y_train, d.y_train)


def test_shuffled_pixels_use_one_permutation_for_all_images():
    # every feature value is unique, so the permutation can be read off exactly
    x_tr = torch.arange(20 * 12, dtype=torch.float32).reshape(20, 3, 4)
    x_te = -torch.arange(5 * 12, dtype=torch.float32).reshape(5, 3, 4) - 1
    y = torch.arange(20) % 3
    a_tr, a_y, a_te, _ = apply_transform(x_tr, y, x_te, 3, "shuffled-pixels", seed=5)
    perm = (a_tr.reshape(20, -1)[0]).long()  # image 0 holds 0..11, so its values are the permutation
    assert sorted(perm.tolist()) == list(range(12)) and perm.tolist() != list(range(12))
    assert torch.equal(x_tr.reshape(20, -1)[:, perm], a_tr.reshape(20, -1))
    assert torch.equal(x_te.reshape(5, -1)[:, perm], a_te.reshape(5, -1))
    assert torch.equal(a_y, y)
    assert torch.equal(apply_transform(x_tr, y, x_te, 3, "shuffled-pixels", seed=5)[0], a_tr)


def test_random_pixels_permute_each_image_independently():
    clean = load("digits")
    d = load("digits", transform="random-pixels", transform_seed=2)
    a, b = clean.x_train.reshape(1437, -1), d.x_train.reshape(1437, -1)
    assert torch.equal(a.sort(1).values, b.sort(1).values)  # same multiset per image
    assert not torch.equal(a, b)
    # different images get different permutations: a pixel-wise fixed map would keep column correlations
    assert not torch.equal(b[:, 0], a[:, 0])


def test_gaussian_inputs_match_data_moments():
    clean = load("mnist1d", n_train=400, n_test=100)
    d = load("mnist1d", n_train=400, n_test=100, transform="gaussian", transform_seed=0)
    assert d.x_train.shape == clean.x_train.shape
    assert abs(float(d.x_train.mean()) - float(clean.x_train.mean())) < 0.02
    assert abs(float(d.x_train.std()) - float(clean.x_train.std())) < 0.02
    assert torch.equal(d.y_train, clean.y_train)


def test_train_subset():
    d = load("digits", train_subset=100)
    assert d.n_train == 100 and d.n_test == 360


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "imagenet"}, "data.name"),
        ({"name": "digits", "spread": 2}, "data.spread"),
        ({"name": "digits", "transform": "flip"}, "data.transform"),
        ({"name": "digits", "transform": "labels", "corrupt_p": 1.5}, "data.corrupt_p"),
        ({"name": "blobs", "n_train": -5}, "data.n_train"),
        ({"name": "mnist"}, "data.root"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, field):
    with pytest.raises(GenlabError) as err:
        load(**kwargs)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_mnist_and_cifar_from_folder(tmp_path):
    from genlab.data.files import write_cifar, write_idx

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        write_idx(
            tmp_path / "m" / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(tmp_path / "m" / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    d = load("mnist", root=str(tmp_path / "m"))
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (5, 1, 28, 28) and d.n_classes == 10
    x = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    write_cifar(tmp_path / "c", 10, x, rng.integers(0, 10, 10), x[:4], rng.integers(0, 10, 4), n_train_batches=2)
    c = load("cifar10", root=str(tmp_path / "c"))
    assert c.x_train.shape == (10, 3, 32, 32) and c.x_test.shape == (4, 3, 32, 32)
    with pytest.raises(GenlabError, match="does not exist"):
        load("fashion-mnist", root=str(tmp_path / "nowhere"))


def test_every_transform_is_listed_and_sources_have_options():
    assert set(TRANSFORMS) == {"none", "labels", "shuffled-pixels", "random-pixels", "gaussian"}
    assert "spread" in sources()["blobs"] and "root" in sources()["cifar10"]
    x, y = torch.randn(10, 4), torch.arange(10) % 3
    same = apply_transform(x, y, x, 3, "none")
    assert same[0] is x and same[1] is y

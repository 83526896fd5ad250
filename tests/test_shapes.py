"""The `shapes` source: score definitions on hand-made images, rendering, labels and option checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data import load, shapes, sources
from genlab.errors import GenlabError


def _annulus(size: int = 32, r_in: float = 4.0, r_out: float = 10.0) -> np.ndarray:
    r, c = np.mgrid[:size, :size] - (size / 2 - 0.5)
    radius = np.hypot(r, c)
    return (radius >= r_in) & (radius <= r_out)


def test_closedness_of_closed_and_open_rings():
    ring = _annulus()
    assert shapes.closedness(ring) == 1.0
    square_ring = np.zeros((16, 16), dtype=bool)
    square_ring[2:14, 2:14] = True
    square_ring[5:11, 5:11] = False
    # the 3x3 cross fits no square corner: the closing fills the hole's 4 corner pixels (a 3x3 square would not)
    assert shapes.closedness(square_ring) == pytest.approx(108 / 112)
    # a ring touching the border: the padding keeps the closing from eating edge pixels
    assert shapes.closedness(_annulus(size=20, r_in=4, r_out=10)) == 1.0
    gap = ring.copy()
    gap[:, 15] = False  # a one-pixel vertical cut through both sides of the ring
    assert shapes.closedness(gap) < 1.0
    # the closing fills cut pixels only: the ring's score bounds the open ring's from below
    assert shapes.closedness(gap) >= gap.sum() / ring.sum()


def test_symmetry_of_mirror_symmetric_and_asymmetric_tiles():
    img = np.zeros((32, 32), dtype=bool)
    left = np.random.default_rng(0).random((16, 8)) < 0.5
    left[0, 0] = True  # the blob reaches the tile's corners, so its dyadic tile is the 16 x 16 quadrant
    left[15, 0] = True
    img[16:32, 0:16] = np.concatenate([left, left[:, ::-1]], axis=1)
    assert tuple(shapes.find_tiles(img[None])[0]) == (16, 0, 16)
    assert shapes.symmetry(img) == 1.0
    assert shapes.symmetry(img, tile=(16, 0, 16)) == 1.0
    asym = img.copy()
    asym[16:32, 8:16] = False
    asym[20, 12] = True
    assert shapes.symmetry(asym) < 1.0
    # an L in the left half of its 8x8 tile: its mirror image lies in the right half, no overlap
    ell = np.zeros((8, 8), dtype=bool)
    ell[:, 0] = True
    ell[7, :4] = True
    assert shapes.symmetry(ell) == 0.0


def test_scores_batch_agrees_with_single_image_scores():
    imgs = shapes.render(40, seed=3)
    s = shapes.scores(imgs)
    assert np.allclose(s["closedness"], [shapes.closedness(i) for i in imgs])
    assert np.allclose(s["symmetry"], [shapes.symmetry(i) for i in imgs])
    assert ((s["closedness"] > 0) & (s["closedness"] <= 1)).all()
    assert ((s["symmetry"] >= 0) & (s["symmetry"] <= 1)).all()


def test_render_is_deterministic_and_the_found_tiles_are_the_true_ones():
    imgs, tiles, sym = shapes.render_with_tiles(300, size=32, seed=1)
    assert imgs.shape == (300, 32, 32) and imgs.dtype == bool and imgs.any(axis=(1, 2)).all()
    assert np.array_equal(shapes.render(300, seed=1), imgs)
    assert not np.array_equal(shapes.render(300, seed=2), imgs)
    assert np.array_equal(shapes.find_tiles(imgs), tiles)
    assert set(tiles[:, 2].tolist()) == {16, 32} and 0.35 < sym.mean() < 0.65
    # the symmetric drop masks show: their tiles score higher on average
    s = shapes.scores(imgs)["symmetry"]
    assert s[sym].mean() > s[~sym].mean() + 0.05
    assert shapes.render(5, size=8, seed=0).shape == (5, 8, 8)


@pytest.mark.parametrize("task", ["closedness", "symmetry"])
def test_load_shapes_shapes_balance_thresholds_and_determinism(task):
    d = load("shapes", task=task, n_train=300, n_test=101)
    assert d.x_train.shape == (300, 1, 32, 32) and d.x_test.shape == (101, 1, 32, 32)
    assert d.n_classes == 2 and d.input_shape == (1, 32, 32) and d.x_train.dtype == torch.float32
    assert set(torch.unique(torch.cat([d.x_train.flatten(), d.x_test.flatten()])).tolist()) == {0.0, 1.0}
    assert int(d.y_train.sum()) == 150 and int(d.y_test.sum()) in (50, 51)
    # labels follow the score's 40% / 60% order statistics over every rendered image
    t = shapes.make_task(task, 300, 101)
    assert t.n_rendered == 503  # ceil(2.5 * ceil(401 / 2))
    all_scores = shapes.scores(shapes.render(t.n_rendered))[task]
    for x, y, s in ((t.x_train, t.y_train, t.s_train), (t.x_test, t.y_test, t.s_test)):
        assert np.allclose(shapes.scores(x)[task], s)
        assert (s[y == 0] <= t.low).all() and (s[y == 1] >= t.high).all()
        assert np.array_equal(x[:, None].astype(np.float32), (d.x_train if x is t.x_train else d.x_test).numpy())
    assert t.low <= np.quantile(all_scores, 0.41) and t.high >= np.quantile(all_scores, 0.59)
    again = load("shapes", task=task, n_train=300, n_test=101)
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)
    other = load("shapes", task=task, n_train=300, n_test=101, seed=1)
    assert not torch.equal(other.x_train, d.x_train)
    # the caller's tensors are copies: writing to them leaves the cache alone
    d.x_train.zero_()
    assert torch.equal(load("shapes", task=task, n_train=300, n_test=101).x_train, again.x_train)


def test_shapes_is_registered_with_its_options():
    assert sources()["shapes"][:5] == ["task", "n_train", "n_test", "size", "seed"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"task": "area"}, "data.task: unknown value 'area'"),
        ({"size": 30}, "data.size: expected a power of two >= 8"),
        ({"size": 4}, "data.size: expected a power of two >= 8"),
        ({"n_train": 0}, "data.n_train"),
        ({"n_test": 2.5}, "data.n_test"),
        ({"seed": -1}, "data.seed"),
    ],
)
def test_bad_options_name_the_field(options, field):
    with pytest.raises(GenlabError) as err:
        load("shapes", **{"n_train": 10, "n_test": 10, **options})
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg

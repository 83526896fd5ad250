"""The `shapes` data source: binary blob images scored for closedness and left-right symmetry.

This is the synthetic data of Cohen & Shashua (2016), "Inductive Bias of Deep Convolutional Networks through
Pooling Geometry", written from its description (papers.md section 8). Each `size` x `size` image (size a power of
two, 32 in the paper) shows one blob:

1. an ellipse spanning the full image width, with a random height (2 ** U(log2(size) - 1.5, log2(size)), halved
   and truncated to a whole semi-axis), centred in the image;
2. warped by a random sine: column j is rolled vertically (with wrap-around) by trunc(A sin(f j)), with
   A ~ U(0, 4 size / 32) pixels and f ~ U(0, 3 * 2 pi / size) radians per column;
3. rotated about the image centre by U(0, 180) degrees (cubic spline, corners clipped);
4. scaled (cubic spline) into a random dyadic tile: side size / 2 or size with equal probability, placed at a
   uniformly chosen aligned position; the rest of the image is empty;
5. with pixels of the tile dropped independently with probability p ~ U(0.10, 0.33); half of the images (a fair
   coin each) use a drop mask that is left-right symmetric about the tile's vertical midline;
6. binarised at 0.1. An image left empty is redrawn.

Scores, each in [0, 1]:
- `closedness(I) = |I| / |closing(I)|`, the closing taken with `CLOSING_STRUCTURE` (the 3 x 3 cross, scipy's
  default and the official generator's choice) on the image padded by one empty pixel on each side, so that the
  closing never loses pixels at the image border (it always contains I, hence the ratio is <= 1);
- `symmetry(I) = |T and fliplr(T)| / |T|` for the image's tile T (see `symmetry` for how the tile is found).

The labelled tasks (`make_task`) render ceil(2.5 * ceil(m / 2)) images for m = n_train + n_test (that is
m / 0.8 for even m), label the 40% with the lowest score 0 and the 40% with the highest score 1, drop the middle
20%, and split the kept images into exactly balanced train and test sets.

This module only makes numpy arrays: no models, no training, no downloads. `genlab.data.load("shapes", ...)`
wraps `make_task` as a data source.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from genlab.errors import GenlabError, check_choice, check_positive

TASKS = ("closedness", "symmetry")
CLOSING_STRUCTURE = ndimage.generate_binary_structure(2, 1)  # the 3 x 3 cross
DROP_P_RANGE = (0.10, 0.33)
KEEP_FRACTION = 0.4  # of the rendered images, the lowest 40% are class 0 and the highest 40% class 1
_CHUNK = 2048  # images drawn per batch of parameters: part of what a seed means, so changing it changes the data


def check_size(size: object) -> int:
    """`size` as an int, or a one-line GenlabError naming `data.size` unless it is a power of two >= 8."""
    check_positive("data.size", size, integer=True)
    assert isinstance(size, int)
    if size < 8 or size & (size - 1):
        raise GenlabError(f"data.size: expected a power of two >= 8, got {size!r}")
    return size


# --------------------------------------------------------------------------------------------------- rendering


def _draw_batch(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` images (bool [n, size, size], possibly some empty), their tiles (int [n, 3]: row, col, side) and
    whether each drop mask is symmetric (bool [n])."""
    log_size = math.log2(size)
    # every random parameter of the batch, drawn at once in a fixed order
    half_height = np.floor(2.0 ** rng.uniform(log_size - 1.5, log_size, n) / 2.0)
    amplitude = rng.uniform(0.0, 4.0 * size / 32, n)
    frequency = rng.uniform(0.0, 3 * 2 * np.pi / size, n)
    angle = rng.uniform(0.0, 180.0, n)
    side = np.where(rng.random(n) < 0.5, size // 2, size)
    n_pos = size // side  # aligned positions per axis: 2 for half-size tiles, 1 for the full image
    row = side * np.floor(rng.random(n) * n_pos).astype(np.int64)
    col = side * np.floor(rng.random(n) * n_pos).astype(np.int64)
    drop_p = rng.uniform(*DROP_P_RANGE, n)
    sym_mask = rng.random(n) < 0.5
    u_left = rng.random((n, size, size // 2))
    u_right = rng.random((n, size, size // 2))

    # 1. ellipse: horizontal semi-axis size / 2, vertical semi-axis half_height, centred
    grid = np.arange(size) - (size / 2 - 0.5)
    inside = (grid[None, None, :] / (size / 2)) ** 2 + (grid[None, :, None] / half_height[:, None, None]) ** 2 < 1
    # 2. sine warp: column j shifted down by trunc(A sin(f j)) with wrap-around
    shift = np.trunc(amplitude[:, None] * np.sin(frequency[:, None] * np.arange(size))).astype(np.int64)
    rows = (np.arange(size)[None, :, None] - shift[:, None, :]) % size
    warped = np.take_along_axis(inside, rows, axis=1).astype(np.float64)

    images = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        # 3. rotation; 4. scaling into the tile (a full-size tile needs no resampling)
        blob = ndimage.rotate(warped[i], angle[i], reshape=False, order=3)
        t = int(side[i])
        if t != size:
            blob = ndimage.zoom(blob, t / size, order=3)
        # 5. drop pixels of the tile; a symmetric mask mirrors its left half onto the right half
        left = u_left[i, :t, : t // 2] < drop_p[i]
        right = np.fliplr(left) if sym_mask[i] else u_right[i, :t, : t // 2] < drop_p[i]
        keep = ~np.concatenate([left, right], axis=1)
        # 6. binarise
        r, c = int(row[i]), int(col[i])
        images[i, r : r + t, c : c + t] = (blob > 0.1) & keep
    return images, np.stack([row, col, side], axis=1).astype(np.int64), sym_mask


@functools.lru_cache(maxsize=4)
def _rendered(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    have = 0
    while have < n:  # empty images (rare) are replaced by further draws from the same generator
        # chunks bound the memory of the vectorised steps (about 70 MB at 32x32)
        images, tiles, sym = _draw_batch(min(n - have, _CHUNK), size, rng)
        nonempty = images.any(axis=(1, 2))
        parts.append((images[nonempty], tiles[nonempty], sym[nonempty]))
        have += int(nonempty.sum())
    out = tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
    for a in out:
        a.flags.writeable = False  # cached: shared by every caller
    return out  # type: ignore[return-value]


def render_with_tiles(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`render`'s images plus the tile each blob was scaled into (int [n, 3]: row, col, side) and whether its
    drop mask is symmetric (bool [n]). Cached in memory (read-only arrays); deterministic in (n, size, seed)."""
    check_positive("data.n", n, integer=True)
    return _rendered(int(n), check_size(size), int(seed))


def render(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """`n` blob images, bool [n, size, size], none empty (see the module docstring for how they are drawn).

    Deterministic in (n, size, seed), but not prefix-stable: render(n) is not the start of render(n + 1), as
    each parameter is drawn for a chunk of up to 2048 images at once. Returns a fresh writable copy of the
    cached rendering."""
    return render_with_tiles(n, size, seed)[0].copy()


# ------------------------------------------------------------------------------------------------------ scores


def closedness(img: np.ndarray) -> float:
    """|I| / |closing(I)| for one binary image (2-D), with `CLOSING_STRUCTURE` (the 3 x 3 cross) on the image
    padded by one empty pixel per side. 1 for a blob whose closing adds nothing (e.g. a digital ring with a hole a
    few pixels wide; the cross does fill one-pixel notches, such as the corners of a square hole), lower the more
    gaps the closing fills. 1.0 for an empty image."""
    return float(_closedness(np.asarray(img, dtype=bool)[None])[0])


def _closedness(images: np.ndarray) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    # a leading singleton axis in the structure closes each image on its own
    closed = ndimage.binary_closing(padded, structure=CLOSING_STRUCTURE[None])[:, 1:-1, 1:-1]
    area, closed_area = images.sum(axis=(1, 2)), closed.sum(axis=(1, 2))
    return np.where(closed_area > 0, area / np.maximum(closed_area, 1), 1.0)


def find_tiles(images: np.ndarray) -> np.ndarray:
    """For each image (bool [n, H, W] with H = W a power of two), the smallest aligned dyadic tile (int [n, 3]:
    row, col, side) that holds all of its pixels; the whole image for an empty one.

    For rendered images this is the tile the blob was scaled into: a blob spans more than half of its tile
    (`render_with_tiles` gives the true tiles, and the tests check the two agree)."""
    images = np.asarray(images, dtype=bool)
    n, size = images.shape[0], images.shape[-1]
    rows_any, cols_any = images.any(axis=2), images.any(axis=1)
    nonempty = rows_any.any(axis=1)
    r0, r1 = rows_any.argmax(axis=1), size - 1 - rows_any[:, ::-1].argmax(axis=1)
    c0, c1 = cols_any.argmax(axis=1), size - 1 - cols_any[:, ::-1].argmax(axis=1)
    side = np.full(n, size, dtype=np.int64)
    t = size // 2
    while t >= 1:  # shrink while one aligned tile of side t still holds the bounding box
        fits = nonempty & (r0 // t == r1 // t) & (c0 // t == c1 // t) & (side == 2 * t)
        side[fits] = t
        t //= 2
    return np.stack([r0 // side * side * nonempty, c0 // side * side * nonempty, side], axis=1)


def symmetry(img: np.ndarray, tile: tuple[int, int, int] | None = None) -> float:
    """|T and fliplr(T)| / |T| for the tile T of one binary image (2-D): 1 for a tile that is its own mirror image.

    T is `tile` (row, col, side) if given, else the smallest aligned dyadic tile holding the blob (`find_tiles`).
    We use that dyadic tile rather than the blob's bounding box because the paper's score mirrors the tile the
    blob was scaled into (whose vertical midline the ellipse and the symmetric drop masks are symmetric about),
    and for rendered images that tile is exactly the smallest dyadic tile holding the blob; a bounding box would
    shift the mirror axis by whatever pixels were dropped at the blob's extremes. A blob symmetric about its own
    bounding box but off-centre in its dyadic tile is therefore not symmetric here. 1.0 for an empty tile."""
    img = np.asarray(img, dtype=bool)
    tiles = find_tiles(img[None]) if tile is None else np.asarray([tile], dtype=np.int64)
    return float(_symmetry(img[None], tiles)[0])


def _symmetry(images: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    out = np.ones(len(images))
    for t in np.unique(tiles[:, 2]):  # one vectorised pass per tile side
        idx = np.flatnonzero(tiles[:, 2] == t)
        r, c = tiles[idx, 0], tiles[idx, 1]
        offs = np.arange(t)
        crop = images[idx[:, None, None], (r[:, None] + offs)[:, :, None], (c[:, None] + offs)[:, None, :]]
        area = crop.sum(axis=(1, 2))
        both = (crop & crop[:, :, ::-1]).sum(axis=(1, 2))
        out[idx] = np.where(area > 0, both / np.maximum(area, 1), 1.0)
    return out


def scores(images: np.ndarray) -> dict[str, np.ndarray]:
    """Both scores of a stack of binary images (bool [n, H, W]): {"closedness": [n], "symmetry": [n]}, the
    symmetry taken on each image's smallest dyadic tile (see `symmetry`)."""
    images = np.asarray(images, dtype=bool)
    if images.ndim != 3:
        raise GenlabError(f"images: expected a stack [n, H, W], got shape {images.shape}")
    return {"closedness": _closedness(images), "symmetry": _symmetry(images, find_tiles(images))}


# ------------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One labelled task: bool images, 0/1 labels and the task's score per image, for train and test, plus the
    score thresholds (class 0 has score <= low, class 1 has score >= high) and the number of images rendered."""

    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    s_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    s_test: np.ndarray
    low: float
    high: float
    n_rendered: int


def n_rendered(n_train: int, n_test: int) -> int:
    """Images rendered for a task: enough that the lowest and highest 40% each hold ceil(m / 2) images, for
    m = n_train + n_test (m / 0.8 for even m, which drops the middle 20%)."""
    return math.ceil(math.ceil((n_train + n_test) / 2) / KEEP_FRACTION - 1e-9)


def make_task(
    task: str = "closedness", n_train: int = 20000, n_test: int = 4000, size: int = 32, seed: int = 0
) -> Task:
    """Label rendered images by one score and split them (cached; the arrays are read-only, shared by callers).

    All `n_rendered(n_train, n_test)` images come from `render(..., size, seed)`, the same images for both tasks.
    The ceil(m / 2) images with the lowest score are class 0 and the ceil(m / 2) with the highest class 1 (ties
    broken by image index, so the classes are exactly as large as asked); the others are dropped. Train and test
    are drawn from the two classes without replacement (generator seeded by `seed`), each exactly balanced
    (floor/ceil of half), each in a random order."""
    check_choice("data.task", task, TASKS)
    check_positive("data.n_train", n_train, integer=True)
    check_positive("data.n_test", n_test, integer=True)
    check_positive("data.seed", seed, integer=True, allow_zero=True)
    return _make_task(task, n_train, n_test, check_size(size), seed)


@functools.lru_cache(maxsize=8)
def _make_task(task: str, n_train: int, n_test: int, size: int, seed: int) -> Task:
    images = _rendered(n_rendered(n_train, n_test), size, seed)[0]
    score = _closedness(images) if task == "closedness" else _symmetry(images, find_tiles(images))
    k = math.ceil((n_train + n_test) / 2)
    order = np.argsort(score, kind="stable")
    lows, highs = order[:k], order[-k:]
    rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the rendering's
    lows, highs = rng.permutation(lows), rng.permutation(highs)
    n0_train, n1_train = n_train // 2, n_train - n_train // 2
    n0_test, n1_test = n_test - n_test // 2, n_test // 2  # zeros: floor + ceil, ones: ceil + floor, each <= k
    train = rng.permutation(np.concatenate([lows[:n0_train], highs[:n1_train]]))
    test = rng.permutation(
        np.concatenate([lows[n0_train : n0_train + n0_test], highs[n1_train : n1_train + n1_test]])
    )
    label = np.zeros(len(images), dtype=np.int64)
    label[highs] = 1
    arrays = [images[train], label[train], score[train], images[test], label[test], score[test]]
    for a in arrays:
        a.flags.writeable = False
    low, high = float(score[order[k - 1]]), float(score[order[-k]])
    return Task(task, *arrays, low=low, high=high, n_rendered=len(images))

"""Pooling-geometry networks (Cohen & Shashua 2016): index maps, per-layer reference, invariances, options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError
from genlab.models import build, n_params, pooling_index
from genlab.pooling_models import folded_pooling_index

torch.set_num_threads(1)


def _binary(n: int, s: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, s, s, generator=g) < 0.4).float()


def _windows(size: int, geometry: str, seed: int = 0) -> list[list[set[tuple[int, int]]]]:
    """For each output window (i, j): the set of input positions (r, c) that the 2x2 pooling joins."""
    idx = pooling_index(size, geometry, seed).view(size, size)
    h = size // 2
    return [
        [{divmod(int(q), size) for q in idx[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(-1)} for j in range(h)]
        for i in range(h)
    ]


def test_mirror_index_4x4_by_hand():
    # window (i, j) joins (i, j), (i, 3-j), (3-i, j), (3-i, 3-j)
    assert _windows(4, "mirror") == [
        [{(0, 0), (0, 3), (3, 0), (3, 3)}, {(0, 1), (0, 2), (3, 1), (3, 2)}],
        [{(1, 0), (1, 3), (2, 0), (2, 3)}, {(1, 1), (1, 2), (2, 1), (2, 2)}],
    ]
    # and their order inside the 2x2 block: (i, j), (i, S-1-j) / (S-1-i, j), (S-1-i, S-1-j)
    assert pooling_index(4, "mirror").view(4, 4).tolist() == [
        [0, 3, 1, 2],
        [12, 15, 13, 14],
        [4, 7, 5, 6],
        [8, 11, 9, 10],
    ]


def test_mirror_index_matches_caffe_simnets_quad2_6x6():
    # caffe-simnets test_permutation_layer.cpp (TestQuad2Square): input 0..35 row-major on 6x6, QUAD2 output
    expected = [
        [0, 5, 1, 4, 2, 3],
        [30, 35, 31, 34, 32, 33],
        [6, 11, 7, 10, 8, 9],
        [24, 29, 25, 28, 26, 27],
        [12, 17, 13, 16, 14, 15],
        [18, 23, 19, 22, 20, 21],
    ]
    assert pooling_index(6, "mirror").view(6, 6).tolist() == expected


def test_mirror_windows_are_reflection_orbits_8x8():
    s = 8
    w = _windows(s, "mirror")
    for i in range(s // 2):
        for j in range(s // 2):
            assert w[i][j] == {(i, j), (i, s - 1 - j), (s - 1 - i, j), (s - 1 - i, s - 1 - j)}


def test_square_is_identity_and_random_is_a_seeded_permutation():
    assert torch.equal(pooling_index(8, "square"), torch.arange(64))
    assert _windows(4, "square")[1][0] == {(2, 0), (2, 1), (3, 0), (3, 1)}
    r0, r0b, r1 = pooling_index(16, "random", 0), pooling_index(16, "random", 0), pooling_index(16, "random", 1)
    assert r0.dtype == torch.long and torch.equal(torch.sort(r0).values, torch.arange(256))
    assert torch.equal(r0, r0b) and not torch.equal(r0, r1)
    state = torch.random.get_rng_state()
    pooling_index(16, "random", 3)
    assert torch.equal(state, torch.random.get_rng_state())  # never the global RNG


def _per_layer_reference(model: nn.Sequential, x: torch.Tensor, geometry: str, pool: str, seed: int = 0):
    """The literal per-layer net (NCHW): conv1x1 -> ReLU -> permute (pooling_index) -> 2x2 pool, with the model's
    own parameters."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    h = torch.cat([x, 1 - x], dim=1)  # N x 2 x S x S
    for lin in linears[:-1]:
        s = h.shape[-1]
        h = torch.relu(torch.einsum("nchw,oc->nohw", h, lin.weight) + lin.bias[:, None, None])
        h = h.flatten(2).index_select(2, pooling_index(s, geometry, seed)).view(h.shape)
        h = F.avg_pool2d(h, 2) if pool == "avg" else F.max_pool2d(h, 2)
    return linears[-1](h.flatten(1))


@pytest.mark.parametrize("geometry", ["square", "mirror", "random"])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_net_equals_per_layer_permutation_form(geometry, pool):
    torch.manual_seed(0)
    model = build("pooling-net", (1, 16, 16), 3, geometry=geometry, pool=pool, breadth=6, perm_seed=5)
    x = _binary(8, 16)
    out = model(x)
    assert out.shape == (8, 3)
    ref = _per_layer_reference(model, x, geometry, pool, seed=5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_folded_index_is_a_permutation_and_square_folds_to_identity():
    assert torch.equal(folded_pooling_index(16, "square"), torch.arange(256))
    for geometry in ("mirror", "random"):
        f = folded_pooling_index(16, geometry)
        assert torch.equal(torch.sort(f).values, torch.arange(256))


def test_same_parameter_count_across_geometries_and_shallow_close():
    counts = {
        g: n_params(build("pooling-net", (1, 32, 32), 2, geometry=g)) for g in ("square", "mirror", "random")
    }
    # 3*16 + 4*(16*16 + 16) + 17*2
    assert set(counts.values()) == {1170}
    assert n_params(build("pooling-shallow", (1, 32, 32), 2)) == 1172  # 3*234 + 235*2
    assert n_params(build("pooling-net", (1, 32, 32), 2, geometry="mirror", breadth=8, pool="max")) == n_params(
        build("pooling-net", (1, 32, 32), 2, geometry="square", breadth=8)
    )


def _swap(x: torch.Tensor, a: tuple[int, int], b: tuple[int, int]) -> torch.Tensor:
    y = x.clone()
    y[..., a[0], a[1]], y[..., b[0], b[1]] = x[..., b[0], b[1]], x[..., a[0], a[1]]
    return y


def test_invariances_of_each_pooling_tree():
    # A net of 1x1 convs and symmetric 2x2 pooling is invariant to every automorphism of its pooling tree: any
    # permutation of the pixels that maps each window (at every level) onto a window, e.g. swapping children.
    # fliplr / flipud are such automorphisms for square pooling (they mirror the quadtree) and for mirror
    # pooling (each orbit {(i,j), (i,S-1-j), (S-1-i,j), (S-1-i,S-1-j)} maps onto itself); so the brief's guess
    # "square is not flip-invariant" is false. What separates them: mirror pooling is invariant to swapping one
    # pixel with its mirror image, square pooling to swapping two pixels of one contiguous 2x2 block.
    torch.manual_seed(0)
    x = _binary(16, 32, seed=1).double()
    mirror_swap, block_swap = ((3, 5), (3, 26)), ((6, 8), (7, 9))

    def diff(net, y):
        with torch.no_grad():
            return float((net(y) - net(x)).abs().max())

    for pool in ("avg", "max"):
        mirror = build("pooling-net", (1, 32, 32), 2, geometry="mirror", pool=pool).double()
        square = build("pooling-net", (1, 32, 32), 2, geometry="square", pool=pool).double()
        for net in (mirror, square):
            for flipped in (x.flip(-1), x.flip(-2), x.flip(-1, -2)):
                assert diff(net, flipped) < 1e-12
        assert diff(mirror, _swap(x, *mirror_swap)) < 1e-12
        assert diff(square, _swap(x, *block_swap)) < 1e-12
        if pool == "avg":  # max pooling of binary images saturates: at init it may miss a single swap
            assert diff(mirror, _swap(x, *block_swap)) > 1e-8
            assert diff(square, _swap(x, *mirror_swap)) > 1e-8
    random = build("pooling-net", (1, 32, 32), 2, geometry="random").double()
    assert diff(random, x.flip(-1)) > 1e-8


def test_shallow_matches_per_pixel_form_on_binary_images():
    torch.manual_seed(0)
    x = _binary(6, 12)
    x[0] = 1.0  # all ones: max pooling sees one value only
    for pool in ("avg", "max"):
        model = build("pooling-shallow", (1, 12, 12), 3, breadth=20, pool=pool)
        conv, head = model[0].conv, model[1]
        h = torch.relu(conv(torch.stack([x.flatten(1), 1 - x.flatten(1)], -1)))  # N x P x B, per pixel
        ref = head(h.mean(1) if pool == "avg" else h.amax(1))
        torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-6)
    assert build("pooling-shallow", (1, 30, 20), 2)(torch.zeros(2, 1, 30, 20)).shape == (2, 2)


@pytest.mark.parametrize("name", ["pooling-net", "pooling-shallow"])
def test_functional_call_vmap_and_double_backward(name):
    torch.manual_seed(0)
    opts = {"geometry": "mirror", "breadth": 4} if name == "pooling-net" else {"breadth": 8}
    model = build(name, (1, 8, 8), 2, **opts)
    x, y = _binary(5, 8), torch.tensor([0, 1, 1, 0, 1])
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    out = torch.func.functional_call(model, (params, buffers), (x,))
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)
    # vmap over samples (inputs without batch dim) and over stacked parameter points
    per_sample = torch.func.vmap(lambda xi: torch.func.functional_call(model, (params, buffers), (xi,)))(x)
    torch.testing.assert_close(per_sample, out, rtol=1e-5, atol=1e-6)
    stacked = {k: torch.stack([v, 2 * v]) for k, v in params.items()}
    pts = torch.func.vmap(lambda p: torch.func.functional_call(model, (p, buffers), (x,)))(stacked)
    assert pts.shape == (2, 5, 2)
    torch.testing.assert_close(pts[0], out, rtol=1e-5, atol=1e-6)
    # Hessian-vector product by double backward
    ps = list(model.parameters())
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, ps, create_graph=True)
    vs = [torch.randn_like(p) for p in ps]
    hv = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs, strict=True)), ps)
    assert all(torch.isfinite(h).all() for h in hv)


@pytest.mark.parametrize(
    ("name", "shape", "opts", "field"),
    [
        ("pooling-net", (1, 32, 32), {"geometry": "ring"}, "model.geometry"),
        ("pooling-net", (1, 32, 32), {"breadth": 0}, "model.breadth"),
        ("pooling-net", (1, 30, 30), {}, "model.input_shape"),
        ("pooling-net", (1, 32, 16), {}, "model.input_shape"),
        ("pooling-net", (3, 32, 32), {}, "model.input_shape"),
        ("pooling-net", (1, 32, 32), {"pool": "sum"}, "model.pool"),
        ("pooling-net", (1, 32, 32), {"perm_seed": -1}, "model.perm_seed"),
        ("pooling-shallow", (1, 32, 32), {"breadth": 0}, "model.breadth"),
        ("pooling-shallow", (32, 32), {}, "model.input_shape"),
    ],
)
def test_bad_options_give_one_line_errors(name, shape, opts, field):
    with pytest.raises(GenlabError) as err:
        build(name, shape, 2, **opts)
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg

"""Model registry: builds, shapes, parameter counts, init schemes, bad options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.models import build, n_params


@pytest.mark.parametrize(
    ("name", "shape", "opts"),
    [
        ("mlp", (1, 8, 8), {"widths": [256, 256]}),
        ("mlp", (10,), {"width": 16, "depth": 3, "batchnorm": True, "activation": "tanh"}),
        ("cnn", (1, 8, 8), {}),
        ("cnn", (1, 40), {"batchnorm": True, "hidden": 32}),
        ("keskar-f1", (1, 28, 28), {"width": 64, "depth": 2}),
        ("keskar-c1", (1, 28, 28), {"channels": [8, 8], "dense": 32}),
        ("keskar-c1", (3, 32, 32), {"channels": [8, 8], "dense": 32}),
        ("vgg", (3, 32, 32), {"stages": [8, 16], "convs_per_stage": 1}),
        ("small-alexnet", (3, 32, 32), {}),
        ("small-alexnet", (1, 8, 8), {"channels": [8, 8], "dense": [16]}),
    ],
)
def test_builds_and_forward_shapes(name, shape, opts):
    model = build(name, shape, 7, **opts)
    model.eval()
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    assert n_params(model) == sum(p.numel() for p in model.parameters())


def test_mlp_parameter_count_is_exact():
    # 64*256+256 + 256*256+256 + 256*10+10
    assert n_params(build("mlp", (1, 8, 8), 10, widths=[256, 256])) == 85002


def test_keskar_f1_has_batchnorm():
    model = build("keskar-f1", (1, 28, 28), 10, width=32, depth=5)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 5


def test_init_schemes():
    torch.manual_seed(0)
    zero = build("mlp", (20,), 3, width=50, depth=3, init="zero")
    assert all(float(p.detach().abs().sum()) == 0 for p in zero.parameters())
    normal = build("mlp", (20,), 3, width=400, depth=2, init="normal", init_std=0.1)
    w = normal[3].weight.detach()
    assert abs(float(w.std()) - 0.1) < 0.005 and float(normal[3].bias.detach().abs().sum()) == 0
    he = build("mlp", (20,), 3, width=400, depth=2, init="he")
    assert abs(float(he[3].weight.detach().std()) - (2 / 400) ** 0.5) < 0.004
    torch.manual_seed(1)
    a = build("mlp", (20,), 3)
    torch.manual_seed(1)
    b = build("mlp", (20,), 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    ("name", "opts", "field"),
    [
        ("resnet", {}, "model.name"),
        ("mlp", {"widht": 3}, "model.widht"),
        ("mlp", {"activation": "swish"}, "model.activation"),
        ("mlp", {"init": "xavier"}, "model.init"),
        ("mlp", {"width": -3}, "model.width"),
        ("mlp", {"widths": [10, 0]}, "model.widths[1]"),
    ],
)
def test_bad_model_options(name, opts, field):
    with pytest.raises(GenlabError) as err:
        build(name, (10,), 2, **opts)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_conv_net_on_flat_input_is_a_clear_error():
    with pytest.raises(GenlabError, match="C x L or C x H x W"):
        build("cnn", (10,), 2)

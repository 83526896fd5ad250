"""Objective and ParamSpace: exact values against torch.func references, chunk invariance, model untouched."""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from genlab.errors import GenlabError
from genlab.probes import Objective

F64 = torch.float64


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def bn_cnn(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(3 * 4 * 4, 3),
    )
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].num_batches_tracked.fill_(7)
    return net


def blobs(n=40, shape=(5,), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def exact(model, x, y, mode="eval"):
    """Reference loss, gradient and Hessian of the example-mean cross entropy, in float64, via torch.func."""
    net = copy.deepcopy(model).to(F64).train(mode == "train")
    for m in net.modules():  # batch statistics without the in-place running-stat update torch.func rejects
        if isinstance(m, nn.BatchNorm2d) and mode == "train":
            m.track_running_stats = False
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    buffers = {k: b.clone() for k, b in net.named_buffers()}

    def f(t):
        chunks, i = {}, 0
        for k, s in zip(names, shapes, strict=True):
            chunks[k] = t[i : i + s.numel()].view(s)
            i += s.numel()
        return nn.functional.cross_entropy(functional_call(net, (chunks, buffers), (x.to(F64),)), y)

    # Plain autograd: torch.func.hessian and jacrev(jacrev) (both vmap the outer derivative) disagree with finite
    # differences of the gradient for train-mode BatchNorm in torch 2.13; for eval mode all three agree.
    H = torch.autograd.functional.hessian(f, theta)
    if mode == "eval":
        assert torch.allclose(H, hessian(f)(theta), atol=1e-12)
    return theta, f, H


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training


def assert_unchanged(model, snap):
    state, training = snap
    assert model.training == training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("method", ["fwd-rev", "double-backward", "reuse-graph", "auto"])
@pytest.mark.parametrize("make", [mlp, bn_cnn])
def test_values_match_reference(method, make):
    model = make()
    x, y = blobs(shape=(5,) if make is mlp else (1, 6, 6))
    theta, f, H = exact(model, x, y)
    obj = Objective(model, data=(x, y), dtype=F64, hvp_method=method, chunk_size=16)
    assert obj.n_params == theta.numel() and obj.n_examples == 40
    assert torch.allclose(obj.params(), theta)
    assert obj.loss(theta) == pytest.approx(float(f(theta)), rel=1e-12)
    assert torch.allclose(obj.grad(theta), torch.func.grad(f)(theta), atol=1e-12)
    V = torch.randn(4, obj.n_params, dtype=F64)
    assert torch.allclose(obj.hmp(theta, V), V @ H, atol=1e-10)
    assert torch.allclose(obj.hmp(theta, V), V @ H, atol=1e-10)  # second call (cached graph for reuse-graph)
    assert torch.allclose(obj.hvp(theta + 0.1, V[0]), exact_hvp(f, theta + 0.1, V[0]), atol=1e-10)
    assert obj.hvp_method in ("fwd-rev", "double-backward", "reuse-graph")
    if method != "auto":
        assert obj.hvp_method == method
    assert obj.cost.n_hvp == 9 and obj.cost.n_grad == 1


def exact_hvp(f, theta, v):
    return hessian(f)(theta) @ v


def test_loss_many_and_accuracy():
    model = mlp()
    x, y = blobs()
    obj = Objective(model, data=(x, y), dtype=F64)
    thetas = obj.params() + 0.3 * torch.randn(3, obj.n_params, dtype=F64)
    losses, accs = obj.evaluate_many(thetas)
    for t, lo, ac in zip(thetas, losses, accs, strict=True):
        assert float(lo) == pytest.approx(obj.loss(t), rel=1e-12)
        net = copy.deepcopy(model).to(F64)
        torch.nn.utils.vector_to_parameters(t, net.parameters())
        assert float(ac) == pytest.approx(float((net(x.to(F64)).argmax(1) == y).double().mean()))
        assert obj.accuracy(t) == pytest.approx(float(ac))
    assert torch.allclose(obj.loss_many(thetas), losses)
    reg = Objective(nn.Linear(5, 1), nn.functional.mse_loss, (x, torch.randn(40, 1)))
    assert torch.isnan(reg.evaluate_many(reg.params()[None])[1]).all()


def test_chunking_and_dataloader_do_not_change_results():
    model = bn_cnn()
    x, y = blobs(n=50, shape=(1, 6, 6))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 16,16,16,2
    objs = [
        Objective(model, data=(x, y), dtype=F64),
        Objective(model, data=(x, y), dtype=F64, chunk_size=7),
        Objective(model, data=loader, dtype=F64),
        Objective(model, data=loader, dtype=F64, chunk_size=50),
    ]
    theta = objs[0].params() + 0.05
    V = torch.randn(3, objs[0].n_params, dtype=F64)
    ref = objs[0]
    for obj in objs[1:]:
        assert obj.loss(theta) == pytest.approx(ref.loss(theta), rel=1e-12)
        assert torch.allclose(obj.grad(theta), ref.grad(theta), atol=1e-12)
        assert torch.allclose(obj.hmp(theta, V), ref.hmp(theta, V), atol=1e-10)
        assert torch.allclose(obj.loss_many(theta[None]), ref.loss_many(theta[None]), atol=1e-12)


def test_model_untouched_and_train_mode_keeps_running_stats():
    model = bn_cnn(dropout=0.3)
    model.train()
    snap = snapshot(model)
    x, y = blobs(shape=(1, 6, 6))
    for mode in ("eval", "train"):
        for method in ("fwd-rev", "double-backward", "reuse-graph"):
            obj = Objective(model, data=(x, y), mode=mode, hvp_method=method)
            theta = obj.params()
            (
                obj.loss(theta),
                obj.grad(theta),
                obj.hmp(theta, torch.randn(2, obj.n_params)),
                obj.loss_many(theta[None]),
            )
            assert obj.mode == mode
            assert_unchanged(model, snap)
            for k, b in obj._fixed.items():  # the private copy's running stats are not updated either
                assert torch.equal(b, snap[0][k]), k
    model.eval()
    snap = snapshot(model)
    Objective(model, data=(x, y), mode="train").grad(Objective(model, data=(x, y)).params())
    assert_unchanged(model, snap)


def test_train_mode_uses_batch_statistics():
    model = bn_cnn()
    x, y = blobs(shape=(1, 6, 6))
    theta, f_train, H = exact(model, x, y, mode="train")
    obj = Objective(model, data=(x, y), mode="train", dtype=F64)
    assert obj.loss(theta) == pytest.approx(float(f_train(theta)), rel=1e-12)
    plain = copy.deepcopy(model).to(F64).train()  # a plain train-mode forward (updates only this copy)
    assert obj.loss(theta) == pytest.approx(
        float(nn.functional.cross_entropy(plain(x.to(F64)), y).detach()), rel=1e-12
    )
    assert obj.loss(theta) != pytest.approx(Objective(model, data=(x, y), dtype=F64).loss(theta), rel=1e-6)
    V = torch.randn(2, obj.n_params, dtype=F64)
    assert torch.allclose(obj.hmp(theta, V), V @ H, atol=1e-10)
    g, e = torch.func.grad(f_train), 1e-5  # and against central differences of the gradient
    assert torch.allclose(obj.hvp(theta, V[0]), (g(theta + e * V[0]) - g(theta - e * V[0])) / (2 * e), atol=1e-7)


def test_param_space_structure():
    model = bn_cnn()
    x, y = blobs(shape=(1, 6, 6))
    space = Objective(model, data=(x, y)).space
    assert space.names == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]
    info = {p.name: p for p in space.params}
    assert info["0.weight"].module_type == "Conv2d" and info["0.weight"].has_filters
    assert info["1.weight"].is_norm and not info["1.weight"].has_filters and info["1.bias"].is_bias
    assert info["5.bias"].is_bias and not info["5.bias"].is_norm
    theta = torch.nn.utils.parameters_to_vector(model.parameters())
    d = space.to_dict(theta)
    assert all(torch.equal(d[k], v) for k, v in model.named_parameters())
    assert torch.equal(space.from_dict(d), theta)
    filters = list(space.filters(theta))
    assert [(n, i) for n, i, _ in filters] == [("0.weight", i) for i in range(3)] + [
        ("5.weight", i) for i in range(3)
    ]
    assert torch.equal(filters[1][2], model[0].weight[1])
    ids = space.filter_ids()
    assert int(ids.max()) == 5 and (ids[space.slices["1.weight"]] == -1).all()
    assert (ids[space.slices["5.weight"]] == torch.arange(3, 6).repeat_interleave(48)).all()
    for _, _, w in space.filters(theta):  # views: in-place normalization writes through
        w.div_(w.norm())
    assert torch.allclose(theta[space.slices["0.weight"]].view(3, -1).norm(dim=1), torch.ones(3))


def test_frozen_parameters_are_not_in_theta():
    model = mlp()
    model[0].bias.requires_grad_(False)
    x, y = blobs()
    obj = Objective(model, data=(x, y), dtype=F64)
    assert obj.space.names == ["0.weight", "2.weight", "2.bias"] and obj.n_params == 35 + 21 + 3
    assert obj.loss(obj.params()) == pytest.approx(
        float(nn.functional.cross_entropy(model.double()(x.double()), y))
    )


def test_bad_input():
    x, y = blobs()
    with pytest.raises(GenlabError, match="mode"):
        Objective(mlp(), data=(x, y), mode="test")
    with pytest.raises(GenlabError, match="hvp_method"):
        Objective(mlp(), data=(x, y), hvp_method="fast")
    with pytest.raises(GenlabError, match="chunk_size"):
        Objective(mlp(), data=(x, y), chunk_size=0)
    with pytest.raises(GenlabError, match="data"):
        Objective(mlp())
    obj = Objective(mlp(), data=(x, y))
    with pytest.raises(GenlabError, match="theta"):
        obj.loss(torch.zeros(3))

"""Landscape probes: exact grids, analytic quadratics, fast paths against a plain point-by-point reference."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.probes import Objective, plots
from genlab.probes.directions import Directions, basin_radius, random_directions, unit_ids
from genlab.probes.fasteval import PointEvaluator
from genlab.probes.fastmodel import ce_and_accuracy, is_plain_cross_entropy, plain_labels, rewrite
from genlab.probes.landscape import barrier, barycentric, bilinear, interpolate, line, plane

F64 = torch.float64
METHODS = [("loop", "off"), ("loop", "on"), ("vmap", "off"), ("vmap", "on")]


class Quadratic(nn.Module):
    """Per-example output 0.5 sum_i lam_i (w_i - w*_i)^2; with a mean loss, f(w) is exactly that quadratic."""

    def __init__(self, lam, wstar, w0):
        super().__init__()
        self.register_buffer("lam", lam)
        self.register_buffer("wstar", wstar)
        self.w = nn.Parameter(w0.clone())

    def forward(self, x):
        return (0.5 * (self.lam * (self.w - self.wstar) ** 2).sum()).expand(len(x))


class DoubleWell(nn.Module):
    """f(w) = (w^2 - 1)^2 in one parameter: minima at +-1, barrier 1 at w = 0."""

    def __init__(self, w0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w0], dtype=F64))

    def forward(self, x):
        return ((self.w**2 - 1) ** 2).sum().expand(len(x))


def mean_loss(out, y):
    return out.mean()


def quad(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lam = torch.rand(n, generator=g, dtype=F64) * 4 + 0.5
    wstar = torch.randn(n, generator=g, dtype=F64)
    model = Quadratic(lam, wstar, wstar)
    data = (torch.zeros(4, 1, dtype=F64), torch.zeros(4, dtype=F64))
    return model, Objective(model, mean_loss, data), lam, wstar


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def bn_cnn(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 3),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def blobs(n, shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def reference(model, theta, data, buffers=None):
    """Plain point-by-point evaluation: a fresh copy of the module with theta written in, eval mode."""
    net = copy.deepcopy(model).eval()
    nn.utils.vector_to_parameters(theta.to(next(net.parameters())), net.parameters())
    if buffers is not None:
        net.load_state_dict(buffers, strict=False)
    x, y = data
    with torch.no_grad():
        out = net(x)
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def flat(model):
    return nn.utils.parameters_to_vector(model.parameters()).detach()


@pytest.fixture(scope="module")
def nets():
    out = {}
    for name, build, shape in (("mlp", mlp, (5,)), ("cnn", bn_cnn, (1, 6, 6))):
        model = build()
        train, test = blobs(48, shape, 1), blobs(20, shape, 2)
        out[name] = (model, train, test, Objective(model, data=train, chunk_size=32), Objective(model, data=test))
    return out


# ---------------------------------------------------------------------------------------------- grids, quadratics
def test_plane_grid_exact_and_matches_quadratic():
    _model, obj, lam, _wstar = quad()
    d = random_directions(obj, 2, normalization="unit", seed=3)
    res = plane(obj, d1=d, extent=0.5, steps=7)
    x = res.axes["x"]
    assert x.tolist() == [0.5 * (2 * i - 6) / 6 for i in range(7)]
    assert x[3] == 0.0 and np.array_equal(x, -x[::-1])
    gx, gy = np.meshgrid(x, res.axes["y"], indexing="ij")
    d1, d2 = d.vectors.numpy()
    offs = gx[..., None] * d1 + gy[..., None] * d2
    expected = 0.5 * (offs**2 * lam.numpy()).sum(-1)
    np.testing.assert_allclose(res.train_loss, expected, rtol=1e-10, atol=1e-12)
    assert res.center["train_loss"] == obj.loss(obj.params()) == res.train_loss[3, 3]
    assert res.directions["seed"] == 3 and res.test_loss is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_interpolate_paths_quadratic():
    _model, obj, lam, wstar = quad()
    a, b = wstar + 1.0, wstar - 0.5
    f = lambda w: float(0.5 * (lam * (w - wstar) ** 2).sum())  # noqa: E731
    res = interpolate(obj, a, b)
    assert res.axes["alpha"][0] == -1 and res.axes["alpha"][-1] == 2 and len(res.axes["alpha"]) == 61
    for alpha, val in zip(res.axes["alpha"], res.train_loss, strict=True):
        assert val == pytest.approx(f(alpha * a + (1 - alpha) * b), rel=1e-10)
    sine = interpolate(obj, a, b, alphas=[0.0, 0.3, 1.0], path="sine")
    for alpha, val in zip([0.0, 0.3, 1.0], sine.train_loss, strict=True):
        s, c = math.sin(alpha * math.pi / 2), math.cos(alpha * math.pi / 2)
        assert val == pytest.approx(f(s * a + c * b), rel=1e-10)


def test_basin_radius_matches_analytic():
    _model, obj, lam, _wstar = quad(n=8)
    res = basin_radius(obj, n_directions=6, delta=0.2, normalization="unit", seed=5, rtol=1e-6)
    dirs = random_directions(obj, 6, normalization="unit", seed=5, center=obj.params()).vectors
    analytic = np.sqrt(2 * 0.2 / (dirs**2 * lam).sum(1).numpy())
    np.testing.assert_allclose(res.train_radii, analytic, rtol=1e-5)
    assert res.summary["train"]["n_not_reached"] == 0
    json.dumps(res.to_dict(), allow_nan=False)


def test_barrier_double_well():
    obj = Objective(DoubleWell(1.0), mean_loss, (torch.zeros(2, 1, dtype=F64), torch.zeros(2, dtype=F64)))
    a, b = torch.tensor([1.0], dtype=F64), torch.tensor([-1.0], dtype=F64)
    res = barrier(obj, a, b, steps=21)
    assert res.train_barrier == pytest.approx(1.0, abs=1e-12) and res.alpha_max == pytest.approx(0.5)
    flat_path = barrier(obj, a, torch.tensor([1.5], dtype=F64), steps=11)
    assert flat_path.train_barrier == pytest.approx(0.0, abs=1e-12)  # monotone between them: no barrier


# ---------------------------------------------------------------------------------------------- directions
def test_filter_normalization_and_orthogonality(nets):
    _model, _, _, obj, _ = nets["cnn"]
    center = obj.params()
    d = random_directions(obj, 2, "filter", "biasbn", seed=0, orthogonal=True)
    assert d.orthogonal
    v = d.vectors
    assert abs(float(v[0] @ v[1])) < 1e-4 * float(v[0].norm() * v[1].norm())
    for i in range(2):
        for name, _, f in obj.space.filters(v[i]):
            ref = next(c for n, j, c in obj.space.filters(center.clone()) if n == name and j == _)
            assert float(f.norm()) == pytest.approx(float(ref.norm()), rel=1e-5)
    zero = unit_ids(obj.space, "filter", "biasbn") < 0
    for p in obj.space.params:
        assert bool(zero[p.slice].all()) == (p.is_bias or p.is_norm)
    assert torch.all(v[:, zero] == 0)
    again = random_directions(obj, 2, "filter", "biasbn", seed=0, orthogonal=True)
    assert torch.equal(again.vectors, v)


@pytest.mark.parametrize("normalization", ["layer", "model", "unit"])
def test_layer_model_unit_norms(nets, normalization):
    _model, _, _, obj, _ = nets["mlp"]
    center = obj.params()
    d = random_directions(obj, 1, normalization, None, seed=1).vectors[0]
    if normalization == "layer":
        for p in obj.space.params:
            assert float(d[p.slice].norm()) == pytest.approx(float(center[p.slice].norm()), rel=1e-5)
    else:
        target = 1.0 if normalization == "unit" else float(center.norm())
        assert float(d.norm()) == pytest.approx(target, rel=1e-5)


def test_directions_save_load(tmp_path, nets):
    obj = nets["mlp"][3]
    d = random_directions(obj, 2, seed=7)
    back = Directions.load(d.save(tmp_path / "d.pt"))
    assert torch.equal(back.vectors, d.vectors) and back.seed == 7 and back.checksum() == d.checksum()


# ---------------------------------------------------------------------------------------------- nets vs reference
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_plane_fast_paths_equal_plain_reference(nets, name):
    model, train, test, obj, tobj = nets[name]
    before = copy.deepcopy(model.state_dict())
    theta0 = obj.params()
    d = random_directions(obj, 2, seed=1)
    results = [plane(obj, d1=d, steps=5, extent=0.8, test=tobj, method=m, first_layer=f) for m, f in METHODS]
    auto = plane(obj, d1=d, steps=9, extent=0.8, test=tobj)
    assert auto.evaluator["method"] in ("loop", "vmap")
    assert results[1].evaluator["first_layer"] is True  # Linear / Conv first layer: precompute applies
    xs = results[0].axes["x"]
    for i, x in enumerate(xs):
        for j, y in enumerate(xs):
            theta = theta0 + x * d.vectors[0] + y * d.vectors[1]
            (lt, at), (ls, as_) = reference(model, theta, train), reference(model, theta, test)
            for r in results:
                assert r.train_loss[i, j] == pytest.approx(lt, abs=1e-5, rel=1e-5)
                assert r.test_loss[i, j] == pytest.approx(ls, abs=1e-5, rel=1e-5)
                assert r.train_acc[i, j] == pytest.approx(at, abs=1e-6) and r.test_acc[i, j] == pytest.approx(as_)
            assert auto.train_loss[2 * i, 2 * j] == pytest.approx(lt, abs=1e-5, rel=1e-5)
    assert results[0].center["train_loss"] == pytest.approx(obj.loss(theta0), abs=1e-6)
    assert results[0].center["test_loss"] == pytest.approx(tobj.loss(theta0), abs=1e-6)
    for key, value in model.state_dict().items():  # the user's model and the Objective untouched, bit for bit
        assert torch.equal(value, before[key])
    assert torch.equal(obj.params(), theta0)
    assert torch.equal(obj._net[1].running_var if name == "cnn" else theta0, before.get("1.running_var", theta0))
    json.dumps(auto.to_dict(), allow_nan=False)


def test_line_is_plane_row(nets):
    model, train, _, obj, _ = nets["mlp"]
    d = random_directions(obj, 1, seed=2)
    res = line(obj, d=d, steps=5, extent=2.0)
    for x, val in zip(res.axes["x"], res.train_loss, strict=True):
        assert val == pytest.approx(reference(model, obj.params() + x * d.vectors[0], train)[0], abs=1e-5)


def _models(build, n):
    out = []
    for seed in range(n):
        m = build(seed)
        if isinstance(m[1], nn.BatchNorm2d):
            with torch.no_grad():
                m[1].running_mean.fill_(0.1 * seed)
                m[1].running_var.fill_(1.0 + seed)
        out.append(m)
    return out


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_interpolate_endpoints_equal_models(nets, name):
    build = mlp if name == "mlp" else bn_cnn
    _, train, test, _, _ = nets[name]
    ma, mb = _models(build, 2)
    obj, tobj = Objective(ma, data=train), Objective(ma, data=test)
    res = interpolate(obj, ma, mb, alphas=[0.0, 0.5, 1.0], test=tobj, method="loop", first_layer="on")
    for k, m in ((0, mb), (2, ma)):
        assert res.train_loss[k] == pytest.approx(reference(m, flat(m), train)[0], abs=1e-6)
        assert res.test_loss[k] == pytest.approx(reference(m, flat(m), test)[0], abs=1e-6)
        assert res.train_acc[k] == reference(m, flat(m), train)[1]
        assert res.test_acc[k] == reference(m, flat(m), test)[1]
    mid = 0.5 * flat(ma) + 0.5 * flat(mb)
    bufs = {k: 0.5 * v + 0.5 * mb.state_dict()[k] for k, v in ma.state_dict().items() if v.is_floating_point()}
    bufs = {k: v for k, v in bufs.items() if "running" in k}
    assert res.train_loss[1] == pytest.approx(reference(ma, mid, train, bufs)[0], abs=1e-5)
    assert res.bn == "interpolate" and res.spec["bn_source"] == ("endpoints" if name == "cnn" else "objective")


def test_bn_recompute_matches_reference(nets):
    _, train, _test, _, _ = nets["cnn"]
    ma, mb = _models(bn_cnn, 2)
    obj = Objective(ma, data=train)
    res = interpolate(obj, ma, mb, alphas=[0.25], bn="recompute")
    net = copy.deepcopy(ma)
    nn.utils.vector_to_parameters(0.25 * flat(ma) + 0.75 * flat(mb), net.parameters())
    net[1].reset_running_stats()
    net[1].momentum = None
    net.train()
    with torch.no_grad():
        net(train[0])
    assert res.train_loss[0] == pytest.approx(reference(net, flat(net), train)[0], abs=1e-5)
    assert res.bn == "recompute" and res.cost["forward_passes"] == 2


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_barycentric_and_bilinear_corners(nets, name):
    build = mlp if name == "mlp" else bn_cnn
    _, train, test, _, _ = nets[name]
    ms = _models(build, 4)
    obj, tobj = Objective(ms[0], data=train), Objective(ms[0], data=test)
    tri = barycentric(obj, ms[:3], steps=5, extend=0.25, test=tobj)
    a = tri.axes["a"]
    i0, i1 = int(np.where(a == 0)[0][0]), int(np.where(a == 1)[0][0])
    for (i, j), m in zip([(i1, i0), (i0, i1), (i0, i0)], ms[:3], strict=True):
        assert tri.train_loss[i, j] == pytest.approx(reference(m, flat(m), train)[0], abs=1e-6)
        assert tri.test_acc[i, j] == reference(m, flat(m), test)[1]
    assert np.isnan(tri.train_loss[-1, -1]) and tri.spec["extend"] == 0.25
    sq = bilinear(obj, ms, steps=3, test=tobj)
    for (i, j), m in zip([(0, 0), (2, 0), (0, 2), (2, 2)], ms, strict=True):
        assert sq.train_loss[i, j] == pytest.approx(reference(m, flat(m), train)[0], abs=1e-6)
        assert sq.test_loss[i, j] == pytest.approx(reference(m, flat(m), test)[0], abs=1e-6)
    json.dumps(tri.to_dict(), allow_nan=False)


def test_barrier_and_basin_on_net(nets):
    model, train, _test, obj, tobj = nets["mlp"]
    other = mlp(5)
    res = barrier(obj, model, other, steps=5, refine=2, test=tobj)
    assert res.train_barrier >= 0 and res.test_barrier >= 0 and len(res.profile.axes["alpha"]) == 9
    basin = basin_radius(obj, n_directions=3, delta=0.05, test=tobj, rtol=1e-2)
    assert basin.train_radii.shape == (3,) and basin.test_radii.shape == (3,)
    d = random_directions(obj, 3, seed=0).vectors
    for j, r in enumerate(basin.train_radii):  # the crossing: below at 0.99 r, above at 1.01 r
        below = reference(model, obj.params() + 0.99 * r * d[j], train)[0]
        above = reference(model, obj.params() + 1.01 * r * d[j], train)[0]
        assert below <= basin.train_f0 + 0.05 + 1e-6 < above + 1e-6


# ---------------------------------------------------------------------------------------------- errors, figures
def test_bad_input_raises(nets):
    _model, _, _, obj, _tobj = nets["mlp"]
    theta = obj.params()
    bad = [
        lambda: random_directions(obj, 2, normalization="fliter"),
        lambda: random_directions(obj, 2, ignore="bn"),
        lambda: interpolate(obj, theta, theta, path="cubic"),
        lambda: interpolate(obj, theta, theta, bn="reset"),
        lambda: plane(obj, steps=0),
        lambda: plane(obj, extent=-1.0),
        lambda: line(obj, steps=1),
        lambda: barycentric(obj, [theta, theta]),
        lambda: bilinear(obj, [theta] * 3),
        lambda: plane(obj, method="turbo"),
        lambda: interpolate(obj, theta[:3], theta),
        lambda: basin_radius(obj, n_directions=0),
    ]
    for fn in bad:
        with pytest.raises(GenlabError) as info:
            fn()
        assert "\n" not in str(info.value)


def test_figures(tmp_path, nets):
    model, _, _, obj, tobj = nets["mlp"]
    pl = plane(obj, steps=5, test=tobj)
    ip = interpolate(obj, model, mlp(3), alphas=np.linspace(-0.5, 1.5, 9), test=tobj)
    tri = barycentric(obj, [model, mlp(3), mlp(4)], steps=4, extend=0.2, test=tobj)
    sq = bilinear(obj, [model, mlp(3), mlp(4), mlp(6)], steps=4)
    files = [
        plots.plot_parametric(ip, tmp_path / "p.png"),
        plots.plot_contour(pl, tmp_path / "c.png"),
        plots.plot_contour(pl, tmp_path / "cf.png", filled=True),
        plots.plot_heatmap(pl, tmp_path / "h.png"),
        plots.plot_surface(pl, tmp_path / "s.png"),
        plots.plot_barycentric(tri, tmp_path / "t.png"),
        plots.plot_bilinear(sq, tmp_path / "b.png"),
        plots.plot(pl, tmp_path / "d.png"),
    ]
    for f in files:
        assert f.exists() and f.stat().st_size > 1000
    with pytest.raises(GenlabError):
        plots.plot_contour(ip, tmp_path / "x.png")


def test_log_scale_figures_survive_zero_losses(tmp_path):
    """float32 cross-entropy can underflow to exactly 0; log-scale contours must still draw."""
    from genlab.probes.landscape import Landscape

    a = np.linspace(0, 1, 5)
    loss = np.ones((5, 5))
    loss[0, 0] = 0.0
    loss[1, 1] = np.nan
    res = Landscape("barycentric", {"a": a, "b": a}, loss, loss, None, None, "eval", "interpolate")
    assert plots.plot_barycentric(res, tmp_path / "b.png").exists()
    res = Landscape("bilinear", {"u": a, "v": a}, loss, loss, None, None, "eval", "interpolate")
    assert plots.plot_bilinear(res, tmp_path / "s.png").exists()


# ---------------------------------------------------------------------------------------------- exact rewrites
def pool_cnn(seed=0, act=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 3),
    )  # fmt: skip


class NotMonotone(nn.ReLU):
    def forward(self, x):
        return -x  # claims to be a ReLU; commuting it with a max-pool changes the function


@pytest.mark.parametrize(("first", "nhwc"), [("off", "off"), ("off", "on"), ("on", "off"), ("on", "on")])
def test_channels_last_and_commuted_pools_equal_reference(first, nhwc):
    model = pool_cnn()
    train, test = blobs(40, (2, 8, 8), 3), blobs(16, (2, 8, 8), 4)
    obj, tobj = Objective(model, data=train, chunk_size=24), Objective(model, data=test)
    d = random_directions(obj, 2, seed=5).vectors
    ev = PointEvaluator([obj, tobj], obj.params(), d, method="loop", first_layer=first, channels_last=nhwc)
    coords = np.array([[0.0, 0.0], [0.5, -0.25], [-1.0, 0.75]])
    vals = ev.evaluate(coords)
    assert ev.plan.channels_last == (nhwc == "on") and ev.plan.first_layer == (first == "on")
    for p, (a, b) in enumerate(coords):
        theta = obj.params() + a * d[0] + b * d[1]
        for s, data in enumerate((train, test)):
            loss, acc = reference(model, theta, data)
            assert vals[s, 0, p] == pytest.approx(loss, rel=1e-5, abs=1e-6)
            assert vals[s, 1, p] == pytest.approx(acc, abs=1e-6)
    assert rewrite(copy.deepcopy(model)) == {"swapped": 2, "in_place": 2} and not ev.notes
    for s, chunks in enumerate((train, test)):  # in-place activations never touch the resident data
        assert torch.equal(ev.sets[s][0][0][0], chunks[0][:24] if s == 0 else chunks[0])


def test_rewrite_that_changes_the_function_is_dropped():
    model = pool_cnn(act=NotMonotone)
    data = blobs(30, (2, 8, 8), 5)
    obj = Objective(model, data=data)
    d = random_directions(obj, 1, seed=6).vectors
    ev = PointEvaluator([obj], obj.params(), d, method="loop", first_layer="off", channels_last="off")
    vals = ev.evaluate(np.array([[0.3]]))
    assert vals[0, 0, 0] == pytest.approx(reference(model, obj.params() + 0.3 * d[0], data)[0], rel=1e-5)
    assert "rebuilt without rewrites" in ev.notes[0]


def test_fused_cross_entropy_and_accuracy():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(500, 7, generator=g) * 30
    out[:50, 3] = out[:50, 5] = 1e3  # ties: the first maximal index counts, as argmax does
    y = torch.randint(0, 7, (500,), generator=g)
    loss, acc = ce_and_accuracy(out, y)
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-6)
    assert float(acc) == float((out.argmax(1) == y).float().mean())
    assert is_plain_cross_entropy(nn.functional.cross_entropy) and is_plain_cross_entropy(nn.CrossEntropyLoss())
    assert not is_plain_cross_entropy(nn.CrossEntropyLoss(label_smoothing=0.1))
    assert not plain_labels(torch.tensor([0, -100])) and plain_labels(torch.tensor([0, 2]))


def test_plane_forces_channels_last_both_ways():
    model = pool_cnn()
    data = blobs(30, (2, 8, 8), 7)
    obj = Objective(model, data=data)
    d = random_directions(obj, 2, seed=8)
    on = plane(obj, d1=d, steps=3, method="loop", channels_last="on")
    off = plane(obj, d1=d, steps=3, method="loop", channels_last="off")
    assert on.evaluator["channels_last"] is True and off.evaluator["channels_last"] is False
    assert np.allclose(on.train_loss, off.train_loss, rtol=1e-5, atol=1e-6)
    with pytest.raises(GenlabError, match="channels_last"):
        plane(obj, d1=d, steps=3, channels_last="yes")

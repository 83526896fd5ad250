"""Curvature probes against exact float64 Hessians: Lanczos, full spectrum, SLQ, trace, eps-sharpness."""

import json

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from genlab.errors import GenlabError
from genlab.probes import (
    Objective,
    eps_sharpness,
    full_spectrum,
    outlier_count,
    spectral_density,
    top_eigenvalues,
    trace,
)

F64 = torch.float64


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 3))


def cnn(bn):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4) if bn else nn.Identity(), nn.Softplus(), nn.MaxPool2d(2)]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(36, 3))
    if bn:
        with torch.no_grad():  # non-trivial running statistics
            net[1].running_mean.uniform_(-0.5, 0.5)
            net[1].running_var.uniform_(0.5, 2.0)
    return net


CASES = {"mlp": (mlp, (10,)), "cnn": (lambda: cnn(False), (1, 8, 8)), "cnn-bn": (lambda: cnn(True), (1, 8, 8))}


def problem(name, n=200):
    make, shape = CASES[name]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)
    model = make()
    obj = Objective(model, data=(x, y), dtype=F64, chunk_size=64)
    net = model.to(F64).eval()
    names = [k for k, _ in net.named_parameters()]
    buffers = dict(net.named_buffers())

    def f(t):
        params = dict(zip(names, torch.split(t, [p.numel() for p in net.parameters()]), strict=True))
        params = {k: v.view(net.get_parameter(k).shape) for k, v in params.items()}
        return nn.functional.cross_entropy(functional_call(net, (params, buffers), (x.to(F64),)), y)

    H = hessian(f)(obj.params())
    return obj, H, torch.linalg.eigvalsh(H)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return problem(request.param)


def expected(evals, which, k):
    key = {"largest": -evals, "smallest": evals, "magnitude": -evals.abs()}[which]
    return evals[torch.argsort(key)][:k]


@pytest.mark.parametrize(("which", "k", "block"), [("largest", 1, None), ("largest", 5, None), ("largest", 5, 5),
                                                   ("smallest", 3, None), ("magnitude", 4, 2)])  # fmt: skip
def test_top_eigenvalues_match_exact(case, which, k, block):
    obj, H, evals = case
    res = top_eigenvalues(obj, k=k, which=which, block_size=block)
    ref = expected(evals, which, k)
    assert res.converged and res.eigenvalues.shape == (k,)
    assert torch.allclose(res.eigenvalues, ref, rtol=1e-6, atol=0)
    V = res.eigenvectors
    assert torch.allclose(V @ V.T, torch.eye(k, dtype=F64), atol=1e-8)
    true_res = (V @ H - res.eigenvalues[:, None] * V).norm(dim=1)
    assert torch.allclose(res.residuals, true_res, rtol=1e-6, atol=1e-12)
    assert ((res.eigenvalues - ref).abs() <= res.error_bounds + 1e-12).all()  # the stopping rule's bound holds
    assert (res.error_bounds <= 1e-10 * ref.abs()).all() and (true_res <= 1e-3 * ref.abs()).all()
    assert res.n_hvp == res.block_size * res.iterations and res.mode == "eval"
    json.dumps(res.to_dict())


def test_block_lanczos_saves_passes_and_restarts():
    obj, _, evals = problem("mlp")
    one = top_eigenvalues(obj, k=1)
    five = top_eigenvalues(obj, k=5)
    assert five.n_passes < 5 * one.n_passes
    small = top_eigenvalues(obj, k=2, max_basis=8, block_size=2, max_iter=2000)  # many thick restarts
    assert small.converged and small.iterations > 4
    assert torch.allclose(small.eigenvalues, evals.flip(0)[:2], rtol=1e-6, atol=0)
    capped = top_eigenvalues(obj, k=1, max_iter=2, tol=1e-12)
    assert not capped.converged and capped.iterations == 2


def test_full_spectrum_matches_exact(case):
    obj, H, evals = case
    res = full_spectrum(obj, vectors=True, return_hessian=True, block=50)
    assert torch.allclose(res.eigenvalues, evals, atol=1e-12)
    assert torch.allclose(res.hessian, H, atol=1e-12) and res.asymmetry < 1e-10
    assert res.n_hvp == obj.n_params and res.n_passes == -(-obj.n_params // 50)
    json.dumps(res.to_dict())
    with pytest.raises(GenlabError, match="spectral_density"):
        full_spectrum(obj, max_params=obj.n_params - 1)


def test_trace_within_three_standard_errors(case):
    obj, _, evals = case
    for method in ("hutchinson", "hutch++"):
        res = trace(obj, n_probes=60, method=method, seed=3)
        assert res.se > 0 and abs(res.value - float(evals.sum())) <= 3 * res.se, method
        assert res.n_hvp == 60
        json.dumps(res.to_dict())


@pytest.fixture(scope="module")
def blobs():
    """Linear softmax classifier on 4 well-separated Gaussian blobs: a few top outliers over a bulk."""
    g = torch.Generator().manual_seed(0)
    C, d, N = 4, 100, 1000
    means = torch.randn(C, d, generator=g) * torch.tensor([9.0, 12.0, 15.0, 18.0])[:, None] / d**0.5
    y = torch.arange(N) % C
    x = means[y] + torch.randn(N, d, generator=g)
    torch.manual_seed(0)
    obj = Objective(nn.Linear(d, C), data=(x, y), dtype=F64)
    return obj, full_spectrum(obj).eigenvalues


def test_spectral_density_outliers_and_mass(blobs):
    obj, evals = blobs
    n_exact, cut_exact = outlier_count(evals)
    assert 3 <= n_exact <= 12  # outliers by design (the gap criterion on the exact spectrum)
    sd = spectral_density(obj, n_probes=10, lanczos_steps=40)
    assert sd.n_hvp == 400 and sd.n_passes == 40  # probes run together: one pass per Lanczos step
    assert torch.trapezoid(sd.density, sd.grid).item() == pytest.approx(1.0, abs=1e-9)
    assert torch.allclose(sd.weights.sum(dim=1), torch.ones(10, dtype=F64))
    assert sd.n_outliers() == n_exact
    assert sd.outlier_threshold() == pytest.approx(cut_exact, rel=1e-6)
    for x in (sd.outlier_threshold(), 0.05, 0.1, 0.2, float(evals.max()) / 2):
        exact = float((evals > x).double().mean())
        assert abs(sd.fraction_above(x) - exact) <= 3 * sd.fraction_above_se(x) + 0.01, x
    assert sd.fraction_above(float(evals.max()) + 1) == 0.0
    assert sd.fraction_above(float(evals.min()) - 1) == pytest.approx(1.0, abs=1e-12)
    json.dumps(sd.to_dict())
    # Hutch++ deflates the outliers: a much smaller standard error than Hutchinson for the same budget
    assert trace(obj, method="hutch++").se < 0.5 * trace(obj, method="hutchinson").se


def test_spectral_density_small_model_is_exact():
    obj, _, evals = problem("cnn-bn")  # lanczos_steps >= n: every probe's quadrature is exact
    sd = spectral_density(obj, n_probes=3, lanczos_steps=obj.n_params + 5, grid=200)
    assert sd.lanczos_steps == obj.n_params
    moments = (sd.weights * sd.nodes**2).sum(dim=1)  # v^T H^2 v for each probe, exactly
    assert moments.min() > 0 and sd.nodes.max() == pytest.approx(float(evals.max()), rel=1e-8)


class Quadratic(nn.Module):
    """f(theta) = 0.5 sum_i D_i (theta_i - c_i)^2 through the (logits, y) interface, with loss_fn = sum / 2."""

    def __init__(self, theta, c, d):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.register_buffer("c", c)
        self.register_buffer("sqrt_d", d.sqrt())

    def forward(self, x):
        return ((self.theta - self.c) * self.sqrt_d).expand(len(x), -1)


def half_sum_squares(out, y):
    return 0.5 * (out**2).sum(dim=1).mean()


def test_eps_sharpness_quadratic_box_maximum():
    g = torch.Generator().manual_seed(0)
    n = 30
    theta, c = torch.randn(n, generator=g, dtype=F64), torch.randn(n, generator=g, dtype=F64)
    d = torch.rand(n, generator=g, dtype=F64) * 5
    obj = Objective(Quadratic(theta, c, d), half_sum_squares, (torch.zeros(2, 1), torch.zeros(2)), dtype=F64)
    for eps in (1e-3, 1e-1):
        res = eps_sharpness(obj, eps=eps)
        f0 = float(0.5 * (d * (theta - c) ** 2).sum())
        radius = eps * (theta.abs() + 1)  # convex and separable: the maximum is the corner away from c
        fmax = float(0.5 * (d * ((theta - c).abs() + radius) ** 2).sum())
        assert res.loss == pytest.approx(f0, rel=1e-12)
        assert res.loss_max == pytest.approx(fmax, rel=1e-9)
        assert res.phi == pytest.approx(100 * (fmax - f0) / (1 + f0), rel=1e-8)
        assert 1 <= res.iterations <= 10 and res.n_evals >= res.iterations
        json.dumps(res.to_dict())
    full = eps_sharpness(obj, eps=1e-2)
    sub = eps_sharpness(obj, eps=1e-2, subspace_dim=5, seed=1)
    assert 0 < sub.phi < full.phi and sub.subspace_dim == 5
    assert eps_sharpness(obj, eps=1e-2, subspace_dim=5, seed=1).phi == sub.phi


def test_eps_sharpness_at_a_minimizer_with_zero_gradient_finds_the_box_corner():
    # theta = c: the gradient is exactly 0, so an ascent from y = 0 (the paper's start) stops at iteration 0
    # with phi = 0; the random start must still reach the known maximum 0.5 sum_i D_i r_i^2 (any corner)
    g = torch.Generator().manual_seed(1)
    n = 40
    c = torch.randn(n, generator=g, dtype=F64)
    d = torch.rand(n, generator=g, dtype=F64) * 5 + 0.1
    obj = Objective(Quadratic(c, c, d), half_sum_squares, (torch.zeros(2, 1), torch.zeros(2)), dtype=F64)
    assert float(obj.grad(obj.params()).abs().max()) == 0.0
    for eps in (1e-3, 5e-4):
        res = eps_sharpness(obj, eps=eps, max_iter=10)
        radius = eps * (c.abs() + 1)
        fmax = float(0.5 * (d * radius**2).sum())
        assert res.loss == 0.0 and res.moved and res.iterations >= 1
        assert res.phi > 0
        assert res.loss_max == pytest.approx(fmax, rel=1e-8)
    sub = eps_sharpness(obj, eps=1e-3, subspace_dim=10, seed=3)
    assert sub.phi > 0 and sub.moved


def test_bad_inputs(case):
    obj = case[0]
    cases = [
        (lambda: top_eigenvalues(obj, k=0), "k"),
        (lambda: top_eigenvalues(obj, k=obj.n_params + 1), "k"),
        (lambda: top_eigenvalues(obj, which="biggest"), "which"),
        (lambda: top_eigenvalues(obj, k=5, max_basis=6), "max_basis"),
        (lambda: eps_sharpness(obj, eps=0), "eps"),
        (lambda: eps_sharpness(obj, eps=-1.0), "eps"),
        (lambda: eps_sharpness(obj, subspace_dim=obj.n_params + 1), "subspace_dim"),
        (lambda: trace(obj, method="exact"), "method"),
        (lambda: trace(obj, n_probes=3), "n_probes"),
        (lambda: spectral_density(obj, n_probes=0), "n_probes"),
    ]
    for call, field in cases:
        with pytest.raises(GenlabError, match=field) as info:
            call()
        assert "\n" not in str(info.value)

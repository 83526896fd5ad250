"""Keskar et al. (2017) epsilon-sharpness: the largest loss increase inside a small box around theta.

    phi = 100 * (max_{y in C} f(theta + A y) - f(theta)) / (1 + f(theta)),
    C = {y : |y_i| <= eps * (|(A^+ theta)_i| + 1)},

maximized with scipy's L-BFGS-B (minimizing -f) for `max_iter` iterations, gradients from
`Objective.loss_and_grad`. Every point L-BFGS-B evaluates lies in the box, so the best value seen is a valid
lower bound of the maximum; it is the one reported.

Starting point. The paper starts at y = 0. At a minimizer the gradient there is ~0, and L-BFGS-B stops at
iteration 0 (measured: projected gradient 2.9e-6 below scipy's tolerance at small-batch minimizers, nit 0,
nfev 1), reporting phi = 0 although the box holds an ascent. So the ascent starts from a random point of the
box (each coordinate uniform in [-radius, radius], seeded), where a curved loss has a gradient, and scipy's
gradient tolerance is set to 0 so that only the iteration budget or a converged step stops it. A start that
still ends at iteration 0 is retried from a fresh random point (up to `starts` times). The result records the
iterations, evaluations and starts; `moved` is False when no start took a single iteration, and such a value
must not be reported as a maximum (studies treat it as undefined).

A: the full space (A = I) when subspace_dim is None. Otherwise A is an n x p matrix with ORTHONORMAL columns
(QR of a Gaussian matrix from `seed`), so A^+ = A^T, A y is an isometry and the box radii use the coordinates
A^T theta of theta's projection. The paper does not fix A's scale; with an unnormalized Gaussian A every
column has norm ~sqrt(n), so the box reaches ~sqrt(n) times further than the full-space box and the "subspace"
value exceeds the full-space one. With orthonormal columns ||A y|| <= eps * ||(|A^T theta| + 1)||, which is at
most the full-space box's reach eps * ||(|theta| + 1)|| when p <= n, so the subspace value is comparable to
(typically below) the full-space value.


This module must not train, touch the store, or import genlab.train, genlab.store, genlab.studies or genlab.cli.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch

from genlab.errors import GenlabError, check_positive
from genlab.probes.objective import Objective


@dataclass
class Sharpness:
    """Keskar et al.'s phi (in percent) with the losses it comes from and the optimizer's cost."""

    phi: float
    loss_max: float  # f at the maximizer found
    loss: float  # f(theta)
    eps: float
    subspace_dim: int | None
    iterations: int  # L-BFGS-B iterations, summed over starts
    n_evals: int  # function + gradient evaluations (each one pass over the data)
    seconds: float
    mode: str
    starts: int = 1
    moved: bool = True

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def eps_sharpness(
    obj: Objective,
    eps: float = 1e-3,
    subspace_dim: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    theta: torch.Tensor | None = None,
    starts: int = 3,
) -> Sharpness:
    """Keskar et al.'s epsilon-sharpness at theta (see the module docstring for the box, for A and for the
    random start). `seed` draws A and the starting points."""
    check_positive("eps", eps)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("starts", starts, integer=True)
    n = obj.n_params
    if subspace_dim is not None:
        check_positive("subspace_dim", subspace_dim, integer=True)
        if subspace_dim > n:
            raise GenlabError(f"subspace_dim: expected at most n_params={n}, got {subspace_dim}")
    theta = obj.params() if theta is None else obj._check(theta)
    t0 = time.perf_counter()
    f0 = obj.loss(theta)
    if subspace_dim is None:
        A, coords = None, theta
    else:
        gen = torch.Generator().manual_seed(seed)
        G = torch.randn(n, subspace_dim, generator=gen, dtype=torch.float64)
        A = torch.linalg.qr(G)[0].T.to(theta)  # [p, n], orthonormal rows: the columns of the paper's A
        coords = A @ theta
    radius = eps * (coords.abs().to(torch.float64).cpu().numpy() + 1.0)
    best = [f0]

    def neg_loss(y: np.ndarray):
        step = torch.from_numpy(y).to(theta)
        point = theta + (step if A is None else step @ A)
        value, g = obj.loss_and_grad(point)
        best[0] = max(best[0], value)
        g = g if A is None else A @ g
        return -value, -g.to(torch.float64).cpu().numpy()

    rng = np.random.default_rng(seed)
    iterations = evaluations = tries = 0
    while tries < starts and iterations == 0:
        tries += 1
        res = scipy.optimize.minimize(
            neg_loss,
            rng.uniform(-radius, radius),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(-radius, radius),
            options={"maxiter": max_iter, "gtol": 0.0, "ftol": 0.0},
        )
        iterations, evaluations = iterations + int(res.nit), evaluations + int(res.nfev)
    phi = 100.0 * (best[0] - f0) / (1.0 + f0)
    seconds = time.perf_counter() - t0
    return Sharpness(
        phi, best[0], f0, eps, subspace_dim, iterations, evaluations, seconds, obj.mode, tries, iterations > 0
    )

"""Keskar et al. (2017) epsilon-sharpness: the largest loss increase inside a small box around theta.

    phi = 100 * (max_{y in C} f(theta + A y) - f(theta)) / (1 + f(theta)),
    C = {y : |y_i| <= eps * (|(A^+ theta)_i| + 1)},

maximized with scipy's L-BFGS-B (minimizing -f) for `max_iter` iterations from y = 0, gradients from
`Objective.loss_and_grad`. Every point L-BFGS-B evaluates lies in the box, so the best value seen is a valid
lower bound of the maximum; it is the one reported.

A: the full space (A = I) when subspace_dim is None. Otherwise A is an n x p matrix with ORTHONORMAL columns
(QR of a Gaussian matrix from `seed`), so A^+ = A^T, A y is an isometry and the box radii use the coordinates
A^T theta of theta's projection. The paper does not fix A's scale; with an unnormalized Gaussian A every
column has norm ~sqrt(n), so the box reaches ~sqrt(n) times further than the full-space box and the "subspace"
value exceeds the full-space one. With orthonormal columns ||A y|| <= eps * ||(|A^T theta| + 1)||, which is at
most the full-space box's reach eps * ||(|theta| + 1)|| when p <= n, so the subspace value is comparable to
(typically below) the full-space value.

Note: at an exact critical point (gradient exactly 0) the ascent cannot leave y = 0, as in the original method.

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
    iterations: int
    n_evals: int  # function + gradient evaluations (each one pass over the data)
    seconds: float
    mode: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def eps_sharpness(
    obj: Objective,
    eps: float = 1e-3,
    subspace_dim: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    theta: torch.Tensor | None = None,
) -> Sharpness:
    """Keskar et al.'s epsilon-sharpness at theta (see the module docstring for the box and for A)."""
    check_positive("eps", eps)
    check_positive("max_iter", max_iter, integer=True)
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

    res = scipy.optimize.minimize(
        neg_loss,
        np.zeros(len(radius)),
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(-radius, radius),
        options={"maxiter": max_iter},
    )
    phi = 100.0 * (best[0] - f0) / (1.0 + f0)
    return Sharpness(
        phi, best[0], f0, eps, subspace_dim, int(res.nit), int(res.nfev), time.perf_counter() - t0, obj.mode
    )

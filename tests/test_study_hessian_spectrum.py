"""Study hessian-spectrum: the claim quantities, the verdicts on synthetic measurements, smoke end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.probes import Objective, full_spectrum
from genlab.runner import run_study
from genlab.store import Store, model_from_state
from genlab.studies.hessian_spectrum import (
    HessianSpectrumStudy,
    bulk_width_slope,
    data_slope,
    gap_count,
    mean_neg_ratio,
    neg_ratio,
    outlier_score,
    real_bulk,
    spectrum_stats,
)
from genlab.train import load_data

CLAIMS = ["HS-bulk", "HS-outliers", "HS-data", "HS-neg", "HS-real"]


# ---------------------------------------------------------------- quantities
def test_spectrum_stats_rules():
    ev = np.array([-0.02, -1e-9, 0.0, 1e-5, 2e-4, 0.03, 0.2, 1.0])
    st = spectrum_stats(ev)
    assert st["lambda_max"] == 1.0 and st["lambda_min"] == -0.02
    assert st["bulk_share"] == pytest.approx(4 / 8)  # |lambda| < 1e-3: -1e-9, 0, 1e-5, 2e-4
    assert st["n_outliers"] == 3  # largest log-gap: 0.03 -> 2e-4
    assert st["n_above_5pct"] == 2  # > 0.05: 0.2, 1.0
    assert st["neg_ratio"] == pytest.approx(0.02) == st["loss_neg_ratio"]
    st = spectrum_stats(ev, wd=0.01)  # the objective's Hessian is H + wd I
    assert st["neg_ratio"] == pytest.approx(0.01 / 1.01) and st["loss_neg_ratio"] == pytest.approx(0.02)


def test_gap_count():
    assert gap_count(np.array([10.0, 9.0, 0.1, 0.05, 0.01, -0.01])) == 2
    assert gap_count(np.array([5.0, 1e-3, 1e-4, 2e-4])) == 1
    assert gap_count(np.array([1.0, -1.0, 0.0])) == 0  # fewer than two positive eigenvalues
    ev = np.concatenate([[100.0, 90.0, 80.0], np.linspace(1e-3, 2e-3, 50)])
    assert gap_count(ev, top=30) == 3


def test_bulk_width_slope():
    cells = [{"width": w, "bulk_share": 0.1 * math.log2(w) + 0.2} for w in (2, 4, 8, 16)]
    assert bulk_width_slope(cells) == pytest.approx(0.1)
    flat = [{"width": w, "bulk_share": 0.5} for w in (2, 4, 8)]
    assert bulk_width_slope(flat) == pytest.approx(0.0)


def test_outlier_score():
    exact = [{"k": 2, "n_outliers": 2}, {"k": 10, "n_outliers": 10}]
    assert outlier_score(exact) == pytest.approx(1.0)
    double = [{"k": 2, "n_outliers": 4}, {"k": 10, "n_outliers": 5}]
    assert outlier_score(double) == pytest.approx(0.0)  # a factor 2 off either way scores 0
    assert math.isnan(outlier_score([{"k": 2, "n_outliers": 0}]))  # undefined, not 0


def test_data_slope():
    cells = [{"spread": s, "k": 2, "top": [10 ** (1 + s), 10 ** (1 + s), 0.1]} for s in (0.5, 1.0, 2.0)]
    assert data_slope(cells) == pytest.approx(1.0)
    cells[0]["top"] = [-1.0, -2.0]
    assert math.isnan(data_slope(cells))


def test_neg_ratio_and_real_bulk():
    assert neg_ratio(-0.01, 1.0) == pytest.approx(0.01)
    assert neg_ratio(0.2, 1.0) < 0  # PSD: continuous, not clipped at 0
    assert math.isnan(neg_ratio(-1.0, 0.0))
    assert mean_neg_ratio([{"neg_ratio": 0.01}, {"neg_ratio": 0.03}]) == pytest.approx(0.02)
    assert real_bulk([{"bulk_share": 0.95}, {"bulk_share": 0.92}]) == pytest.approx(0.02)


# ---------------------------------------------------------------- claims on synthetic measurements
WIDTHS, SPREADS, SEEDS = [2, 6, 10, 14, 18], [0.5, 1.0, 1.5, 2.0], 5


def _stats(rng, bulk: float, outliers: int, top: float, neg: float) -> dict:
    noise = rng.normal(0, 0.01)
    return {
        "bulk_share": bulk + noise,
        "n_outliers": outliers + int(rng.integers(0, 2)),
        "top": [top * (1 + noise)] * 4 + [1e-3] * 6,
        "lambda_max": top,
        "neg_ratio": neg * (1 + 10 * noise),
        "grad_norm": 1e-6,
    }


def synthetic(kind: str) -> dict:
    """Measurements where every claim holds ("holds"), fails ("fails"), or holds at init too ("control")."""
    rng = np.random.default_rng(0)
    holds = kind != "fails"

    def stats(k: int, h: int, spread: float, which: str, convex: bool = False) -> dict:
        like_trained = which == "final" or kind == "control"
        if like_trained and holds:
            return _stats(
                rng, 0.5 + 0.1 * math.log2(h), k, 10**spread, 0.0 if convex and kind != "control" else 1e-3
            )
        return _stats(rng, 0.9 - 0.1 * math.log2(h), 25 + k, 1.0 / (1 + spread), -1e-2)

    blobs = {
        f"k={k},spread={s:g},h={h}": [
            {"k": k, "spread": s, "width": h, "init": stats(k, h, s, "init"), "final": stats(k, h, s, "final")}
            for _ in range(SEEDS)
        ]
        for k, s, h in [(2, 1.0, h) for h in WIDTHS] + [(4, s, 10) for s in SPREADS]
    }
    digits = [
        {"k": 10, "init": stats(10, 16, 1, "init"), "final": stats(10, 16, 1, "final")} for _ in range(SEEDS)
    ]
    convex = {"k=4,spread=1": [{"k": 4, "final": stats(4, 1, 1, "final", convex=True)} for _ in range(SEEDS)]}
    bulk = {"final": 0.97 if holds else 0.5, "init": 0.97 if kind == "control" else 0.5}
    real = {
        name: [
            {w: {"bulk_share": b + rng.normal(0, 0.005), "n_outliers": 9, "lambda_max": 2.0, "n_params": 100}
             for w, b in bulk.items()}
            for _ in range(SEEDS)
        ]
        for name in ("mlp", "cnn")
    }  # fmt: skip
    return {
        "seeds": SEEDS, "widths": WIDTHS, "spreads": SPREADS, "grad_target": 1e-5, "weight_decay": 1e-3,
        "blobs": blobs, "digits": digits, "convex": convex, "real": real, "init_lambda_max": [1.0, 2.0],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "verdict", "reason"),
    [
        ("holds", "supported", ""),
        ("fails", "not supported", None),
        ("control", "inconclusive", "the control passes too"),
    ],
)
def test_claims_on_synthetic_measurements(kind, verdict, reason):
    verdicts = HessianSpectrumStudy().claims(synthetic(kind))
    assert [v.id for v in verdicts] == CLAIMS
    for v in verdicts:
        assert v.control is not None, v.id
        assert v.verdict == verdict, (v.id, v.verdict, v.reason, v.effect, v.control)
        if reason is not None:
            assert v.reason == reason, v.id
        assert not v.degenerate, v.id


def test_all_three_outcomes_come_out():
    study = HessianSpectrumStudy()
    outcomes = {v.verdict for kind in ("holds", "fails", "control") for v in study.claims(synthetic(kind))}
    assert outcomes == {"supported", "not supported", "inconclusive"}


# ---------------------------------------------------------------- end to end
def test_smoke_end_to_end(tmp_path):
    result = run_study("hessian-spectrum", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == CLAIMS
    assert all(c["control"] is not None for c in result["claims"])
    m = result["measurements"]
    cell = m["blobs"]["k=2,spread=1,h=6"][0]
    # the cached eigenvalues and gradient norm belong to the stored final parameters
    store = Store(tmp_path)
    run_id = next(r for r in result["runs"] if store.load(r).spec.model["widths"] == [6, 6]
                  and store.load(r).spec.data["n_classes"] == 2 and store.load(r).spec.seed == 0)  # fmt: skip
    run = store.load(run_id)
    assert run.spec.train.polish == "lbfgs" and run.spec.model["activation"] == "tanh"
    data = load_data(run.spec)
    model = model_from_state(run.spec, run.final_state, data)
    obj = Objective(model, data=(data.x_train, data.y_train), dtype=torch.float64)
    exact = full_spectrum(obj).eigenvalues.numpy()
    assert np.allclose(np.sort(cell["final"]["eigenvalues"]), exact, atol=1e-10)
    assert len(exact) == 2 * 6 + 6 + 6 * 6 + 6 + 6 * 2 + 2
    theta = obj.params()
    grad = obj.grad(theta) + run.spec.train.weight_decay * theta
    assert cell["final"]["grad_norm"] == pytest.approx(float(grad.norm()), rel=1e-6)
    assert cell["init"]["grad_norm"] > cell["final"]["grad_norm"]
    assert set(m["convex"]) == {"k=2,spread=1", "k=4,spread=0.5", "k=4,spread=1", "digits"}
    assert all(c[0]["final"]["neg_ratio"] < 1e-6 for c in m["convex"].values())  # PSD up to rounding
    assert len(m["init_lambda_max"]) == 5 and all(v > 0 for v in m["init_lambda_max"])
    assert set(m["real"]) == {"mlp-32", "cnn"} and 0 <= m["real"]["cnn"][0]["final"]["bulk_share"] <= 1
    assert 0 <= m["real"]["cnn"][0]["init"]["bulk_share"] <= 1
    for fig in result["figures"]:
        assert (tmp_path / "hessian-spectrum" / fig).stat().st_size > 1000


def test_paper_preset_plans_and_starts_on_stand_in_mnist(tmp_path):
    from conftest import write_stand_in_files
    from genlab.studies import get

    write_stand_in_files(tmp_path)
    study = get("hessian-spectrum")
    store = Store(tmp_path / "runs")
    ctx = study.context("paper", 1, store, data_root=str(tmp_path))
    specs = study.plan(ctx)
    real = [s for s in specs if s.data["name"] == "mnist"]
    assert len(real) == 2 and all(s.data["root"] == str(tmp_path) for s in real)
    run = store.get_or_train(real[0].replace(**{"train.epochs": 1}))
    assert run.status == "finished"

"""Study hessian-spectrum: smoke end to end; the spectrum statistics follow the documented rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.probes import Objective, full_spectrum
from genlab.runner import run_study
from genlab.store import Store, model_from_state
from genlab.studies.hessian_spectrum import spectrum_stats
from genlab.train import load_data


def test_spectrum_stats_rules():
    ev = np.array([-0.02, -1e-9, 0.0, 1e-5, 2e-4, 0.03, 0.2, 1.0])
    st = spectrum_stats(ev)
    assert st["lambda_max"] == 1.0 and st["lambda_min"] == -0.02
    assert st["bulk_share"] == pytest.approx(4 / 8)  # |lambda| < 1e-3: -1e-9, 0, 1e-5, 2e-4
    assert st["n_outliers"] == 2  # > 0.05: 0.2, 1.0
    assert st["n_negative"] == 1 and st["neg_ratio"] == pytest.approx(0.02)


def test_smoke_end_to_end(tmp_path):
    result = run_study("hessian-spectrum", preset="smoke", out=tmp_path, quiet=True)
    assert [c["id"] for c in result["claims"]] == ["HS-bulk", "HS-outliers", "HS-data", "HS-neg", "HS-real"]
    m = result["measurements"]
    cell = m["blobs"]["k=2,spread=1,h=6"][0]
    # the cached eigenvalues are the exact spectrum of the stored final parameters
    store = Store(tmp_path)
    run_id = next(r for r in result["runs"] if store.load(r).spec.model["widths"] == [6, 6]
                  and store.load(r).spec.data["n_classes"] == 2 and store.load(r).spec.seed == 0)  # fmt: skip
    run = store.load(run_id)
    data = load_data(run.spec)
    model = model_from_state(run.spec, run.final_state, data)
    obj = Objective(model, data=(data.x_train, data.y_train), dtype=torch.float64)
    exact = full_spectrum(obj).eigenvalues.numpy()
    assert np.allclose(np.sort(cell["final"]["eigenvalues"]), exact, atol=1e-10)
    assert len(exact) == 2 * 6 + 6 + 6 * 6 + 6 + 6 * 2 + 2
    assert len(m["init_lambda_max"]) == 5 and all(v > 0 for v in m["init_lambda_max"])
    assert set(m["real"]) == {"mlp-32", "cnn"} and 0 <= m["real"]["cnn"][0]["bulk_share"] <= 1
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

"""Shared fixtures: tiny specs that train in well under a second."""

from __future__ import annotations

import pytest
import torch

from genlab.spec import RunSpec, TrainSpec


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread: the test models are tiny (threads only add synchronization), and a second thread
    oversubscribes a 2-core machine that runs anything else."""
    torch.set_num_threads(1)


def tiny_spec(seed: int = 0, **train: object) -> RunSpec:
    """A blobs task and a small MLP; `train` overrides TrainSpec fields."""
    opts = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32, "epochs": 4, **train}
    return RunSpec(
        data={"name": "blobs", "n_classes": 3, "dim": 8, "n_train": 240, "n_test": 120, "spread": 0.8},
        model={"name": "mlp", "widths": [32, 32]},
        train=TrainSpec(**opts),
        seed=seed,
    )


@pytest.fixture
def spec() -> RunSpec:
    return tiny_spec()

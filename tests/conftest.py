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


def write_stand_in_files(root):
    """Tiny MNIST (IDX) and CIFAR-10 (pickle) files in their standard formats."""
    import numpy as np

    from genlab.data.files import write_cifar, write_idx

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 10
    write_cifar(root / "cifar-10-batches-py", 10, x, y, x[:10], y[:10])

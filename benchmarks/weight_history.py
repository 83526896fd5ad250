"""Cost of recording the weight history (`train.snapshot_every`, `train.snapshot_dtype`) on a ~100k-parameter net.

Model: MLP 40-300-300-10 on mnist1d (4,000 train examples; 103,810 parameters), plain SGD lr 0.05, batch 64,
3,000 steps, trained through the store (so checkpoint writes of the unfinished run, which carry the history,
are included; the store writes one at most every 10 s). Arms: no history; every 10 steps in float16 and float32;
every step in float16 (3,001 snapshots). For each: wall seconds, the history's size in memory
(snapshots x parameters x bytes) and on disk (trajectory.pt), and the slowdown against no history.
Thread settings: torch.set_num_threads(1), OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1 (set before torch loads).
The wall times are the best of `--rounds` rounds (default 2), arms interleaved, each in a fresh store.

Run:  .venv/bin/python benchmarks/weight_history.py   -> prints a table, writes results/weight_history.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from genlab.spec import RunSpec, TrainSpec
from genlab.store import Store

HERE = Path(__file__).resolve().parent
ARMS = {"no history": (0, "float32"), "every 10, float16": (10, "float16"), "every 10, float32": (10, "float32")}
ARMS["every step, float16"] = (1, "float16")


def spec(every: int, dtype: str, steps: int) -> RunSpec:
    train = TrainSpec(
        lr=0.05,
        batch_size=64,
        epochs=10**6,
        max_steps=steps,
        eval_every=10**6,
        snapshot_every=every,
        snapshot_dtype=dtype,
    )
    return RunSpec(data={"name": "mnist1d"}, model={"name": "mlp", "widths": [300, 300]}, train=train, seed=0)


def measure(every: int, dtype: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        s = spec(every, dtype, steps)
        t0 = time.perf_counter()
        run = store.get_or_train(s)
        seconds = time.perf_counter() - t0
        traj = store.run_dir(s) / "trajectory.pt"
        disk = traj.stat().st_size if traj.exists() else 0
        memory = run.snapshots.numel() * run.snapshots.element_size() if run.snapshots is not None else 0
        n_params = sum(v.numel() for v in run.final_state.values())
        snaps = 0 if run.snapshots is None else run.snapshots.shape[0]
    return {
        "seconds": seconds,
        "memory_mb": memory / 2**20,
        "disk_mb": disk / 2**20,
        "snapshots": snaps,
        "params": n_params,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    measure(0, "float32", 10)  # warm-up: generates and caches the data, loads the kernels
    rows: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, (every, dtype) in ARMS.items():
            r = measure(every, dtype, args.steps)
            if name not in rows or r["seconds"] < rows[name]["seconds"]:
                rows[name] = r
    base = rows["no history"]["seconds"]
    head = ("params", "snaps", "seconds", "x slower", "memory MB", "disk MB")
    print(f"{'arm':22s} " + " ".join(f"{h:>9s}" for h in head))
    for name, r in rows.items():
        r["slowdown"] = r["seconds"] / base
        print(
            f"{name:22s} {r['params']:9d} {r['snapshots']:9d} {r['seconds']:9.2f} {r['slowdown']:9.2f} "
            f"{r['memory_mb']:9.1f} {r['disk_mb']:9.1f}"
        )
    out = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": 1,
        "steps": args.steps,
        "load": os.getloadavg()[0],
        "rows": rows,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "weight_history.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

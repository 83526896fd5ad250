"""The run store: one folder per run, addressed by the hash of its full spec.

```
ROOT/<run_id>/spec.json          the full spec (and its hash)
              status.json        running | finished | diverged, steps, seconds, stop reason, device
              versions.json      python, torch, numpy, genlab, platform
              history.json       one row per epoch (train/test loss and accuracy, lr, batch size, ...)
              checkpoints/init.pt, final.pt    model state dicts (x0 and the final point)
              checkpoints/last.pt             the loop's resumable state while the run is unfinished
              trajectory.pt      flat parameter snapshots (when train.snapshot_every > 0)
              probes/<name>-<hash>.json        cached probe results
```
A finished (or diverged) run is never trained again; an unfinished one resumes from `last.pt`. Every write is
atomic. Checkpoints load with `weights_only=True`. ROOT is `runs/` by default, or `GENLAB_HOME`.

Training callbacks run only when a run is actually trained; anything that must survive caching belongs in the
spec (e.g. `train.snapshot_every`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import genlab
from genlab.errors import GenlabError
from genlab.io import atomic_torch_save, atomic_write_json, read_json, torch_load
from genlab.spec import RunSpec, from_dict
from genlab.train import Callback, Run, build_model, load_data, train

FINAL_STATUSES = ("finished", "diverged")


def default_root() -> Path:
    """`GENLAB_HOME` if set, else `runs/`."""
    return Path(os.environ.get("GENLAB_HOME", "runs"))


def versions() -> dict:
    """Versions that can change numbers."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "genlab": genlab.__version__,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
    }


class _DirCheckpointer:
    """The train loop's `Checkpointer` for one run folder; writes at most once per `min_seconds`.

    The loop offers its state every `train.checkpoint_every` epochs; short epochs would spend more time in
    fsync than in training, so offers within `min_seconds` of the last write are skipped (the first is always
    written). A kill loses at most that much work; the resumed result is the same either way.
    """

    def __init__(self, path: Path, min_seconds: float) -> None:
        self.path, self.min_seconds, self.last = path, min_seconds, -math.inf

    def load(self) -> dict | None:
        return torch_load(self.path) if self.path.exists() else None

    def save(self, state: dict) -> None:
        now = time.monotonic()
        if now - self.last >= self.min_seconds:
            atomic_torch_save(self.path, state)
            self.last = now


class Store:
    """Runs under one root folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, checkpoint_seconds: float = 10.0) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.checkpoint_seconds = checkpoint_seconds

    def run_dir(self, spec_or_id: RunSpec | str) -> Path:
        run_id = spec_or_id if isinstance(spec_or_id, str) else spec_or_id.run_id
        return self.root / run_id

    def status(self, spec_or_id: RunSpec | str) -> dict | None:
        path = self.run_dir(spec_or_id) / "status.json"
        return read_json(path) if path.exists() else None

    def is_done(self, spec: RunSpec) -> bool:
        st = self.status(spec)
        return st is not None and st["status"] in FINAL_STATUSES

    def get_or_train(
        self,
        spec: RunSpec,
        callbacks: Sequence[Callback] = (),
        progress: Callable[[dict], None] | None = None,
        device: str = "cpu",
    ) -> Run:
        """The finished run for `spec`: loaded if stored, else trained (resuming from the last checkpoint)."""
        if self.is_done(spec):
            return self.load(spec.run_id)
        d = self.run_dir(spec)
        atomic_write_json(d / "spec.json", {"run_id": spec.run_id, **spec.to_dict()})
        atomic_write_json(d / "versions.json", versions())
        atomic_write_json(d / "status.json", {"status": "running", "run_id": spec.run_id, "device": device})
        ckpt = _DirCheckpointer(d / "checkpoints" / "last.pt", self.checkpoint_seconds)
        run = train(spec, callbacks=callbacks, checkpointer=ckpt, progress=progress, device=device)
        self.save(run, device)
        return run

    def save(self, run: Run, device: str = "cpu") -> None:
        """Write a finished run's files (used after training here, or by a driver for remote workers)."""
        spec = run.spec
        d = self.run_dir(spec)
        atomic_write_json(d / "spec.json", {"run_id": spec.run_id, **spec.to_dict()})
        if not (d / "versions.json").exists():
            atomic_write_json(d / "versions.json", versions())
        atomic_torch_save(d / "checkpoints" / "init.pt", run.init_state)
        atomic_torch_save(d / "checkpoints" / "final.pt", run.final_state)
        if run.snapshots is not None:
            atomic_torch_save(d / "trajectory.pt", {"steps": run.snapshot_steps, "params": run.snapshots})
        atomic_write_json(d / "history.json", run.history)
        atomic_write_json(
            d / "status.json",
            {
                "status": run.status,
                "run_id": spec.run_id,
                "device": device,
                "steps": run.steps,
                "seconds": run.seconds,
                "stop_reason": run.stop_reason,
                "diverged_step": run.diverged_step,
            },
        )
        (d / "checkpoints" / "last.pt").unlink(missing_ok=True)

    def load(self, run_id: str) -> Run:
        """A finished run from disk."""
        d = self.run_dir(run_id)
        st = self.status(run_id)
        if st is None or st["status"] not in FINAL_STATUSES:
            raise GenlabError(f"run: {d} is not a finished run (status {st and st['status']})")
        spec = spec_from_dir(d)
        traj = torch_load(d / "trajectory.pt") if (d / "trajectory.pt").exists() else None
        return Run(
            spec=spec,
            status=st["status"],
            history=read_json(d / "history.json"),
            init_state=torch_load(d / "checkpoints" / "init.pt"),
            final_state=torch_load(d / "checkpoints" / "final.pt"),
            steps=st["steps"],
            seconds=st["seconds"],
            stop_reason=st["stop_reason"],
            diverged_step=st["diverged_step"],
            snapshot_steps=list(traj["steps"]) if traj else [],
            snapshots=traj["params"] if traj else None,
        )

    def list_runs(self) -> list[dict]:
        """One row per run folder: id, data, model, regime, seed, status, final accuracies."""
        rows = []
        if not self.root.is_dir():
            return rows
        for d in sorted(p for p in self.root.iterdir() if (p / "spec.json").exists()):
            spec = read_json(d / "spec.json")
            st = read_json(d / "status.json") if (d / "status.json").exists() else {"status": "unknown"}
            hist = read_json(d / "history.json") if (d / "history.json").exists() else []
            t = spec["train"]
            rows.append(
                {
                    "run_id": d.name,
                    "data": spec["data"]["name"],
                    "model": spec["model"]["name"],
                    "regime": f"{t['optimizer']} lr={t['lr']:g} bs={t['batch_size']}",
                    "seed": spec["seed"],
                    "status": st["status"],
                    "train_acc": hist[-1]["train_acc"] if hist else None,
                    "test_acc": hist[-1]["test_acc"] if hist else None,
                }
            )
        return rows

    def cached_probe(
        self, run_id: str, name: str, params: dict, compute: Callable[[], dict], force: bool = False
    ) -> dict:
        """The result of probe `name` with `params` on a run: read from the cache, or computed and cached.

        force: compute again even if cached, and overwrite the cached file.
        """
        key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
        path = self.run_dir(run_id) / "probes" / f"{name}-{key}.json"
        if path.exists() and not force:
            return read_json(path)
        result = {"probe": name, "params": params, **compute()}
        atomic_write_json(path, result)
        return result


def spec_from_dir(run_dir: str | os.PathLike) -> RunSpec:
    """The RunSpec stored in a run folder."""
    path = Path(run_dir) / "spec.json"
    if not path.exists():
        raise GenlabError(f"--run: {run_dir} is not a genlab run folder (no spec.json)")
    raw = read_json(path)
    raw.pop("run_id", None)
    return from_dict(raw)


def model_from_state(spec: RunSpec, state: dict, data=None) -> nn.Module:
    """Rebuild a run's model and load `state` (e.g. `run.final_state`) into it, in eval mode."""
    data = data if data is not None else load_data(spec)
    model = build_model(spec, data)
    model.load_state_dict(state)
    return model.eval()

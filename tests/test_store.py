"""The run store: layout, cache hits, atomic writes, resume after kill -9, probe cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_spec
from genlab.errors import GenlabError
from genlab.io import atomic_write_json, read_json, torch_load
from genlab.store import Store, model_from_state, spec_from_dir
from genlab.train import train


def test_layout_and_cache_hit(tmp_path, spec, monkeypatch):
    store = Store(tmp_path)
    run = store.get_or_train(spec)
    d = tmp_path / spec.run_id
    for name in (
        "spec.json",
        "status.json",
        "versions.json",
        "history.json",
        "checkpoints/init.pt",
        "checkpoints/final.pt",
    ):
        assert (d / name).exists(), name
    assert not (d / "checkpoints" / "last.pt").exists()
    assert read_json(d / "status.json")["status"] == "finished"
    assert read_json(d / "versions.json")["torch"] == torch.__version__
    assert spec_from_dir(d) == spec
    # a finished run is never trained again
    import genlab.store as store_mod

    monkeypatch.setattr(store_mod, "train", lambda *a, **k: pytest.fail("trained again"))
    again = store.get_or_train(spec)
    assert all(torch.equal(run.final_state[k], again.final_state[k]) for k in run.final_state)
    assert again.history == run.history
    rows = store.list_runs()
    assert rows[0]["run_id"] == spec.run_id and rows[0]["status"] == "finished" and rows[0]["test_acc"] > 0.5


def test_checkpoints_load_weights_only_and_rebuild_the_model(tmp_path, spec):
    store = Store(tmp_path)
    run = store.get_or_train(spec)
    state = torch.load(tmp_path / spec.run_id / "checkpoints" / "final.pt", weights_only=True)
    assert state.keys() == run.final_state.keys()
    assert all(torch.equal(state[k], run.final_state[k]) for k in state)
    model = model_from_state(spec, state)
    loaded = dict(model.state_dict())
    assert all(torch.equal(loaded[k], state[k]) for k in state) and not model.training


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(path, {"a": 2})
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_diverged_run_is_recorded_and_cached(tmp_path):
    spec = tiny_spec(lr=1e6, momentum=0.0)
    store = Store(tmp_path)
    run = store.get_or_train(spec)
    assert run.status == "diverged" and store.is_done(spec)
    assert store.status(spec)["diverged_step"] == run.diverged_step


def test_unfinished_run_folder_is_not_loadable(tmp_path, spec):
    store = Store(tmp_path)
    (tmp_path / spec.run_id).mkdir()
    atomic_write_json(tmp_path / spec.run_id / "status.json", {"status": "running"})
    with pytest.raises(GenlabError, match="not a finished run"):
        store.load(spec.run_id)
    with pytest.raises(GenlabError, match=r"no spec\.json"):
        spec_from_dir(tmp_path / "nothing")


def test_probe_cache(tmp_path, spec):
    store = Store(tmp_path)
    store.get_or_train(spec)
    calls = []

    def compute():
        calls.append(1)
        return {"value": 3.5}

    a = store.cached_probe(spec.run_id, "trace", {"n": 10}, compute)
    b = store.cached_probe(spec.run_id, "trace", {"n": 10}, compute)
    c = store.cached_probe(spec.run_id, "trace", {"n": 20}, compute)
    assert a == b and a["value"] == 3.5 and len(calls) == 2 and c["params"] == {"n": 20}


_CHILD = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from conftest import tiny_spec
from genlab.store import Store
torch.set_num_threads(2)
spec = tiny_spec(optimizer="adam", lr=0.01, epochs=12, noise_eta=0.01)
Store({root!r}, checkpoint_seconds=0).get_or_train(spec, progress=lambda row: time.sleep(0.3))
"""


def test_resume_after_kill_9_matches_uninterrupted(tmp_path):
    spec = tiny_spec(optimizer="adam", lr=0.01, epochs=12, noise_eta=0.01)
    code = _CHILD.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", code])
    last = tmp_path / spec.run_id / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while time.time() < deadline:
        if last.exists() and torch_load(last)["epoch"] >= 3:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    saved_epoch = torch_load(last)["epoch"]
    assert 3 <= saved_epoch < 12, "the child should be killed mid-run"
    store = Store(tmp_path)
    assert not store.is_done(spec)
    resumed = store.get_or_train(spec)
    full = train(spec)
    assert all(torch.equal(full.final_state[k], resumed.final_state[k]) for k in full.final_state)
    assert len(resumed.history) == 12 and store.is_done(spec)


def test_checkpoint_writes_are_throttled(tmp_path):
    from genlab.store import _DirCheckpointer

    ck = _DirCheckpointer(tmp_path / "last.pt", min_seconds=3600)
    ck.save({"epoch": 1})
    ck.save({"epoch": 2})
    assert ck.load() == {"epoch": 1}
    ck = _DirCheckpointer(tmp_path / "last.pt", min_seconds=0)
    ck.save({"epoch": 3})
    assert ck.load() == {"epoch": 3}

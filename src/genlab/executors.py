"""Executors: train a plan's runs in process, in a local process pool, or as Ray tasks.

Runs are independent jobs addressed by their spec hash; finished ones are skipped, duplicates trained once.
- `local`: one after another in this process.
- `process`: a pool of worker processes (default: one per core), each with one torch thread, each writing its
  run folder itself (so a killed pool loses only unfinished epochs).
- `ray`: `ray.init(address=...)`; each run is a Ray task that trains and returns the `Run`; the driver writes it
  to the store (workers need not share a disk). Requires `pip install ray`.
Whatever the executor, a run's numbers depend only on its spec (and the torch thread count on CPU: see README).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Sequence

import torch

from genlab.errors import GenlabError, check_choice
from genlab.spec import RunSpec
from genlab.store import Store
from genlab.train import train

EXECUTORS = ("local", "process", "ray")


def _init_worker() -> None:
    torch.set_num_threads(1)


def _train_in_worker(root: str, spec: RunSpec, device: str) -> str:
    return Store(root).get_or_train(spec, device=device).status


def pending(specs: Sequence[RunSpec], store: Store) -> list[RunSpec]:
    """The specs not yet finished in `store`, without duplicates, in plan order."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.run_id not in seen and not store.is_done(spec):
            seen[spec.run_id] = spec
    return list(seen.values())


def run_plan(
    specs: Sequence[RunSpec],
    store: Store,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    device: str = "cpu",
    progress: Callable[[RunSpec], None] | None = None,
) -> None:
    """Train every spec not yet in `store`; `progress(spec)` is called as each run completes."""
    check_choice("--executor", executor, EXECUTORS)
    todo = pending(specs, store)
    if executor == "local" or not todo:
        for spec in todo:
            store.get_or_train(spec, device=device)
            if progress:
                progress(spec)
    elif executor == "process":
        n = workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {pool.submit(_train_in_worker, str(store.root), s, device): s for s in todo}
            for fut in cf.as_completed(futures):
                fut.result()
                if progress:
                    progress(futures[fut])
    else:
        _run_ray(todo, store, address, device, progress)


def _run_ray(
    todo: list[RunSpec], store: Store, address: str | None, device: str, progress: Callable | None
) -> None:
    try:
        import ray
    except ImportError:
        raise GenlabError("--executor ray: ray is not installed (pip install ray)") from None
    if not ray.is_initialized():
        ray.init(address=address)
    remote = ray.remote(num_cpus=1)(lambda spec: train(spec, device=device))
    refs = {remote.remote(spec): spec for spec in todo}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        spec = refs.pop(done[0])
        store.save(ray.get(done[0]), device=device)
        if progress:
            progress(spec)

"""Run studies end to end: plan -> train (through an executor) -> analyze -> verdicts -> figures -> pages.

`run_study` writes `OUT/<study>/result.json`, its figures and `OUT/<study>/index.html`; the runs live in the
store under `OUT/<run_id>/`, so a second call reuses every finished run. `reproduce` runs every registered study
and writes `OUT/index.html`. Progress is a tqdm bar on stderr unless `quiet`.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from genlab import studies
from genlab.executors import pending, run_plan
from genlab.io import atomic_write_json
from genlab.report import write_index, write_study_page
from genlab.store import Store, versions


def run_study(
    name: str,
    preset: str = "quick",
    seeds: int | None = None,
    out: str | Path = "runs",
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    device: str = "cpu",
    quiet: bool = False,
    data_root: str | None = None,
) -> dict:
    """Run study `name` with `preset` and return its result (also written to OUT/<name>/result.json)."""
    study = studies.get(name)
    out = Path(out)
    store = Store(out)
    ctx = study.context(preset, seeds, store, data_root)
    start = time.perf_counter()
    specs = study.plan(ctx)
    todo = pending(specs, store)
    with tqdm(total=len(todo), desc=f"{name}: training", unit="run", disable=quiet or not todo) as bar:
        run_plan(specs, store, executor, workers, address, device, progress=lambda _spec: bar.update())
    measurements = study.analyze(ctx)
    claims = study.claims(measurements)
    outdir = out / name
    outdir.mkdir(parents=True, exist_ok=True)
    figures = study.figures(measurements, outdir)
    result = {
        "study": name,
        "title": study.title,
        "paper": study.paper,
        "preset": preset,
        "preset_description": study.presets[preset].description,
        "seeds": ctx.seeds,
        "claims": [c.to_dict() for c in claims],
        "figures": figures,
        "tables": study.tables(measurements),
        "runs": list(dict.fromkeys(s.run_id for s in specs)),
        "trained_now": len(todo),
        "seconds": time.perf_counter() - start,
        "executor": executor,
        "versions": versions(),
        "measurements": measurements,
    }
    atomic_write_json(outdir / "result.json", result)
    write_study_page(result, outdir)
    return result


def reproduce(
    preset: str = "quick",
    out: str | Path = "runs",
    seeds: int | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    device: str = "cpu",
    quiet: bool = False,
    only: list[str] | None = None,
    data_root: str | None = None,
) -> Path:
    """Run every registered study (or those in `only`) and write OUT/index.html; returns its path."""
    names = only or list(studies.STUDIES)
    for n in names:
        studies.get(n).preset(preset)
    results = [
        run_study(n, preset, seeds, out, executor, workers, address, device, quiet, data_root) for n in names
    ]
    return write_index(results, Path(out))

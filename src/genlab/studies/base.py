"""What a study is: presets, a plan of runs, an analysis, claims with verdicts, figures.

A study subclasses `Study` and fills in `plan` (the runs to train for a preset), `analyze` (measurements per
seed, from the trained runs and probes), `claims` (per-seed quantities handed to the shared verdict rule in
`verdict.judge`) and `figures`. Studies never hard-code an outcome and never talk to the terminal; the runner
(`genlab.runner`) trains the plan through an executor, calls these in order and writes the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from genlab.errors import GenlabError, check_choice, check_positive
from genlab.probes import Objective
from genlab.spec import RunSpec
from genlab.store import Store, model_from_state
from genlab.studies.verdict import Measure, Verdict, accuracy, pack
from genlab.train import Run, batch_loss, load_data

FILE_SOURCES = ("mnist", "fashion-mnist", "cifar10", "cifar100")


def objectives(run: Run, state: dict | None = None) -> tuple[Objective, Objective]:
    """Train and test objectives (the run's own loss, eval mode) of the run's model at `state` (default: the
    final parameters)."""
    data = load_data(run.spec)
    model = model_from_state(run.spec, run.final_state if state is None else state, data)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return batch_loss(logits, y, run.spec.train.loss)

    return (
        Objective(model, loss, data=(data.x_train, data.y_train)),
        Objective(model, loss, data=(data.x_test, data.y_test)),
    )


@dataclass(frozen=True)
class Preset:
    """A preset: the default number of seeds, a one-line description, and the study's own knobs."""

    seeds: int
    description: str
    params: dict = field(default_factory=dict)


@dataclass
class Context:
    """What `analyze` gets: the preset's knobs, the seeds, and the store holding the trained runs."""

    preset: str
    params: dict
    seeds: int
    store: Store
    data_root: str | None = None

    def run(self, spec: RunSpec) -> Run:
        """The trained run for `spec` (trained now if the plan did not include it)."""
        return self.store.get_or_train(spec)

    def data(self, data: dict) -> dict:
        """A data spec with the user's folder filled in for file-backed sources (MNIST, CIFAR); a one-line
        error naming --data-root when a preset needs one and none was given."""
        data = dict(data)
        if data["name"] in FILE_SOURCES:
            if not self.data_root:
                raise GenlabError(
                    f"--data-root: the {self.preset} preset reads {data['name']} from a folder you name"
                )
            data["root"] = self.data_root
        return data

    def correct(self, run: Run) -> str:
        """The final model's per-example 0/1 test correctness as a digit string (`verdict.pack`; read it back
        with `verdict.accuracy`, whose intervals then include test-set noise); cached in the store."""

        def compute() -> dict:
            data = load_data(run.spec)
            model = model_from_state(run.spec, run.final_state, data)
            with torch.no_grad():
                pred = torch.cat([model(data.x_test[i : i + 4096]).argmax(1) for i in range(0, data.n_test, 4096)])
            return {"correct": pack((pred == data.y_test).numpy())}

        return self.store.cached_probe(run.spec.run_id, "test-correct", {"at": "final"}, compute)["correct"]

    def test_accuracy(self, run: Run) -> Measure:
        """The final model's test accuracy with its per-example correctness (see `correct`)."""
        return accuracy(self.correct(run))


class Study:
    """Base class; see the module docstring. Subclasses set the class attributes and the four methods."""

    name: str = ""
    title: str = ""
    paper: str = ""
    presets: dict[str, Preset] = {}  # noqa: RUF012 (class-level table, never mutated)

    def preset(self, name: str) -> Preset:
        check_choice("--preset", name, self.presets)
        return self.presets[name]

    def context(self, preset: str, seeds: int | None, store: Store, data_root: str | None = None) -> Context:
        p = self.preset(preset)
        n = p.seeds if seeds is None else seeds
        check_positive("--seeds", n, integer=True)
        return Context(preset=preset, params=dict(p.params), seeds=n, store=store, data_root=data_root)

    def plan(self, ctx: Context) -> list[RunSpec]:
        raise NotImplementedError

    def analyze(self, ctx: Context) -> dict:
        raise NotImplementedError

    def claims(self, result: dict) -> list[Verdict]:
        raise NotImplementedError

    def figures(self, result: dict, outdir: Path) -> list[str]:
        raise NotImplementedError

    def tables(self, result: dict) -> list[dict]:
        """Tables for the report: `{"title", "columns", "rows"}` each (none by default)."""
        return []

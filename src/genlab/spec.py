"""Run specifications: plain data, validated up front, addressed by a hash.

A `RunSpec` is everything that determines a training run: `data` (source name + options for
`genlab.data.load`), `model` (registry name + options for `genlab.models.build`), `train` (a `TrainSpec`: the
options of the one training loop) and `seed`. Its `run_id` is a hash of the canonical JSON of all of these plus
`SCHEMA_VERSION`; the store files runs under it. Specs come from YAML/JSON files and `key=value` overrides
(`train.lr=0.1`, `model.widths=[64,64]`); every key and value is checked here, and a bad one raises a one-line
`GenlabError` naming the field and what is accepted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab.data.dataset import sources
from genlab.errors import GenlabError, check_choice, check_positive, choice_error, unknown_key_error
from genlab.introspect import JUMPS, N_PREDICTOR, NEEDS_NET
from genlab.models import MODELS, model_options

SCHEMA_VERSION = 1

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "cosine")
LOSSES = ("cross_entropy", "mse")
AUGMENTATIONS = ("none", "shift")
POLISH = ("none", "lbfgs")
SNAPSHOT_DTYPES = ("float32", "float16")
# options added after schema 1: left out of the run_id while at their default, so earlier runs keep their ids
_LATE_DEFAULTS = {"snapshot_dtype": "float32", "jump": "none", "jump_steps": [], "jump_net": []}


@dataclass(frozen=True)
class TrainSpec:
    """Options of `genlab.train.train` — one loop; every regime is a setting here.

    Schedules are functions of the epoch e (0-based): `step`: lr * lr_gamma ** (e // lr_step); `exponential`:
    lr * lr_gamma ** e; `cosine`: lr * (1 + cos(pi e / epochs)) / 2. Gradient noise (Neelakantan et al.): after
    clipping, each gradient gets N(0, sigma_t^2) with sigma_t^2 = noise_eta / (1 + t) ** noise_gamma, t the step.
    Warm start: from epoch `switch_batch_epoch` on, batches have `switch_batch_size` examples. Optimizer switch:
    from epoch `switch_optimizer_epoch` on, a fresh `switch_optimizer` with lr `switch_lr` (default: lr) is used.
    `target_grad_norm` stops the run when the gradient norm of the epoch's last mini-batch (before clipping and
    noise; the full-batch gradient when batch_size >= n_train, i.e. gradient descent) falls below it.
    The full train and test sets are evaluated (a history row) every `eval_every` epochs, at the end, and every
    epoch when `target_train_acc` is set. `augment="shift"` shifts each training example by up to
    `shift_pixels` per spatial axis (zero fill).
    Training stops after `epochs` epochs, after `max_steps` steps, when train accuracy (full pass, eval mode,
    checked at the end of each epoch) reaches `target_train_acc`, or when the full training loss (same pass)
    falls to `target_train_loss` — the stop that compares regimes at matched training loss.
    `order_seed` (default: `seed`) seeds the batch order, augmentation and gradient noise, so two runs with the
    same `seed` and different `order_seed` start from the same x0 and see another data order (an A/A control).
    `polish="lbfgs"`: after the loop, full-batch L-BFGS (strong Wolfe line search) in float64 for at most
    `polish_steps` iterations, until the full-batch gradient norm is <= `target_grad_norm` (default 1e-5): how
    small nets are brought to a critical point (e.g. for exact Hessian spectra).
    Weight history: `snapshot_every` > 0 keeps every parameter (flat) at step 0 and every `snapshot_every` steps,
    in `snapshot_dtype` ("float32", or "float16" for half the memory and disk); `Run.snapshots` [steps, n_params].
    Jumps (Sinha et al., see `genlab.introspect`): `jump` ("none", "introspection", "linear", "quadratic",
    "noise", "introspection+noise") applied after the optimizer step at each of `jump_steps` (increasing, >= 10),
    from the run's own weights at steps 0, 0.4t, 0.7t and t; `jump_net` is the flat 4-40-1 predictor (241
    floats) the introspection and noise arms need. Test loss and accuracy just before and after each jump go
    into the next history row ("jumps").
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 10
    max_steps: int | None = None
    schedule: str = "constant"
    lr_step: int = 10
    lr_gamma: float = 0.1
    clip: float | None = None
    target_train_acc: float | None = None
    target_grad_norm: float | None = None
    target_train_loss: float | None = None
    order_seed: int | None = None
    polish: str = "none"
    polish_steps: int = 500
    switch_batch_epoch: int | None = None
    switch_batch_size: int | None = None
    switch_optimizer_epoch: int | None = None
    switch_optimizer: str | None = None
    switch_lr: float | None = None
    noise_eta: float = 0.0
    noise_gamma: float = 0.55
    loss: str = "cross_entropy"
    augment: str = "none"
    shift_pixels: int = 2
    snapshot_every: int = 0
    checkpoint_every: int = 1
    eval_every: int = 1
    snapshot_dtype: str = "float32"
    jump: str = "none"
    jump_steps: tuple[int, ...] = ()
    jump_net: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_choice("train.loss", self.loss, LOSSES)
        check_choice("train.augment", self.augment, AUGMENTATIONS)
        check_choice("train.polish", self.polish, POLISH)
        check_positive("train.polish_steps", self.polish_steps, integer=True)
        if self.switch_optimizer is not None:
            check_choice("train.switch_optimizer", self.switch_optimizer, OPTIMIZERS)
        check_positive("train.lr", self.lr)
        check_positive("train.batch_size", self.batch_size, integer=True)
        check_positive("train.epochs", self.epochs, integer=True)
        check_positive("train.lr_step", self.lr_step, integer=True)
        check_positive("train.lr_gamma", self.lr_gamma)
        check_positive("train.checkpoint_every", self.checkpoint_every, integer=True)
        check_positive("train.eval_every", self.eval_every, integer=True)
        check_positive("train.shift_pixels", self.shift_pixels, integer=True)
        for name in ("momentum", "weight_decay", "noise_eta", "noise_gamma", "snapshot_every"):
            check_positive(f"train.{name}", getattr(self, name), allow_zero=True, integer=name == "snapshot_every")
        for name in (
            "max_steps",
            "clip",
            "switch_batch_size",
            "switch_lr",
            "target_grad_norm",
            "target_train_loss",
        ):
            if getattr(self, name) is not None:
                check_positive(
                    f"train.{name}", getattr(self, name), integer=name in ("max_steps", "switch_batch_size")
                )
        for name in ("switch_batch_epoch", "switch_optimizer_epoch", "order_seed"):
            if getattr(self, name) is not None:
                check_positive(f"train.{name}", getattr(self, name), integer=True, allow_zero=True)
        if self.target_train_acc is not None and not 0 < self.target_train_acc <= 1:
            raise GenlabError(
                f"train.target_train_acc: expected a fraction in (0, 1], got {self.target_train_acc!r}"
            )
        if (self.switch_batch_epoch is None) != (self.switch_batch_size is None):
            raise GenlabError("train.switch_batch_epoch and train.switch_batch_size: set both or neither")
        if (self.switch_optimizer_epoch is None) != (self.switch_optimizer is None):
            raise GenlabError("train.switch_optimizer_epoch and train.switch_optimizer: set both or neither")
        self._check_history_and_jumps()

    def _check_history_and_jumps(self) -> None:
        for name in ("jump_steps", "jump_net"):  # lists given in code become tuples, as from a spec file
            object.__setattr__(self, name, tuple(getattr(self, name)))
        steps = list(self.jump_steps)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise GenlabError(f"train.jump_steps: expected increasing integers >= 10, got {steps!r}")
        check_choice("train.snapshot_dtype", self.snapshot_dtype, SNAPSHOT_DTYPES)
        check_choice("train.jump", self.jump, JUMPS)
        if any(b <= a for a, b in itertools.pairwise(steps)) or any(s < 10 for s in steps):
            raise GenlabError(f"train.jump_steps: expected increasing integers >= 10, got {steps!r}")
        if self.jump != "none" and not steps:
            raise GenlabError(f"train.jump_steps: jump={self.jump!r} needs at least one jump step")
        if self.jump in NEEDS_NET and len(self.jump_net) != N_PREDICTOR:
            raise GenlabError(
                f"train.jump_net: jump={self.jump!r} needs the {N_PREDICTOR} predictor weights, got "
                f"{len(self.jump_net)}"
            )
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in self.jump_net
        ):
            raise GenlabError("train.jump_net: expected finite numbers")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run. `seed` fixes x0 (the init) and the batch order."""

    data: dict = field(default_factory=lambda: {"name": "digits"})
    model: dict = field(default_factory=lambda: {"name": "mlp"})
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0

    def __post_init__(self) -> None:
        _check_section("data", self.data, sources())
        _check_section("model", self.model, {name: model_options(name) for name in MODELS})
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise GenlabError(f"seed: expected an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        return {
            "data": dict(self.data),
            "model": dict(self.model),
            "train": dataclasses.asdict(self.train),
            "seed": self.seed,
        }

    @property
    def run_id(self) -> str:
        """Hash of the full spec and the schema version (12 hex digits)."""
        raw = json.loads(json.dumps(self.to_dict()))
        raw["train"] = {k: v for k, v in raw["train"].items() if _LATE_DEFAULTS.get(k, ...) != v}
        canon = json.dumps({"schema": SCHEMA_VERSION, **raw}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    def replace(self, **overrides: Any) -> RunSpec:
        """A copy with dotted-key overrides, e.g. `spec.replace(**{"train.lr": 0.1, "seed": 2})`."""
        return from_dict(self.to_dict(), overrides)


def _check_section(section: str, value: object, accepted: dict[str, list[str]]) -> None:
    if not isinstance(value, dict) or "name" not in value:
        raise GenlabError(f"{section}: expected a mapping with a 'name' ({', '.join(sorted(accepted))})")
    name = value["name"]
    if name not in accepted:
        raise choice_error(f"{section}.name", name, accepted)
    for key in value:
        if key != "name" and key not in accepted[name]:
            raise unknown_key_error(f"{section}.{key}", name, accepted[name])


def _coerce(field_name: str, raw: object, annotation: str) -> object:
    """Check `raw` against a TrainSpec field annotation; ints are accepted where floats are expected, and floats
    with an exact integer value (1e3) where ints are."""
    hint = typing.get_type_hints(TrainSpec)[field_name]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if raw is None and type(None) in allowed:
        return None
    for kind in allowed:
        if typing.get_origin(kind) is tuple and isinstance(raw, list | tuple):
            item = typing.get_args(kind)[0]
            return tuple(_coerce_item(field_name, v, item, annotation) for v in raw)
        if kind is bool and isinstance(raw, bool):
            return raw
        if kind is int and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if kind is int and isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
            return int(raw)  # 1e3 typed for an integer option
        if kind is float and isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if kind is str and isinstance(raw, str):
            return raw
    raise GenlabError(f"train.{field_name}: expected {annotation}, got {raw!r}")


def _coerce_item(field_name: str, raw: object, kind: type, annotation: str) -> object:
    if kind is int and isinstance(raw, int | float) and not isinstance(raw, bool) and float(raw).is_integer():
        return int(raw)
    if kind is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    raise GenlabError(f"train.{field_name}: expected {annotation}, got an item {raw!r}")


_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?")


def numbers(value: object) -> object:
    """`value` with every string that a person would read as a number turned into one, in lists and mappings
    too: YAML 1.1 reads 1e-3 and 1E3 as strings; 1_000, .5 and 1e3 stay numbers (ints where exact and written
    without a point or exponent). inf/nan are left as strings: no option accepts them."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    return value


def parse_value(text: str) -> object:
    """Parse an override's value as YAML (numbers, booleans, lists, null), falling back to the raw string;
    number-like strings become numbers (see `numbers`)."""
    try:
        return numbers(yaml.safe_load(text))
    except yaml.YAMLError:
        return numbers(text)


def _set_dotted(tree: dict, key: str, value: object) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def from_dict(raw: dict, overrides: dict[str, object] | None = None) -> RunSpec:
    """Build a validated RunSpec from nested plain data plus dotted-key overrides."""
    if not isinstance(raw, dict):
        raise GenlabError(f"spec: expected a mapping with data/model/train/seed, got {type(raw).__name__}")
    tree = {"data": {"name": "digits"}, "model": {"name": "mlp"}, **json.loads(json.dumps(raw))}
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    top = {"data", "model", "train", "seed"}
    for key in tree:
        if key not in top:
            raise unknown_key_error(key, "a run spec", top)
    train_raw = tree.get("train", {}) or {}
    if not isinstance(train_raw, dict):
        raise GenlabError("train: expected a mapping of training options")
    fields = {f.name: f for f in dataclasses.fields(TrainSpec)}
    kwargs = {}
    for key, value in train_raw.items():
        if key not in fields:
            raise unknown_key_error(f"train.{key}", "train", fields)
        kwargs[key] = _coerce(key, value, str(fields[key].type))
    return RunSpec(data=tree["data"], model=tree["model"], train=TrainSpec(**kwargs), seed=tree.get("seed", 0))


def load_spec(path: str | Path | None, sets: list[str] | None = None) -> RunSpec:
    """A RunSpec from a YAML/JSON file (optional) and `key=value` override strings."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise GenlabError(f"spec: file {p} does not exist")
        try:
            raw = numbers(yaml.safe_load(p.read_text())) or {}
        except yaml.YAMLError as exc:
            raise GenlabError(f"spec: {p} is not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    overrides = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GenlabError(f"--set: expected key=value (e.g. train.lr=0.1), got {item!r}")
        overrides[key.strip()] = parse_value(value)
    return from_dict(raw, overrides)

"""The work behind `genlab probe`: curvature and landscape probes of stored runs, cached, with figures.

Every public function here is one `genlab probe` subcommand. It validates its options before touching a run,
checks the run folders (`--run`), loads the finished runs (`Store.load`), builds `Objective`s in eval mode on the
run's data with the run's loss (`train.loss`), calls the probe through `Store.cached_probe` (a repeated call
reads `RUN/probes/<name>-<key>.json`; `force=True` computes again and overwrites it), draws PNGs next to the
cached file (`<name>-<key>.png`) and returns a plain dict:

    {"probe": name, "summary": [lines], "result": the cached dict, "cache": its path, "cached": bool,
     "figures": [PNG paths]}

Curvature (one run, `data` = "train" or "test"): hessian (block Lanczos, float32), spectrum (exact, float64, at
most SPECTRUM_MAX_PARAMS parameters), density (SLQ; also the fraction of eigenvalues above 0 and above 1e-3,
1e-2, 1e-1 of the largest Ritz value, the outlier count, a PNG), trace (Hutch++, value +- standard error),
sharpness (Keskar et al.'s eps-sharpness, full space or a random subspace).

Landscapes evaluate every point on the train AND the test set in the same call; the runs of one call must have
the same `data` and `model` specs (they may differ in training and seed), and the result is cached in the first
run's folder. Grids (all coordinates exact, from integers; `steps` counts points between the models):
  interpolate A B   alpha theta_A + (1 - alpha) theta_B (alpha = 1 is A, 0 is B) on alpha = (i - m) / (steps - 1),
                    m = round(extent (steps - 1)): steps points on [0, 1] plus `extent` beyond each end
                    (default 31 points, extent 0.5: [-0.5, 1.5] in steps of 1/30); `path` linear or sine.
  plane A           theta_A + x d1 + y d2, steps x steps points on [-extent, extent]^2 (default 51 x 51,
                    extent 1), d1, d2 random filter-normalized directions from `seed` (biases and norm layers 0).
  barycentric A B C the triangle a w1 + b w2 + (1 - a - b) w3 with steps points per edge (default 31), extended
                    by `extent` beyond each edge (default 0). BatchNorm statistics follow the parameters.

This module never prints: progress goes to the optional `progress(line)` callback, and `genlab.cli` prints the
rest. It never trains (unfinished runs are refused) and never changes a run except its `probes/` folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from genlab import probes
from genlab.errors import GenlabError, check_choice, check_positive
from genlab.io import read_json
from genlab.probes import landscape, plots
from genlab.probes.lanczos import WHICH
from genlab.spec import RunSpec
from genlab.store import Store, model_from_state, spec_from_dir
from genlab.train import batch_loss, load_data

DATA_SETS = ("train", "test")
PATHS = landscape.PATHS
MODE = "eval"
SPECTRUM_MAX_PARAMS = 12_000
DENSITY_THRESHOLDS = (0.0, 1e-3, 1e-2, 1e-1)  # as fractions of the largest Ritz value

Progress = Callable[[str], None] | None
RunDirs = str | Path | Sequence[str | Path]


# ---------------------------------------------------------------------------------------------- runs
def _run_dirs(runs: RunDirs, n: int, name: str) -> list[Path]:
    dirs = [Path(runs)] if isinstance(runs, str | Path) else [Path(r) for r in runs]
    if len(dirs) != n:
        flags = " ".join(f"--run {x}" for x in "ABC"[:n])
        raise GenlabError(f"--run: `probe {name}` takes {n} run folder(s) ({flags}), got {len(dirs)}")
    return dirs


def _family(dirs: list[Path]) -> list[RunSpec]:
    """The runs' specs, checking they share data and model (a landscape mixes their parameters)."""
    specs = [spec_from_dir(d) for d in dirs]
    for d, spec in zip(dirs[1:], specs[1:], strict=True):
        for section in ("data", "model"):
            mine, first = getattr(spec, section), getattr(specs[0], section)
            if mine != first:
                raise GenlabError(
                    f"--run: {d.name} and {dirs[0].name} differ in {section} ({mine} vs {first}); "
                    "a landscape needs runs of the same model on the same data"
                )
    return specs


def _device(device: str) -> str:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise GenlabError(f"--device: not a torch device: {device!r} (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"--device: {device!r} asked for, but torch sees no CUDA device")
    return device


def _objectives(run_dir: Path, spec: RunSpec, sets: Sequence[str], device: str, dtype=None) -> tuple[dict, list]:
    """(the final state dict, one eval-mode Objective per data set in `sets`) of a finished run."""
    run = Store(run_dir.parent).load(run_dir.name)
    data = load_data(spec, device)
    loss_fn = partial(batch_loss, kind=spec.train.loss)
    model = model_from_state(spec, run.final_state, data).to(device)
    tensors = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    objs = [probes.Objective(model, loss_fn, data=tensors[s], mode=MODE, dtype=dtype) for s in sets]
    return run.final_state, objs


def _cached(run_dir: Path, name: str, params: dict, compute: Callable[[], dict], force: bool, say):
    """(result, cache path, read from cache?) through `Store.cached_probe`."""
    fresh: list[float] = []

    def timed() -> dict:
        t0 = time.perf_counter()
        out = compute()
        fresh.append(time.perf_counter() - t0)
        return out

    result = Store(run_dir.parent).cached_probe(run_dir.name, name, params, timed, force=force)
    say(f"{name}: done in {fresh[0]:.1f} s" if fresh else f"{name}: read from the cache")
    return result, _cache_path(run_dir, name, params), not fresh


def _cache_path(run_dir: Path, name: str, params: dict) -> Path:
    """The cached file of `Store.cached_probe` for (name, params): the one whose params match."""
    for path in sorted((run_dir / "probes").glob(f"{name}-*.json")):
        if read_json(path).get("params") == params:
            return path
    raise GenlabError(f"cache: no {name} result with params {params} under {run_dir / 'probes'}")


def _answer(name, result, path, cached, summary, figures=()) -> dict:
    return {
        "probe": name,
        "summary": summary,
        "result": result,
        "cache": str(path),
        "cached": cached,
        "figures": [str(f) for f in figures],
    }


def _g(x) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def _quiet(_line: str) -> None:
    """The progress callback when none is given."""


# ---------------------------------------------------------------------------------------------- curvature
def _curvature(name, runs, data, params, compute, describe, force, device, progress, draw=None) -> dict:
    """Shared flow of the one-run probes: check, load lazily, compute through the cache, draw, summarize."""
    check_choice("--data", data, DATA_SETS)
    check_positive("--seed", params.get("seed", 0), integer=True, allow_zero=True)
    device = _device(device)
    (run_dir,) = _run_dirs(runs, 1, name)
    spec = spec_from_dir(run_dir)
    say = progress or _quiet

    def work() -> dict:
        say(f"{name}: loading run {run_dir.name} and its {data} data")
        _, (obj,) = _objectives(run_dir, spec, [data], device, torch.float64 if name == "spectrum" else None)
        say(f"{name}: computing on {obj.n_examples} {data} examples, {obj.n_params:,} parameters")
        return {"n_params": obj.n_params, "n_examples": obj.n_examples, "device": device, **compute(obj)}

    result, path, cached = _cached(run_dir, name, {"data": data, "mode": MODE, **params}, work, force, say)
    figures = []
    if draw is not None:
        png = path.with_suffix(".png")
        if not cached or not png.exists():
            draw(result, png, f"run {run_dir.name}, {data} data")
        figures.append(png)
    return _answer(name, result, path, cached, describe(result), figures)


def hessian(
    runs: RunDirs, k: int = 5, which: str = "largest", data: str = "train", seed: int = 0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """The k extreme Hessian eigenvalues (`which`: largest, smallest or magnitude) by block Lanczos."""
    check_positive("--k", k, integer=True)
    check_choice("--which", which, WHICH)

    def compute(obj) -> dict:
        return probes.top_eigenvalues(obj, k=k, which=which, seed=seed).to_dict()

    def describe(r: dict) -> list[str]:
        label = {"largest": f"top-{k}", "smallest": f"{k} smallest", "magnitude": f"{k} largest-magnitude"}
        state = "converged" if r["converged"] else "NOT converged"
        return [
            f"{label[which]} eigenvalues ({r['params']['data']}, {r['mode']} mode): "
            + " ".join(_g(v) for v in r["eigenvalues"])
            + f"; {state}, {r['n_hvp']} HVPs, {r['seconds']:.2f} s"
        ]

    params = {"k": k, "which": which, "seed": seed}
    return _curvature("hessian", runs, data, params, compute, describe, force, device, progress)


def spectrum(
    runs: RunDirs, data: str = "train", *, force: bool = False, device: str = "cpu", progress: Progress = None
) -> dict:
    """Every Hessian eigenvalue, exactly (dense Hessian in float64); refuses above SPECTRUM_MAX_PARAMS."""

    def compute(obj) -> dict:
        if obj.n_params > SPECTRUM_MAX_PARAMS:
            raise GenlabError(
                f"spectrum: the model has {obj.n_params:,} parameters, more than {SPECTRUM_MAX_PARAMS:,} for an "
                "exact n x n Hessian; use `genlab probe density` (SLQ) or `genlab probe hessian` instead"
            )
        return probes.full_spectrum(obj, max_params=SPECTRUM_MAX_PARAMS).to_dict()

    def describe(r: dict) -> list[str]:
        ev = np.asarray(r["eigenvalues"])
        neg = int(np.sum(ev < -1e-6 * max(ev.max(), 0.0)))
        return [
            f"exact spectrum, {len(ev)} eigenvalues ({r['params']['data']}, {r['mode']} mode, float64): "
            f"largest {' '.join(_g(v) for v in ev[::-1][:5])}; smallest {_g(ev[0])}; "
            f"{neg} negative (< -1e-6 largest); {r['n_hvp']} HVPs, {r['seconds']:.2f} s"
        ]

    params = {"dtype": "float64"}
    return _curvature("spectrum", runs, data, params, compute, describe, force, device, progress)


def density(
    runs: RunDirs, n_probes: int = 5, lanczos_steps: int = 64, data: str = "train", seed: int = 0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """SLQ spectral density, the mass above DENSITY_THRESHOLDS x the top Ritz value, the outliers, a PNG."""
    check_positive("--n-probes", n_probes, integer=True)
    check_positive("--lanczos-steps", lanczos_steps, integer=True)

    def compute(obj) -> dict:
        d = probes.spectral_density(obj, n_probes=n_probes, lanczos_steps=lanczos_steps, seed=seed)
        top = float(d.nodes[d.weights > 0].max())
        above = [
            {"relative": t, "threshold": t * top, "fraction": d.fraction_above(t * top),
             "se": d.fraction_above_se(t * top)}
            for t in DENSITY_THRESHOLDS
        ]  # fmt: skip
        extra = {"top_ritz": top, "above": above}
        return {**d.to_dict(), **extra, "n_outliers": d.n_outliers(), "outlier_threshold": d.outlier_threshold()}

    def describe(r: dict) -> list[str]:
        nodes = np.asarray(r["nodes"])[np.asarray(r["weights"]) > 0]
        cut = r["outlier_threshold"]
        above = [
            f"{'0' if a['relative'] == 0 else format(a['relative'], 'g') + ' x top'} ({_g(a['threshold'])}): "
            f"{_g(a['fraction'])} +- {_g(a['se'])}"
            for a in r["above"]
        ]
        return [
            f"spectral density (SLQ, {r['n_probes']} probes x {r['lanczos_steps']} Lanczos steps, "
            f"{r['params']['data']}, {r['mode']} mode): Ritz values in [{_g(nodes.min())}, {_g(nodes.max())}]; "
            f"{r['n_hvp']} HVPs, {r['seconds']:.2f} s",
            f"outliers above the bulk: {r['n_outliers']}"
            + ("" if cut is None or math.isnan(cut) else f" (gap at {_g(cut)})"),
            "fraction of eigenvalues above " + "; ".join(above),
        ]

    params = {"n_probes": n_probes, "lanczos_steps": lanczos_steps, "seed": seed}
    return _curvature("density", runs, data, params, compute, describe, force, device, progress, _draw_density)


def _draw_density(r: dict, path: Path, where: str) -> Path:
    grid, dens = np.asarray(r["grid"]), np.asarray(r["density"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(grid, np.clip(dens, max(dens.max(), 1e-300) * 1e-12, None), color="tab:blue")
    cut = r["outlier_threshold"]
    if cut is not None and not math.isnan(cut):
        ax.axvline(cut, color="tab:red", ls="--", lw=0.8, label=f"outlier gap ({r['n_outliers']} above)")
        ax.legend(fontsize=8)
    ax.set(xlabel="eigenvalue", ylabel="density")
    ax.set_title(
        f"Hessian spectral density (SLQ, {r['n_probes']} probes x {r['lanczos_steps']} steps)\n"
        f"{where}, {r['mode']} mode",
        fontsize=9,
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def trace(
    runs: RunDirs, n_probes: int = 99, data: str = "train", seed: int = 0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """tr H by Hutch++ with `n_probes` Hessian-vector products, with its standard error."""
    check_positive("--n-probes", n_probes, integer=True)

    def compute(obj) -> dict:
        return probes.trace(obj, n_probes=n_probes, seed=seed).to_dict()

    def describe(r: dict) -> list[str]:
        return [
            f"trace ({r['method']}, {r['params']['data']}, {r['mode']} mode): {_g(r['value'])} +- {_g(r['se'])} "
            f"(standard error); {r['n_hvp']} HVPs, {r['seconds']:.2f} s"
        ]

    params = {"n_probes": n_probes, "seed": seed}
    return _curvature("trace", runs, data, params, compute, describe, force, device, progress)


def sharpness(
    runs: RunDirs, eps: float = 1e-3, subspace_dim: int | None = None, data: str = "train", seed: int = 0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """Keskar et al.'s eps-sharpness (percent) in the full space or a random `subspace_dim`-dim subspace."""
    check_positive("--eps", eps)
    if subspace_dim is not None:
        check_positive("--subspace-dim", subspace_dim, integer=True)

    def compute(obj) -> dict:
        return probes.eps_sharpness(obj, eps=eps, subspace_dim=subspace_dim, seed=seed).to_dict()

    def describe(r: dict) -> list[str]:
        space = "full space" if r["subspace_dim"] is None else f"random {r['subspace_dim']}-dim subspace"
        return [
            f"eps-sharpness (eps {_g(r['eps'])}, {space}, {r['params']['data']}, {r['mode']} mode): "
            f"phi = {_g(r['phi'])} % (loss {_g(r['loss'])} -> {_g(r['loss_max'])}); "
            f"{r['iterations']} iterations, {r['n_evals']} evaluations, {r['seconds']:.2f} s"
        ]

    params = {"eps": eps, "subspace_dim": subspace_dim, "seed": seed}
    return _curvature("sharpness", runs, data, params, compute, describe, force, device, progress)


# ---------------------------------------------------------------------------------------------- landscapes
def _check_grid(steps: int, extent: float, allow_zero: bool) -> None:
    check_positive("--steps", steps, integer=True)
    if steps < 2:
        raise GenlabError(f"--steps: expected an integer >= 2, got {steps}")
    check_positive("--extent", extent, allow_zero=allow_zero)


def _landscape(name, runs, n, params, compute, describe, force, device, progress) -> dict:
    """Shared flow of the landscapes: check the runs, compute on train and test through the cache, draw."""
    device = _device(device)
    dirs = _run_dirs(runs, n, name)
    specs = _family(dirs)
    say = progress or _quiet

    def work() -> dict:
        say(f"{name}: loading {n} run(s) and their train and test data")
        state, (train, test) = _objectives(dirs[0], specs[0], DATA_SETS, device)
        states = [state] + [Store(d.parent).load(d.name).final_state for d in dirs[1:]]
        say(f"{name}: evaluating on {train.n_examples} train and {test.n_examples} test examples")
        return {"runs": [d.name for d in dirs], "device": device, "landscape": compute(train, test, states)}

    params = {"runs": [d.name for d in dirs], "mode": MODE, **params}
    result, path, cached = _cached(dirs[0], name, params, work, force, say)
    png = path.with_suffix(".png")
    if not cached or not png.exists():
        say(f"{name}: drawing {png.name}")
        plots.plot(_from_dict(result["landscape"]), png)
    return _answer(name, result, path, cached, describe(result), [png])


def _from_dict(d: dict) -> landscape.Landscape:
    """A Landscape back from its cached `to_dict()` (None -> NaN, "inf" -> inf)."""
    kw = {k: d[k] for k in landscape.Landscape.__dataclass_fields__}
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        kw[key] = None if d[key] is None else np.asarray(d[key], dtype=float)
    kw["axes"] = {k: np.asarray(v, dtype=float) for k, v in d["axes"].items()}
    return landscape.Landscape(**kw)


def _cost(lap: dict) -> str:
    c = lap["cost"]
    return f"{c['points']} points, {c['forward_passes']} forward passes, {c['seconds']:.2f} s"


def interpolate(
    runs: RunDirs, steps: int = 31, extent: float = 0.5, path: str = "linear", *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """Train and test loss/accuracy from run B (alpha 0) to run A (alpha 1) and `extent` beyond, and a PNG."""
    _check_grid(steps, extent, allow_zero=True)
    check_choice("--path", path, PATHS)
    s = steps - 1
    m = round(extent * s)
    alphas = (np.arange(s + 2 * m + 1) - m) / s

    def compute(train, test, states) -> dict:
        return landscape.interpolate(train, states[0], states[1], alphas, path, test=test).to_dict()

    def describe(r: dict) -> list[str]:
        lap = r["landscape"]
        a = np.asarray(lap["axes"]["alpha"])
        inside = (a >= 0) & (a <= 1)
        lines = [
            f"interpolate ({path}) A = {r['runs'][0]} (alpha 1) -> B = {r['runs'][1]} (alpha 0), "
            f"alpha in [{_g(a[0])}, {_g(a[-1])}], {lap['mode']} mode; {_cost(lap)}"
        ]
        for name in DATA_SETS:
            loss = np.asarray(lap[f"{name}_loss"], dtype=float)
            acc = np.asarray(lap[f"{name}_acc"], dtype=float)
            top = int(np.nanargmax(np.where(inside, loss, -np.inf)))
            lines.append(
                f"  {name + ':':<6} loss A {_g(loss[a == 1][0])}, B {_g(loss[a == 0][0])}, "
                f"max on [0, 1] {_g(loss[top])} at alpha {_g(a[top])}; accuracy A {_g(acc[a == 1][0])}, "
                f"B {_g(acc[a == 0][0])}, min on [0, 1] {_g(np.nanmin(acc[inside]))}"
            )
        return lines

    params = {"steps": steps, "extent": m / s, "path": path, "bn": "interpolate"}
    return _landscape("interpolate", runs, 2, params, compute, describe, force, device, progress)


def plane(
    runs: RunDirs, steps: int = 51, extent: float = 1.0, seed: int = 0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """Train and test loss/accuracy on a plane around the run along two random filter-normalized directions."""
    _check_grid(steps, extent, allow_zero=False)
    check_positive("--seed", seed, integer=True, allow_zero=True)

    def compute(train, test, _states) -> dict:
        return landscape.plane(train, extent=extent, steps=steps, test=test, seed=seed).to_dict()

    def describe(r: dict) -> list[str]:
        lap = r["landscape"]
        dirs = lap["directions"]
        lines = [
            f"plane around {r['runs'][0]}: {steps} x {steps} points on [-{_g(extent)}, {_g(extent)}]^2, "
            f"{dirs['normalization']}-normalized random directions (seed {dirs['seed']}), {lap['mode']} mode; "
            f"{_cost(lap)}"
        ]
        for name in DATA_SETS:
            loss = np.asarray(lap[f"{name}_loss"], dtype=float)
            c = lap["center"]
            lines.append(
                f"  {name + ':':<6} center loss {_g(c[f'{name}_loss'])}, accuracy {_g(c[f'{name}_acc'])}; "
                f"loss on the plane {_g(np.nanmin(loss))} .. {_g(np.nanmax(loss))}"
            )
        return lines

    params = {"steps": steps, "extent": extent, "seed": seed, "normalization": "filter", "ignore": "biasbn"}
    return _landscape("plane", runs, 1, params, compute, describe, force, device, progress)


def barycentric(
    runs: RunDirs, steps: int = 31, extent: float = 0.0, *,
    force: bool = False, device: str = "cpu", progress: Progress = None,
) -> dict:  # fmt: skip
    """Train and test loss/accuracy over the triangle of three runs (w1, w2, w3 = A, B, C), and a PNG."""
    _check_grid(steps, extent, allow_zero=True)

    def compute(train, test, states) -> dict:
        return landscape.barycentric(train, states, steps=steps, extend=extent, test=test).to_dict()

    def describe(r: dict) -> list[str]:
        lap = r["landscape"]
        a = np.asarray(lap["axes"]["a"])[:, None]
        b = np.asarray(lap["axes"]["b"])[None, :]
        inside = (a >= 0) & (b >= 0) & (a + b <= 1)
        corners = [(a == 1) & (b == 0), (a == 0) & (b == 1), (a == 0) & (b == 0)]
        runs_named = ", ".join(f"w{i + 1} = {rid}" for i, rid in enumerate(r["runs"]))
        lines = [f"barycentric triangle {runs_named}, {lap['mode']} mode; {_cost(lap)}"]
        for name in DATA_SETS:
            loss = np.asarray(lap[f"{name}_loss"], dtype=float)
            acc = np.asarray(lap[f"{name}_acc"], dtype=float)
            lines.append(
                f"  {name + ':':<6} loss at w1 w2 w3 {' '.join(_g(loss[c][0]) for c in corners)}; "
                f"max in the triangle {_g(np.nanmax(loss[inside]))}, min accuracy {_g(np.nanmin(acc[inside]))}"
            )
        return lines

    params = {"steps": steps, "extent": extent, "bn": "interpolate"}
    return _landscape("barycentric", runs, 3, params, compute, describe, force, device, progress)

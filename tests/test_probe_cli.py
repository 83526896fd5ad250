"""`genlab probe ...`: printed numbers equal independent computations, results are cached, PNGs are written, and
bad input gets one `genlab: error:` line.

Three tiny runs of one MLP (seeds 0, 1, 2) and one of another width are trained once for the module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import genlab.probes
import genlab.probes.landscape
from genlab.cli import main
from genlab.io import read_json
from genlab.probes import Objective
from genlab.spec import RunSpec, TrainSpec
from genlab.store import Store, model_from_state, spec_from_dir
from genlab.train import evaluate, load_data

DATA = {"name": "blobs", "n_classes": 3, "dim": 6, "n_train": 120, "n_test": 60, "spread": 2.0}


def _spec(seed: int, width: int = 8) -> RunSpec:
    train = TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=32, epochs=2)
    return RunSpec(data=DATA, model={"name": "mlp", "widths": [width]}, train=train, seed=seed)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    store = Store(tmp_path_factory.mktemp("runs"))
    specs = {"A": _spec(0), "B": _spec(1), "C": _spec(2), "wide": _spec(0, width=12)}
    return {name: str(store.run_dir(store.get_or_train(spec).spec)) for name, spec in specs.items()}


def _probe(capsys, *argv: str) -> list[str]:
    assert main(["probe", *argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet
    return captured.out.splitlines()


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _after(line: str, start: str, end: str) -> list[float]:
    """The numbers in `line` between `start` and the next `end`."""
    return _numbers(line.split(start, 1)[1].split(end, 1)[0])


def _saved(lines: list[str], word: str = "saved") -> Path:
    (path,) = [Path(ln.split(": ", 1)[1]) for ln in lines if ln.startswith(f"{word}: ")]
    assert path.exists()
    return path


def _model(run_dir: str, dtype=torch.float32):
    spec = spec_from_dir(run_dir)
    run = Store(Path(run_dir).parent).load(Path(run_dir).name)
    data = load_data(spec)
    return model_from_state(spec, run.final_state, data).to(dtype), data


def _exact_eigenvalues(run_dir: str) -> np.ndarray:
    """Ascending eigenvalues of torch.func.hessian of the mean cross-entropy on the train set, float64."""
    model, data = _model(run_dir, torch.float64)
    named = dict(model.named_parameters())
    theta = torch.cat([p.detach().reshape(-1) for p in named.values()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, p in named.items():
            params[name] = flat[i : i + p.numel()].view_as(p)
            i += p.numel()
        return F.cross_entropy(functional_call(model, params, (data.x_train.double(),)), data.y_train)

    return torch.linalg.eigvalsh(torch.func.hessian(loss)(theta)).numpy()


def _objective(run_dir: str) -> Objective:
    model, data = _model(run_dir)
    return Objective(model, F.cross_entropy, data=(data.x_train, data.y_train), mode="eval")


def _boom(*args, **kwargs):
    raise AssertionError("the probe ran although its result is cached")


def test_hessian_matches_exact_eigenvalues_caches_and_force_recomputes(runs, capsys, monkeypatch):
    lines = _probe(capsys, "hessian", "--run", runs["A"], "--k", "3")
    assert lines[0].startswith("top-3 eigenvalues (train, eval mode):") and "converged" in lines[0]
    printed = _after(lines[0], "mode):", ";")
    exact = _exact_eigenvalues(runs["A"])[::-1][:3]
    assert printed == pytest.approx(exact, rel=1e-3, abs=1e-6)
    cache = _saved(lines)
    assert cache.parent.name == "probes" and cache.name.startswith("hessian-")
    assert read_json(cache)["eigenvalues"] == pytest.approx(printed, rel=1e-5)

    test_line = _probe(capsys, "hessian", "--run", runs["A"], "--k", "3", "--data", "test")[0]
    assert "(test, eval mode)" in test_line and _after(test_line, "mode):", ";")[0] != printed[0]

    monkeypatch.setattr(genlab.probes, "top_eigenvalues", _boom)
    again = _probe(capsys, "hessian", "--run", runs["A"], "--k", "3")
    assert again[0] == lines[0] and _saved(again, "cached") == cache
    with pytest.raises(AssertionError, match="cached"):
        main(["probe", "hessian", "--run", runs["A"], "--k", "3", "--quiet", "--force"])


def test_spectrum_density_trace_sharpness_print_the_probes_numbers(runs, capsys):
    exact = _exact_eigenvalues(runs["A"])
    line = _probe(capsys, "spectrum", "--run", runs["A"])[0]
    assert f"{len(exact)} eigenvalues" in line
    assert _after(line, "largest", ";") == pytest.approx(exact[::-1][:5], rel=1e-5, abs=1e-9)
    assert _after(line, "smallest", ";")[0] == pytest.approx(exact[0], rel=1e-5, abs=1e-9)

    obj = _objective(runs["A"])
    lines = _probe(capsys, "density", "--run", runs["A"], "--n-probes", "3", "--lanczos-steps", "20")
    direct = genlab.probes.spectral_density(obj, n_probes=3, lanczos_steps=20)
    assert _after(lines[1], "bulk:", "(")[0] == direct.n_outliers()
    assert _after(lines[2], "above 0 (0):", "+-")[0] == pytest.approx(direct.fraction_above(0.0), rel=1e-5)
    (png,) = [Path(ln.split(": ", 1)[1]) for ln in lines if ln.startswith("figure: ")]
    assert png == _saved(lines).with_suffix(".png") and png.stat().st_size > 1000

    line = _probe(capsys, "trace", "--run", runs["A"], "--n-probes", "30")[0]
    value, se = _after(line, "mode):", "(standard")
    assert value == pytest.approx(genlab.probes.trace(obj, n_probes=30).value, rel=1e-5)
    assert abs(value - exact.sum()) <= 5 * se + 1e-3 * abs(exact.sum())

    line = _probe(capsys, "sharpness", "--run", runs["A"], "--eps", "1e-2", "--subspace-dim", "5")[0]
    assert "random 5-dim subspace" in line
    direct = genlab.probes.eps_sharpness(obj, eps=1e-2, subspace_dim=5)
    assert _after(line, "phi =", "%")[0] == pytest.approx(direct.phi, rel=1e-4) and direct.phi > 0


def test_landscapes_print_model_losses_write_pngs_and_reuse_the_cache(runs, capsys, monkeypatch):
    def losses(name: str) -> tuple[float, float]:
        model, data = _model(runs[name])
        return evaluate(model, data.x_train, data.y_train)[0], evaluate(model, data.x_test, data.y_test)[0]

    (a_train, a_test), (b_train, b_test), (c_train, _) = losses("A"), losses("B"), losses("C")
    commands = {
        "interpolate": ["--run", runs["A"], "--run", runs["B"], "--steps", "5", "--extent", "0.25"],
        "plane": ["--run", runs["A"], "--steps", "5"],
        "barycentric": ["--run", runs["A"], "--run", runs["B"], "--run", runs["C"], "--steps", "4"],
    }
    first = {name: _probe(capsys, name, *argv) for name, argv in commands.items()}
    inter, plane, bary = first["interpolate"], first["plane"], first["barycentric"]
    assert "alpha in [-0.25, 1.25]" in inter[0] and "7 points" in inter[0]
    assert _after(inter[1], "loss A", ",")[0] == pytest.approx(a_train, rel=1e-5)
    assert _after(inter[1], "B", ",")[0] == pytest.approx(b_train, rel=1e-5)
    assert _after(inter[2], "loss A", ",")[0] == pytest.approx(a_test, rel=1e-5)
    assert _after(inter[2], "B", ",")[0] == pytest.approx(b_test, rel=1e-5)
    assert "5 x 5 points" in plane[0] and "seed 0" in plane[0]
    assert _after(plane[1], "center loss", ",")[0] == pytest.approx(a_train, rel=1e-5)
    assert _after(plane[2], "center loss", ",")[0] == pytest.approx(a_test, rel=1e-5)
    assert _after(bary[1], "w1 w2 w3", ";") == pytest.approx([a_train, b_train, c_train], rel=1e-5)
    for name, lines in first.items():
        cache = _saved(lines)
        assert cache.parent == Path(runs["A"]) / "probes" and cache.name.startswith(f"{name}-")
        assert read_json(cache)["landscape"]["test_loss"] is not None  # train and test in the same call
        (png,) = [Path(ln.split(": ", 1)[1]) for ln in lines if ln.startswith("figure: ")]
        assert png == cache.with_suffix(".png") and png.stat().st_size > 1000

    # cached: the probes are not called again; a deleted figure is drawn again from the cached numbers
    for name in commands:
        monkeypatch.setattr(genlab.probes.landscape, name, _boom)
    Path(first["plane"][-1].split(": ", 1)[1]).unlink()
    for name, argv in commands.items():
        again = _probe(capsys, name, *argv)
        assert again[:-2] == first[name][:-2] and _saved(again, "cached") == _saved(first[name])
        assert Path(again[-1].split(": ", 1)[1]).exists()
    # progress goes to stderr unless --quiet; stdout keeps only the results
    assert main(["probe", "plane", *commands["plane"]]) == 0
    captured = capsys.readouterr()
    assert "genlab probe: plane: read from the cache" in captured.err and "genlab probe" not in captured.out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["hessian", "--k", "0"], "--k"),
        (["hessian", "--which", "foo"], "--which"),
        (["trace", "--run", "NOT_A_RUN"], "not a genlab run folder"),
    ],
)
def test_bad_input_in_a_subprocess_is_one_line(runs, tmp_path, argv, needle):
    argv = [a.replace("NOT_A_RUN", str(tmp_path)) for a in argv]
    if "--run" not in argv:
        argv += ["--run", runs["A"]]
    proc = subprocess.run(
        [sys.executable, "-m", "genlab.cli", "probe", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["sharpness", "--run", "A", "--eps=-1"], "--eps"),
        (["sharpness", "--run", "A", "--subspace-dim", "0"], "--subspace-dim"),
        (["density", "--run", "A", "--n-probes", "0"], "--n-probes"),
        (["hessian", "--run", "A", "--data", "val"], "--data"),
        (["hessian", "--run", "A", "--k", "1000"], "k: expected at most"),
        (["trace", "--run", "A", "--k", "3"], "unrecognized arguments"),
        (["interpolate", "--run", "A", "--run", "wide"], "differ in model"),
        (["barycentric", "--run", "A", "--run", "B"], "takes 3 run folder"),
        (["plane", "--run", "A", "--steps", "1"], "--steps"),
        (["plane", "--run", "A", "--extent", "0"], "--extent"),
        (["interpolate", "--run", "A", "--run", "B", "--path", "zigzag"], "--path"),
        (["hessian", "--run", "UNFINISHED"], "not a finished run"),
        (["hessian"], "--run"),
    ],
)
def test_bad_input_is_one_line(runs, tmp_path, capsys, argv, needle):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "spec.json").write_text((Path(runs["A"]) / "spec.json").read_text())
    named = {**runs, "UNFINISHED": str(unfinished)}
    assert main(["probe", *[named.get(a, a) for a in argv], "--quiet"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: ") and needle in lines[0], captured.err
    assert captured.out == ""

"""The `genlab` command line. The only module that talks to the terminal.

Bad input anywhere (a `GenlabError`, or an argparse error) prints ONE line `genlab: error: ...` to stderr and
exits with status 2; Ctrl-C exits 130 and keeps every finished run and checkpoint (run again to resume).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from genlab import __version__, studies
from genlab.data import sources
from genlab.errors import GenlabError
from genlab.executors import EXECUTORS
from genlab.models import MODELS, model_options, n_params
from genlab.spec import load_spec
from genlab.store import Store, default_root


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise GenlabError(message)


def _out(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else default_root()


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def cmd_train(args: argparse.Namespace) -> None:
    from genlab.train import build_model, load_data

    spec = load_spec(args.spec, args.set)
    store = Store(_out(args))
    data = load_data(spec)
    n = n_params(build_model(spec, data))
    run_dir = store.run_dir(spec)
    print(f"run {spec.run_id}: {run_dir}")
    print(f"data {data.description}; model {spec.model['name']} with {n:,} parameters")
    if store.is_done(spec):
        run = store.load(spec.run_id)
        print(f"already {run.status} (cached): " + "  ".join(f"{k} {_fmt(run.final[k])}" for k in _COLS[2:]))
        return
    if not args.quiet:
        print("  ".join(f"{c:>10}" for c in _COLS))

    def show(row: dict) -> None:
        if not args.quiet:
            print("  ".join(f"{_fmt(row[c]):>10}" for c in _COLS), flush=True)

    run = store.get_or_train(spec, progress=show, device=args.device)
    extra = f" at step {run.diverged_step}" if run.diverged_step else ""
    print(f"{run.status}{extra} ({run.stop_reason}) after {run.steps} steps, {run.seconds:.1f} s: {run_dir}")


_COLS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")


def cmd_runs(args: argparse.Namespace) -> None:
    rows = Store(_out(args)).list_runs()
    if not rows:
        print(f"no runs under {_out(args)}")
        return
    cols = ("run_id", "data", "model", "regime", "seed", "status", "train_acc", "test_acc")
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))


def cmd_list(args: argparse.Namespace) -> None:
    print("studies (genlab run STUDY --preset P):")
    for name, study in studies.STUDIES.items():
        print(f"  {name}: {study.title}")
        for p, preset in study.presets.items():
            print(f"      {p:<6} {preset.description}")
    print("data sources (data.name, then options):")
    for name, opts in sources().items():
        print(f"  {name}: {', '.join(opts)}")
    print("models (model.name, then options):")
    for name in MODELS:
        print(f"  {name}: {', '.join(model_options(name))}")


def _exec_kwargs(args: argparse.Namespace) -> dict:
    """The options `run` and `reproduce` share."""
    return {
        "preset": args.preset,
        "seeds": args.seeds,
        "out": _out(args),
        "executor": args.executor,
        "workers": args.workers,
        "address": args.address,
        "device": args.device,
        "quiet": args.quiet,
        "data_root": args.data_root,
    }


def cmd_run(args: argparse.Namespace) -> None:
    from genlab.runner import run_study

    result = run_study(args.study, **_exec_kwargs(args))
    for c in result["claims"]:
        lo, hi = (_fmt(v) for v in c["ci"])
        ctrl = c.get("control") or {}
        flags = " degenerate" if c.get("degenerate") else ""
        print(
            f"{c['id']:<14} {c['verdict']:<14} effect {_fmt(c['effect'])}  CI [{lo}, {hi}]  "
            f"control {ctrl.get('verdict', 'none')}{flags}  {c.get('summary', '')}"
        )
    print(f"report: {_out(args) / args.study / 'index.html'}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from genlab.runner import reproduce

    print(f"index: {reproduce(only=args.only, **_exec_kwargs(args))}")


def cmd_probe(args: argparse.Namespace) -> None:
    from genlab import probing

    def say(line: str) -> None:
        print(f"genlab probe: {line}", file=sys.stderr, flush=True)

    opts = {k: v for k, v in vars(args).items() if k not in ("command", "fn", "probe", "quiet")}
    out = getattr(probing, args.probe)(progress=None if args.quiet else say, **opts)
    print("\n".join(out["summary"]))
    print(f"{'cached' if out['cached'] else 'saved'}: {out['cache']}")
    for path in out["figures"]:
        print(f"figure: {path}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}")
    return value


def _add_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=_positive_int, help="number of seeds (default: the preset's)")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="where runs train (default local)")
    p.add_argument("--workers", type=_positive_int, help="process-pool size (default: one per core)")
    p.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    p.add_argument("--data-root", help="folder with MNIST/CIFAR files, for `paper` presets")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="genlab", description="Numerical experiments on deep-learning generalization.")
    top.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", help="store / report folder (default: $GENLAB_HOME or runs/)")
        p.add_argument("--quiet", action="store_true", help="no progress output")
        p.add_argument("--device", default="cpu", help="torch device for training (default cpu)")

    p = sub.add_parser("train", help="train one run from a spec file and/or --set overrides")
    p.add_argument("spec", nargs="?", help="YAML/JSON spec with data/model/train/seed sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=0.1")
    common(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("runs", help="list stored runs")
    common(p)
    p.set_defaults(fn=cmd_runs)

    p = sub.add_parser("list", help="registered studies and presets, data sources, models")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("run", help="run one study: plan, train, analyze, verdicts, report")
    p.add_argument("study", choices=list(studies.STUDIES))
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "paper"))
    _add_exec(p)
    common(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("reproduce", help="run every study and write OUT/index.html")
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--only", nargs="+", choices=list(studies.STUDIES), help="run only these studies")
    _add_exec(p)
    common(p)
    p.set_defaults(fn=cmd_reproduce)
    _add_probe(sub)
    return top


def _probe_option(p: argparse.ArgumentParser, flag: str, text: str, **kw) -> None:
    """An option left out of the namespace when not given, so the probing function's default applies."""
    p.add_argument(flag, default=argparse.SUPPRESS, help=text, **kw)


def _add_probe(sub: argparse._SubParsersAction) -> None:
    """`genlab probe NAME --run RUN_DIR ...`; unset options take the defaults of `genlab.probing.NAME`."""
    p = sub.add_parser("probe", help="curvature and landscape probes of stored runs (cached in the run folder)")
    probes = p.add_subparsers(dest="probe", required=True, parser_class=_Parser)
    helps = {
        "hessian": "top-k Hessian eigenvalues (Lanczos)",
        "spectrum": "exact Hessian spectrum (small models)",
        "density": "spectral density (SLQ), outliers, PNG",
        "trace": "Hessian trace (Hutch++) +- standard error",
        "sharpness": "Keskar et al.'s eps-sharpness",
        "interpolate": "train/test loss from --run B to --run A and beyond, PNG",
        "plane": "train/test loss on a random plane around --run A, PNG",
        "barycentric": "train/test loss over the triangle of three runs, PNG",
    }
    for name, text in helps.items():
        q = probes.add_parser(name, help=text)
        q.set_defaults(fn=cmd_probe)
        q.add_argument("--run", dest="runs", action="append", required=True, metavar="RUN_DIR", help="run folder")
        q.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
        q.add_argument("--force", action="store_true", help="recompute, ignoring and overwriting the cache")
        q.add_argument("--device", default="cpu", help="torch device (default cpu)")
        opt = partial(_probe_option, q)
        if name in ("hessian", "spectrum", "density", "trace", "sharpness"):
            opt("--data", "train or test (default train)")
        if name == "hessian":
            opt("--k", "number of eigenvalues (default 5)", type=int)
            opt("--which", "largest, smallest or magnitude (default largest)")
        if name in ("density", "trace"):
            opt("--n-probes", "random probe vectors (default 5 for density, 99 for trace)", type=int)
        if name == "density":
            opt("--lanczos-steps", "Lanczos steps per probe (default 64)", type=int)
        if name == "sharpness":
            opt("--eps", "box size (default 1e-3)", type=float)
            opt("--subspace-dim", "random subspace dimension (default: the full space)", type=int)
        if name in ("hessian", "density", "trace", "sharpness", "plane"):
            opt("--seed", "random vectors / directions (default 0)", type=int)
        if name in ("interpolate", "plane", "barycentric"):
            default = {"interpolate": "31, points on [0, 1]", "plane": "51 per axis", "barycentric": "31 per edge"}
            opt("--steps", f"grid points (default {default[name]})", type=int)
            default = {"interpolate": "0.5 beyond each run", "plane": "1", "barycentric": "0 beyond each edge"}
            opt("--extent", f"grid reach (default {default[name]})", type=float)
        if name == "interpolate":
            opt("--path", "linear or sine (default linear)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        args.fn(args)
    except GenlabError as exc:
        print(f"genlab: error: {(str(exc).splitlines() or [repr(exc)])[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted; finished runs and checkpoints are kept, run again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Matplotlib figures of landscape results (Agg backend): train and test side by side, never mixed.

Each function takes a result of `genlab.probes.landscape` and a path, writes the figure and returns the path.
  plot_parametric   1-d (interpolate, line, barrier profile): loss on a log axis (left), accuracy (right),
                    train solid, test dashed.
  plot_contour      plane: contour lines (filled=True: filled contours) of the loss, center marked.
  plot_heatmap      plane / bilinear: the loss as an image (log color scale), center marked.
  plot_surface      plane: 3-d surface of the loss.
  plot_barycentric  triangle of three models (Im et al.), corners w1, w2, w3 marked.
  plot_bilinear     square of four models, corners w1..w4 marked.
  plot              the default figure for the result's kind.
This module only draws: it computes nothing about models and must not import genlab.train / store / studies.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from genlab.errors import GenlabError
from genlab.probes.landscape import Barrier, Landscape


def _sets(result: Landscape) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = [("train", result.train_loss, result.train_acc)]
    if result.test_loss is not None:
        out.append(("test", result.test_loss, result.test_acc))
    return out


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _need(result, kinds: tuple[str, ...], fn: str) -> Landscape:
    if isinstance(result, Barrier):
        result = result.profile
    if not isinstance(result, Landscape) or result.kind not in kinds:
        kind = getattr(result, "kind", type(result).__name__)
        raise GenlabError(f"result: {fn} draws kinds {', '.join(kinds)}; got {kind}")
    return result


def _title(result: Landscape) -> str:
    bits = [result.kind, f"mode={result.mode}"]
    if result.bn != "fixed":
        bits.append(f"bn={result.bn}")
    if result.directions:
        d = result.directions
        bits.append(f"dirs: {d.get('normalization')}, seed {d.get('seed')}")
    return ", ".join(bits)


def plot_parametric(result: Landscape | Barrier, path) -> Path:
    """Loss (log, left axis) and accuracy (right axis) along a 1-d path; train solid, test dashed."""
    result = _need(result, ("interpolate", "line"), "plot_parametric")
    x = next(iter(result.axes.values()))
    fig, ax = plt.subplots(figsize=(6, 4))
    acc_ax = ax.twinx()
    for name, loss, acc in _sets(result):
        style = "-" if name == "train" else "--"
        ax.plot(x, np.clip(loss, 1e-12, None), style, color="tab:blue", label=f"{name} loss")
        acc_ax.plot(x, acc, style, color="tab:red", label=f"{name} accuracy")
    ax.set_yscale("log")
    ax.set_xlabel(next(iter(result.axes)))
    ax.set_ylabel("loss", color="tab:blue")
    acc_ax.set_ylabel("accuracy", color="tab:red")
    lines = ax.get_lines() + acc_ax.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="best")
    ax.set_title(_title(result), fontsize=9)
    return _save(fig, path)


def _panels(result: Landscape, projection: str | None = None):
    sets = _sets(result)
    kw = {"subplot_kw": {"projection": projection}} if projection else {}
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.4), squeeze=False, **kw)
    fig.suptitle(_title(result), fontsize=9)
    return fig, list(zip(axes[0], sets, strict=True))


def _log_safe(values: np.ndarray) -> np.ndarray:
    """Losses for a log color scale: entries <= 0 (float32 underflow) become the smallest positive value."""
    positive = values[np.isfinite(values) & (values > 0)]
    floor = positive.min() if len(positive) else 1e-12
    return np.where(np.isfinite(values) & (values <= 0), floor, values)


def _levels(values: np.ndarray, n: int = 25) -> np.ndarray:
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) == 0 or finite.min() == finite.max():
        return np.linspace(np.nanmin(values), np.nanmax(values) + 1e-12, n)
    return np.geomspace(finite.min(), finite.max(), n)


def plot_contour(result: Landscape, path, filled: bool = False, levels: int = 25) -> Path:
    """Contours of the train (and test) loss over a plane, center marked with a cross."""
    result = _need(result, ("plane",), "plot_contour")
    x, y = result.axes["x"], result.axes["y"]
    fig, panels = _panels(result)
    for ax, (name, loss, _) in panels:
        loss = _log_safe(loss)
        lv = _levels(loss, levels)
        draw = ax.contourf if filled else ax.contour
        cs = draw(x, y, loss.T, levels=lv, norm=LogNorm() if lv[0] > 0 else None, cmap="viridis")
        if not filled:
            ax.clabel(cs, fontsize=6, fmt="%.3g")
        fig.colorbar(cs, ax=ax)
        ax.plot([0], [0], "rx", markersize=9)
        ax.set(title=f"{name} loss", xlabel="d1", ylabel="d2", aspect="equal")
    return _save(fig, path)


def plot_heatmap(result: Landscape, path) -> Path:
    """The loss as an image (log color scale): plane (center marked) or bilinear square."""
    result = _need(result, ("plane", "bilinear"), "plot_heatmap")
    (n0, a0), (n1, a1) = list(result.axes.items())
    fig, panels = _panels(result)
    for ax, (name, loss, _) in panels:
        positive = np.nanmin(loss) > 0
        im = ax.imshow(
            loss.T,
            origin="lower",
            extent=(a0[0], a0[-1], a1[0], a1[-1]),
            norm=LogNorm() if positive else None,
            cmap="magma",
            aspect="auto",
        )
        fig.colorbar(im, ax=ax)
        if result.kind == "plane":
            ax.plot([0], [0], "c+", markersize=10)
        ax.set(title=f"{name} loss", xlabel=n0, ylabel=n1)
    return _save(fig, path)


def plot_surface(result: Landscape, path) -> Path:
    """3-d surface of the loss over a plane."""
    result = _need(result, ("plane",), "plot_surface")
    gx, gy = np.meshgrid(result.axes["x"], result.axes["y"], indexing="ij")
    fig, panels = _panels(result, projection="3d")
    for ax, (name, loss, _) in panels:
        ax.plot_surface(gx, gy, loss, cmap="viridis", linewidth=0, antialiased=True)
        ax.set(title=f"{name} loss", xlabel="d1", ylabel="d2", zlabel="loss")
    return _save(fig, path)


_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])  # w1, w2, w3


def plot_barycentric(result: Landscape, path, levels: int = 25) -> Path:
    """Filled contours of the loss over the triangle of three models (corners w1, w2, w3)."""
    result = _need(result, ("barycentric",), "plot_barycentric")
    ga, gb = np.meshgrid(result.axes["a"], result.axes["b"], indexing="ij")
    fig, panels = _panels(result)
    for ax, (name, loss, _) in panels:
        loss = _log_safe(loss)
        ok = np.isfinite(loss)
        a, b = ga[ok], gb[ok]
        xy = a[:, None] * _CORNERS[0] + b[:, None] * _CORNERS[1] + (1 - a - b)[:, None] * _CORNERS[2]
        lv = _levels(loss[ok], levels)
        cs = ax.tricontourf(xy[:, 0], xy[:, 1], loss[ok], levels=lv, norm=LogNorm() if lv[0] > 0 else None)
        fig.colorbar(cs, ax=ax)
        ax.plot(*np.vstack([_CORNERS, _CORNERS[:1]]).T, "w-", lw=0.8)
        for label, (cx, cy) in zip(("w1", "w2", "w3"), _CORNERS, strict=True):
            ax.plot(cx, cy, "wo", markeredgecolor="k")
            ax.annotate(label, (cx, cy), textcoords="offset points", xytext=(4, 4))
        ax.set(title=f"{name} loss", aspect="equal")
        ax.axis("off")
    return _save(fig, path)


def plot_bilinear(result: Landscape, path, levels: int = 25) -> Path:
    """Filled contours of the loss over the bilinear square of four models (corners w1..w4 marked)."""
    result = _need(result, ("bilinear",), "plot_bilinear")
    u, v = result.axes["u"], result.axes["v"]
    fig, panels = _panels(result)
    for ax, (name, loss, _) in panels:
        loss = _log_safe(loss)
        lv = _levels(loss, levels)
        cs = ax.contourf(u, v, loss.T, levels=lv, norm=LogNorm() if lv[0] > 0 else None)
        fig.colorbar(cs, ax=ax)
        for label, (cx, cy) in zip(("w1", "w2", "w3", "w4"), [(0, 0), (1, 0), (0, 1), (1, 1)], strict=True):
            ax.plot(cx, cy, "wo", markeredgecolor="k")
            ax.annotate(label, (cx, cy), textcoords="offset points", xytext=(4, 4))
        ax.set(title=f"{name} loss", xlabel="u (w1 -> w2)", ylabel="v (w1 -> w3)", aspect="equal")
    return _save(fig, path)


def plot(result: Landscape | Barrier, path) -> Path:
    """The default figure for the result's kind."""
    kind = result.profile.kind if isinstance(result, Barrier) else getattr(result, "kind", None)
    draw = {
        "interpolate": plot_parametric,
        "line": plot_parametric,
        "plane": lambda r, p: plot_contour(r, p, filled=True),
        "barycentric": plot_barycentric,
        "bilinear": plot_bilinear,
    }.get(kind)
    if draw is None:
        raise GenlabError(
            f"result: no figure for kind {kind!r}; accepted: barycentric, bilinear, interpolate, line, plane"
        )
    return draw(result, path)

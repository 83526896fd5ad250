"""Shared figure plumbing for the studies: the Agg backend and one way to write a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def save_figure(fig: plt.Figure, outdir: Path, name: str, dpi: int = 100) -> str:
    """Lay out, write `outdir/name` and close `fig`; returns `name` (the report links it)."""
    fig.tight_layout()
    fig.savefig(Path(outdir) / name, dpi=dpi)
    plt.close(fig)
    return name

"""Atomic file writes: write a temporary file in the same folder, fsync, then `os.replace`.

A process killed at any moment leaves either the old file or the new one, never a half-written file that
later reads as valid. Used by the store and by anything that caches results. Imports only stdlib and torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write `payload` to `path` atomically (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text for plain data, numpy/torch scalars and arrays included (NaN/inf written as JSON NaN)."""
    return json.dumps(obj, indent=1, default=_default)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON to `path` atomically."""
    atomic_write_bytes(path, to_json(obj).encode())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save` to `path` atomically. Objects must be tensors and plain containers (weights_only loadable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def torch_load(path: str | os.PathLike) -> Any:
    """Load a checkpoint written by `atomic_torch_save`, with `weights_only=True`, onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)

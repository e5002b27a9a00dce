"""Figures for run logs and reports: pyplot-free (no global state, safe in workers), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib ``Figure`` and its axes as a 2-D array (``squeeze=False``); matplotlib imported lazily."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG through a temp file, so a plot under its final name is always complete."""
    from .atomic import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path

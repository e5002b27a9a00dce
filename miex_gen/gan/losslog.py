"""The per-iteration loss log (``RUN/losses.csv``) and its plot (``RUN/losses.png``).

The CSV is appended line by line and flushed, so a crash loses at most the line being
written; on ``--resume`` it is cut back to the iterations the training state covers, so the
log of a resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

COLUMNS = ("iteration", "epoch", "lr_g", "lr_d",
           "d_adv", "d_au", "d_gp", "d_total",
           "g_adv", "g_au", "g_cyc", "g_mask", "g_tv", "g_total")


class LossLog:
    def __init__(self, path: str | Path, *, resume_from: int | None = None) -> None:
        self.path = Path(path)
        if resume_from is not None and self.path.exists():
            self._truncate(resume_from)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        if new:
            self._writer.writerow(COLUMNS)
            self._handle.flush()

    def _truncate(self, next_iteration: int) -> None:
        rows = read_losses(self.path)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for row in rows:
                if int(row["iteration"]) < next_iteration:
                    writer.writerow([_fmt(row.get(c)) for c in COLUMNS])

    def write(self, row: Mapping[str, float | int | None]) -> None:
        self._writer.writerow([_fmt(row.get(c)) for c in COLUMNS])
        self._handle.flush()

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _fmt(value: float | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return str(int(value))
    return repr(float(value))


def read_losses(path: str | Path) -> list[dict[str, float | int | None]]:
    """The CSV as a list of rows; empty cells (no generator step) are None."""
    out: list[dict[str, float | int | None]] = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, float | int | None] = {}
            for key, value in row.items():
                if key in ("iteration", "epoch"):
                    parsed[key] = int(value)
                else:
                    parsed[key] = float(value) if value not in ("", None) else None
            out.append(parsed)
    return out


def plot_losses(csv_path: str | Path, png_path: str | Path, *, smooth: int = 50) -> Path:
    """Critic and generator losses against the iteration, one panel per term (moving average)."""
    from ..plotting import new_figure, save_figure

    rows = read_losses(csv_path)
    terms = [c for c in COLUMNS[4:]]
    fig, axes = new_figure(2, 5, (16, 6))
    for ax, term in zip(axes.flat, terms):
        pts = [(r["iteration"], r[term]) for r in rows if r.get(term) is not None and math.isfinite(r[term])]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=0.5, alpha=0.35, color="tab:blue")
            k = max(1, min(smooth, len(ys) // 10))
            if k > 1:
                csum = np.cumsum(np.concatenate([[0.0], ys]))
                counts = np.minimum(np.arange(1, len(ys) + 1), k)
                avg = (csum[1:] - csum[np.maximum(0, np.arange(1, len(ys) + 1) - k)]) / counts
                ax.plot(xs, avg, lw=1.2, color="tab:red")
        ax.set_title(term, fontsize=9)
        ax.tick_params(labelsize=7)
    return save_figure(fig, png_path, dpi=80)

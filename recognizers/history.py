"""Per-epoch metrics of a training run: a CSV and a PNG plot (loss, UF1, UAR), both written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from miex_gen.atomic import atomic_write_text


def write_history_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def plot_history(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Loss (train, val) on the left, UF1 and UAR (train accuracy too) on the right."""
    from miex_gen.plotting import new_figure, save_figure

    epochs = [r["epoch"] for r in rows]
    fig, axes = new_figure(1, 2, (9, 3.5))
    loss_ax, score_ax = axes[0]
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        if any(key in r for r in rows):
            loss_ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    for key, label in (("train_uf1", "train UF1"), ("train_uar", "train UAR"), ("val_uf1", "val UF1"),
                       ("val_uar", "val UAR")):
        if any(key in r for r in rows):
            score_ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker=".", label=label)
    score_ax.set(xlabel="epoch", ylim=(0, 1), title="UF1 / UAR")
    score_ax.legend()
    save_figure(fig, path)

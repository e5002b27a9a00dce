"""Pool summaries for ``miex aus pool info``: counts, per-class mean AUs, and the bar chart
(mean apex AU intensity per class, as in the MiE-X supplementary's Figure 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..aus import AU_NAMES, CLASS_NAMES
from ..errors import DataError
from .pool import AuPool


def summary(pool: AuPool) -> dict[str, Any]:
    """Plain-data description of a pool (JSON-able)."""
    return {
        "kind": pool.kind,
        "n": len(pool),
        "class_counts": {CLASS_NAMES[c]: n for c, n in pool.class_counts().items()},
        "datasets": sorted(set(pool.dataset.tolist())),
        "subjects": len(pool.subjects()),
        "clips": len(set(zip(pool.dataset.tolist(), pool.subject.tolist(), pool.clip.tolist()))),
        "mean_apex": {CLASS_NAMES[c]: [None if np.isnan(v) else round(float(v), 4) for v in row]
                      for c, row in enumerate(pool.mean_aus("apex"))},
        "mean_onset": {CLASS_NAMES[c]: [None if np.isnan(v) else round(float(v), 4) for v in row]
                       for c, row in enumerate(pool.mean_aus("onset"))},
        "seed": pool.attrs.get("seed"),
        "skipped": len(pool.attrs.get("skipped", [])),
    }


def read_subject_list(path: Path | str) -> set[tuple[str, str]]:
    """``dataset subject`` per line (also ``dataset,subject`` or ``dataset:subject``); ``#`` comments."""
    from ..datasets.records import canonical_subject

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read subject list {path}: {exc}", path=path) from exc
    out = set()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].replace(",", " ").replace(":", " ").split()
        if not text:
            continue
        if len(text) != 2:
            raise DataError(f"{path} line {number}: expected 'dataset subject', got {line.strip()!r}", path=path)
        out.add((text[0].lower(), canonical_subject(text[0].lower(), text[1])))
    return out


def plot_class_means(pools: dict[str, AuPool], out: Path | str, *, which: str = "apex") -> Path:
    """Grouped bars: mean AU intensity (0-5) per class, one panel per pool; written atomically (PNG)."""
    from ..plotting import new_figure, save_figure

    fig, axes = new_figure(len(pools), 1, (12, 3.2 * len(pools)))
    x = np.arange(len(AU_NAMES))
    width = 0.8 / len(CLASS_NAMES)
    for ax, (name, pool) in zip(axes[:, 0], pools.items()):
        means = np.nan_to_num(pool.mean_aus(which))
        counts = pool.class_counts()
        for c, label in enumerate(CLASS_NAMES):
            ax.bar(x + (c - 1) * width, means[c], width, label=f"{label} (n={counts[c]})")
        ax.set_xticks(x, AU_NAMES, rotation=45)
        ax.set_ylabel(f"mean {which} AU (0-5)")
        ax.set_title(f"{name}: z^{pool.kind} ({len(pool)} entries)")
        ax.legend(fontsize=8)
    return save_figure(fig, out, dpi=100)

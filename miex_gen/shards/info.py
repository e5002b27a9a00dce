"""A summary of a dataset (for ``miex data info``), computed from the table, never the frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import schema
from .reader import DatasetReader


def _counts(values: np.ndarray) -> dict[str, int]:
    unique, counts = np.unique(values, return_counts=True)
    return {str(u) or "(none)": int(c) for u, c in zip(unique, counts)}


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Samples, classes, T×H×W, AU sources and provenance, renderer, config hash, size on disk."""
    path = Path(path)
    reader = DatasetReader(path)
    table = reader.table()
    attrs = reader.attrs
    directory = path if path.is_dir() else path.parent
    files = [s.path for s in reader.shards]
    label_counts = np.bincount(table["label"].astype(np.int64), minlength=len(reader.class_names))
    extra = [directory / name for name in (schema.MANIFEST_NAME, schema.CARD_NAME, schema.INDEX_NAME)]
    size = sum(p.stat().st_size for p in files) + (
        sum(p.stat().st_size for p in extra if p.exists()) if path.is_dir() else 0)
    T, H, W = reader.frame_shape[:3]
    info = {
        "path": str(path),
        "format_version": attrs.get("format_version"),
        "num_shards": len(files),
        "planned_shards": attrs.get("num_shards"),
        "num_samples": len(reader),
        "num_frames": T, "height": H, "width": W,
        "class_counts": {name: int(label_counts[i]) for i, name in enumerate(reader.class_names)},
        "source_kind_counts": _counts(table["source_kind"]),
        "au_datasets": _counts(table["dataset"]),
        "num_identities": int(len(np.unique(table["identity"]))),
        "renderer": attrs.get("renderer", ""),
        "renderer_weights_sha256": attrs.get("renderer_weights_sha256", ""),
        "config_hash": attrs.get("config_hash", ""),
        "compression": attrs.get("compression", ""),
        "miex_version": attrs.get("miex_version", ""),
        "created_utc": attrs.get("created_utc", ""),
        "size_bytes": int(size),
        "has_manifest": path.is_dir() and (directory / schema.MANIFEST_NAME).exists(),
        "has_index": path.is_dir() and (directory / schema.INDEX_NAME).exists(),
    }
    reader.close()
    return info

"""Handing shard batches to torch: the DataLoader-side view of a batched read, and ``collate``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import schema
from .transport import to_slab_batch


class BatchView(Sequence):
    """A batch read at once, seen as a sequence of per-sample dicts (what a DataLoader's collate gets).

    ``default_collate`` iterates it sample by sample; miex's ``collate`` takes ``.batch`` whole.
    """

    def __init__(self, batch: dict[str, Any]):
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["label"])

    def __getitem__(self, j: int) -> dict[str, Any]:  # type: ignore[override]
        if not -len(self) <= j < len(self):
            raise IndexError(j)
        b = self.batch
        return sample_dict(b["frames"][j], b["aus"][j], b, j)


def collate(data: Any) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for shard samples.

    Accepts a list of sample dicts (per-sample loading), a ``BatchView`` (``DataLoader`` with a
    ``batch_size`` or ``batch_sampler``: one batched read) or a batch dict (``reader[list]`` with
    ``batch_size=None``). frames, aus and the numeric fields become tensors; text fields stay
    numpy string arrays (cheap to send between processes); ``render_meta`` is a list of dicts for
    per-sample loading and JSON text for batched reads (``json.loads`` what you need).
    """
    import torch

    if isinstance(data, dict):
        batch = data
    elif isinstance(data, BatchView):
        batch = data.batch
    else:
        batch = {name: [sample[name] for sample in data] for name in data[0]}
    out: dict[str, Any] = {}
    for name, values in batch.items():
        if name == "frames":
            out[name] = None  # keeps the field order; filled below
        elif name == "aus":
            out[name] = torch.as_tensor(np.stack(values) if isinstance(values, list) else values)
        elif name in schema.SCALAR_DTYPES:
            out[name] = torch.as_tensor(np.asarray(values, dtype=schema.SCALAR_DTYPES[name]))
        elif name in schema.STRING_WIDTHS:
            out[name] = np.asarray(values, dtype=str)
        else:
            out[name] = values
    frames = batch["frames"]
    shared = to_slab_batch(out, frames)  # in a DataLoader worker: reused shared memory
    if shared is not None:
        return shared
    out["frames"] = torch.as_tensor(np.stack(frames) if isinstance(frames, list) else frames)
    return out


def sample_dict(frames: Any, aus: Any, columns: Any, j: int) -> dict[str, Any]:
    """One sample as users get it: arrays, Python scalars and strings, ``render_meta`` as a dict."""
    sample: dict[str, Any] = {"frames": frames, "aus": aus}
    for name in schema.SCALAR_FIELDS:
        sample[name] = columns[name][j].item()
    for name in schema.STRING_FIELDS:
        sample[name] = str(columns[name][j])
    sample["render_meta"] = json.loads(columns["render_meta"][j])
    return sample

"""index.h5: every shard's datasets joined end to end with HDF5 virtual datasets (no data copied).

A reader that knows nothing about shards opens ``index.h5`` and sees ``frames[N_total, T, H, W, 3]``
and every other field at full length. Source files are referenced by bare file name, which HDF5
resolves relative to the directory of index.h5, so the dataset directory can be moved as a whole.
HDF5 returns fill values for a source file it cannot find, so the fills are chosen to be
recognisable: ``label`` = -1, strings empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from . import schema
from .reader import ShardReader

INDEX_FORMAT = "miex-index"

_FILLS: dict[str, Any] = {"label": -1, "apex_index": -1, "onset_frame": -1, "apex_frame": -1, "sample_index": -1}


def write_index(directory: str | Path, readers: list[ShardReader]) -> Path:
    """Write ``directory/index.h5`` atomically over ``readers`` (in shard order)."""
    import h5py

    directory = Path(directory)
    final = directory / schema.INDEX_NAME
    total = int(sum(len(r) for r in readers))
    with atomic_path(final) as tmp:
        with h5py.File(tmp, "w", libver=("v110", "latest")) as out, h5py.File(readers[0].path, "r") as first:
            for name in schema.ALL_FIELDS:
                src = first[name]
                layout = h5py.VirtualLayout(shape=(total,) + src.shape[1:], dtype=src.dtype)
                start = 0
                for reader in readers:
                    n = len(reader)
                    if n:
                        layout[start:start + n] = h5py.VirtualSource(reader.path.name, name,
                                                                     shape=(n,) + src.shape[1:])
                    start += n
                fill = _FILLS.get(name)
                dset = out.create_virtual_dataset(name, layout, fillvalue=fill)
                for key, value in src.attrs.items():
                    dset.attrs[key] = value
            out.create_dataset("shard", data=np.repeat(np.arange(len(readers), dtype=np.int32),
                                                       [len(r) for r in readers]))
            out.create_dataset("shard_row", data=np.concatenate(
                [np.arange(len(r), dtype=np.int64) for r in readers]) if readers else np.zeros(0, np.int64))
            for key, value in first.attrs.items():
                if key not in ("shard_index", "num_samples"):
                    out.attrs[key] = value
            out.attrs["format_name"] = INDEX_FORMAT
            out.attrs["num_samples"] = total
            out.attrs["shard_files"] = np.array([r.path.name for r in readers], dtype=object)
    return final

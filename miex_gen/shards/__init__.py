"""The miex dataset format v1: HDF5 shards, manifest, dataset card, virtual index and their tools.

A dataset is a directory of ``shard-NNNNN.h5`` files plus ``manifest.json``, ``DATASET_CARD.md``
and ``index.h5`` (written by :func:`merge_dataset`). docs/FORMAT.md is the full specification.

Modules, one job each: ``schema`` (names, dtypes, compression), ``writer``, ``reader``,
``sampler`` (shard-aware batches), ``collate`` (handing batches to torch), ``transport`` (shared-memory
slabs between DataLoader workers and the main process), ``manifest`` (merge),
``index`` (virtual datasets), ``card``, ``validate``, ``info``, ``preview``.
"""

from __future__ import annotations

from .info import dataset_info
from .manifest import merge_dataset, read_manifest, sha256_file
from .preview import write_preview
from . import transport
from .collate import BatchView, collate
from .reader import DatasetReader, ShardReader
from .sampler import ShardBatchSampler
from .schema import (
    DEFAULT_COMPRESSION, FORMAT_NAME, FORMAT_VERSION, SOURCE_KINDS, STRING_WIDTHS, Compression, list_shards,
    shard_index_of, shard_name,
)
from .validate import Problem, validate_dataset, validate_shard
from .writer import ShardWriter

__all__ = [
    "BatchView", "DEFAULT_COMPRESSION", "FORMAT_NAME", "FORMAT_VERSION", "SOURCE_KINDS", "STRING_WIDTHS", "Compression",
    "DatasetReader", "Problem", "ShardBatchSampler", "ShardReader", "ShardWriter", "collate", "dataset_info",
    "list_shards", "merge_dataset", "read_manifest", "sha256_file", "shard_index_of", "shard_name",
    "validate_dataset", "validate_shard", "write_preview",
]

"""manifest.json: what a complete dataset contains, with a SHA-256 per shard.

``merge_dataset`` is the one place that writes it (plus DATASET_CARD.md and index.h5), from the
shards present; ``miex generate`` calls it after the last planned shard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json
from ..errors import FormatError
from ..fileio import FileDigest, sha256_file
from ..versions import environment_info
from . import schema
from .reader import ShardReader

log = logging.getLogger(__name__)


def _counts(values: np.ndarray, names: list[str] | tuple[str, ...] | None = None) -> dict[str, int]:
    if names is not None:
        counts = np.bincount(values.astype(np.int64), minlength=len(names))
        return {name: int(counts[i]) for i, name in enumerate(names)}
    unique, counts = np.unique(values, return_counts=True)
    return {str(u): int(c) for u, c in zip(unique, counts)}


def shard_entry(reader: ShardReader, sha256: str | None = None) -> dict[str, Any]:
    """The manifest entry of one shard (reads two columns; hashes the file unless its ``sha256`` is known)."""
    return {
        "file": reader.path.name,
        "shard_index": int(reader.attrs.get("shard_index", -1)),
        "num_samples": len(reader),
        "class_counts": _counts(reader.column("label"), reader.class_names),
        "source_kind_counts": _counts(reader.column("source_kind")),
        "size_bytes": reader.path.stat().st_size,
        "sha256": sha256 or sha256_file(reader.path),
    }


def build_manifest(directory: Path, readers: list[ShardReader], entries: list[dict[str, Any]],
                   expected_shards: int | None) -> dict[str, Any]:
    first = readers[0]
    attrs = first.attrs
    planned = int(expected_shards if expected_shards is not None else attrs.get("num_shards", len(readers)))
    present = {e["shard_index"] for e in entries}
    class_totals = {name: sum(e["class_counts"][name] for e in entries) for name in first.class_names}
    kind_totals: dict[str, int] = {}
    for entry in entries:
        for kind, n in entry["source_kind_counts"].items():
            kind_totals[kind] = kind_totals.get(kind, 0) + n
    T, H, W = first.frame_shape[:3]
    return {
        "format_name": schema.MANIFEST_FORMAT,
        "format_version": schema.FORMAT_VERSION,
        "shard_format": schema.FORMAT_NAME,
        "created_utc": environment_info()["created_utc"],
        "miex_version": environment_info()["miex"],
        "num_shards": len(entries),
        "planned_shards": planned,
        "missing_shards": sorted(set(range(planned)) - present),
        "num_samples": int(sum(e["num_samples"] for e in entries)),
        "size_bytes": int(sum(e["size_bytes"] for e in entries)),
        "num_frames": T, "height": H, "width": W,
        "class_names": list(first.class_names),
        "class_counts": class_totals,
        "source_kind_counts": dict(sorted(kind_totals.items())),
        "renderer": attrs.get("renderer", ""),
        "renderer_weights_sha256": attrs.get("renderer_weights_sha256", ""),
        "config_hash": attrs.get("config_hash", ""),
        "compression": attrs.get("compression", ""),
        "shards": entries,
    }


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / schema.MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} not found", path=path, hint="run miex data merge on the directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid JSON ({exc})", path=path,
                          hint="rebuild it with miex data merge") from None
    if not isinstance(manifest, dict) or manifest.get("format_name") != schema.MANIFEST_FORMAT:
        raise FormatError(f"{path} is not a miex manifest", path=path, hint="rebuild it with miex data merge")
    return manifest


def merge_dataset(directory: str | Path, *, expected_shards: int | None = None, verify: bool = True,
                  check_frames: bool = True, index: bool = True,
                  digests: Mapping[str, FileDigest] | None = None) -> dict[str, Any]:
    """Write manifest.json, DATASET_CARD.md and index.h5 for the shards in ``directory``.

    ``expected_shards``: refuse unless shards 0..expected-1 are all present (what a finished run
    passes). ``verify``: check every shard (schema, values and, with ``check_frames``, every frame
    chunk read back) first, so a manifest never blesses a damaged file. ``miex generate`` passes
    ``check_frames=False``, and the ``digests`` (by file name) it took right after its writer closed
    each shard: a shard unchanged since is neither validated again nor re-hashed. Returns the manifest.
    """
    from .card import write_card
    from .index import write_index
    from .validate import validate_shard

    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory} is not a directory", path=directory, hint="give a dataset directory")
    files = schema.list_shards(directory)
    if not files:
        raise FormatError(f"{directory} holds no shard files (shard-NNNNN.h5)", path=directory,
                          hint="give the output directory of miex generate")
    if expected_shards is not None:
        present = {schema.shard_index_of(p) for p in files}
        missing = sorted(set(range(expected_shards)) - present)
        if missing:
            shown = ", ".join(schema.shard_name(k) for k in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise FormatError(f"{directory}: {len(missing)} of {expected_shards} planned shards are missing "
                              f"({shown})", path=directory, hint="finish or resume the run before merging")
    # hashes of shards unchanged since they were taken (by name)
    fresh = {f.name: digests[f.name].sha256 for f in files
             if digests and f.name in digests and digests[f.name].still_matches(f)}
    if verify:  # a shard with a fresh digest was closed by our own (checking) writer moments ago
        problems = [p for f in files if f.name not in fresh for p in validate_shard(f, check_frames=check_frames)]
        if problems:
            shown = "; ".join(str(p) for p in problems[:3])
            raise FormatError(f"{directory}: {len(problems)} problem(s) in the shards: {shown}",
                              path=directory, hint="run miex data validate for the full list")
    readers = [ShardReader(p) for p in files]
    _check_same_dataset(readers)
    entries = [shard_entry(r, fresh.get(r.path.name)) for r in readers]
    manifest = build_manifest(directory, readers, entries, expected_shards)
    if index:
        write_index(directory, readers)
    write_card(directory, manifest, readers)
    atomic_write_json(directory / schema.MANIFEST_NAME, manifest)  # last: its presence means merged
    for reader in readers:
        reader.close()
    log.info("merged %d shards, %d samples in %s", len(entries), manifest["num_samples"], directory)
    return manifest


def _check_same_dataset(readers: list[ShardReader]) -> None:
    first = readers[0]
    for reader in readers[1:]:
        for key in ("config_hash", "num_frames", "height", "width", "class_names", "format_version"):
            if reader.attrs.get(key) != first.attrs.get(key):
                raise FormatError(
                    f"{reader.path.name} has {key}={reader.attrs.get(key)!r} but {first.path.name} has "
                    f"{first.attrs.get(key)!r}", path=reader.path.parent,
                    hint="a dataset directory holds the shards of one generation config only")

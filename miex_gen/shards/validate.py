"""Check a dataset or one shard and list every problem: file, field and what is wrong.

Shard checks: it opens as HDF5; format attributes; every dataset present with the right dtype and
shape; value ranges (AUs 0-5 and finite, labels in the class range, apex_index < T, known source
kinds, frame numbers >= -1, UTF-8 text, JSON render_meta); every frame chunk reads back (fletcher32
and decompression catch flipped bytes). Dataset checks: manifest.json present and parseable,
every listed shard present with the same SHA-256 and sample count, no shard missing from it, no
planned shard missing, no temp files of interrupted writes, index.h5 consistent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..aus import AU_MAX, AU_MIN, AU_NAMES, NUM_AUS
from ..errors import FormatError
from . import schema

# frames are read back in blocks of about this many bytes
_READ_BLOCK_BYTES = 16 * 1024 * 1024
_MAX_BAD_SAMPLES = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``file`` (name in the dataset), ``field`` (dataset/attribute/entry), ``message``."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class _Collector:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.file, field, message))


def validate_dataset(path: str | Path, *, check_frames: bool = True) -> list[Problem]:
    """All problems of a dataset directory or a single shard file; ``[]`` means valid.

    Raises FormatError when ``path`` is not a dataset at all (missing, or a directory with no
    shard, manifest or temp shard file).
    """
    path = Path(path)
    if path.is_file() and path.name in (schema.INDEX_NAME, schema.MANIFEST_NAME, schema.CARD_NAME):
        path = path.parent  # these describe the whole directory
    if path.is_file():
        problems = validate_shard(path, check_frames=check_frames)
        manifest_path = path.parent / schema.MANIFEST_NAME
        if manifest_path.is_file():
            problems += _check_manifest(path.parent, only=path.name)
        return problems
    if not path.is_dir():
        raise FormatError(f"{path} does not exist", path=path, hint="give a dataset directory or a shard file")
    shards = schema.list_shards(path)
    temps = schema.list_temp_files(path)
    has_manifest = (path / schema.MANIFEST_NAME).exists()
    if not shards and not has_manifest and not temps:
        raise FormatError(f"{path} is not a miex dataset (no shard-NNNNN.h5, no {schema.MANIFEST_NAME})",
                          path=path, hint="give the output directory of miex generate")
    problems: list[Problem] = []
    for temp in temps:
        problems.append(Problem(temp.name, "file", "temp file of an unfinished or interrupted shard write "
                                "(delete it, or resume the run that was writing it)"))
    if not shards:
        problems.append(Problem(path.name, "shards", "no complete shard file"))
    for shard in shards:
        problems += validate_shard(shard, check_frames=check_frames)
    problems += _check_manifest(path)
    index = path / schema.INDEX_NAME
    if index.exists():
        problems += _check_index(index, shards)
    return problems


def validate_shard(path: str | Path, *, check_frames: bool = True) -> list[Problem]:
    """Problems of one shard file (no manifest checks)."""
    import h5py

    path = Path(path)
    out = _Collector(path.name)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        out.add("file", f"cannot be opened as HDF5: truncated, damaged or not HDF5 ({exc})")
        return out.problems
    try:
        with f:
            _check_shard(f, path, out, check_frames)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # damaged metadata deep in the file
        out.add("file", f"read error: {exc}")
    return out.problems


def _attr(f: Any, key: str) -> Any:
    value = f.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.tolist()]
    return value


def _check_shard(f: Any, path: Path, out: _Collector, check_frames: bool) -> None:
    if _attr(f, "format_name") != schema.FORMAT_NAME:
        out.add("attrs/format_name", f"is {_attr(f, 'format_name')!r}, expected {schema.FORMAT_NAME!r}")
    version = _attr(f, "format_version")
    if version is None or int(version) != schema.FORMAT_VERSION:
        out.add("attrs/format_version", f"is {version!r}, this miex reads version {schema.FORMAT_VERSION}")
    for key in schema.CALLER_ATTRS + schema.WRITER_ATTRS:
        if key not in f.attrs:
            hint = " (written last: the shard was not closed)" if key == "num_samples" else ""
            out.add(f"attrs/{key}", "missing" + hint)
    config = _attr(f, "config")
    if isinstance(config, str):
        try:
            json.loads(config)
        except json.JSONDecodeError as exc:
            out.add("attrs/config", f"not valid JSON ({exc})")
    index = schema.shard_index_of(path)
    if index is not None and "shard_index" in f.attrs and int(f.attrs["shard_index"]) != index:
        out.add("attrs/shard_index", f"is {int(f.attrs['shard_index'])} but the file is named {path.name}")
    class_names = _attr(f, "class_names") or []
    if list(_attr(f, "au_names") or []) != list(AU_NAMES):
        out.add("attrs/au_names", "not the 17 AU names of miex_gen.aus in order")

    missing = [name for name in schema.ALL_FIELDS if name not in f]
    for name in missing:
        out.add(name, "dataset missing")
    if "label" not in f:
        return
    n = int(f["label"].shape[0])
    if "num_samples" in f.attrs and int(f.attrs["num_samples"]) != n:
        out.add("attrs/num_samples", f"is {int(f.attrs['num_samples'])} but label has {n} rows")
    T = int(_attr(f, "num_frames") or -1)
    H, W = int(_attr(f, "height") or -1), int(_attr(f, "width") or -1)
    expected = {"frames": ((n, T, H, W, 3), "u1"), "aus": ((n, T, NUM_AUS), "f4")}
    expected.update({k: ((n,), dt.str[1:]) for k, dt in schema.SCALAR_DTYPES.items()})
    for name, (shape, dtype) in expected.items():
        if name in f:
            dset = f[name]
            if dset.shape != shape:
                out.add(name, f"shape {dset.shape}, expected {shape}")
            elif dset.dtype.str[1:] != dtype:
                out.add(name, f"dtype {dset.dtype}, expected {np.dtype(dtype)}")
    for name in schema.STRING_FIELDS + ("render_meta",):
        if name in f and f[name].shape != (n,):
            out.add(name, f"shape {f[name].shape}, expected {(n,)}")
    if "frames" in f and f["frames"].chunks is not None and f["frames"].chunks[0] != 1:
        out.add("frames", f"chunks {f['frames'].chunks}: the format stores one sample per chunk")
    if out.problems and any(p.field in expected or p.field in schema.ALL_FIELDS for p in out.problems):
        return  # shapes are wrong: value checks would only repeat it
    _check_values(f, n, T, len(class_names), out)
    if check_frames and n:
        _check_frames(f["frames"], out)


def _bad(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:_MAX_BAD_SAMPLES]) + (" ..." if len(rows) > _MAX_BAD_SAMPLES else "")
    return f"{len(rows)} sample(s): {shown}"


def _check_values(f: Any, n: int, T: int, num_classes: int, out: _Collector) -> None:
    label = f["label"][:]
    if n and (label.min() < 0 or label.max() >= num_classes):
        out.add("label", f"outside 0..{num_classes - 1} for {_bad((label < 0) | (label >= num_classes))}")
    apex = f["apex_index"][:]
    if n and (apex.min() < 0 or apex.max() >= T):
        out.add("apex_index", f"outside 0..{T - 1} for {_bad((apex < 0) | (apex >= T))}")
    for name in ("onset_frame", "apex_frame"):
        values = f[name][:]
        if n and values.min() < -1:
            out.add(name, f"below -1 for {_bad(values < -1)}")
    if n and f["sample_index"][:].min() < 0:
        out.add("sample_index", f"negative for {_bad(f['sample_index'][:] < 0)}")
    aus = f["aus"]
    step = max(1, (64 * 1024 * 1024) // max(1, T * NUM_AUS * 4))
    for start in range(0, n, step):
        block = aus[start:start + step]
        bad = ~np.isfinite(block) | (block < AU_MIN) | (block > AU_MAX)
        if bad.any():
            mask = bad.reshape(len(block), -1).any(axis=1)
            rows = np.flatnonzero(mask) + start
            full = np.zeros(n, dtype=bool)
            full[rows] = True
            out.add("aus", f"values outside {AU_MIN:g}-{AU_MAX:g} or not finite for {_bad(full)}")
            break
    for name in schema.STRING_FIELDS:
        raw = f[name][:]
        try:
            decoded = np.char.decode(raw.astype(np.bytes_), "utf-8") if n else raw
        except UnicodeDecodeError:
            out.add(name, "contains bytes that are not UTF-8")
            continue
        if name == "source_kind" and n:
            unknown = ~np.isin(decoded, schema.SOURCE_KINDS)
            if unknown.any():
                out.add(name, f"not one of {', '.join(schema.SOURCE_KINDS)} for {_bad(unknown)}")
    try:
        metas = f["render_meta"].asstr()[:]
    except UnicodeDecodeError:
        out.add("render_meta", "contains bytes that are not UTF-8")
        return
    bad_meta = np.zeros(n, dtype=bool)
    for i, text in enumerate(metas):
        try:
            bad_meta[i] = not isinstance(json.loads(text), dict)
        except json.JSONDecodeError:
            bad_meta[i] = True
    if bad_meta.any():
        out.add("render_meta", f"not a JSON object for {_bad(bad_meta)}")


def _check_frames(frames: Any, out: _Collector) -> None:
    """Read every frame chunk; a block that fails is re-read sample by sample to name the bad ones."""
    n = frames.shape[0]
    per_sample = int(np.prod(frames.shape[1:]))
    step = max(1, _READ_BLOCK_BYTES // per_sample)
    buffer = np.empty((step,) + frames.shape[1:], dtype=np.uint8)
    bad: list[int] = []
    first_error = ""
    for start in range(0, n, step):
        stop = min(n, start + step)
        try:
            frames.read_direct(buffer, np.s_[start:stop], np.s_[0:stop - start])
        except (OSError, RuntimeError) as exc:
            for i in range(start, stop):
                try:
                    frames[i]
                except (OSError, RuntimeError) as sample_exc:
                    bad.append(i)
                    first_error = first_error or str(sample_exc).splitlines()[0]
            if not bad:
                bad.append(start)
                first_error = str(exc).splitlines()[0]
    if bad:
        mask = np.zeros(n, dtype=bool)
        mask[bad] = True
        out.add("frames", f"stored data is damaged (checksum or decompression failed: {first_error}) for "
                          f"{_bad(mask)}")


def _check_manifest(directory: Path, only: str | None = None) -> list[Problem]:
    from .manifest import read_manifest, sha256_file

    name = schema.MANIFEST_NAME
    try:
        manifest = read_manifest(directory)
    except FormatError as exc:
        return [Problem(name, "file", f"{exc.message}; checksums cannot be verified (run miex data merge)")]
    problems: list[Problem] = []
    entries = manifest.get("shards")
    if not isinstance(entries, list):
        return [Problem(name, "shards", "missing or not a list (rebuild with miex data merge)")]
    listed = {e.get("file"): e for e in entries if isinstance(e, dict)}
    present = {p.name for p in schema.list_shards(directory)}
    if int(manifest.get("format_version", -1)) != schema.FORMAT_VERSION:
        problems.append(Problem(name, "format_version", f"is {manifest.get('format_version')!r}, "
                                f"expected {schema.FORMAT_VERSION}"))
    for file in sorted(set(listed) - present):
        if only is None or file == only:
            problems.append(Problem(file, "file", f"listed in {name} but missing from the directory"))
    for file in sorted(present - set(listed)):
        if only is None or file == only:
            problems.append(Problem(file, "file", f"not listed in {name} (added after merge? run miex data "
                                    "merge to rebuild it)"))
    for file in sorted(set(listed) & present):
        if only is not None and file != only:
            continue
        entry = listed[file]
        digest = sha256_file(directory / file)
        if digest != entry.get("sha256"):
            problems.append(Problem(file, "sha256", f"is {digest[:16]}..., {name} says "
                                    f"{str(entry.get('sha256'))[:16]}... (the file changed after merge)"))
    if only is None:
        missing = manifest.get("missing_shards") or []
        if missing:
            problems.append(Problem(name, "missing_shards", f"{len(missing)} planned shard(s) were never "
                                    f"written: {', '.join(schema.shard_name(k) for k in missing[:5])}"))
        total = sum(int(e.get("num_samples", 0)) for e in listed.values())
        if total != manifest.get("num_samples"):
            problems.append(Problem(name, "num_samples", f"is {manifest.get('num_samples')} but the shard entries "
                                    f"sum to {total}"))
    return problems


def _check_index(index: Path, shards: list[Path]) -> list[Problem]:
    import h5py

    name = index.name
    try:
        with h5py.File(index, "r") as f:
            files = [v.decode() if isinstance(v, bytes) else str(v) for v in f.attrs.get("shard_files", [])]
            problems = []
            if files != [p.name for p in shards]:
                return [Problem(name, "attrs/shard_files", "does not list the shards present "
                                "(rebuild with miex data merge)")]
            if "label" not in f:
                return problems + [Problem(name, "label", "dataset missing")]
            total = int(f["label"].shape[0])
            expected = 0
            for shard in shards:
                try:
                    with h5py.File(shard, "r") as s:
                        expected += int(s["label"].shape[0])
                except (OSError, KeyError):
                    pass  # reported by the shard checks
            if total != expected:
                problems.append(Problem(name, "label", f"has {total} rows, the shards hold {expected}"))
            return problems
    except OSError as exc:
        return [Problem(name, "file", f"cannot be opened as HDF5 ({exc})")]

"""Write one shard: checked rows buffered in blocks, a temp file renamed only when complete.

A shard under its final name is always whole: the writer works on a temp file
(``miex_gen.atomic``), writes the ``num_samples`` attribute last, flushes, and renames on a clean
``__exit__``. An exception deletes the temp file; a killed process leaves only a temp file,
which readers ignore and ``validate`` reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..aus import AU_NAMES, AU_SCALE, CLASS_NAMES, NUM_AUS, check_aus
from ..errors import DataError
from ..versions import environment_info
from . import schema

# rows are buffered and written in blocks of about this many frame bytes (one h5py call per field)
BLOCK_BYTES = 32 * 1024 * 1024
# stored as uint64, kept below 2**63 so it converts to int64 tensors (derive_seed gives 63-bit seeds)
_SEED_MAX = 2**63 - 1


def _attr_value(name: str, value: Any) -> Any:
    """A value h5py can store as an attribute (dicts and mixed lists become JSON text)."""
    if isinstance(value, (str, bytes, bool, int, float, np.integer, np.floating, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=object)  # h5py stores a variable-length string array
    if value is None:
        return ""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except TypeError as exc:  # pragma: no cover - json with default=str takes everything
        raise DataError(f"shard attribute {name!r}: cannot store {type(value).__name__}") from exc


class ShardWriter:
    """Write samples of one shard; use as a context manager (see module docstring).

    ``attrs`` must contain ``renderer``, ``renderer_weights_sha256``, ``config`` (JSON text or a
    dict), ``config_hash``, ``shard_index`` and ``num_shards``; anything else is stored too.
    ``capacity`` (the expected sample count) pre-sizes the datasets; more samples still fit.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        num_frames: int,
        height: int,
        width: int,
        attrs: Mapping[str, Any],
        compression: str | None = schema.DEFAULT_COMPRESSION,
        capacity: int | None = None,
        checksum: bool = schema.DEFAULT_CHECKSUM,
        class_names: Sequence[str] = CLASS_NAMES,
    ):
        self.path = Path(path)
        self.num_frames, self.height, self.width = int(num_frames), int(height), int(width)
        if min(self.num_frames, self.height, self.width) < 1:
            raise DataError(f"{self.path.name}: frames must be at least 1x1x1, got "
                            f"T={num_frames} H={height} W={width}")
        if self.num_frames > 127:
            raise DataError(f"{self.path.name}: at most 127 frames per sample (apex_index is int8), "
                            f"got {num_frames}")
        missing = [key for key in schema.CALLER_ATTRS if key not in attrs]
        if missing:
            raise ValueError(f"ShardWriter attrs lack {', '.join(missing)} (required: "
                             f"{', '.join(schema.CALLER_ATTRS)})")
        reserved = sorted(set(attrs) & set(schema.WRITER_ATTRS))
        if reserved:
            raise ValueError(f"ShardWriter attrs {reserved} are set by the writer itself")
        self.attrs = dict(attrs)
        if not isinstance(self.attrs["config"], str):
            self.attrs["config"] = json.dumps(self.attrs["config"], sort_keys=True, default=str)
        self.compression = schema.Compression.parse(compression, checksum=checksum)
        self.class_names = tuple(class_names)
        self.capacity = int(capacity) if capacity else 0
        self.count = 0  # samples appended (written or buffered)
        self._written = 0  # samples in the file
        self._buffered = 0  # rows waiting in the block buffers
        self._frames_block: np.ndarray | None = None
        self._aus_block: np.ndarray | None = None
        self._rows: dict[str, list[Any]] = {name: [] for name in schema.TABLE_FIELDS}
        self._block_rows = max(1, BLOCK_BYTES // (self.num_frames * self.height * self.width * 3))
        self._stack: ExitStack | None = None
        self._file: Any = None
        self.tmp_path: Path | None = None

    # ------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "ShardWriter":
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)
        return False

    def open(self) -> None:
        import h5py

        if self._stack is not None:
            raise RuntimeError("ShardWriter is already open")
        stack = ExitStack()
        self.tmp_path = stack.enter_context(atomic_path(self.path))
        try:
            self._file = h5py.File(self.tmp_path, "w")
            self._create_datasets()
        except BaseException as exc:
            if self._file is not None:
                self._file.close()
            stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack = stack

    def close(self) -> Path:
        """Write what is buffered, finish the attributes, flush and rename to the final name."""
        if self._stack is None:
            raise RuntimeError("ShardWriter is not open")
        try:
            self._flush()
            for name in schema.ALL_FIELDS:
                self._file[name].resize(self._written, axis=0)
            self._file.attrs["num_samples"] = self._written  # written last: marks the file complete
            self._file.flush()
            self._file.close()
            self._frames_block = self._aus_block = None  # up to BLOCK_BYTES: not kept while renaming
        except BaseException as exc:
            self.abort(type(exc), exc, exc.__traceback__)
            raise
        stack, self._stack = self._stack, None
        stack.__exit__(None, None, None)  # fsync + rename
        return self.path

    def abort(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        """Drop the temp file; the final name is never created."""
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # pragma: no cover - closing a broken file
                pass
        stack, self._stack = self._stack, None
        if stack is not None:
            exc_type = exc_type or RuntimeError
            exc = exc or exc_type("shard write aborted")
            try:
                stack.__exit__(exc_type, exc, tb)
            except BaseException as raised:  # atomic_path re-raises what it was given
                if raised is not exc:
                    raise

    # ---------------------------------------------------------------------------- layout
    def _create_datasets(self) -> None:
        f = self._file
        T, H, W = self.num_frames, self.height, self.width
        n0 = self.capacity
        comp = self.compression.h5py_kwargs()
        f.create_dataset("frames", shape=(n0, T, H, W, 3), maxshape=(None, T, H, W, 3), dtype="u1",
                         chunks=(1, T, H, W, 3), **comp)
        comp = self.compression.h5py_kwargs(checksum=True)
        aus_rows = max(1, schema.AUS_CHUNK_BYTES // (T * NUM_AUS * 4))
        aus = f.create_dataset("aus", shape=(n0, T, NUM_AUS), maxshape=(None, T, NUM_AUS), dtype="f4",
                               chunks=(aus_rows, T, NUM_AUS), **comp)
        aus.attrs["au_names"] = np.array(AU_NAMES, dtype=object)
        aus.attrs["au_scale"] = AU_SCALE
        rows = min(schema.TABLE_CHUNK_ROWS, self.capacity) if self.capacity else schema.TABLE_CHUNK_ROWS
        for name, dtype in schema.SCALAR_DTYPES.items():
            f.create_dataset(name, shape=(n0,), maxshape=(None,), dtype=dtype, chunks=(rows,),
                             **schema.table_h5py_kwargs(dtype))
        f["label"].attrs["class_names"] = np.array(self.class_names, dtype=object)
        for name in schema.STRING_FIELDS:
            dtype = schema.string_dtype(name)
            f.create_dataset(name, shape=(n0,), maxshape=(None,), dtype=dtype, chunks=(rows,),
                             **schema.table_h5py_kwargs(dtype))
        f.create_dataset("render_meta", shape=(n0,), maxshape=(None,), dtype=schema.vlen_string_dtype(),
                         chunks=(max(1, rows // 4),))  # vlen data cannot be filtered: smaller chunks
        env = environment_info()
        root = {
            "format_name": schema.FORMAT_NAME, "format_version": schema.FORMAT_VERSION,
            "class_names": list(self.class_names), "au_names": list(AU_NAMES), "au_scale": AU_SCALE,
            "num_frames": T, "height": H, "width": W, "compression": str(self.compression),
            "checksum": "fletcher32" if self.compression.checksum else "sha256-in-manifest",
            "created_utc": env["created_utc"], "versions": env, "miex_version": env["miex"],
            "torch_version": env.get("torch") or "", "h5py_version": env.get("h5py") or "",
        }
        for key, value in {**self.attrs, **root}.items():
            f.attrs[key] = _attr_value(key, value)

    # --------------------------------------------------------------------------- appending
    def append(self, *, frames: Any, aus: Any, label: int, apex_index: int, source_kind: str, identity: str,
               dataset: str, subject: str, clip: str, onset_frame: int, apex_frame: int, sample_seed: int,
               sample_index: int, render_meta: Mapping[str, Any] | None = None) -> None:
        """Check and add one sample (frames uint8[T,H,W,3], aus float32[T,17] on 0-5)."""
        self.append_batch(
            frames=np.asarray(frames)[None], aus=np.asarray(aus)[None], label=[label], apex_index=[apex_index],
            source_kind=[source_kind], identity=[identity], dataset=[dataset], subject=[subject], clip=[clip],
            onset_frame=[onset_frame], apex_frame=[apex_frame], sample_seed=[sample_seed],
            sample_index=[sample_index], render_meta=[render_meta])

    def append_batch(self, *, frames: Any, aus: Any, render_meta: Sequence[Mapping[str, Any] | None] | None = None,
                     **fields: Any) -> None:
        """Check and add B samples: ``frames`` u1[B,T,H,W,3], ``aus`` f4[B,T,17], every other field a
        length-B sequence (``render_meta`` a list of dicts). The data is copied: callers may reuse buffers."""
        if self._stack is None:
            raise RuntimeError("use ShardWriter as a context manager (or call open()) before appending")
        where = f"{self.path.name} samples {self.count}.."
        frames = self._check_frames(frames, where)
        batch = len(frames)
        aus = self._check_aus(aus, where, batch)
        missing = sorted(set(schema.SCALAR_FIELDS + schema.STRING_FIELDS) - set(fields))
        unknown = sorted(set(fields) - set(schema.SCALAR_FIELDS + schema.STRING_FIELDS))
        if missing or unknown:
            raise DataError(f"{where}: " + (f"missing field(s) {', '.join(missing)}" if missing else "")
                            + ("; " if missing and unknown else "")
                            + (f"unknown field(s) {', '.join(unknown)}" if unknown else ""))
        metas = list(render_meta) if render_meta is not None else [None] * batch
        for name, values in [*fields.items(), ("render_meta", metas)]:
            if len(values) != batch:
                raise DataError(f"{where}: field {name!r} has {len(values)} values for {batch} frame stacks")
        rows: dict[str, list[Any]] = {name: [] for name in schema.TABLE_FIELDS}
        limits = {"label": (0, len(self.class_names) - 1), "apex_index": (0, self.num_frames - 1),
                  "onset_frame": (-1, 2**31 - 1), "apex_frame": (-1, 2**31 - 1), "sample_seed": (0, _SEED_MAX),
                  "sample_index": (0, 2**63 - 1)}
        for b in range(batch):
            here = f"{self.path.name} sample {self.count + b}"
            for name, (low, high) in limits.items():
                rows[name].append(self._check_int(_item(fields[name][b]), name, here, low, high))
            kind = _item(fields["source_kind"][b])
            if kind not in schema.SOURCE_KINDS:
                raise DataError(f"{here}: source_kind {kind!r} is not one of {', '.join(schema.SOURCE_KINDS)}")
            for name in schema.STRING_FIELDS:
                rows[name].append(self._check_string(_item(fields[name][b]), name, here))
            rows["render_meta"].append(self._check_meta(metas[b], here))
        self._add(frames, aus, rows)

    # ---------------------------------------------------------------------------- checks
    def _check_frames(self, frames: Any, where: str) -> np.ndarray:
        arr = np.asarray(frames)
        expected = (self.num_frames, self.height, self.width, 3)
        if arr.ndim != 5 or arr.shape[1:] != expected:
            raise DataError(f"{where}: frames have shape {arr.shape[1:]}, expected {expected} (T, H, W, RGB)")
        if arr.dtype != np.uint8:
            raise DataError(f"{where}: frames must be uint8 (0-255), got {arr.dtype}",
                            hint="convert with np.clip(x, 0, 255).astype(np.uint8)")
        return arr

    def _check_aus(self, aus: Any, where: str, batch: int) -> np.ndarray:
        arr = check_aus(aus, where=f"{where} aus")
        if arr.shape != (batch, self.num_frames, NUM_AUS):
            raise DataError(f"{where}: aus have shape {arr.shape[1:]}, expected {(self.num_frames, NUM_AUS)}")
        return np.clip(arr, 0.0, 5.0)

    @staticmethod
    def _check_int(value: Any, name: str, where: str, low: int, high: int) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name} must be an integer, got {value!r}") from None
        if number != value or not low <= number <= high:
            raise DataError(f"{where}: {name}={value!r} is outside {low}..{high}")
        return number

    @staticmethod
    def _check_string(value: Any, name: str, where: str) -> bytes:
        if not isinstance(value, str):
            raise DataError(f"{where}: {name} must be a string, got {type(value).__name__}")
        encoded = value.encode("utf-8")
        width = schema.STRING_WIDTHS[name]
        if len(encoded) > width or b"\x00" in encoded:
            raise DataError(f"{where}: {name} {value!r} is {len(encoded)} bytes of UTF-8; the format allows "
                            f"{width} without NUL characters", hint=f"shorten the {name} key")
        return encoded

    @staticmethod
    def _check_meta(meta: Mapping[str, Any] | None, where: str) -> str:
        if meta is None:
            return "{}"
        if not isinstance(meta, Mapping):
            raise DataError(f"{where}: render_meta must be a dict, got {type(meta).__name__}")
        try:
            return json.dumps(meta, sort_keys=True, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: render_meta is not JSON-serialisable ({exc})") from None

    # ----------------------------------------------------------------------------- blocks
    def _add(self, frames: np.ndarray, aus: np.ndarray, rows: dict[str, list[Any]]) -> None:
        """Copy checked samples into the block buffers, writing each block when it is full."""
        if self._frames_block is None:
            self._frames_block = np.empty((self._block_rows,) + frames.shape[1:], dtype=np.uint8)
            self._aus_block = np.empty((self._block_rows,) + aus.shape[1:], dtype=np.float32)
        done = 0
        while done < len(frames):
            take = min(len(frames) - done, self._block_rows - self._buffered)
            self._frames_block[self._buffered:self._buffered + take] = frames[done:done + take]
            self._aus_block[self._buffered:self._buffered + take] = aus[done:done + take]
            for name, values in rows.items():
                self._rows[name].extend(values[done:done + take])
            self._buffered += take
            self.count += take
            done += take
            if self._buffered == self._block_rows:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        m = self._buffered
        start, stop = self._written, self._written + m
        f = self._file
        if stop > f["frames"].shape[0]:
            for name in schema.ALL_FIELDS:
                f[name].resize(max(stop, self.capacity), axis=0)
        f["frames"][start:stop] = self._frames_block[:m]
        f["aus"][start:stop] = self._aus_block[:m]
        for name, dtype in schema.SCALAR_DTYPES.items():
            f[name][start:stop] = np.array(self._rows[name], dtype=dtype)
        for name in schema.STRING_FIELDS:
            f[name][start:stop] = np.array(self._rows[name], dtype=schema.string_dtype(name))
        f["render_meta"][start:stop] = np.array(self._rows["render_meta"], dtype=object)
        self._rows = {name: [] for name in schema.TABLE_FIELDS}
        self._buffered = 0
        self._written = stop


def _item(value: Any) -> Any:
    """numpy scalars -> Python scalars, strings unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

"""Read shards lazily, per process, so readers pickle into DataLoader workers (fork and spawn).

A reader opens its HDF5 files on first use in each process and remembers the process id: a
forked worker never reuses its parent's handle. Per-sample scalar and string fields (the "table")
are read once per shard and process and kept in memory, so a sample read touches only ``frames``
and ``aus``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError
from . import schema
from .collate import BatchView, sample_dict
from .sampler import ShardBatchSampler

# chunk cache per open dataset: a few chunks of aus / frames
_RDCC_NBYTES = 4 * 1024 * 1024
# read_batch reads the AUs of a batch as one span when it is at most this big
_AUS_SPAN_BYTES = 8 * 1024 * 1024
# a shard's AUs are kept in memory (per process, like the table) when they are at most this big:
# 2,500 samples of up to 49 frames. A row read through HDF5 costs ~40 µs, a memory read ~1 µs.
_AUS_CACHE_BYTES = 8 * 1024 * 1024


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(h5: Any) -> dict[str, Any]:
    """Root attributes of an open shard as Python values (``versions`` parsed from JSON)."""
    attrs = {key: _decode_attr(value) for key, value in h5.attrs.items()}
    if isinstance(attrs.get("versions"), str):
        try:
            attrs["versions"] = json.loads(attrs["versions"])
        except json.JSONDecodeError:
            pass
    return attrs


def _decode_strings(raw: np.ndarray) -> np.ndarray:
    """Fixed-length UTF-8 bytes -> numpy unicode array."""
    if raw.size == 0:
        return np.array([], dtype="U1")
    return np.char.decode(raw.astype(np.bytes_), "utf-8")


class _RowReader:
    """Reads whole rows (samples) of one dataset with HDF5's low-level API.

    h5py's ``dset[i]`` costs tens of microseconds of Python per call (selection objects, type
    checks); with the file and memory dataspaces kept, a row read is one ``H5Dread`` through the
    normal filter pipeline (decompression, fletcher32 verification).
    """

    def __init__(self, dset: Any):
        import h5py

        self._h5s = h5py.h5s
        self.id = dset.id
        self.row_shape = tuple(int(s) for s in dset.shape[1:])
        self.dtype = dset.dtype
        self._space = self.id.get_space()
        self._zeros = (0,) * len(self.row_shape)
        self._mspaces: dict[int, Any] = {}

    def read_into(self, out: np.ndarray, start: int, count: int) -> None:
        """Rows ``start:start+count`` into the C-contiguous array ``out`` of that many rows."""
        mspace = self._mspaces.get(count)
        if mspace is None:
            mspace = self._mspaces[count] = self._h5s.create_simple((count,) + self.row_shape)
        self._space.select_hyperslab((start,) + self._zeros, (count,) + self.row_shape)
        self.id.read(mspace, self._space, out)

    def row(self, index: int) -> np.ndarray:
        out = np.empty((1,) + self.row_shape, dtype=self.dtype)
        self.read_into(out, index, 1)
        return out[0]


class _DirectFrames:
    """Frame rows of an unfiltered shard read with ``pread`` at the chunk addresses HDF5 reports.

    HDF5 spends tens of microseconds per ``H5Dread`` of one chunk (selection, chunk lookup,
    type path). With one chunk per sample and no filter, a chunk's bytes on disk are exactly the
    row's bytes, so reading them at the address from ``H5Dchunk_iter`` / ``H5Dget_chunk_info`` is
    one copy from the page cache (about 4x faster; ``benchmarks/bench_read.py``). Only used when
    the layout allows it, checked against an HDF5 read when the file is opened; compressed or
    checksummed shards keep the HDF5 path, which decompresses and verifies.
    """

    def __init__(self, path: Path, offsets: np.ndarray, row_shape: tuple[int, ...], fd: int | None = None):
        self.path = path
        self.offsets = offsets  # file address of each sample's chunk; -1 = never written
        self.row_shape = row_shape
        self.row_bytes = int(np.prod(row_shape))
        # HDF5's own descriptor when it gives one (pread moves no file offset): a dataset of many
        # shards then needs no second descriptor per shard and process
        self._owns_fd = fd is None
        self.fd = os.open(path, os.O_RDONLY) if fd is None else fd

    @classmethod
    def open(cls, path: Path, file: Any, rows: _RowReader) -> _DirectFrames | None:
        dset = file["frames"]
        if (dset.dtype != np.uint8 or dset.chunks != (1,) + rows.row_shape or file.userblock_size
                or dset.id.get_create_plist().get_nfilters() or len(dset) == 0):
            return None
        offsets = _chunk_offsets(dset, int(np.prod(rows.row_shape)))
        if offsets is None or not (offsets >= 0).any():
            return None
        try:
            fd = file.id.get_vfd_handle()
        except Exception:  # noqa: BLE001 - a driver without a POSIX descriptor: open our own
            fd = None
        direct = cls(path, offsets, rows.row_shape, fd if isinstance(fd, int) and fd >= 0 else None)
        first = int(np.flatnonzero(offsets >= 0)[0])
        mine = np.empty((1,) + rows.row_shape, dtype=np.uint8)
        direct.read_into(mine, np.array([first]), rows)
        if not np.array_equal(mine[0], rows.row(first)):  # not what HDF5 reads: never guess
            direct.close()
            return None
        return direct

    def read_into(self, out: np.ndarray, idx: np.ndarray, rows: _RowReader) -> None:
        """Rows ``idx`` (any order) into ``out``; runs of neighbours on disk in one call."""
        if len(idx) == 1 and self.offsets[idx[0]] >= 0:  # per-sample reads: skip the run search
            self._pread(memoryview(out[:1]).cast("B"), int(self.offsets[idx[0]]))
            return
        offsets = self.offsets[idx]
        unwritten = offsets < 0
        for pos, first, length in _runs(offsets, step=self.row_bytes, split=unwritten):
            if first >= 0:
                self._pread(memoryview(out[pos:pos + length]).cast("B"), first)
            else:  # never written (a run of one): HDF5 supplies the fill value
                rows.read_into(out[pos:pos + 1], int(idx[pos]), 1)

    def _pread(self, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got <= 0:
                raise FormatError(f"{self.path} ends inside a frame chunk (at byte {offset + done})",
                                  path=self.path, hint="the file is truncated; run miex data validate")
            done += got

    def close(self) -> None:
        if self.fd >= 0 and self._owns_fd:
            os.close(self.fd)
        self.fd = -1


def _chunk_offsets(dset: Any, chunk_bytes: int) -> np.ndarray | None:
    """File address of every row's chunk (-1 where unallocated); None if any chunk is not raw."""
    offsets = np.full(len(dset), -1, dtype=np.int64)
    raw = [True]

    def visit(info: Any) -> None:
        if info.filter_mask or info.size != chunk_bytes:
            raw[0] = False
        elif info.chunk_offset[0] < len(offsets):
            offsets[info.chunk_offset[0]] = info.byte_offset

    try:
        dset.id.chunk_iter(visit)
    except (AttributeError, NotImplementedError, RuntimeError):  # HDF5 < 1.12.3: one query per chunk
        for k in range(dset.id.get_num_chunks()):
            visit(dset.id.get_chunk_info(k))
    return offsets if raw[0] else None


class _Handle:
    """An open shard in one process: the h5py file and row readers for frames and aus."""

    def __init__(self, path: Path):
        import h5py

        self.pid = os.getpid()
        self.file = h5py.File(path, "r", rdcc_nbytes=_RDCC_NBYTES)
        self.frames = _RowReader(self.file["frames"])
        self.aus = _RowReader(self.file["aus"])
        self.direct = _DirectFrames.open(path, self.file, self.frames)

    def read_frames(self, out: np.ndarray, idx: np.ndarray) -> None:
        """Rows ``idx`` of ``frames`` into ``out`` (C-contiguous, ``len(idx)`` rows)."""
        if self.direct is not None:
            self.direct.read_into(out, idx, self.frames)
        elif len(idx) <= 1 or bool(np.all(np.diff(idx) > 0)):
            for pos, first, length in _runs(idx):
                self.frames.read_into(out[pos:pos + length], first, length)
        else:
            unique, inverse = np.unique(idx, return_inverse=True)
            sorted_frames = np.empty((len(unique),) + self.frames.row_shape, dtype=np.uint8)
            for pos, first, length in _runs(unique):
                self.frames.read_into(sorted_frames[pos:pos + length], first, length)
            np.take(sorted_frames, inverse, axis=0, out=out)

    def close(self) -> None:
        if self.direct is not None:
            self.direct.close()
        self.file.close()


def _output(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.uint8)
    if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"frames_out must be C-contiguous uint8 {shape}, got {out.dtype} {out.shape}")
    return out


def _runs(values: np.ndarray, step: int = 1, split: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """(position, first value, length) of each run of ``values`` that go up by ``step``
    (consecutive indices; neighbouring chunks on disk). A ``split`` element stands alone."""
    if len(values) == 0:
        return []
    apart = np.diff(values) != step
    if split is not None:
        apart |= split[1:] | split[:-1]
    breaks = np.flatnonzero(apart) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(values)]])
    return [(int(a), int(values[a]), int(b - a)) for a, b in zip(starts, stops)]


class ShardReader:
    """One shard file: ``len``, ``r[i]``, ``read_batch(indices)``, ``table()``, ``attrs``."""

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"shard not found: {self.path}", path=self.path,
                              hint="give a dataset directory or one shard-NNNNN.h5 file")
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = read_attrs(f)
                missing = [name for name in schema.ALL_FIELDS if name not in f]
                if self.attrs.get("format_name") != schema.FORMAT_NAME:
                    raise FormatError(f"{self.path} is not a miex shard (format_name="
                                      f"{self.attrs.get('format_name')!r})", path=self.path,
                                      hint="miex shards are written by miex generate")
                version = int(self.attrs.get("format_version", -1))
                if version > schema.FORMAT_VERSION:
                    raise FormatError(f"{self.path} uses format version {version}; this miex reads up to "
                                      f"{schema.FORMAT_VERSION}", path=self.path, hint="upgrade miex")
                if missing:
                    raise FormatError(f"{self.path} lacks dataset(s) {', '.join(missing)}", path=self.path,
                                      hint="run miex data validate for details")
                self._len = int(f["label"].shape[0])
                self.frame_shape = tuple(int(s) for s in f["frames"].shape[1:])
        except OSError as exc:
            raise FormatError(f"{self.path} cannot be opened as HDF5 ({exc})", path=self.path,
                              hint="the file is truncated or not a shard; run miex data validate") from exc
        self.class_names: tuple[str, ...] = tuple(self.attrs.get("class_names", ()))
        self._handle: _Handle | None = None
        self._table: dict[str, np.ndarray] | None = None
        self._aus: np.ndarray | None = None

    # ----------------------------------------------------------------- per-process handle
    def _open(self) -> _Handle:
        """This process's handle; a forked child opens its own instead of using its parent's."""
        if self._handle is None or self._handle.pid != os.getpid():
            self._handle = _Handle(self.path)
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._handle.pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_handle=None, _table=None, _aus=None)
        return state

    def __len__(self) -> int:
        return self._len

    @property
    def num_frames(self) -> int:
        return self.frame_shape[0]

    # --------------------------------------------------------------------------- reading
    def table(self) -> dict[str, np.ndarray]:
        """All per-sample fields except frames/aus, decoded, cached per process."""
        if self._table is None:
            self._table = {name: self.column(name) for name in (*schema.SCALAR_FIELDS, *schema.STRING_FIELDS,
                                                                "render_meta")}
        return self._table

    def column(self, name: str) -> np.ndarray:
        """One per-sample field (not frames/aus), decoded; from the table if it is cached, else read
        without caching (summaries over many shards then need one column's memory, not tables')."""
        if self._table is not None:
            return self._table[name]
        f = self._open().file
        if name in schema.SCALAR_FIELDS:
            return f[name][:]
        if name in schema.STRING_FIELDS:
            return _decode_strings(f[name][:])
        if name == "render_meta":
            return np.array(f["render_meta"].asstr()[:], dtype=object)
        raise KeyError(f"{name!r} is not a per-sample table field")

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self._check_index(index)
        handle = self._open()
        frames = np.empty((1,) + self.frame_shape, dtype=np.uint8)
        handle.read_frames(frames, np.array([i]))
        cached = self._cached_aus(handle)
        aus = cached[i].copy() if cached is not None else handle.aus.row(i)
        return sample_dict(frames[0], aus, self.table(), i)

    def read_batch(self, indices: Sequence[int] | np.ndarray, *, frames_out: np.ndarray | None = None
                   ) -> dict[str, Any]:
        """Samples ``indices`` stacked, in the order asked (``render_meta`` as JSON text).

        frames: straight into ``frames_out`` (or a new array), one ``pread`` per run of neighbouring
        chunks for unfiltered shards (``_DirectFrames``), else one HDF5 read per run of consecutive
        indices (HDF5's own multi-block selections are far slower than this loop); aus: one read
        of the span the batch covers.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self._len, idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= self._len):
            bad = int(np.asarray(indices).reshape(-1)[(idx < 0) | (idx >= self._len)][0])
            raise IndexError(f"sample {bad} out of range for {self.path.name} ({self._len} samples)")
        frames = _output(frames_out, (len(idx),) + self.frame_shape)
        handle = self._open()
        handle.read_frames(frames, idx)
        batch: dict[str, Any] = {"frames": frames, "aus": self._read_aus(handle, idx)}
        table = self.table()
        for name in schema.SCALAR_FIELDS + schema.STRING_FIELDS:
            batch[name] = table[name][idx]
        batch["render_meta"] = table["render_meta"][idx]  # JSON text: parse only what you need
        return batch

    def _read_aus(self, handle: _Handle, idx: np.ndarray) -> np.ndarray:
        """AUs are small: from memory, else one read of the span covering the batch (not per sample)."""
        shape = (self.num_frames, 17)
        if len(idx) == 0:
            return np.empty((0,) + shape, dtype=np.float32)
        cached = self._cached_aus(handle)
        if cached is not None:
            return cached[idx]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if (hi - lo) * self.num_frames * 17 * 4 <= _AUS_SPAN_BYTES:
            span = np.empty((hi - lo,) + shape, dtype=np.float32)
            handle.aus.read_into(span, lo, hi - lo)
            return span[idx - lo]
        unique, inverse = np.unique(idx, return_inverse=True)
        aus = np.empty((len(unique),) + shape, dtype=np.float32)
        for pos, first, length in _runs(unique):
            handle.aus.read_into(aus[pos:pos + length], first, length)
        return aus[inverse]

    def _cached_aus(self, handle: _Handle) -> np.ndarray | None:
        """All AUs of this shard, read once per process, if they fit ``_AUS_CACHE_BYTES``."""
        if self._aus is None:
            if self._len * self.num_frames * 17 * 4 > _AUS_CACHE_BYTES:
                return None
            aus = np.empty((self._len, self.num_frames, 17), dtype=np.float32)
            if self._len:
                handle.aus.read_into(aus, 0, self._len)
            self._aus = aus
        return self._aus

    def _check_index(self, index: int) -> int:
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"sample {index} out of range for {self.path.name} ({self._len} samples)")
        return i


class DatasetReader:
    """All complete shards of a dataset directory (or one shard file) as one indexable dataset.

    ``len(r)``, ``r[i]`` (one sample dict), ``r[[i, j, ...]]`` / ``r.read_batch(indices)`` (stacked),
    ``r.table()``, ``r.attrs``, ``r.batch_sampler(...)``. Picklable; files open lazily per process.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            files = schema.list_shards(self.path)
            if not files:
                raise FormatError(f"{self.path} holds no shard files (shard-NNNNN.h5)", path=self.path,
                                  hint="give the output directory of miex generate")
        elif self.path.is_file():
            files = [self.path]
        else:
            raise FormatError(f"{self.path} does not exist", path=self.path,
                              hint="give a dataset directory or one shard file")
        self.shards = [ShardReader(p) for p in files]
        first = self.shards[0]
        for shard in self.shards[1:]:
            if shard.frame_shape != first.frame_shape or shard.class_names != first.class_names:
                raise FormatError(f"{shard.path.name} does not match {first.path.name}: frames "
                                  f"{shard.frame_shape} vs {first.frame_shape}, classes {shard.class_names} vs "
                                  f"{first.class_names}", path=self.path,
                                  hint="keep shards of one dataset (one config) in one directory")
        self.attrs: dict[str, Any] = first.attrs
        self.class_names = first.class_names
        self.frame_shape = first.frame_shape
        self.lengths = np.array([len(s) for s in self.shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_frames(self) -> int:
        return self.frame_shape[0]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, index inside that shard) of global sample ``index``."""
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {index} out of range ({len(self)} samples)")
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return k, i - int(self.offsets[k])

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, Any]:
        if isinstance(index, (int, np.integer)):
            k, local = self.locate(int(index))
            return self.shards[k][local]
        return self.read_batch(index)

    def read_batch(self, indices: Sequence[int] | np.ndarray, *, frames_out: np.ndarray | None = None
                   ) -> dict[str, Any]:
        """Samples stacked in the order asked; reads grouped per shard (see ShardReader.read_batch)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"batch indices out of range ({len(self)} samples)")
        frames = _output(frames_out, (len(idx),) + self.frame_shape)
        shard_of = np.searchsorted(self.offsets, idx, side="right") - 1
        ks = np.unique(shard_of)
        if len(ks) <= 1:
            k = int(ks[0]) if len(ks) else 0
            return self.shards[k].read_batch(idx - self.offsets[k], frames_out=frames)
        parts, positions = [], []
        for k in ks:
            where = np.flatnonzero(shard_of == k)
            local = idx[where] - self.offsets[k]
            if where[-1] - where[0] + 1 == len(where):  # a contiguous part of the batch: read in place
                parts.append(self.shards[int(k)].read_batch(local, frames_out=frames[where[0]:where[-1] + 1]))
            else:
                parts.append(self.shards[int(k)].read_batch(local))
                frames[where] = parts[-1]["frames"]
            positions.append(where)
        order = np.argsort(np.concatenate(positions), kind="stable")
        batch = {name: np.concatenate([part[name] for part in parts])[order] for name in schema.ALL_FIELDS
                 if name != "frames"}
        return {"frames": frames, **batch}

    def __getitems__(self, indices: Sequence[int]) -> "BatchView":
        """DataLoader hook (auto-collation): one batched read, seen as a sequence of sample dicts.

        ``collate`` takes the stacked batch whole and, in a worker, hands it to the main process
        through reused shared memory (``transport``).
        """
        return BatchView(self.read_batch(indices))

    def table(self) -> dict[str, np.ndarray]:
        """Per-sample fields except frames/aus for the whole dataset, plus ``shard`` (shard number)."""
        tables = [s.table() for s in self.shards]
        out = {name: np.concatenate([t[name] for t in tables]) for name in schema.TABLE_FIELDS}
        out["shard"] = np.repeat(np.arange(len(self.shards), dtype=np.int32), self.lengths)
        return out

    def batch_sampler(self, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                      *, rank: int = 0, world_size: int = 1) -> "ShardBatchSampler":
        """Index batches that stay within one shard where possible (see ShardBatchSampler)."""
        return ShardBatchSampler(self.lengths, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                 rank=rank, world_size=world_size)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()

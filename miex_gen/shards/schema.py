"""The miex dataset format v1 in one place: names, dtypes, string widths, compression, file names.

Everything that writes, reads or checks shards takes its facts from here, and docs/FORMAT.md
describes the same table for readers that only have an HDF5 library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import is_temp_file
from ..errors import ConfigError

FORMAT_NAME = "miex-shard"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "miex-dataset"
CARD_NAME = "DATASET_CARD.md"
INDEX_NAME = "index.h5"

SOURCE_KINDS: tuple[str, ...] = ("exp", "mie", "mae")

_SHARD_RE = re.compile(r"^shard-(\d{5,})\.h5$")


def shard_name(k: int) -> str:
    """File name of shard ``k``: ``shard-00000.h5`` (5 digits, more when k > 99999)."""
    if int(k) < 0:
        raise ValueError(f"shard index must be non-negative, got {k}")
    return f"shard-{int(k):05d}.h5"


def shard_index_of(path: str | Path) -> int | None:
    """The k of ``shard-k.h5``, or None when ``path`` is not a shard file name."""
    match = _SHARD_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_shards(directory: str | Path) -> list[Path]:
    """Complete shard files of a dataset directory in shard order (temp files are not shards)."""
    directory = Path(directory)
    found = [p for p in directory.iterdir() if shard_index_of(p) is not None and p.is_file()]
    return sorted(found, key=lambda p: shard_index_of(p))  # type: ignore[arg-type, return-value]


def list_temp_files(directory: str | Path) -> list[Path]:
    """Temp files left by writers that did not finish (or are still writing)."""
    return sorted(p for p in Path(directory).iterdir() if is_temp_file(p))


# ------------------------------------------------------------------------------------ fields

# Fixed-length UTF-8 string fields and their width in bytes (values are NUL-padded).
STRING_WIDTHS: dict[str, int] = {
    "source_kind": 8,
    "identity": 256,
    "dataset": 32,
    "subject": 64,
    "clip": 128,
}

# Per-sample scalar fields (1-D datasets of length N) and their dtypes.
SCALAR_DTYPES: dict[str, np.dtype] = {
    "label": np.dtype("i1"),
    "apex_index": np.dtype("i1"),
    "onset_frame": np.dtype("i4"),
    "apex_frame": np.dtype("i4"),
    "sample_seed": np.dtype("u8"),
    "sample_index": np.dtype("i8"),
}

STRING_FIELDS: tuple[str, ...] = tuple(STRING_WIDTHS)
SCALAR_FIELDS: tuple[str, ...] = tuple(SCALAR_DTYPES)
# everything per sample except frames and aus: what ``table()`` returns
TABLE_FIELDS: tuple[str, ...] = SCALAR_FIELDS + STRING_FIELDS + ("render_meta",)
ALL_FIELDS: tuple[str, ...] = ("frames", "aus") + TABLE_FIELDS

# Root attributes the caller must give and those the writer adds.
CALLER_ATTRS: tuple[str, ...] = (
    "renderer", "renderer_weights_sha256", "config", "config_hash", "shard_index", "num_shards",
)
WRITER_ATTRS: tuple[str, ...] = (
    "format_name", "format_version", "class_names", "au_names", "au_scale", "num_frames", "height", "width",
    "num_samples", "compression", "checksum", "created_utc", "versions", "miex_version", "torch_version",
    "h5py_version",
)

# rows per chunk of the 1-D fields; aus chunks hold about this many bytes
TABLE_CHUNK_ROWS = 4096
AUS_CHUNK_BYTES = 16384
# the 1-D fields are small and read whole: always deflate (present in every HDF5 build)
TABLE_GZIP_LEVEL = 4


def string_dtype(field: str) -> np.dtype:
    import h5py

    return h5py.string_dtype("utf-8", STRING_WIDTHS[field])


def vlen_string_dtype() -> np.dtype:
    import h5py

    return h5py.string_dtype("utf-8")


# ------------------------------------------------------------------------------- compression

DEFAULT_COMPRESSION = "none"
# fletcher32 on frame chunks is opt-in: it halves DataLoader throughput (the reader can no longer
# pread raw chunks), while the manifest's SHA-256 per shard already catches damage at rest
# (docs/FORMAT.md "Integrity"). aus and the table always carry it.
DEFAULT_CHECKSUM = False
_CHECKSUM_SUFFIX = "+fletcher32"
_NO_CHECKSUM_SUFFIX = "+nofletcher32"


@dataclass(frozen=True)
class Compression:
    """How ``frames`` are stored: ``none``, ``gzip[:level]`` or ``lzf``, with or without fletcher32.

    ``aus`` use the same compression and always carry fletcher32 (they are small).
    """

    name: str = "none"
    level: int | None = None
    checksum: bool = DEFAULT_CHECKSUM

    @classmethod
    def parse(cls, spec: str | None, *, checksum: bool = DEFAULT_CHECKSUM) -> "Compression":
        """``None``/``"none"``, ``"gzip"`` (level 1), ``"gzip:6"``, ``"lzf"``; a ``+fletcher32`` /
        ``+nofletcher32`` suffix overrides ``checksum`` (HDF5's fletcher32 on every frame chunk)."""
        text = (spec or "none").strip().lower()
        if text.endswith(_NO_CHECKSUM_SUFFIX):
            text, checksum = text[: -len(_NO_CHECKSUM_SUFFIX)], False
        elif text.endswith(_CHECKSUM_SUFFIX):
            text, checksum = text[: -len(_CHECKSUM_SUFFIX)], True
        name, _, level_text = text.partition(":")
        if name in ("none", "raw", "uncompressed") and not level_text:
            return cls("none", None, checksum)
        if name in ("gzip", "deflate"):
            try:
                level = int(level_text) if level_text else 1
            except ValueError:
                level = -1
            if not 0 <= level <= 9:
                raise ConfigError(f"compression {spec!r}: gzip level must be 0-9", hint="e.g. gzip:1")
            return cls("gzip", level, checksum)
        if name == "lzf" and not level_text:
            return cls("lzf", None, checksum)
        raise ConfigError(f"unknown compression {spec!r}",
                          hint="use none, gzip, gzip:1..9 or lzf, optionally followed by +fletcher32 or +nofletcher32")

    def __str__(self) -> str:
        text = self.name if self.level is None else f"{self.name}:{self.level}"
        return text + (_CHECKSUM_SUFFIX if self.checksum else "")

    def h5py_kwargs(self, *, checksum: bool | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"fletcher32": self.checksum if checksum is None else checksum}
        if self.name == "gzip":
            kwargs.update(compression="gzip", compression_opts=self.level)
        elif self.name == "lzf":
            kwargs.update(compression="lzf")
        return kwargs


def table_h5py_kwargs(dtype: np.dtype) -> dict[str, Any]:
    """Filters of the 1-D fields: deflate (+ shuffle for multi-byte numbers) and fletcher32."""
    kwargs: dict[str, Any] = {"compression": "gzip", "compression_opts": TABLE_GZIP_LEVEL, "fletcher32": True}
    if dtype.kind in "iuf" and dtype.itemsize > 1:
        kwargs["shuffle"] = True
    return kwargs

"""``kind:path`` → a sample source: ``shards:DIR``, ``casme2:ROOT``, ``samm:ROOT``, ``smic:ROOT``, ``megc2019:ROOT``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from miex_gen.errors import ConfigError, DataError, DependencyError

from .sources import ClipSource, FaceBoxFn, SampleSource, ShardSource

# kind -> loader function name in miex_gen.datasets
CLIP_LOADERS = {"casme2": "load_casme2", "samm": "load_samm", "smic": "load_smic", "megc2019": "load_megc2019"}
DATA_KINDS = ("shards", *CLIP_LOADERS)


def parse_data_spec(spec: str) -> tuple[str, Path]:
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise ConfigError(f"data {spec!r} is not KIND:PATH", hint=f"kinds: {', '.join(DATA_KINDS)}")
    return kind.strip().lower(), Path(path).expanduser()


def open_data(kind: str, path: str | Path | None = None, *, crop_size: int = 128,
              face_box: FaceBoxFn | None = None) -> SampleSource:
    """Open one data set. ``open_data("casme2:ROOT")`` also works (kind and path in one string)."""
    if path is None:
        kind, path = parse_data_spec(kind)
    path = Path(path).expanduser()
    if kind not in DATA_KINDS:
        raise ConfigError(f"unknown data kind {kind!r}", hint=f"use one of {', '.join(DATA_KINDS)}")
    if not path.exists():
        raise DataError(f"{kind} data not found", path=path, hint="check the path")
    if kind == "shards":
        return ShardSource(path)
    try:
        datasets = importlib.import_module("miex_gen.datasets")
    except ImportError as exc:
        raise DependencyError("miex_gen.datasets is not available", hint="install the full miex package") from exc
    loader = getattr(datasets, CLIP_LOADERS[kind])
    records: list = []
    crop: bool | None = None  # None: decide per clip from its folder names
    if "cropped" in inspect.signature(loader).parameters:
        try:  # the release's own face crops where it has them (FRL_DGT.md §3.1)
            records = list(loader(path, cropped=True))
            crop = False if records else None
        except DataError:
            records = []
    if not records:
        records = list(loader(path))
    return ClipSource(records, name=f"{kind}:{path.name}", crop_size=crop_size, face_box=face_box, crop=crop)

"""``AuPool``: AU triplets (onset AUs, apex AUs, 3-class label) with provenance, and its HDF5 file.

A pool remembers where every AU vector came from (dataset, subject, clip, frames) so that training
can drop a test subject's AUs (the leakage guard). The file layout (DESIGN.md "Contracts"):

* datasets ``onset``, ``apex`` f4[N,17] (OpenFace 0-5 scale), ``label`` i1[N], provenance
  ``dataset``, ``subject``, ``clip``, ``emotion`` (fixed-length UTF-8), ``onset_frame``,
  ``apex_frame`` i4[N] (-1 if none);
* attributes ``format`` ("miex-au-pool"), ``format_version``, ``kind`` (mie|mae|exp), ``au_names``,
  ``au_scale``, ``class_names``, ``seed``, ``miex_version`` and ``attrs_json`` (every build parameter).

Files carry no time stamps (h5py ``track_times=False``, no creation time attribute), so the same
build with the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..atomic import atomic_path
from ..aus import AU_NAMES, AU_SCALE, CLASS_NAMES, NUM_AUS, check_aus
from ..errors import DataError, FormatError

FORMAT_NAME = "miex-au-pool"
FORMAT_VERSION = 1
KINDS = ("mie", "mae", "exp")
_STR_FIELDS = ("dataset", "subject", "clip", "emotion")


def _str_array(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray([str(v) for v in values], dtype=str)
    return arr if arr.size else np.zeros(0, dtype="<U1")


@dataclass
class AuPool:
    """N AU triplets of one ``kind`` with provenance; ``attrs`` holds the build parameters."""

    onset: np.ndarray
    apex: np.ndarray
    label: np.ndarray
    kind: str
    dataset: np.ndarray
    subject: np.ndarray
    clip: np.ndarray
    onset_frame: np.ndarray
    apex_frame: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    emotion: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"unknown AU pool kind {self.kind!r}", hint=f"use one of {', '.join(KINDS)}")
        n = len(np.asarray(self.label))
        self.onset = np.ascontiguousarray(np.asarray(self.onset, dtype=np.float32).reshape(n, NUM_AUS))
        self.apex = np.ascontiguousarray(np.asarray(self.apex, dtype=np.float32).reshape(n, NUM_AUS))
        check_aus(self.onset, where=f"{self.kind} pool onset AUs")
        check_aus(self.apex, where=f"{self.kind} pool apex AUs")
        self.label = np.asarray(self.label, dtype=np.int8)
        if n and (self.label.min() < 0 or self.label.max() > 2):
            raise DataError(f"{self.kind} pool: labels must be 0, 1 or 2")
        if self.emotion is None:
            self.emotion = np.full(n, "", dtype="<U1")
        for name in _STR_FIELDS:
            setattr(self, name, _str_array(getattr(self, name)))
        self.onset_frame = np.asarray(self.onset_frame, dtype=np.int32)
        self.apex_frame = np.asarray(self.apex_frame, dtype=np.int32)
        for name in (*_STR_FIELDS, "onset_frame", "apex_frame"):
            if len(getattr(self, name)) != n:
                raise DataError(f"{self.kind} pool: {name} has {len(getattr(self, name))} entries for {n} labels")

    # ----------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(self.label.shape[0])

    def class_counts(self) -> dict[int, int]:
        """``{0: n_negative, 1: n_positive, 2: n_surprise}`` (all three classes always present)."""
        counts = np.bincount(self.label.astype(np.int64), minlength=len(CLASS_NAMES))
        return {c: int(counts[c]) for c in range(len(CLASS_NAMES))}

    def subjects(self) -> set[tuple[str, str]]:
        return set(zip(self.dataset.tolist(), self.subject.tolist()))

    def mean_aus(self, which: str = "apex") -> np.ndarray:
        """f4[3,17]: mean AUs per class (NaN rows for classes the pool lacks)."""
        values = getattr(self, which)
        out = np.full((len(CLASS_NAMES), NUM_AUS), np.nan, dtype=np.float32)
        for c in range(len(CLASS_NAMES)):
            mask = self.label == c
            if mask.any():
                out[c] = values[mask].mean(axis=0)
        return out

    def select(self, mask_or_indices: Sequence[int] | np.ndarray) -> "AuPool":
        """A new pool with the chosen entries (boolean mask or integer indices, order kept)."""
        index = np.asarray(mask_or_indices)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise DataError(f"selection mask has shape {index.shape}, pool has {len(self)} entries")
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        return AuPool(self.onset[index], self.apex[index], self.label[index], self.kind, self.dataset[index],
                      self.subject[index], self.clip[index], self.onset_frame[index], self.apex_frame[index],
                      attrs=dict(self.attrs), emotion=self.emotion[index])

    def subject_mask(self, subjects: Iterable[tuple[str, str]]) -> np.ndarray:
        """True where the entry's (dataset, subject) is in ``subjects`` (canonical keys)."""
        wanted = {(str(d), str(s)) for d, s in _canonical_subjects(subjects)}
        return np.fromiter(((d, s) in wanted for d, s in zip(self.dataset.tolist(), self.subject.tolist())),
                           dtype=bool, count=len(self))

    def exclude_subjects(self, subjects: Iterable[tuple[str, str]]) -> "AuPool":
        """Drop every entry of the given (dataset, subject) pairs (e.g. a fold's test subjects)."""
        subjects = list(subjects)
        out = self.select(~self.subject_mask(subjects))
        out.attrs = {**self.attrs, "excluded_subjects": sorted(map(list, _canonical_subjects(subjects)))}
        return out

    def restrict_subjects(self, subjects: Iterable[tuple[str, str]]) -> "AuPool":
        """Keep only entries of the given (dataset, subject) pairs (e.g. a fold's training subjects)."""
        subjects = list(subjects)
        out = self.select(self.subject_mask(subjects))
        out.attrs = {**self.attrs, "restricted_to_subjects": sorted(map(list, _canonical_subjects(subjects)))}
        return out

    @staticmethod
    def merge(pools: Sequence["AuPool"]) -> "AuPool":
        """Concatenate pools of the same kind (provenance kept; attrs list each part's attrs)."""
        pools = list(pools)
        if not pools:
            raise DataError("nothing to merge: no AU pools given")
        kinds = {p.kind for p in pools}
        if len(kinds) != 1:
            raise DataError(f"cannot merge AU pools of different kinds ({', '.join(sorted(kinds))})",
                            hint="merge pools of one kind only; mix kinds when planning a dataset")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in pools])

        return AuPool(cat("onset"), cat("apex"), cat("label"), pools[0].kind, cat("dataset"), cat("subject"),
                      cat("clip"), cat("onset_frame"), cat("apex_frame"),
                      attrs={"merged_from": [p.attrs for p in pools]}, emotion=cat("emotion"))

    # ----------------------------------------------------------------------------- files
    def save(self, path: Path | str) -> Path:
        """Write the pool atomically (temp file, then rename); no time stamps, so bytes repeat."""
        import h5py

        path = Path(path)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w", track_order=True) as f:
                kw = {"track_times": False}
                f.create_dataset("onset", data=self.onset, **kw)
                f.create_dataset("apex", data=self.apex, **kw)
                f.create_dataset("label", data=self.label, **kw)
                for name in _STR_FIELDS:
                    values = [v.encode("utf-8") for v in getattr(self, name).tolist()]
                    width = max([len(v) for v in values] + [1])
                    utf8 = h5py.string_dtype("utf-8", width)
                    f.create_dataset(name, data=np.asarray(values, dtype=utf8), dtype=utf8, **kw)
                f.create_dataset("onset_frame", data=self.onset_frame, **kw)
                f.create_dataset("apex_frame", data=self.apex_frame, **kw)
                f.attrs["format"] = FORMAT_NAME
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["kind"] = self.kind
                f.attrs["au_names"] = json.dumps(list(AU_NAMES))
                f.attrs["au_scale"] = AU_SCALE
                f.attrs["class_names"] = json.dumps(list(CLASS_NAMES))
                f.attrs["seed"] = -1 if self.attrs.get("seed") is None else int(self.attrs["seed"])
                f.attrs["miex_version"] = str(self.attrs.get("miex_version", __version__))
                f.attrs["attrs_json"] = json.dumps(self.attrs, sort_keys=True, default=str)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "AuPool":
        """Read a pool file; FormatError naming the file and the problem when it is not one."""
        import h5py

        path = Path(path)
        if not path.is_file():
            raise DataError(f"AU pool not found: {path}", hint="build one with miex aus pool build", path=path)
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise FormatError(f"{path} is not an HDF5 file ({exc})", hint="is this an AU pool (.h5)?",
                              path=path) from exc
        with f:
            if f.attrs.get("format") != FORMAT_NAME:
                raise FormatError(f"{path} is not a miex AU pool (format attribute {f.attrs.get('format')!r})",
                                  hint="AU pools are written by miex aus pool build", path=path)
            version = int(f.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise FormatError(f"{path} has AU pool format version {version}; this miex reads up to "
                                  f"{FORMAT_VERSION}", hint="upgrade miex", path=path)
            names = json.loads(f.attrs.get("au_names", "[]"))
            if list(names) != list(AU_NAMES):
                raise FormatError(f"{path}: AU order {names} differs from miex's {list(AU_NAMES)}", path=path)
            if f.attrs.get("au_scale") != AU_SCALE:
                raise FormatError(f"{path}: AU scale {f.attrs.get('au_scale')!r}, expected {AU_SCALE!r}",
                                  path=path)
            missing = [n for n in ("onset", "apex", "label", *_STR_FIELDS, "onset_frame", "apex_frame")
                       if n not in f]
            if missing:
                raise FormatError(f"{path} lacks pool datasets {', '.join(missing)}",
                                  hint="the file is truncated or not an AU pool; rebuild it", path=path)
            try:
                data = {n: f[n][()] for n in ("onset", "apex", "label", "onset_frame", "apex_frame")}
                strings = {n: [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in f[n][()].tolist()]
                           for n in _STR_FIELDS}
                attrs = json.loads(f.attrs.get("attrs_json", "{}"))
                kind = str(f.attrs.get("kind"))
            except (OSError, ValueError, KeyError) as exc:
                raise FormatError(f"cannot read AU pool {path}: {exc}", hint="rebuild the pool", path=path) from exc
        try:
            return cls(data["onset"], data["apex"], data["label"], kind, strings["dataset"], strings["subject"],
                       strings["clip"], data["onset_frame"], data["apex_frame"], attrs=attrs,
                       emotion=strings["emotion"])
        except DataError as exc:
            raise FormatError(f"{path}: {exc.message}", hint=exc.hint, path=path) from exc

    def arrays_equal(self, other: "AuPool") -> bool:
        """True when every array (not ``attrs``) matches exactly."""
        names = ("onset", "apex", "label", *_STR_FIELDS, "onset_frame", "apex_frame")
        return self.kind == other.kind and all(np.array_equal(getattr(self, n), getattr(other, n)) for n in names)


def _canonical_subjects(subjects: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    from ..datasets.records import canonical_subject

    out = []
    for item in subjects:
        try:
            dataset, subject = item
        except (TypeError, ValueError):
            raise DataError(f"subject {item!r} is not a (dataset, subject) pair",
                            hint="subjects are keyed by dataset, e.g. ('samm', '006')") from None
        out.append((str(dataset), canonical_subject(str(dataset), subject)))
    return out

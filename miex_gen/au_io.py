"""Read AU tables (OpenFace 2.x and py-feat CSVs) into one in-memory form, and write py-feat CSVs.

Why by name: OpenFace headers carry a space after every comma and their column set changed between
releases (2.0 has no ``face_id``/``gaze_angle_*``; 2.2 has), so reading ``[5:22]`` by position (as the
original MiE-X code did) silently picks wrong columns. Every column here is found by its stripped
name. Each format's native scale becomes the OpenFace 0-5 scale: py-feat probabilities (0-1) are
multiplied by ``FEAT_TO_OPENFACE``; values outside a format's range are an error, not clipped.
Frames where the tracker failed stay in the table with ``success=False`` (AUs set to 0) so that frame
indices keep meaning "index into the clip's frames" and callers decide what to do with them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .aus import AU_NAMES, FEAT_AU_NAMES, FEAT_INDEX_OF_AU, FEAT_TO_OPENFACE, NUM_AUS, OPENFACE_COLUMNS
from .errors import DataError, FormatError

FORMATS = ("openface", "feat")
OPENFACE_MAX = 5.0
FEAT_MAX = 1.0
_RANGE_TOL = 1e-3


@dataclass
class AuTable:
    """AUs of one clip: ``aus`` f4[F,17] on 0-5, ``frame`` i4[F] (0-based), ``success`` bool[F]."""

    aus: np.ndarray
    frame: np.ndarray
    success: np.ndarray
    source: Path
    format: str

    def __len__(self) -> int:
        return int(self.aus.shape[0])

    @property
    def num_frames(self) -> int:
        """Frames the table spans (largest frame index + 1)."""
        return int(self.frame.max()) + 1 if len(self) else 0

    def row_of(self, frame: int) -> int | None:
        hits = np.flatnonzero(self.frame == int(frame))
        return int(hits[0]) if hits.size else None

    def vector(self, frame: int) -> np.ndarray:
        """The 17 AUs of 0-based ``frame``; DataError when the frame is absent or the tracker failed there."""
        row = self.row_of(frame)
        if row is None:
            raise DataError(f"{self.source}: no AU row for frame {frame} (table covers {len(self)} rows, "
                            f"frames {int(self.frame.min()) if len(self) else '-'}..{self.num_frames - 1})",
                            hint="re-extract the AUs of this clip (miex aus extract)")
        if not self.success[row]:
            raise DataError(f"{self.source}: the face tracker failed at frame {frame}",
                            hint="choose another frame, or re-extract with a better face crop")
        return self.aus[row].copy()


def _header_and_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    except FileNotFoundError as exc:
        raise DataError(f"AU table not found: {path}", hint="check the path or run miex aus extract",
                        path=path) from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"cannot read AU table {path}: {exc}", hint="is this a CSV file?", path=path) from exc
    if not header:
        raise FormatError(f"AU table {path} is empty", path=path)
    return [h.strip() for h in header], rows


def detect_format(columns: list[str]) -> str | None:
    names = set(columns)
    if all(c in names for c in OPENFACE_COLUMNS):
        return "openface"
    feat_needed = [FEAT_AU_NAMES[i] for i in FEAT_INDEX_OF_AU]
    if all(c in names for c in feat_needed):
        return "feat"
    return None


def _column(path: Path, columns: list[str], rows: list[list[str]], name: str, *, required: bool = True,
            allow_nan: bool = False) -> np.ndarray | None:
    if name not in columns:
        if required:
            raise FormatError(f"AU table {path} lacks column {name!r}", path=path)
        return None
    j = columns.index(name)
    out = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        cell = row[j].strip() if j < len(row) else ""
        if cell == "" or cell.lower() in ("nan", "na"):
            if not allow_nan:
                raise FormatError(f"AU table {path}: column {name!r} is empty at data row {i + 1}", path=path)
            out[i] = math.nan
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            raise FormatError(f"AU table {path}: column {name!r} holds non-numeric {cell!r} at data row {i + 1}",
                              hint="the table must hold numbers only in AU, frame and success columns",
                              path=path) from None
    return out


def _check_range(path: Path, values: np.ndarray, names: list[str], high: float, fmt: str) -> None:
    finite = np.where(np.isfinite(values), values, 0.0)
    bad = (finite < -_RANGE_TOL) | (finite > high + _RANGE_TOL)
    if bad.any():
        cols = sorted({names[j] for j in np.nonzero(bad)[1]})
        rows = sorted({int(i) + 1 for i in np.nonzero(bad)[0]})[:5]
        raise FormatError(
            f"AU table {path}: {fmt} values must lie in 0..{high:g}; columns {', '.join(cols)} leave it "
            f"(data rows {', '.join(map(str, rows))}{', ...' if bad.any(axis=1).sum() > 5 else ''})",
            hint="pass format='openface' or 'feat' matching the tool that wrote the table", path=path)


def _best_per_frame(frame: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Row indices keeping one row per frame (the highest ``score``; multi-face tables)."""
    order = np.lexsort((-np.nan_to_num(score, nan=-np.inf), frame))
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = frame[order][1:] != frame[order][:-1]
    return np.sort(order[keep])


def read_au_table(path: Path | str, format: str = "auto") -> AuTable:
    """Read an OpenFace (``FeatureExtraction`` / ``FaceLandmarkImg``) or py-feat CSV.

    * OpenFace: ``AUxx_r`` columns (0-5); ``frame`` is 1-based and becomes 0-based; ``success``
      marks tracker failures; ``FaceLandmarkImg`` tables (no ``frame``) are one image: frame 0.
    * py-feat: ``AU01``... probabilities (0-1) times 5; ``frame`` is already 0-based; a row with no face
      (empty AUs or ``success`` 0) is a failed frame; AU45 comes from py-feat's AU43.
    * Several faces in one frame: the most confident (``confidence`` / ``FaceScore``) is kept.
    """
    path = Path(path)
    if format not in ("auto", *FORMATS):
        raise DataError(f"unknown AU table format {format!r}", hint="use auto, openface or feat")
    columns, rows = _header_and_rows(path)
    detected = detect_format(columns)
    fmt = detected if format == "auto" else format
    if fmt is None:
        missing_of = [c for c in OPENFACE_COLUMNS if c not in columns]
        raise FormatError(
            f"AU table {path} has neither the OpenFace AU columns nor the py-feat ones "
            f"(missing e.g. {', '.join(missing_of[:6])})",
            hint="AU columns are found by name: AU01_r..AU45_r (OpenFace) or AU01..AU43 (py-feat)", path=path)
    if fmt == "openface":
        names = list(OPENFACE_COLUMNS)
        missing = [c for c in names if c not in columns]
        if missing:
            raise FormatError(f"AU table {path} lacks OpenFace AU columns {', '.join(missing)}",
                              hint="run OpenFace with -aus (intensity columns AUxx_r)", path=path)
        high, scale = OPENFACE_MAX, 1.0
    else:
        names = [FEAT_AU_NAMES[i] for i in FEAT_INDEX_OF_AU]
        missing = [c for c in names if c not in columns]
        if missing:
            raise FormatError(f"AU table {path} lacks py-feat AU columns {', '.join(missing)}", path=path)
        high, scale = FEAT_MAX, FEAT_TO_OPENFACE
    n = len(rows)
    raw = np.stack([_column(path, columns, rows, c, allow_nan=True) for c in names], axis=1) if n else \
        np.zeros((0, NUM_AUS))
    _check_range(path, raw, names, high, fmt)
    success = np.all(np.isfinite(raw), axis=1) if n else np.zeros(0, dtype=bool)
    flag = _column(path, columns, rows, "success", required=False, allow_nan=True)
    if flag is not None:
        success &= np.nan_to_num(flag, nan=0.0) > 0.5
    frame_col = _column(path, columns, rows, "frame", required=False)
    if fmt == "openface":
        if frame_col is None:  # FaceLandmarkImg: one image, one row per face
            frame = np.zeros(n, dtype=np.int64)
        else:
            if n and frame_col.min() < 1:
                raise FormatError(f"AU table {path}: OpenFace frame numbers start at 1, found {frame_col.min():g}",
                                  hint="pass format='feat' if this table has 0-based frames", path=path)
            frame = frame_col.astype(np.int64) - 1
        score = _column(path, columns, rows, "confidence", required=False, allow_nan=True)
    else:
        frame = np.arange(n, dtype=np.int64) if frame_col is None else frame_col.astype(np.int64)
        score = _column(path, columns, rows, "FaceScore", required=False, allow_nan=True)
    if n and frame.min() < 0:
        raise FormatError(f"AU table {path}: negative frame index {frame.min()}", path=path)
    if score is None:
        score = np.zeros(n)
    score = np.where(success, np.nan_to_num(score, nan=0.0), -1.0)  # a found face beats a failure
    keep = _best_per_frame(frame, score) if n else np.zeros(0, dtype=np.int64)
    aus = np.where(np.isfinite(raw), raw, 0.0)[keep] * scale
    aus = np.clip(aus, 0.0, OPENFACE_MAX).astype(np.float32)
    aus[~success[keep]] = 0.0
    return AuTable(aus=aus, frame=frame[keep].astype(np.int32), success=success[keep].copy(), source=path,
                   format=fmt)


def write_feat_table(path: Path | str, probabilities: np.ndarray, *, success: np.ndarray,
                     inputs: list[str] | None = None, face_score: np.ndarray | None = None) -> Path:
    """Write a py-feat-style AU CSV (20 AU probabilities, 0-based frames), atomically.

    Columns: ``frame, input, success, FaceScore`` and py-feat's 20 AU names. Failed frames keep their
    row with empty AU cells, so row i is frame i of the clip.
    """
    path = Path(path)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(FEAT_AU_NAMES):
        raise DataError(f"expected [frames, 20] py-feat AU probabilities, got {probs.shape}")
    n = probs.shape[0]
    inputs = inputs or [""] * n
    face_score = np.full(n, np.nan) if face_score is None else np.asarray(face_score, dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "input", "success", "FaceScore", *FEAT_AU_NAMES])
        for i in range(n):
            ok = bool(success[i])
            cells = [f"{v:.6f}" for v in probs[i]] if ok else [""] * len(FEAT_AU_NAMES)
            score = "" if not ok or not np.isfinite(face_score[i]) else f"{face_score[i]:.6f}"
            writer.writerow([i, inputs[i], int(ok), score, *cells])
    return path


__all__ = ["AuTable", "FORMATS", "read_au_table", "detect_format", "write_feat_table", "AU_NAMES"]

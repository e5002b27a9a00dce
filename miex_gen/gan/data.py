"""Training data for GANimation: a face folder plus one AU label per face.

Labels come in three layouts (GANIMATION.md §7.1 used a pickle; miex reads text tables):

* **one table for all images** (``labels.csv`` in the folder, or ``--labels FILE``): a CSV with a
  file-name column (``file``, ``image``, ``filename``, ``path`` or py-feat's ``input``) and AU
  columns picked by name (``AU01`` … ``AU45`` or OpenFace's ``AU01_r`` …) on the 0–5 scale; an
  optional ``success`` column (0/1) marks failed tracking. A py-feat detector CSV (``input`` +
  its 20 AU probabilities) is recognised and converted (×5, AU43 → AU45);
* **one CSV per image** (``--labels DIR``, or beside the images, or in OpenFace's ``processed/``
  output folder): ``<image stem>.csv``, an OpenFace ``FaceLandmarkImg -aus`` or py-feat file,
  read through ``miex_gen.au_io``; its first successfully tracked face is used;

Images without a label or whose tracking failed are skipped and counted; a folder with no usable
face is a ``DataError``. Faces are loaded, cropped (``miex_gen.faces``) and resized once into a
cache file (``uint8[N, S, S, 3]``, written atomically, keyed by the file list and options), so an
epoch reads a memory map and data loading stays a small share of a training step.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..atomic import atomic_path
from ..aus import AU_INDEX, AU_MAX, AU_NAMES, FEAT_AU_NAMES, FEAT_TO_OPENFACE, NUM_AUS, from_feat20, to_model_scale
from ..errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
TABLE_NAMES = ("labels.csv", "aus.csv")
FILE_COLUMNS = ("file", "image", "filename", "path", "input")
CropMode = Literal["auto", "none", "detect"]
CACHE_VERSION = 1


@dataclass
class LabelledFaces:
    """The usable training images and their AUs (0–5), plus what was skipped and why."""

    root: Path
    images: list[Path]
    aus: np.ndarray  # float32 [N, 17], OpenFace 0-5 scale
    label_source: str
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one example file

    def __len__(self) -> int:
        return len(self.images)

    def skip(self, reason: str, path: Path | str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(path))

    def summary(self) -> str:
        parts = [f"{len(self)} usable faces ({self.label_source})"]
        parts += [f"{n} skipped: {reason}" for reason, n in sorted(self.skipped.items())]
        return "; ".join(parts)


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursively, hidden and temp files ignored), in a stable order."""
    if not root.is_dir():
        raise DataError(f"face folder {root} does not exist or is not a folder", path=root)
    found = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


# ----------------------------------------------------------------------------- label tables

def _norm_header(name: str) -> str:
    return name.strip()


def _au_columns(header: Sequence[str]) -> tuple[dict[int, int], str]:
    """Map AU index -> column for a table: ``("openface", …)`` for 17 AUs, ``("feat", …)`` for py-feat's 20."""
    cols = {_norm_header(h).upper(): i for i, h in enumerate(header)}
    ours: dict[int, int] = {}
    for name in AU_NAMES:
        for candidate in (f"{name}_R", name):
            if candidate in cols:
                ours[AU_INDEX[name]] = cols[candidate]
                break
    feat_only = {"AU11", "AU24", "AU28", "AU43"}
    if feat_only & set(cols) and "AU45" not in cols and "AU45_R" not in cols:
        return {i: cols[n] for i, n in enumerate(FEAT_AU_NAMES) if n in cols}, "feat"
    return ours, "openface"


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_label_table(path: Path) -> tuple[dict[str, np.ndarray], list[str], str]:
    """Read a one-table-for-all-images CSV.

    Returns ``({file key: aus[17] 0-5}, [file keys whose tracking failed], format)``. The file
    key is the value of the file column as written; matching to images happens in
    ``collect_labelled_faces``. Rows repeating a file (several faces) keep the first.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read label table: {exc}", path=path) from exc
    if not rows:
        raise DataError("label table is empty", path=path, hint="write a header line: file,AU01,...,AU45")
    header = [_norm_header(h) for h in rows[0]]
    lower = [h.lower() for h in header]
    file_col = next((lower.index(c) for c in FILE_COLUMNS if c in lower), None)
    if file_col is None:
        raise DataError(f"label table has no file-name column (header: {', '.join(header[:6])} …)", path=path,
                        hint=f"name the column with the image file names one of: {', '.join(FILE_COLUMNS)}")
    columns, fmt = _au_columns(header)
    expected = len(FEAT_AU_NAMES) if fmt == "feat" else NUM_AUS
    if len(columns) < expected:
        have = {i for i in columns}
        names = FEAT_AU_NAMES if fmt == "feat" else AU_NAMES
        missing = [names[i] for i in range(expected) if i not in have]
        raise DataError(f"label table lacks AU column(s) {', '.join(missing)}", path=path,
                        hint="AU columns are found by name: AU01 or AU01_r (OpenFace), 0-5 scale")
    success_col = lower.index("success") if "success" in lower else None
    labels: dict[str, np.ndarray] = {}
    failed: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataError(f"label table line {line} has {len(row)} fields, the header {len(header)}", path=path)
        key = row[file_col].strip()
        if key in labels or key in failed:
            continue
        values = np.array([_parse_float(row[columns[i]]) for i in range(expected)], dtype=np.float32)
        ok = success_col is None or _parse_float(row[success_col]) == 1
        if not ok or not np.all(np.isfinite(values)):
            failed.append(key)
            continue
        if fmt == "feat":
            if values.min() < -1e-4 or values.max() > 1 + 1e-4:
                raise DataError(f"label table line {line}: py-feat AU values must be probabilities in 0-1", path=path)
            values = from_feat20(values) * FEAT_TO_OPENFACE
        elif values.min() < -1e-4 or values.max() > AU_MAX + 1e-4:
            raise DataError(f"label table line {line} ({key}): AU values must lie on the OpenFace 0-5 scale, "
                            f"found {values.min():.3g}..{values.max():.3g}", path=path,
                            hint="py-feat probabilities (0-1) must be multiplied by 5")
        labels[key] = np.clip(values, 0, AU_MAX).astype(np.float32)
    return labels, failed, fmt


def write_label_table(path: str | Path, files: Sequence[str], aus: np.ndarray) -> None:
    """Write the miex one-table layout (``file`` + ``AU01_r`` … ``AU45_r``, 0-5) atomically."""
    arr = np.asarray(aus, dtype=np.float32).reshape(len(files), NUM_AUS)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *(f"{n}_r" for n in AU_NAMES)])
        for name, row in zip(files, arr):
            writer.writerow([name, *(f"{v:.4f}" for v in row)])


def _match_table(root: Path, images: list[Path], labels: dict[str, np.ndarray], failed: list[str],
                 faces: LabelledFaces, out_images: list[Path], out_aus: list[np.ndarray]) -> None:
    """Match table keys to images: by path relative to the folder, else by file name, else by stem."""
    def keys_of(key: str) -> tuple[str, str, str]:
        posix = key.replace("\\", "/")
        name = posix.rsplit("/", 1)[-1]
        return posix.lstrip("./") if posix.startswith("./") else posix, name, name.rsplit(".", 1)[0]

    by_rel, by_name, by_stem = {}, {}, {}
    for value, label in [(k, labels[k]) for k in labels] + [(k, None) for k in failed]:
        rel, name, stem = keys_of(value)
        by_rel.setdefault(rel, label)
        by_name.setdefault(name, label)
        by_stem.setdefault(stem, label)
    for image in images:
        rel = image.relative_to(root).as_posix()
        for table, key in ((by_rel, rel), (by_name, image.name), (by_stem, image.stem)):
            if key in table:
                label = table[key]
                break
        else:
            faces.skip("no AU label", image)
            continue
        if label is None:
            faces.skip("tracking failed", image)
            continue
        out_images.append(image)
        out_aus.append(label)


def _per_image_label(csv_path: Path) -> np.ndarray | None:
    """The first successfully tracked face of one OpenFace/py-feat CSV, or None if none was."""
    from ..au_io import read_au_table

    table = read_au_table(csv_path, format="auto")
    ok = np.flatnonzero(np.asarray(table.success, dtype=bool))
    if ok.size == 0:
        return None
    return np.asarray(table.aus[ok[0]], dtype=np.float32)


def collect_labelled_faces(root: str | Path, labels: str | Path | None = None) -> LabelledFaces:
    """Pair every image under ``root`` with its AU label; skip and count those without one.

    ``labels``: a table file, a folder of per-image CSVs, or None to look for ``labels.csv`` /
    ``aus.csv`` in ``root``, else ``<stem>.csv`` beside each image or in ``root/processed``.
    """
    root = Path(root)
    images = list_images(root)
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {root}", path=root)
    table: Path | None = None
    csv_dirs: list[Path] = []
    if labels is not None:
        labels = Path(labels)
        if labels.is_file():
            table = labels
        elif labels.is_dir():
            csv_dirs = [labels]
        else:
            raise DataError(f"AU labels {labels} do not exist", path=labels,
                            hint="give a label table (CSV) or a folder of per-image CSVs")
    else:
        table = next((root / n for n in TABLE_NAMES if (root / n).is_file()), None)
        if table is None:
            csv_dirs = [root / "processed"]

    out_images: list[Path] = []
    out_aus: list[np.ndarray] = []
    if table is not None:
        found, failed, fmt = read_label_table(table)
        faces = LabelledFaces(root, [], np.zeros((0, NUM_AUS), np.float32), f"table {table.name}, {fmt} columns")
        _match_table(root, images, found, failed, faces, out_images, out_aus)
    else:
        faces = LabelledFaces(root, [], np.zeros((0, NUM_AUS), np.float32), "one CSV per image")
        for image in images:
            candidates = [image.with_suffix(".csv")] + [d / f"{image.stem}.csv" for d in csv_dirs]
            csv_path = next((c for c in candidates if c.is_file()), None)
            if csv_path is None:
                faces.skip("no AU label", image)
                continue
            label = _per_image_label(csv_path)
            if label is None:
                faces.skip("tracking failed", image)
                continue
            out_images.append(image)
            out_aus.append(label)
    faces.images = out_images
    faces.aus = np.stack(out_aus).astype(np.float32) if out_aus else np.zeros((0, NUM_AUS), np.float32)
    if not faces.images:
        detail = ", ".join(f"{n} {r} (e.g. {faces.examples[r]})" for r, n in sorted(faces.skipped.items()))
        raise DataError(
            f"no usable labelled faces under {root}: {len(images)} images, {detail or 'none matched'}",
            path=root,
            hint="provide labels.csv (columns file, AU01_r..AU45_r on 0-5) or one OpenFace FaceLandmarkImg / "
                 "py-feat CSV per image named <image stem>.csv",
        )
    log.info("training data: %s", faces.summary())
    return faces


# ----------------------------------------------------------------------------- face cache

def _load_face(path: Path, size: int, crop: CropMode) -> np.ndarray:
    """One face as uint8 [size, size, 3]: the detected face box, or the whole (square) image, resized.

    ``auto`` takes square images as ready crops (how GANimation's training sets are stored) and
    detects the face in any other photo; ``none`` never detects; ``detect`` always does.
    """
    from .. import faces as face_io

    image = face_io.load_image(path, min_size=min(64, size))
    h, w = image.shape[:2]
    if crop == "none" or (crop == "auto" and h == w):
        return face_io.resize_face(image, size)
    box = face_io.detect_face(image)
    return face_io.crop_face(image, box, size=size, margin=0.0, square=True)


def cache_key(faces: LabelledFaces, size: int, crop: str) -> str:
    """A hash of everything that determines the cached face array (files, their stat, options)."""
    digest = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "size": size, "crop": crop}).encode())
    for image in faces.images:
        stat = image.stat()
        digest.update(f"{image.relative_to(faces.root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def build_face_cache(faces: LabelledFaces, cache_dir: str | Path, *, size: int, crop: CropMode = "auto",
                     progress=None) -> tuple[Path, LabelledFaces]:
    """Load, crop and resize every face once into ``cache_dir/faces_<size>_<key>.npy``.

    Faces that cannot be loaded or have no detectable face are skipped and counted (the
    returned ``LabelledFaces`` lists only the cached ones; its index matches the array's).
    An existing cache for the same key is reused, so ``--resume`` and DDP ranks share it.
    """
    if crop not in ("auto", "none", "detect"):
        raise ConfigError(f"unknown crop mode {crop!r}", hint="use auto, none or detect")
    cache_dir = Path(cache_dir)
    key = cache_key(faces, size, crop)
    array_path = cache_dir / f"faces_{size}_{key}.npy"
    index_path = cache_dir / f"faces_{size}_{key}.json"
    if array_path.is_file() and index_path.is_file():
        return array_path, _apply_index(faces, json.loads(index_path.read_text()))

    cache_dir.mkdir(parents=True, exist_ok=True)
    kept: list[int] = []
    dropped: dict[str, list[str]] = {}
    with atomic_path(array_path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(faces), size, size, 3))
        for i, image in enumerate(faces.images):
            try:
                array[len(kept)] = _load_face(image, size, crop)
            except DataError as exc:  # faces.FaceRejected carries a short reason code
                dropped.setdefault(f"image rejected: {getattr(exc, 'reason', None) or exc.message}", []).append(
                    str(image))
            else:
                kept.append(i)
            if progress is not None:
                progress(i + 1, len(faces))
        array.flush()
        del array
        if len(kept) != len(faces):
            _truncate_npy(tmp, len(kept))
    index = {"kept": kept, "dropped": dropped, "size": size, "crop": crop}
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index))
    return array_path, _apply_index(faces, index)


def _truncate_npy(path: Path, count: int) -> None:
    """Rewrite a .npy in place to its first ``count`` rows (after faces were dropped)."""
    data = np.load(path, mmap_mode="r")[:count].copy()
    with open(path, "wb") as handle:
        np.save(handle, data)


def _apply_index(faces: LabelledFaces, index: dict) -> LabelledFaces:
    kept = index["kept"]
    out = LabelledFaces(faces.root, [faces.images[i] for i in kept], faces.aus[kept], faces.label_source,
                        Counter(faces.skipped), dict(faces.examples))
    for reason, paths in index.get("dropped", {}).items():
        for p in paths:
            out.skip(reason, p)
    if not out.images:
        raise DataError(f"none of the {len(faces)} labelled faces under {faces.root} could be loaded",
                        path=faces.root, hint="; ".join(f"{r}: {len(p)}" for r, p in index["dropped"].items()))
    return out


# ----------------------------------------------------------------------------- batches

@dataclass
class Batch:
    """One training batch, float32 on the CPU: images in [-1, 1], AUs on the /5 model scale."""

    real: torch.Tensor  # (B, 3, S, S)
    real_aus: torch.Tensor  # (B, 17)
    target_aus: torch.Tensor  # (B, 17)
    indices: np.ndarray


class FaceAuData:
    """Cached faces + labels; ``batch(indices, rng)`` draws flips and target AUs from ``rng``."""

    def __init__(self, faces: np.ndarray, aus: np.ndarray, *, flip: bool = True, aus_noise: float = 0.1) -> None:
        if len(faces) != len(aus):
            raise ValueError(f"{len(faces)} faces but {len(aus)} AU labels")
        if len(faces) < 2:
            raise DataError(f"GAN training needs at least 2 labelled faces, got {len(faces)}",
                            hint="target AUs are drawn from other training images' labels")
        self.faces = faces
        self.aus = np.asarray(aus, dtype=np.float32)
        self.flip = flip
        self.aus_noise = float(aus_noise)

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def image_size(self) -> int:
        return int(self.faces.shape[1])

    def batch(self, indices: Sequence[int], rng: np.random.Generator) -> Batch:
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # read the memory map in file order
        images = np.empty((len(idx), *self.faces.shape[1:]), dtype=np.uint8)
        images[order] = self.faces[idx[order]]
        if self.flip:
            flips = rng.random(len(idx)) < 0.5
            images[flips] = images[flips, :, ::-1]
        # target AUs: the label of another training image (never the image itself), plus noise
        other = rng.integers(0, len(self) - 1, size=len(idx))
        other = other + (other >= idx)
        target = to_model_scale(self.aus[other])
        if self.aus_noise > 0:
            target = target + rng.uniform(-self.aus_noise, self.aus_noise, size=target.shape)
        real = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return Batch(real=real.contiguous(), real_aus=torch.from_numpy(to_model_scale(self.aus[idx])),
                     target_aus=torch.from_numpy(target.astype(np.float32)), indices=idx)

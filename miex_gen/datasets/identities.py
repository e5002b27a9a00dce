"""Identity photo sources: CelebA (MER_PROTOCOL.md §7.9) and any folder of face images (EmotioNet).

Only listing happens here (fast, no decoding); ``miex_gen.faces`` checks and crops each image.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .records import IMAGE_SUFFIXES, IdentityRecord, natural_key, require_dir

PARTITIONS = {"train": 0, "val": 1, "valid": 1, "test": 2}


def _table(path: Path, *, skip: int, width: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}", path=path) from exc
    for number, line in enumerate(lines[skip:], start=skip + 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != width:
            raise DataError(f"{path} line {number}: expected {width} fields, got {len(parts)}", path=path,
                            hint="is this the original CelebA list file?")
        out[parts[0]] = parts[1:]
    return out


def list_celeba(root: Path | str, *, partition: str | int | None = None, limit: int | None = None) -> list[IdentityRecord]:
    """CelebA aligned images in file order; identity ids and landmarks when their files are present.

    ``root`` holds ``img_align_celeba/`` and optionally ``identity_CelebA.txt``,
    ``list_landmarks_align_celeba.txt`` and ``list_eval_partition.txt`` (needed for ``partition``).
    """
    root = require_dir(Path(root), "CelebA root", "pass the folder holding img_align_celeba/")
    images = require_dir(root / "img_align_celeba", "CelebA image folder", "expected <root>/img_align_celeba/")
    names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if partition is not None:
        wanted = PARTITIONS.get(str(partition).lower(), partition)
        part_file = root / "list_eval_partition.txt"
        if not part_file.is_file():
            raise DataError(f"partition {partition!r} asked but {part_file} is missing", path=part_file)
        parts = _table(part_file, skip=0, width=2)
        names = [n for n in names if n in parts and int(parts[n][0]) == int(wanted)]
    ident_file = root / "identity_CelebA.txt"
    idents = _table(ident_file, skip=0, width=2) if ident_file.is_file() else {}
    land_file = root / "list_landmarks_align_celeba.txt"
    lands = _table(land_file, skip=2, width=11) if land_file.is_file() else {}
    out = []
    for name in names[:limit] if limit else names:
        person = idents[name][0] if name in idents else None
        landmarks = tuple(float(v) for v in lands[name]) if name in lands else None
        out.append(IdentityRecord(Path(name).stem, images / name, person, landmarks))
    if not out:
        raise DataError(f"no CelebA images found in {images}", path=images)
    return out


def list_image_folder(root: Path | str, *, recursive: bool = True) -> list[IdentityRecord]:
    """Every image below ``root`` in natural order; ``id`` = relative path without suffix (EmotioNet or any folder)."""
    root = require_dir(Path(root), "image folder", "pass a folder of face images")
    files = root.rglob("*") if recursive else root.iterdir()
    paths = sorted((p for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                   key=lambda p: tuple(natural_key(Path(part)) for part in p.relative_to(root).parts))
    if not paths:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {root}", path=root)
    return [IdentityRecord(p.relative_to(root).with_suffix("").as_posix(), p) for p in paths]

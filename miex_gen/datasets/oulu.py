"""Oulu-CASIA NIR&VIS (MER_PROTOCOL.md §7.8): folder-coded expressions, neutral -> apex sequences.

Expected layout: ``<root>/OriginalImg/<VL|NI>/<Strong|Weak|Dark>/P001/Anger/000.jpeg ...`` (``root`` may
also be the ``OriginalImg`` folder). Clip id = the expression folder name (``Anger``), subject =
``P001``; onset = first frame, apex = offset = last frame. Which camera and illumination MiE-X used
is unconfirmed; VL/Strong is the default.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .clipbuild import sequence_clip
from .records import ClipList, ClipRecord, Skip, emotion_to_label, finish, require_dir

DATASET = "oulu"
EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def load_oulu(root: Path | str, *, camera: str = "VL", illumination: str = "Strong", strict: bool = False) -> ClipList:
    root = require_dir(Path(root), "Oulu-CASIA root", "pass the folder holding OriginalImg/")
    base = root / "OriginalImg" if (root / "OriginalImg").is_dir() else root
    base = base / camera / illumination
    if not base.is_dir():
        raise DataError(f"Oulu-CASIA folder {base} not found", path=base,
                        hint="expected <root>/OriginalImg/<VL|NI>/<Strong|Weak|Dark>/P###/<Expression>/")
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for subject_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for expr_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            where = f"{subject_dir.name}/{expr_dir.name}"
            label = emotion_to_label(expr_dir.name)
            if label is None:
                skipped.append(Skip(where, f"unknown expression folder {expr_dir.name!r}"))
                continue
            item = sequence_clip(DATASET, subject_dir.name, expr_dir.name, expr_dir, emotion=expr_dir.name.lower(),
                                 label=label, where=where)
            (skipped if isinstance(item, Skip) else records).append(item)
    return finish(records, skipped, source=str(base), strict=strict)

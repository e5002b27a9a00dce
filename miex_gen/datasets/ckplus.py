"""CK+ (MER_PROTOCOL.md §7.7): neutral -> peak sequences and one emotion file per labelled sequence.

Expected layout under ``root``::

    cohn-kanade-images/S005/001/S005_001_00000001.png ...
    Emotion/S005/001/S005_001_00000011_emotion.txt      (one float: 0-7)

Codes: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise (0 neutral). The
3-class mapping sends **6 sadness to negative**; the original MiE-X code sent it to positive (a bug,
MIEX_PROTOCOL.md §4.2), reproducible only through ``build_mae_pool(compat=True)``. onset = first
frame, apex = offset = last frame (the peak). Sequences without an emotion file are unlabelled and
left out unless ``labelled_only=False``.
"""

from __future__ import annotations

from pathlib import Path

from .clipbuild import sequence_clip
from .records import ClipList, ClipRecord, Skip, emotion_to_label, finish, require_dir

DATASET = "ckplus"
CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness",
         7: "surprise"}


def read_emotion_file(path: Path) -> int:
    from ..errors import DataError

    try:
        value = float(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"cannot read CK+ emotion code from {path}: {exc}", path=path,
                        hint="the file must hold one number 0-7") from exc
    if not value.is_integer() or int(value) not in CODES:
        raise DataError(f"{path}: emotion code {value:g} is not 0-7", path=path)
    return int(value)


def load_ckplus(root: Path | str, *, labelled_only: bool = True, strict: bool = False) -> ClipList:
    from ..errors import DataError

    root = require_dir(Path(root), "CK+ root", "pass the folder holding cohn-kanade-images/ and Emotion/")
    images = require_dir(root / "cohn-kanade-images", "CK+ image folder", "expected <root>/cohn-kanade-images/")
    emotions = root / "Emotion"
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for subject_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            where = f"{subject_dir.name}/{seq_dir.name}"
            label_files = sorted((emotions / subject_dir.name / seq_dir.name).glob("*_emotion.txt"))
            emotion, label = "", None
            if label_files:
                try:
                    emotion = CODES[read_emotion_file(label_files[0])]
                except DataError as exc:
                    skipped.append(Skip(where, exc.message))
                    continue
                label = emotion_to_label(emotion)
            elif labelled_only:
                continue
            item = sequence_clip(DATASET, subject_dir.name, seq_dir.name, seq_dir, emotion=emotion, label=label,
                                 where=where)
            (skipped if isinstance(item, Skip) else records).append(item)
    return finish(records, skipped, source=str(root), strict=strict)

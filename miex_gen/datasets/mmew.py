"""MMEW (MER_PROTOCOL.md §7.6): micro clips from ``MMEW_Micro_Exp.xlsx``, macro clips by folder.

Expected layout under ``root``::

    MMEW_Micro_Exp.xlsx
    Micro_Expression/<emotion>/<Filename>/<N>.jpg      e.g. happiness/S01-01-001/15.jpg
    Macro_Expression/<emotion>/<clip>/<N>.jpg          (kind="macro")

Micro clips keep their annotated onset/apex/offset (a z^MiE source, as the paper uses MMEW). Macro
clips are folder-coded: onset = first frame, apex = offset = last frame, subject = the clip name up
to the first ``-`` (the macro annotation format is unconfirmed). Labels: anger, disgust, fear,
sadness -> negative; happiness -> positive; surprise -> surprise; others -> ``None``. Subjects are
``S%02d`` when the sheet gives a number.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .clipbuild import clip_from_numbers
from .records import (
    ClipList, ClipRecord, Skip, canonical_subject, emotion_to_label, finish, list_frames, require_dir,
)
from .sheets import as_int, read_table

DATASET = "mmew"
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def mmew_subject(value: object) -> str:
    return canonical_subject(DATASET, value)


def load_mmew(root: Path | str, kind: str = "micro", *, annotation: Path | str | None = None,
              strict: bool = False) -> ClipList:
    if kind not in ("micro", "macro"):
        raise DataError(f"MMEW kind must be 'micro' or 'macro', got {kind!r}")
    root = require_dir(Path(root), "MMEW root", "pass the folder holding Micro_Expression/ and MMEW_Micro_Exp.xlsx")
    if kind == "macro":
        return _load_macro(root, strict)
    frames_root = require_dir(root / "Micro_Expression", "MMEW Micro_Expression folder", "check the MMEW root")
    sheet = Path(annotation) if annotation else root / "MMEW_Micro_Exp.xlsx"
    rows, _ = read_table(sheet, COLUMNS, what="MMEW")
    folders = {p.name: p for e in frames_root.iterdir() if e.is_dir() for p in e.iterdir() if p.is_dir()}
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for row in rows:
        where = f"{sheet.name} row {row.number}"
        subject, filename = row.get(*COLUMNS["subject"]), row.get(*COLUMNS["filename"])
        if subject is None or filename is None:
            skipped.append(Skip(where, "no Subject / Filename"))
            continue
        clip = str(filename).strip()
        emotion = str(row.get(*COLUMNS["emotion"]) or "").strip().lower()
        folder = folders.get(clip, frames_root / emotion / clip)
        result = clip_from_numbers(
            DATASET, mmew_subject(subject), clip, folder, onset=as_int(row.get(*COLUMNS["onset"])),
            apex=as_int(row.get(*COLUMNS["apex"])), offset=as_int(row.get(*COLUMNS["offset"])), emotion=emotion,
            label=emotion_to_label(emotion), where=f"{where} ({clip})")
        (skipped if isinstance(result, Skip) else records).append(result)
    return finish(records, skipped, source=str(sheet), strict=strict)


def _load_macro(root: Path, strict: bool) -> ClipList:
    base = require_dir(root / "Macro_Expression", "MMEW Macro_Expression folder", "check the MMEW root")
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for emotion_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        emotion = emotion_dir.name.lower()
        for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
            frames = list_frames(clip_dir)
            if len(frames) < 2:
                skipped.append(Skip(str(clip_dir), f"clip has {len(frames)} frame(s)"))
                continue
            last = len(frames) - 1
            records.append(ClipRecord(DATASET, mmew_subject(clip_dir.name.split("-")[0]), clip_dir.name, frames, 0,
                                      last, last, emotion, emotion_to_label(emotion), "last"))
    return finish(records, skipped, source=str(base), strict=strict)

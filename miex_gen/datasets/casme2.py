"""CASME II (MER_PROTOCOL.md §7.1): ``CASME2-coding-*.xlsx`` plus raw or cropped frame folders.

Expected layout under ``root``::

    CASME2-coding-20140508.xlsx            (any CASME2-coding-*.xlsx / .csv; the newest name is used)
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...
    Cropped/sub01/EP02_01f/reg_img46.jpg ...   (optional)

Quirks handled: blank columns (ignored), ``/`` in ApexFrame (apex ``None``), an offset typo (falls
back to the clip's last frame), unpadded frame numbers sorted numerically, filenames with and
without a trailing ``f`` kept verbatim. Labels: disgust, repression, fear, sadness -> negative;
happiness -> positive; surprise -> surprise; others -> ``None`` (the MEGC 2019 composite takes its
labels from the shipped ground truth instead, see :mod:`.megc2019`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .clipbuild import clip_from_numbers
from .records import ClipList, ClipRecord, Skip, canonical_subject, emotion_to_label, finish, require_dir
from .sheets import as_int, read_table

DATASET = "casme2"
RAW_DIR = "CASME2_RAW_selected"
CROPPED_DIR = "Cropped"
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def find_annotation(root: Path) -> Path:
    candidates = sorted(p for p in root.glob("CASME2-coding-*") if p.suffix.lower() in (".xlsx", ".csv"))
    if not candidates:
        raise DataError(f"no CASME2-coding-*.xlsx in {root}", path=root,
                        hint="put the CASME II coding spreadsheet in the dataset root (or pass annotation=)")
    return candidates[-1]


def frames_dir(root: Path, cropped: bool | None) -> Path:
    raw, crop = root / RAW_DIR, root / CROPPED_DIR
    if cropped is None:
        if raw.is_dir():
            return raw
        if crop.is_dir():
            return crop
        raise DataError(f"neither {RAW_DIR}/ nor {CROPPED_DIR}/ found in {root}", path=root,
                        hint="point to the CASME II root that holds the frame folders")
    return require_dir(crop if cropped else raw, "CASME II frame folder", "check the dataset root")


def load_casme2(root: Path | str, *, cropped: bool | None = None, annotation: Path | str | None = None,
                strict: bool = False) -> ClipList:
    """All rows of the coding sheet whose frames exist; problems listed in ``.skipped``."""
    root = require_dir(Path(root), "CASME II root", "pass the folder holding CASME2_RAW_selected/ and the sheet")
    sheet = Path(annotation) if annotation else find_annotation(root)
    frames_root = frames_dir(root, cropped)
    rows, _ = read_table(sheet, COLUMNS, what="CASME II")
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for row in rows:
        where = f"{sheet.name} row {row.number}"
        number = as_int(row.get(*COLUMNS["subject"]))
        filename = row.get(*COLUMNS["filename"])
        if number is None or filename is None:
            skipped.append(Skip(where, "no Subject / Filename"))
            continue
        subject = canonical_subject(DATASET, number)
        clip = str(filename).strip()
        emotion = str(row.get(*COLUMNS["emotion"]) or "").strip().lower()
        result = clip_from_numbers(
            DATASET, subject, clip, frames_root / subject / clip, onset=as_int(row.get(*COLUMNS["onset"])),
            apex=as_int(row.get(*COLUMNS["apex"])), offset=as_int(row.get(*COLUMNS["offset"])), emotion=emotion,
            label=emotion_to_label(emotion), where=f"{where} ({subject}/{clip})")
        (skipped if isinstance(result, Skip) else records).append(result)
    return finish(records, skipped, source=str(sheet), strict=strict)

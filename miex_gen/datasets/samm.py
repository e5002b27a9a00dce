"""SAMM (MER_PROTOCOL.md §7.2): ``SAMM_Micro_FACS_Codes_v2.xlsx`` plus per-clip frame folders.

Expected layout under ``root``::

    SAMM_Micro_FACS_Codes_v2.xlsx          (or SAMM_20181215_Micro_FACS_Codes_v2.xlsx, or a .csv)
    SAMM/006/006_1_2/006_05562.jpg ...      (or 006/006_1_2/... directly under root)

The header row is found by content (row 14 in one release, row 1 in another). Frame numbers after
the last underscore (4 or 5 digits) are parsed as integers. Missing apexes (blank, ``-1``, ``/``)
give apex ``None``. Labels: anger, contempt, disgust, fear, sadness -> negative; happiness ->
positive; surprise -> surprise; other -> ``None``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .clipbuild import clip_from_numbers
from .records import ClipList, ClipRecord, Skip, canonical_subject, emotion_to_label, finish, require_dir
from .sheets import as_int, read_table

DATASET = "samm"
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def find_annotation(root: Path) -> Path:
    candidates = sorted(p for p in root.glob("*FACS_Codes*") if p.suffix.lower() in (".xlsx", ".csv", ".xls"))
    if not candidates:
        raise DataError(f"no SAMM_*FACS_Codes*.xlsx in {root}", path=root,
                        hint="put SAMM_Micro_FACS_Codes_v2.xlsx in the dataset root (or pass annotation=)")
    return candidates[-1]


def load_samm(root: Path | str, *, annotation: Path | str | None = None, strict: bool = False) -> ClipList:
    root = require_dir(Path(root), "SAMM root", "pass the folder holding the SAMM sheet and subject folders")
    sheet = Path(annotation) if annotation else find_annotation(root)
    frames_root = root / "SAMM" if (root / "SAMM").is_dir() else root
    rows, _ = read_table(sheet, COLUMNS, what="SAMM")
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    for row in rows:
        where = f"{sheet.name} row {row.number}"
        number = as_int(row.get(*COLUMNS["subject"]))
        filename = row.get(*COLUMNS["filename"])
        if number is None or filename is None:  # trailing notes rows
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

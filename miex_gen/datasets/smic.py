"""SMIC (MER_PROTOCOL.md §7.3-7.4): folder-coded labels, no apex annotation.

Expected layout under ``root`` (HS camera by default; NIR and VIS have the same structure)::

    SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image076518.bmp ...
    SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image076518.bmp ...   (optional)

``root`` may also be the ``HS`` folder itself. onset = first frame, offset = last frame. The apex is
the integer middle frame ``onset + (offset - onset) // 2`` (the original code's ``len/2`` was a float
under Python 3), unless ``apex_file`` names one: a CSV/XLSX with a clip column (``clip``/``Filename``)
and an apex column (``apex``/``ApexFrame``, the frame number in the file name). Subjects and clips get
canonical keys (``s1`` -> ``s01``, ``s1_ne_1`` -> ``s01_ne_01``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from .records import (
    ClipList, ClipRecord, Skip, canonical_clip, canonical_subject, finish, frame_index_map, list_frames,
    middle_index, require_dir,
)
from .sheets import as_int, read_table

DATASET = "smic"
EMOTION_FOLDERS = {"negative": 0, "positive": 1, "surprise": 2}
_CLIP_RE = re.compile(r"^s\d+_(ne|po|sur)_\d+$", re.IGNORECASE)
_CODE_TO_EMOTION = {"ne": "negative", "po": "positive", "sur": "surprise"}


def camera_dir(root: Path, camera: str, cropped: bool | None) -> Path:
    names = {False: ["SMIC_all_raw"], True: ["SMIC_all_cropped"], None: ["SMIC_all_raw", "SMIC_all_cropped"]}[cropped]
    for name in names:
        if (root / name / camera).is_dir():
            return root / name / camera
    if (root / camera).is_dir():
        return root / camera
    if any(p.is_dir() and re.fullmatch(r"s\d+", p.name) for p in root.iterdir()):
        return root
    raise DataError(f"no SMIC {camera} frames under {root}", path=root,
                    hint=f"expected SMIC_all_raw/{camera}/s1/micro/<emotion>/<clip>/ below the root")


def read_apex_file(path: Path) -> dict[str, int]:
    """``{canonical clip: apex frame number}`` from a user apex file."""
    rows, _ = read_table(path, {"clip": ("clip", "Filename", "video"), "apex": ("apex", "apex_frame", "ApexFrame")},
                         what="SMIC apex")
    out: dict[str, int] = {}
    for row in rows:
        apex = as_int(row.get("apex", "apex_frame", "ApexFrame"))
        clip = row.get("clip", "Filename", "video")
        if apex is None or clip is None:
            raise DataError(f"{path} row {row.number}: needs a clip and an apex frame number", path=path)
        out[canonical_clip(DATASET, clip)] = apex
    return out


def load_smic(root: Path | str, *, apex_file: Path | str | None = None, camera: str = "HS",
              cropped: bool | None = None, strict: bool = False) -> ClipList:
    root = require_dir(Path(root), "SMIC root", "pass the folder holding SMIC_all_raw/")
    base = camera_dir(root, camera, cropped)
    apexes = read_apex_file(Path(apex_file)) if apex_file else {}
    records: list[ClipRecord] = []
    skipped: list[Skip] = []
    subject_dirs = sorted((p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)),
                          key=lambda p: int(p.name[1:]))
    for subject_dir in subject_dirs:
        subject = canonical_subject(DATASET, subject_dir.name)
        micro = subject_dir / "micro"
        if not micro.is_dir():
            skipped.append(Skip(str(subject_dir), "no micro/ folder"))
            continue
        for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = emotion_dir.name.lower()
            if emotion not in EMOTION_FOLDERS:
                skipped.append(Skip(str(emotion_dir), f"unknown emotion folder {emotion_dir.name!r}"))
                continue
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                where = str(clip_dir)
                if not _CLIP_RE.match(clip_dir.name):
                    skipped.append(Skip(where, "clip folder name is not s<N>_<ne|po|sur>_<NN>"))
                    continue
                clip = canonical_clip(DATASET, clip_dir.name)
                if _CODE_TO_EMOTION[clip.split("_")[1]] != emotion:
                    skipped.append(Skip(where, f"clip code {clip.split('_')[1]!r} contradicts folder {emotion!r}"))
                    continue
                frames = list_frames(clip_dir)
                if not frames:
                    skipped.append(Skip(where, "no image files", (DATASET, subject, clip)))
                    continue
                offset = len(frames) - 1
                if clip in apexes:
                    index = frame_index_map(frames)
                    if apexes[clip] not in index:
                        skipped.append(Skip(where, f"apex frame {apexes[clip]} from {apex_file} is not in the folder",
                                            (DATASET, subject, clip)))
                        continue
                    apex, source = index[apexes[clip]], "file"
                else:
                    apex, source = middle_index(0, offset), "middle"
                records.append(ClipRecord(DATASET, subject, clip, frames, 0, apex, offset, emotion,
                                          EMOTION_FOLDERS[emotion], source))
    if not records and not skipped:
        raise DataError(f"no SMIC clips found under {base}", path=base,
                        hint="expected s<N>/micro/<negative|positive|surprise>/<clip>/ folders")
    return finish(records, skipped, source=str(base), strict=strict)

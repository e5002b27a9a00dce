"""Tiny dataset trees in the release layouts of MER_PROTOCOL.md §7, and AU CSVs for their clips.

Frame files are empty (loaders only list them); AU tables are written in the py-feat format the
``miex aus extract`` command writes, or the OpenFace format, with known values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from openpyxl import Workbook

from miex_gen.aus import NUM_AUS, OPENFACE_COLUMNS, to_feat20
from miex_gen.au_io import write_feat_table


def touch_frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def write_xlsx(path: Path, rows: list[list]) -> Path:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def make_casme2(root: Path) -> Path:
    """sub01/EP02_01f (img46..img60, apex 59, happiness), sub01/EP19_05f (img98..img102, apex '/'),
    sub02/EP09_01 (no trailing f, repression), sub02/EP03_02 (others), a row whose onset is absent
    and an offset typo (sub04/EP12_01f offset 20 < onset)."""
    frames = root / "CASME2_RAW_selected"
    touch_frames(frames / "sub01" / "EP02_01f", [f"img{i}.jpg" for i in range(46, 61)])
    touch_frames(frames / "sub01" / "EP19_05f", [f"img{i}.jpg" for i in range(98, 103)])
    touch_frames(frames / "sub02" / "EP09_01", [f"img{i}.jpg" for i in range(10, 16)])
    touch_frames(frames / "sub02" / "EP03_02", [f"img{i}.jpg" for i in range(1, 5)])
    touch_frames(frames / "sub04" / "EP12_01f", [f"img{i}.jpg" for i in range(30, 41)])
    touch_frames(frames / "sub03" / "EP01_2", [f"img{i}.jpg" for i in range(5, 9)])
    touch_frames(root / "Cropped" / "sub01" / "EP02_01f", [f"reg_img{i}.jpg" for i in range(46, 61)])
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Estimated Emotion"]
    write_xlsx(root / "CASME2-coding-20140508.xlsx", [
        header,
        [1, "EP02_01f", None, 46, 59, 60, None, "12", "happiness"],
        [1, "EP19_05f", None, 98, "/", 102, None, "4", "disgust"],
        [2, "EP09_01", None, 10, 12, 15, None, "14", "repression"],
        [2, "EP03_02", None, 1, 2, 4, None, "1+2", "others"],
        [3, "EP01_2", None, 1, 6, 8, None, "1+2", "surprise"],  # onset frame img1 does not exist
        [4, "EP12_01f", None, 30, 35, 20, None, "4", "surprise"],  # offset typo
    ])
    return root


def make_samm(root: Path) -> Path:
    """Header at row 14 after free text; 006/006_1_2 (05562..05570, 5 digits), 007/007_6_1 (4 digits),
    006/006_1_3 without apex (-1), a trailing notes row."""
    frames = root / "SAMM"
    touch_frames(frames / "006" / "006_1_2", [f"006_{i:05d}.jpg" for i in range(5562, 5571)])
    touch_frames(frames / "006" / "006_1_3", [f"006_{i:05d}.jpg" for i in range(9998, 10004)])
    touch_frames(frames / "007" / "007_6_1", [f"007_{i:04d}.jpg" for i in range(192, 199)])
    intro = [[f"SAMM micro-expression FACS codes, note line {i}"] for i in range(1, 14)]
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
              "Type", "Action Units", "Notes", "Estimated Emotion", "Objective Classes"]
    write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", intro + [
        header,
        [6, "006_1_2", 1, 5562, 5566, 5570, 9, "Micro - 1/2", "R12 or 14", "", "Happiness", 1],
        [6, "006_1_3", 1, 9998, -1, 10003, 6, "Micro - 1/2", "4", "", "Anger", 2],
        [7, "007_6_1", 6, 192, 195, 198, 7, "Micro - 1/2", "1+2", "", "Surprise", 6],
        [None, None, None, None, None, None, None, None, None, "*notes: trailing text", None, None],
    ])
    return root


def make_smic(root: Path) -> Path:
    """HS: s1/ne_01 (5 frames, 6-7 digit numbers crossing 999999), s1/po_01, s2/sur_01 (4 frames)."""
    base = root / "SMIC_all_raw" / "HS"
    touch_frames(base / "s1" / "micro" / "negative" / "s1_ne_01",
                 [f"image{i:06d}.bmp" for i in (999998, 999999)] + [f"image{i}.bmp" for i in (1000000, 1000001, 1000002)])
    touch_frames(base / "s1" / "micro" / "positive" / "s1_po_01", [f"image{i:06d}.bmp" for i in range(76518, 76524)])
    touch_frames(base / "s2" / "micro" / "surprise" / "s2_sur_01", [f"image{i:06d}.bmp" for i in range(100, 104)])
    return root


def make_megc2019(root: Path) -> Path:
    make_casme2(root / "casme2")
    make_samm(root / "samm")
    make_smic(root / "smic")
    return root


def make_ckplus(root: Path) -> Path:
    """S005/001 disgust (3), S010/002 sadness (6), S010/003 happy (5), S011/001 unlabelled."""
    for subject, seq, n, code in (("S005", "001", 11, 3), ("S010", "002", 8, 6), ("S010", "003", 9, 5),
                                  ("S011", "001", 6, None)):
        touch_frames(root / "cohn-kanade-images" / subject / seq,
                     [f"{subject}_{seq}_{i:08d}.png" for i in range(1, n + 1)])
        if code is not None:
            emo = root / "Emotion" / subject / seq
            emo.mkdir(parents=True, exist_ok=True)
            (emo / f"{subject}_{seq}_{n:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
    return root


def make_oulu(root: Path) -> Path:
    for subject in ("P001", "P002"):
        for expr in ("Anger", "Happiness", "Surprise"):
            touch_frames(root / "OriginalImg" / "VL" / "Strong" / subject / expr, [f"{i:03d}.jpeg" for i in range(8)])
    return root


def make_mmew(root: Path) -> Path:
    touch_frames(root / "Micro_Expression" / "happiness" / "S01-01-001", [f"{i}.jpg" for i in range(1, 21)])
    touch_frames(root / "Micro_Expression" / "others" / "S02-01-004", [f"{i}.jpg" for i in range(1, 6)])
    write_xlsx(root / "MMEW_Micro_Exp.xlsx", [
        ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion", "remarks"],
        [1, "S01-01-001", 1, 9, 20, "12", "happiness", ""],
        [2, "S02-01-004", 1, 3, 5, "1", "others", ""],
    ])
    touch_frames(root / "Macro_Expression" / "sadness" / "S03-02-001", [f"{i}.jpg" for i in range(1, 13)])
    return root


# ---------------------------------------------------------------------------------------------
# AU tables

def clip_aus(n: int, seed: int) -> np.ndarray:
    """Deterministic, distinct AU rows on 0-5 for a clip of ``n`` frames."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0, 5, size=(n, NUM_AUS)), 3).astype(np.float32)


def write_clip_au(au_dir: Path, clip, *, fmt: str = "feat", failed: tuple[int, ...] = (), seed: int = 0) -> np.ndarray:
    """Write the clip's AU table at the layout path; returns the 0-5 AU values written."""
    n = len(clip.frames)
    aus = clip_aus(n, seed)
    path = au_dir / clip.dataset / clip.subject / f"{clip.clip}.csv"
    success = np.ones(n, dtype=bool)
    success[list(failed)] = False
    if fmt == "feat":
        write_feat_table(path, to_feat20(aus) / 5.0, success=success)
    else:
        write_openface_csv(path, aus, success)
    return aus


def write_openface_csv(path: Path, aus: np.ndarray, success: np.ndarray | None = None) -> Path:
    """An OpenFace 2.2-style FeatureExtraction CSV: spaces after commas, 1-based frames, extra columns."""
    n = aus.shape[0]
    success = np.ones(n, dtype=bool) if success is None else success
    cols = ["frame", "face_id", "timestamp", "confidence", "success", "gaze_angle_x", *OPENFACE_COLUMNS,
            *[c.replace("_r", "_c") for c in OPENFACE_COLUMNS]]
    lines = [", ".join(cols)]
    for i in range(n):
        values = [str(i + 1), "0", f"{i / 200:.3f}", "0.98" if success[i] else "0", str(int(success[i])), "0.1"]
        values += [f"{v:.3f}" if success[i] else "0" for v in aus[i]]
        values += ["1" if v > 1 else "0" for v in aus[i]]
        lines.append(", ".join(values))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


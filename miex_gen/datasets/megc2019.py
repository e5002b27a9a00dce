"""The MEGC 2019 composite (CASME II + SAMM + SMIC-HS, 442 clips, 3 classes).

The ground truth ships inside the package, byte-identical to the challenge repository's
``combined_3class_gt.csv`` (no header, CRLF line endings, columns dataset, subject, filename,
label). Composite labels come from this file, never from the spreadsheets (MER_PROTOCOL.md §2.1:
rebuilding CASME II from "Estimated Emotion" gives 90 negatives instead of 88).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ..errors import DataError, FormatError
from .records import ClipKey, canonical_key, package_data

GT_FILE = "combined_3class_gt.csv"
GT_DATASETS = ("casme2", "samm", "smic")


@dataclass(frozen=True)
class GroundTruthRow:
    """One composite sample, keyed canonically; ``raw_subject``/``raw_clip`` as written in the GT."""

    dataset: str
    subject: str
    clip: str
    label: int
    raw_subject: str = ""
    raw_clip: str = ""

    @property
    def key(self) -> ClipKey:
        return (self.dataset, self.subject, self.clip)


def ground_truth_path() -> Path:
    """Where the shipped ground-truth file lives (package data)."""
    return package_data(GT_FILE)


def parse_ground_truth(path: Path | str) -> list[GroundTruthRow]:
    """Parse a MEGC 2019 GT file (``dataset,subject,filename,label`` per line, no header)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read MEGC 2019 ground truth: {exc}", path=path) from exc
    rows: list[GroundTruthRow] = []
    seen: set[ClipKey] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip("\r").strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not all(fields):
            raise FormatError(f"{path} line {number}: expected 'dataset,subject,filename,label', got {line!r}",
                              hint="use combined_3class_gt.csv, not the -2 variant with blank rows", path=path)
        dataset, subject, clip, label_text = fields
        dataset = dataset.lower()
        if dataset not in GT_DATASETS:
            raise FormatError(f"{path} line {number}: unknown dataset {dataset!r}",
                              hint=f"expected one of {', '.join(GT_DATASETS)}", path=path)
        if label_text not in ("0", "1", "2"):
            raise FormatError(f"{path} line {number}: label {label_text!r} is not 0, 1 or 2", path=path)
        key = canonical_key(dataset, subject, clip)
        if key in seen:
            raise FormatError(f"{path} line {number}: duplicate sample {key}", path=path)
        seen.add(key)
        rows.append(GroundTruthRow(*key, label=int(label_text), raw_subject=subject, raw_clip=clip))
    return rows


@lru_cache(maxsize=1)
def _shipped() -> tuple[GroundTruthRow, ...]:
    rows = parse_ground_truth(ground_truth_path())
    if len(rows) != 442:
        raise DataError(f"the shipped MEGC 2019 ground truth has {len(rows)} rows, expected 442",
                        hint="reinstall miex", path=ground_truth_path())
    return tuple(rows)


def load_ground_truth() -> list[GroundTruthRow]:
    """The 442 composite samples (order of the file: casme2, smic, samm, by subject)."""
    return list(_shipped())


def release_folder(key: ClipKey) -> str:
    """The clip's folder in its original release, relative to the frames root (MER_PROTOCOL.md §2.1):
    ``sub01/EP02_01f``, ``006/006_1_2``, ``s1/micro/negative/s1_ne_01``."""
    dataset, subject, clip = key
    if dataset == "smic":
        number, code, index = clip.split("_")
        emotion = {"ne": "negative", "po": "positive", "sur": "surprise"}[code]
        short = f"s{int(number[1:])}"
        return f"{short}/micro/{emotion}/{short}_{code}_{index}"
    if dataset in ("casme2", "samm"):
        return f"{subject}/{clip}"
    raise DataError(f"no release folder rule for dataset {dataset!r}")


def ground_truth_labels() -> dict[ClipKey, int]:
    """``{(dataset, subject, clip): label}`` for the 442 samples."""
    return {row.key: row.label for row in _shipped()}


# ---------------------------------------------------------------------------------------------
# the composite's clips on disk

SUBDIRS = {
    "casme2": ("casme2", "CASME2", "CASME II", "CASMEII", "CASME_II"),
    "samm": ("samm", "SAMM"),
    "smic": ("smic", "SMIC"),
}


def dataset_root(root: Path, dataset: str) -> Path:
    """``<root>/<casme2|samm|smic>`` (a few spellings accepted), as load_megc2019 expects."""
    for name in SUBDIRS[dataset]:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"MEGC 2019 root {root} has no {dataset} folder", path=root,
                    hint=f"expected {root}/casme2, {root}/samm and {root}/smic, each in its release layout")


def load_megc2019(root: Path | str, *, smic_apex_file: Path | str | None = None, cropped: bool | None = None,
                  strict: bool = False):
    """The 442 composite clips with labels from the shipped ground truth (GT file order).

    ``root`` holds the three datasets in their release layouts::

        <root>/casme2/   (CASME2-coding-*.xlsx, CASME2_RAW_selected/ or Cropped/)
        <root>/samm/     (SAMM_*FACS_Codes*.xlsx, SAMM/<sub3>/<clip>/)
        <root>/smic/     (SMIC_all_raw/HS/s<N>/micro/<emotion>/<clip>/)

    GT rows whose clip is not on disk are listed in ``.skipped`` (or raise with ``strict``).
    """
    from .casme2 import load_casme2
    from .records import Skip, finish
    from .samm import load_samm
    from .smic import load_smic

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MEGC 2019 root not found: {root}", path=root,
                        hint="pass the folder holding casme2/, samm/ and smic/")
    loaded = {
        "casme2": load_casme2(dataset_root(root, "casme2"), cropped=cropped),
        "samm": load_samm(dataset_root(root, "samm")),
        "smic": load_smic(dataset_root(root, "smic"), apex_file=smic_apex_file, cropped=cropped),
    }
    by_key = {rec.key: rec for clips in loaded.values() for rec in clips}
    problems = {s.key: s for clips in loaded.values() for s in clips.skipped if s.key is not None}
    records, skipped = [], []
    for row in _shipped():
        rec = by_key.get(row.key)
        if rec is None:
            problem = problems.get(row.key)
            reason = f"{problem.where}: {problem.reason}" if problem else "clip not found in the dataset's annotation/folders"
            skipped.append(Skip(f"{GT_FILE} {'/'.join(row.key)}", reason, row.key))
            continue
        records.append(replace(rec, label=row.label))
    return finish(records, skipped, source=str(root), strict=strict)

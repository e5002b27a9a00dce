"""The MiE-X CompMiE 3-fold split, shipped as the original list files (MIEX_PROTOCOL.md §10).

The files cannot be regenerated (the original shuffle was unseeded), so they are the split. Each
``Micro_fold{k}_data*.txt`` holds two lines per sample (onset path, apex path) relative to the
authors' data root; ``*_label*.txt`` one label per line. ``01`` files are fold k's training part,
``2`` files its test part. Paths map to canonical keys as MER_PROTOCOL.md §2.1 says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import FormatError
from .records import ClipKey, SubjectKey, canonical_key, package_data

SPLIT_DIR = "miex_compmie_3fold"
NUM_FOLDS = 3

_PATH_RES = (
    ("casme2", re.compile(r"CASMEII_cropped/(?P<subject>sub\d+)/(?P<clip>[^/]+)/[^/]*?(?P<frame>\d+)\.\w+$")),
    ("samm", re.compile(r"SAMM_cropped/(?P<subject>\d+)/(?P<clip>[^/]+)/[^/]*?(?P<frame>\d+)\.\w+$")),
    ("smic", re.compile(r"SMIC_cropped/(?P<subject>s\d+)/[^/]+/(?P<clip>[^/]+)/[^/]*?(?P<frame>\d+)\.\w+$")),
)


@dataclass(frozen=True)
class Fold:
    """One fold: canonical clip keys and labels of its training and test parts.

    ``frames`` maps each key to the (onset, apex) frame numbers the list files name.
    """

    index: int
    train_keys: tuple[ClipKey, ...]
    test_keys: tuple[ClipKey, ...]
    train_labels: tuple[int, ...]
    test_labels: tuple[int, ...]
    frames: dict[ClipKey, tuple[int, int]]

    @property
    def test_subjects(self) -> frozenset[SubjectKey]:
        return frozenset((d, s) for d, s, _ in self.test_keys)

    @property
    def train_subjects(self) -> frozenset[SubjectKey]:
        return frozenset((d, s) for d, s, _ in self.train_keys)


def parse_list_path(path: str) -> tuple[ClipKey, int]:
    """``Data/SMIC_cropped/s2/positive/s2_po_01/image076518.bmp`` -> ((smic, s02, s02_po_01), 76518)."""
    for dataset, regex in _PATH_RES:
        match = regex.search(path.strip())
        if match:
            return canonical_key(dataset, match["subject"], match["clip"]), int(match["frame"])
    raise FormatError(f"{path!r} is not a CASME II / SAMM / SMIC crop path of the MiE-X lists")


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FormatError(f"cannot read split list: {exc}", path=path) from exc
    return [line.strip() for line in text.splitlines() if line.strip()]  # split, never count newlines


def parse_part(data_file: Path, label_file: Path) -> tuple[list[ClipKey], list[int], dict[ClipKey, tuple[int, int]]]:
    paths, labels = _lines(data_file), _lines(label_file)
    if len(paths) != 2 * len(labels):
        raise FormatError(f"{data_file.name} has {len(paths)} paths for {len(labels)} labels in {label_file.name}",
                          hint="data files hold two lines (onset, apex) per label", path=data_file)
    keys: list[ClipKey] = []
    frames: dict[ClipKey, tuple[int, int]] = {}
    for i, label in enumerate(labels):
        (key, onset), (key2, apex) = parse_list_path(paths[2 * i]), parse_list_path(paths[2 * i + 1])
        if key != key2:
            raise FormatError(f"{data_file.name} lines {2 * i + 1}-{2 * i + 2}: onset and apex from different clips",
                              path=data_file)
        if label not in ("0", "1", "2"):
            raise FormatError(f"{label_file.name} line {i + 1}: label {label!r} is not 0, 1 or 2", path=label_file)
        keys.append(key)
        frames[key] = (onset, apex)
    return keys, [int(x) for x in labels], frames


def load_miex_3fold(directory: Path | str | None = None) -> list[Fold]:
    """The three folds (from the shipped files unless ``directory`` holds another copy)."""
    if directory is None:
        return list(_shipped())
    return _load(Path(directory))


def _load(directory: Path) -> list[Fold]:
    folds = []
    for k in range(NUM_FOLDS):
        train, train_y, f1 = parse_part(directory / f"Micro_fold{k}_data01.txt", directory / f"Micro_fold{k}_label01.txt")
        test, test_y, f2 = parse_part(directory / f"Micro_fold{k}_data2.txt", directory / f"Micro_fold{k}_label2.txt")
        folds.append(Fold(k, tuple(train), tuple(test), tuple(train_y), tuple(test_y), {**f1, **f2}))
    return folds


@lru_cache(maxsize=1)
def _shipped() -> tuple[Fold, ...]:
    return tuple(_load(package_data(SPLIT_DIR)))

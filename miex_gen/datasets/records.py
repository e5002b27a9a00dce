"""Typed records every dataset loader returns, canonical subject keys, and the skip list.

Why one canonical key per dataset: the leakage guard, the protocol folds, the MEGC ground truth and
AU-pool provenance are matched by ``(dataset, subject, clip)`` string equality. The releases spell
subjects differently (SAMM ``6`` vs folder ``006``, SMIC ``s01`` vs folder ``s1``), so every loader
funnels its ids through :func:`canonical_subject` / :func:`canonical_clip` (MER_PROTOCOL.md §2.1).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DataError

log = logging.getLogger(__name__)

ClipKey = tuple[str, str, str]
SubjectKey = tuple[str, str]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# the 3-class MEGC 2019 scheme (0 negative, 1 positive, 2 surprise) for emotion words
_NEGATIVE = {"negative", "ne", "repression", "anger", "angry", "contempt", "disgust", "fear", "sadness", "sad"}
_POSITIVE = {"positive", "po", "happiness", "happy", "joy"}
_SURPRISE = {"surprise", "sur", "surprised"}


def emotion_to_label(emotion: str) -> int | None:
    """3-class label of an emotion word; ``None`` for "others" / neutral / unknown (excluded)."""
    word = str(emotion).strip().lower()
    if word in _NEGATIVE:
        return 0
    if word in _POSITIVE:
        return 1
    if word in _SURPRISE:
        return 2
    return None


@dataclass(frozen=True)
class ClipRecord:
    """One annotated clip. ``onset``/``apex``/``offset`` index into ``frames`` (0-based).

    ``apex`` is ``None`` when the dataset gives none and no rule was asked for. ``label`` is the
    3-class label (0 negative, 1 positive, 2 surprise) or ``None`` when the emotion is excluded
    ("others"). ``apex_source`` says where the apex came from: ``annotated``, ``middle`` (SMIC's
    integer middle frame), ``file`` (a user apex file), ``last`` (macro sequences end at the peak)
    or ``none``.
    """

    dataset: str
    subject: str
    clip: str
    frames: tuple[Path, ...]
    onset: int
    apex: int | None
    offset: int
    emotion: str
    label: int | None
    apex_source: str = "annotated"

    @property
    def key(self) -> ClipKey:
        return (self.dataset, self.subject, self.clip)

    @property
    def subject_key(self) -> SubjectKey:
        return (self.dataset, self.subject)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class IdentityRecord:
    """One identity photo: ``id`` is unique within its source (CelebA image stem, or a relative path).

    CelebA adds ``person`` (its identity id) and ``landmarks`` (5 aligned points, x/y pairs) when the
    list files are present.
    """

    id: str
    path: Path
    person: str | None = None
    landmarks: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Skip:
    """A row or folder a loader left out, and why (reported, never silently dropped)."""

    where: str
    reason: str
    key: ClipKey | None = None  # the clip's canonical key when it is known

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class ClipList(list):
    """A ``list[ClipRecord]`` that also carries the ``skipped`` rows and the loader's ``source``."""

    def __init__(self, records: Iterable[ClipRecord] = (), *, skipped: Iterable[Skip] = (), source: str = ""):
        super().__init__(records)
        self.skipped: list[Skip] = list(skipped)
        self.source = source


def finish(records: list[ClipRecord], skipped: list[Skip], *, source: str, strict: bool) -> ClipList:
    """Return the records; with ``strict`` raise on the first skip, otherwise log a summary."""
    if skipped and strict:
        first = skipped[0]
        raise DataError(f"{first.where}: {first.reason}",
                        hint=f"fix the entry, or load with strict=False to skip it ({len(skipped)} problem(s) in all)")
    if skipped:
        log.warning("%s: skipped %d entr%s (first: %s); see .skipped", source, len(skipped),
                    "y" if len(skipped) == 1 else "ies", skipped[0])
    return ClipList(records, skipped=skipped, source=source)


# ---------------------------------------------------------------------------------------------
# canonical keys (MER_PROTOCOL.md §2.1)

_INT_RE = re.compile(r"^\s*(?:sub|s)?\s*0*(\d+)\s*$", re.IGNORECASE)
_SMIC_CLIP_RE = re.compile(r"^\s*s0*(\d+)_(ne|po|sur)_0*(\d+)\s*$", re.IGNORECASE)


def _subject_number(dataset: str, subject: object) -> int:
    if isinstance(subject, float) and subject.is_integer():
        subject = int(subject)
    match = _INT_RE.match(str(subject))
    if not match:
        raise DataError(f"{dataset}: {subject!r} is not a subject id",
                        hint="subjects are numbers, optionally prefixed (sub01, s1, 006)")
    return int(match.group(1))


def canonical_subject(dataset: str, subject: object) -> str:
    """``casme2`` -> ``sub%02d``, ``samm`` -> ``%03d``, ``smic`` -> ``s%02d``, ``mmew`` -> ``S%02d``;
    other datasets keep their folder names (``S005``, ``P001``)."""
    if dataset == "casme2":
        return f"sub{_subject_number(dataset, subject):02d}"
    if dataset == "samm":
        return f"{_subject_number(dataset, subject):03d}"
    if dataset == "smic":
        return f"s{_subject_number(dataset, subject):02d}"
    if dataset == "mmew":  # sheets give numbers, clip names S01-...: one form, S%02d
        text = str(int(subject) if isinstance(subject, float) and subject.is_integer() else subject).strip()
        return f"S{int(text):02d}" if text.isdigit() else text.upper()
    if isinstance(subject, float) and subject.is_integer():
        subject = int(subject)
    return str(subject).strip()


def canonical_clip(dataset: str, clip: object) -> str:
    """SMIC ``s1_ne_1`` -> ``s01_ne_01``; every other dataset keeps its file name verbatim."""
    text = str(clip).strip()
    if dataset == "smic":
        match = _SMIC_CLIP_RE.match(text)
        if not match:
            raise DataError(f"smic: {text!r} is not a SMIC clip id", hint="expected s<N>_<ne|po|sur>_<NN>")
        return f"s{int(match.group(1)):02d}_{match.group(2).lower()}_{int(match.group(3)):02d}"
    return text


def canonical_key(dataset: str, subject: object, clip: object) -> ClipKey:
    return (dataset, canonical_subject(dataset, subject), canonical_clip(dataset, clip))


# ---------------------------------------------------------------------------------------------
# frame files

_LAST_INT_RE = re.compile(r"(\d+)(?!.*\d)")


def frame_number(path: Path | str) -> int | None:
    """The last integer in a frame file's stem (``img46`` -> 46, ``006_05562`` -> 5562)."""
    match = _LAST_INT_RE.search(Path(path).stem)
    return int(match.group(1)) if match else None


def natural_key(path: Path) -> tuple:
    """Sort key that orders ``img46`` before ``img100`` (numbers compared as numbers)."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def list_frames(folder: Path) -> tuple[Path, ...]:
    """Image files in ``folder`` sorted numerically; [] for a missing folder is the caller's call."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return tuple(sorted(files, key=natural_key))


def frame_index_map(frames: tuple[Path, ...]) -> dict[int, int]:
    """Frame number -> index into ``frames``."""
    out: dict[int, int] = {}
    for i, path in enumerate(frames):
        number = frame_number(path)
        if number is not None:
            out.setdefault(number, i)
    return out


def require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what} not found: {path}", hint=hint, path=path)
    return path


def require_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}", hint=hint, path=path)
    return path


def middle_index(onset: int, offset: int) -> int:
    """SMIC's apex rule as an integer: onset + floor((offset - onset) / 2) (MER_PROTOCOL §7.4)."""
    return onset + (offset - onset) // 2


def package_data(name: str) -> Path:
    """Path of a file shipped in ``miex_gen/datasets/data``."""
    return Path(__file__).resolve().parent / "data" / name


__all__ = [
    "ClipKey", "SubjectKey", "ClipRecord", "IdentityRecord", "Skip", "ClipList", "emotion_to_label",
    "canonical_subject", "canonical_clip", "canonical_key", "frame_number", "natural_key", "list_frames",
    "frame_index_map", "middle_index", "package_data",
]

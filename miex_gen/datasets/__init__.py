"""Real datasets: where their files are and what their annotations say (one module per dataset).

Every loader returns typed records with canonical subject keys (MER_PROTOCOL.md §2.1), so both
halves of miex (AU pools and recognizers) match samples by the same ``(dataset, subject, clip)``.
Clip loaders return a :class:`ClipList` (a list of :class:`ClipRecord`) whose ``.skipped`` lists
rows that reference absent frames or cannot be used; ``strict=True`` raises on the first instead.
"""

from __future__ import annotations

from .casme2 import load_casme2
from .ckplus import load_ckplus
from .identities import list_celeba, list_image_folder
from .megc2019 import GroundTruthRow, ground_truth_labels, load_ground_truth, load_megc2019
from .miex_split import Fold, load_miex_3fold
from .mmew import load_mmew
from .oulu import load_oulu
from .records import (
    ClipKey, ClipList, ClipRecord, IdentityRecord, Skip, SubjectKey, canonical_clip, canonical_key,
    canonical_subject, emotion_to_label,
)
from .samm import load_samm
from .smic import load_smic

LOADERS = {
    "casme2": load_casme2, "samm": load_samm, "smic": load_smic, "megc2019": load_megc2019,
    "ckplus": load_ckplus, "oulu": load_oulu, "mmew": load_mmew,
}


def load_clips(kind: str, root, **options) -> ClipList:
    """``load_clips("samm", root)``; ``mmew-macro`` selects MMEW's macro clips."""
    from ..errors import DataError

    if kind == "mmew-macro":
        return load_mmew(root, kind="macro", **options)
    if kind not in LOADERS:
        raise DataError(f"unknown dataset {kind!r}", hint=f"use one of {', '.join([*LOADERS, 'mmew-macro'])}")
    return LOADERS[kind](root, **options)


__all__ = [
    "ClipKey", "ClipList", "ClipRecord", "Fold", "GroundTruthRow", "IdentityRecord", "LOADERS", "Skip", "SubjectKey",
    "canonical_clip", "canonical_key", "canonical_subject", "emotion_to_label", "ground_truth_labels",
    "list_celeba", "list_image_folder", "load_casme2", "load_ckplus", "load_clips", "load_ground_truth",
    "load_megc2019", "load_miex_3fold", "load_mmew", "load_oulu", "load_samm", "load_smic",
]

"""Real datasets: where their files are and what their annotations say (one module per dataset).

Every loader returns typed records with canonical subject keys (MER_PROTOCOL.md §2.1), so both
halves of miex (AU pools and recognizers) match samples by the same ``(dataset, subject, clip)``.
"""

from __future__ import annotations

from .megc2019 import GroundTruthRow, ground_truth_labels, load_ground_truth
from .miex_split import Fold, load_miex_3fold
from .records import (
    ClipKey, ClipList, ClipRecord, IdentityRecord, Skip, SubjectKey, canonical_clip, canonical_key,
    canonical_subject, emotion_to_label,
)

__all__ = [
    "ClipKey", "ClipList", "ClipRecord", "Fold", "GroundTruthRow", "IdentityRecord", "Skip", "SubjectKey",
    "canonical_clip", "canonical_key", "canonical_subject", "emotion_to_label", "ground_truth_labels",
    "load_ground_truth", "load_miex_3fold",
]

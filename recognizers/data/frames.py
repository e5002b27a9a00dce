"""Which frames a sample feeds the model: onset, apex, and FRL-DGT's training-time apex randomisation."""

from __future__ import annotations

import math

import numpy as np

DEFAULT_APEX_R = 0.4  # FRL_DGT.md §2.5 (paper)


def apex_range(onset: int, apex: int, last: int, r: float) -> tuple[int, int]:
    """The inclusive range ``[lo, hi]`` of FRL-DGT's supplement eqs. 2–3.

    ``lo = max(onset + 1, apex - ⌊(apex - onset)·r⌋)``, ``hi = min(apex + ⌊(apex - onset)·r⌋, last)``.
    Indices are frame positions within the clip (onset ≤ apex ≤ last).
    """
    if not (0 <= onset < apex <= last):
        raise ValueError(f"need 0 <= onset < apex <= last, got onset={onset}, apex={apex}, last={last}")
    if not 0 <= r:
        raise ValueError(f"r must be >= 0, got {r}")
    half = math.floor((apex - onset) * r)
    return max(onset + 1, apex - half), min(apex + half, last)


def randomise_apex(onset: int, apex: int, last: int, r: float, rng: np.random.Generator) -> int:
    """FRL-DGT's apex randomisation (supplement eq. 4): a uniform integer in ``apex_range``.

    Example from FRL_DGT.md §2.5: onset 46, apex 59, last 86, r 0.4 → uniform in [54, 64].
    """
    lo, hi = apex_range(onset, apex, last, r)
    return int(rng.integers(lo, hi + 1))


def select_positions(onset: int, apex: int, last: int, *, num_frames: int, train: bool, r: float,
                     rng: np.random.Generator) -> tuple[list[int], int]:
    """Frame positions to load (``[onset, apex]`` or ``[apex]``) and the apex actually used.

    The apex is randomised only in training, only with ``r > 0``, and only when the sample has
    frames to choose from (a two-frame shard has none: the range is the apex itself).
    """
    used = apex
    if train and r > 0 and apex > onset:
        used = randomise_apex(onset, apex, last, r, rng)
    if num_frames == 1:
        return [used], used
    if num_frames == 2:
        return [onset, used], used
    raise ValueError(f"num_frames must be 1 or 2, got {num_frames}")

"""z^MaE: onset AUs and early-stage AUs of macro-expression sequences (MIEX_PROTOCOL.md §3.2).

onset = the first frame (CK+ / Oulu sequences start neutral); apex = the frame a fraction p of the
way to the end, p ~ U(apex_range) drawn K times per clip (default 10 draws in 25-50 %), each draw
its own pool entry so the plan samples cheaply. miex uses the 0-based index
``onset + floor(p * (n - 1))`` for a clip of n frames. ``compat=True`` reproduces the original code:
index ``int((n + 1) * p)`` (it counted the CSV header row) and CK+ sadness labelled positive (the
``{6: 1}`` bug); never use it except to reproduce published numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..datasets.records import ClipRecord, Skip
from ..errors import DataError
from ..seeding import numpy_rng
from .clips import read_clip_table
from .mie import report_skips
from .pool import AuPool


def mae_apex_index(p: float, onset: int, offset: int, *, compat: bool = False) -> int:
    """Frame index of the early apex for fraction ``p`` of a clip running onset..offset (inclusive)."""
    n = offset - onset + 1
    step = int((n + 1) * p) if compat else math.floor(p * (n - 1))
    return min(onset + step, offset)


def compat_label(clip: ClipRecord) -> int | None:
    """The label the original MiE-X code gave: CK+ sadness became positive (code 6 -> 1)."""
    if clip.dataset == "ckplus" and clip.emotion == "sadness":
        return 1
    return clip.label


def build_mae_pool(clips: Sequence[ClipRecord], au_dir: Path | str, *, draws_per_clip: int = 10,
                   apex_range: tuple[float, float] = (0.25, 0.5), seed: int, compat: bool = False,
                   format: str = "auto", strict: bool = False) -> AuPool:
    """``draws_per_clip`` triplets per labelled clip; each clip draws from its own seeded stream
    (``numpy_rng(seed, "mae", dataset, subject, clip)``), so adding a clip never shifts another's draws.
    """
    low, high = float(apex_range[0]), float(apex_range[1])
    if not 0.0 <= low <= high <= 1.0:
        raise DataError(f"apex_range {apex_range} must satisfy 0 <= low <= high <= 1")
    if draws_per_clip < 1:
        raise DataError(f"draws_per_clip must be at least 1, got {draws_per_clip}")
    if seed is None:
        raise DataError("a z^MaE pool needs a seed", hint="pass --seed N")
    onset, apex, meta, skipped = [], [], [], []
    for clip in clips:
        where = "/".join(clip.key)
        label = compat_label(clip) if compat else clip.label
        if label is None:
            skipped.append(Skip(where, f"emotion {clip.emotion!r} has no 3-class label"))
            continue
        try:
            table = read_clip_table(au_dir, clip, format=format)
            start = table.vector(clip.onset)
        except DataError as exc:
            skipped.append(Skip(where, exc.message))
            continue
        rng = numpy_rng(seed, "mae", *clip.key)
        for p in rng.uniform(low, high, size=draws_per_clip):
            index = mae_apex_index(float(p), clip.onset, clip.offset, compat=compat)
            try:
                apex.append(table.vector(index))
            except DataError as exc:
                skipped.append(Skip(f"{where} frame {index}", exc.message))
                continue
            onset.append(start)
            meta.append((clip, label, index))
    report_skips("mae", skipped, strict)
    attrs = {"source": "mae", "seed": seed, "au_dir": str(au_dir), "format": format, "miex_version": __version__,
             "draws_per_clip": draws_per_clip, "apex_range": [low, high], "compat": compat,
             "apex_rule": "int((n+1)*p)" if compat else "floor(p*(n-1))",
             "ckplus_sadness": "positive (compat bug)" if compat else "negative",
             "datasets": sorted({c.dataset for c, _, _ in meta}), "n_clips_given": len(clips),
             "skipped": [str(s) for s in skipped]}
    return AuPool(np.asarray(onset, dtype=np.float32).reshape(-1, 17), np.asarray(apex, dtype=np.float32).reshape(-1, 17),
                  [m[1] for m in meta], "mae", [m[0].dataset for m in meta], [m[0].subject for m in meta],
                  [m[0].clip for m in meta], [m[0].onset for m in meta], [m[2] for m in meta], attrs=attrs,
                  emotion=[m[0].emotion for m in meta])

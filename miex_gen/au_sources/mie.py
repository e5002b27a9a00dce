"""z^MiE: onset and apex AUs of real micro-expression clips (MIEX_PROTOCOL.md §3.1).

onset = the AUs of the clip's onset frame, apex = the AUs of its annotated apex frame (SMIC: the
integer middle frame unless an apex file was given). A pool can be restricted to a fold's training
subjects (``subjects``) or exclude its test subjects (``exclude_subjects``), keyed by canonical
(dataset, subject), so synthetic data built from it never carries a test subject's AUs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..datasets.records import ClipRecord, Skip
from ..errors import DataError
from .clips import read_clip_table
from .pool import AuPool, _canonical_subjects

log = logging.getLogger(__name__)


def _subject_filter(clips: Sequence[ClipRecord], subjects: Iterable | None,
                    exclude_subjects: Iterable | None) -> tuple[list[ClipRecord], dict]:
    params: dict = {}
    keep = list(clips)
    if subjects is not None:
        wanted = set(_canonical_subjects(subjects))
        keep = [c for c in keep if c.subject_key in wanted]
        params["subjects"] = sorted(map(list, wanted))
    if exclude_subjects is not None:
        banned = set(_canonical_subjects(exclude_subjects))
        keep = [c for c in keep if c.subject_key not in banned]
        params["exclude_subjects"] = sorted(map(list, banned))
    return keep, params


def report_skips(kind: str, skipped: list[Skip], strict: bool) -> None:
    if skipped and strict:
        raise DataError(f"{kind} pool: {skipped[0]}", hint=f"fix the clip or build with strict=False "
                                                           f"({len(skipped)} problem(s) in all)")
    if skipped:
        log.warning("%s pool: skipped %d clip(s)/draw(s); first: %s", kind, len(skipped), skipped[0])


def build_mie_pool(clips: Sequence[ClipRecord], au_dir: Path | str, *, subjects: Iterable | None = None,
                   exclude_subjects: Iterable | None = None, seed: int | None = None, format: str = "auto",
                   strict: bool = False) -> AuPool:
    """One (onset, apex) triplet per labelled clip with an apex, from ``<au_dir>/<dataset>/<subject>/<clip>.csv``.

    Clips without a label ("others"), without an apex, without an AU table or with a failed tracker
    at onset/apex are skipped and listed in ``pool.attrs["skipped"]`` (or raise with ``strict``).
    ``seed`` is recorded only: z^MiE involves no random choice.
    """
    chosen, params = _subject_filter(clips, subjects, exclude_subjects)
    onset, apex, rows, skipped = [], [], [], []
    for clip in chosen:
        where = "/".join(clip.key)
        if clip.label is None:
            skipped.append(Skip(where, f"emotion {clip.emotion!r} has no 3-class label"))
            continue
        if clip.apex is None:
            skipped.append(Skip(where, "no apex frame (give an apex file or a rule)"))
            continue
        try:
            table = read_clip_table(au_dir, clip, format=format)
            pair = table.vector(clip.onset), table.vector(clip.apex)
        except DataError as exc:
            skipped.append(Skip(where, exc.message))
            continue
        onset.append(pair[0])
        apex.append(pair[1])
        rows.append(clip)
    report_skips("mie", skipped, strict)
    attrs = {"source": "mie", "seed": seed, "au_dir": str(au_dir), "format": format, "miex_version": __version__,
             "datasets": sorted({c.dataset for c in rows}), "n_clips_given": len(clips), **params,
             "apex_sources": sorted({c.apex_source for c in rows}),
             "skipped": [str(s) for s in skipped]}
    return AuPool(np.asarray(onset, dtype=np.float32).reshape(-1, 17), np.asarray(apex, dtype=np.float32).reshape(-1, 17),
                  [c.label for c in rows], "mie", [c.dataset for c in rows], [c.subject for c in rows],
                  [c.clip for c in rows], [c.onset for c in rows], [c.apex for c in rows], attrs=attrs,
                  emotion=[c.emotion for c in rows])

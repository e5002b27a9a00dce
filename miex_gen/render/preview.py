"""Render one face photo with any registered renderer and save it next to its input (``miex render``).

The picture is a strip: the prepared input (the neutral face every renderer starts from) on
the left, then one tile per rendered AU vector, each captioned. A JSON file with the same stem
records what made it: renderer description (weights hash), AUs, face box, versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..aus import AU_MAX, AU_NAMES, au_vector, canonical_au_name, check_aus, describe
from ..errors import ConfigError, DataError
from .base import Renderer

CAPTION_HEIGHT = 14
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_ ]+?)\s*[=:]\s*([-+0-9.eE]+)\s*$")


@dataclass
class PreviewResult:
    strip: np.ndarray  # uint8 [h (+ caption), w * (1 + T), 3]
    frames: np.ndarray  # uint8 [T, h, w, 3]
    aus: np.ndarray  # float32 [T, 17]
    labels: list[str]
    meta: dict[str, Any]


def parse_au_assignments(items: Sequence[str]) -> np.ndarray:
    """``["AU12=2", "6=1"]`` -> float32[17] on the 0-5 scale (unnamed AUs 0); ConfigError if malformed."""
    values: dict[str, float] = {}
    for item in items:
        match = _ASSIGN.match(item)
        if not match:
            raise ConfigError(f"--au {item!r} is not AU=VALUE", hint="e.g. --au AU12=2 --au AU06=1 (values 0-5)")
        try:
            name = canonical_au_name(match.group(1))
        except DataError as exc:
            raise ConfigError(f"--au {item!r}: {exc.message}", hint=exc.hint) from None
        values[name] = float(match.group(2))
    try:
        return au_vector(values)
    except DataError as exc:
        raise ConfigError(f"--au: {exc.message}", hint=exc.hint) from None


def sweep_aus(base: np.ndarray, au: str, steps: int = 6, high: float = AU_MAX) -> tuple[np.ndarray, list[str]]:
    """``steps`` copies of ``base`` with ``au`` going 0 -> ``high`` evenly, and their captions."""
    try:
        name = canonical_au_name(au)
    except DataError as exc:
        raise ConfigError(f"--sweep {au!r}: {exc.message}", hint=exc.hint) from None
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {steps}")
    index = AU_NAMES.index(name)
    aus = np.repeat(np.asarray(base, dtype=np.float32)[None], steps, axis=0)
    aus[:, index] = np.linspace(0.0, high, steps, dtype=np.float32)
    return aus, [f"{name}={v:g}" for v in aus[:, index]]


def render_preview(renderer: Renderer, image: np.ndarray, aus: np.ndarray, *, labels: Sequence[str] | None = None,
                   detect: bool = True) -> PreviewResult:
    """Prepare ``image`` once and render the AU vectors ``aus`` [T, 17] as one sample of T frames."""
    aus = check_aus(aus, where="preview AUs").reshape(-1, len(AU_NAMES))
    prepared = renderer.prepare(image, detect=detect)
    result = renderer.render([prepared], aus[None])
    frames = result.frames[0]
    labels = list(labels) if labels is not None else [describe(a) for a in aus]
    tiles = [prepared.face, *frames]
    strip = caption_strip(tiles, ["input", *labels])
    meta = {"renderer": renderer.describe(), "prepared": prepared.meta, "render": result.meta[0],
            "aus": {label: _nonzero(a) for label, a in zip(labels, aus)}, "detect": detect}
    return PreviewResult(strip, frames, aus, labels, meta)


def _nonzero(vec: np.ndarray) -> dict[str, float]:
    return {AU_NAMES[i]: round(float(v), 4) for i, v in enumerate(vec) if v != 0}


def caption_strip(tiles: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Tiles side by side (resized to the first tile's size) with a caption row under each."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = tiles[0].shape[:2]
    canvas = Image.new("RGB", (width * len(tiles), height + CAPTION_HEIGHT), (255, 255, 255))
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(canvas)
    for k, (tile, label) in enumerate(zip(tiles, labels)):
        img = Image.fromarray(np.ascontiguousarray(tile))
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BICUBIC)
        canvas.paste(img, (k * width, 0))
        text = label
        while text and draw.textlength(text, font=font) > width - 4:
            text = text[:-1]
        draw.text((k * width + 2, height + 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas, dtype=np.uint8)


def save_preview(result: PreviewResult, out: str | Path, extra: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the strip as PNG and its record as ``<stem>.json``, both atomically."""
    from PIL import Image

    from ..atomic import atomic_path, atomic_write_json
    from ..versions import environment_info

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"output {out} must be a .png file", hint="e.g. -o out.png")
    with atomic_path(out) as tmp:
        Image.fromarray(result.strip).save(tmp, format="PNG")
    record = {**result.meta, **(dict(extra) if extra else {}), "versions": environment_info()}
    sidecar = out.with_suffix(".json")
    atomic_write_json(sidecar, record)
    return out, sidecar

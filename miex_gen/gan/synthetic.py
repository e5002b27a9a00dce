"""A synthetic labelled face set where one AU visibly controls one region.

For tests, benchmarks and trying the trainer without a real dataset: each face is a random
"identity" (background, skin tone, face shape, eye positions) with a mouth patch whose grey
level is a linear function of the chosen AU's intensity. A generator that learned to follow its
AU input must therefore change that patch's brightness with the target AU, which can be
measured on faces it never saw (``mouth_brightness``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..aus import AU_MAX, NUM_AUS, au_index
from ..seeding import numpy_rng
from .data import write_label_table

MOUTH_ROWS = (0.62, 0.80)
MOUTH_COLS = (0.30, 0.70)
LOW, HIGH = 30.0, 240.0  # patch grey level at AU 0 and at AU 5


def mouth_region(size: int) -> tuple[slice, slice]:
    """(rows, columns) of the AU-controlled patch in a ``size`` x ``size`` face."""
    return (slice(int(MOUTH_ROWS[0] * size), int(MOUTH_ROWS[1] * size)),
            slice(int(MOUTH_COLS[0] * size), int(MOUTH_COLS[1] * size)))


def patch_level(intensity: np.ndarray | float) -> np.ndarray:
    return LOW + (HIGH - LOW) * np.asarray(intensity, dtype=np.float32) / AU_MAX


def synthetic_face(rng: np.random.Generator, size: int, intensity: float) -> np.ndarray:
    """One uint8 [size, size, 3] face whose mouth patch encodes ``intensity`` (0-5)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = rng.uniform(40, 200, 3) + rng.uniform(-40, 40, 3) * yy[..., None]
    image = np.broadcast_to(background, (size, size, 3)).copy()
    cy, cx = 0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)
    ry, rx = rng.uniform(0.42, 0.48), rng.uniform(0.34, 0.42)
    face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    image[face] = rng.uniform([150, 100, 80], [240, 190, 160])
    eye_y = 0.38 + rng.uniform(-0.03, 0.03)
    for ex in (0.35, 0.65):
        eye = ((yy - eye_y) / 0.05) ** 2 + ((xx - ex - rng.uniform(-0.02, 0.02)) / 0.07) ** 2 <= 1
        image[eye] = rng.uniform(10, 60)
    rows, cols = mouth_region(size)
    image[rows, cols] = patch_level(intensity)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_synthetic_faces(root: str | Path, count: int, *, size: int = 32, seed: int = 0, au: str = "AU12",
                         table: bool = True) -> tuple[list[Path], np.ndarray]:
    """Write ``count`` PNG faces (and ``labels.csv`` if ``table``) under ``root``; return paths and AUs."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = numpy_rng(seed, "synthetic-faces")
    aus = np.zeros((count, NUM_AUS), dtype=np.float32)
    aus[:, au_index(au)] = np.round(rng.uniform(0, AU_MAX, count), 3)
    paths = []
    for i in range(count):
        path = root / f"face_{i:05d}.png"
        Image.fromarray(synthetic_face(rng, size, float(aus[i, au_index(au)]))).save(path)
        paths.append(path)
    if table:
        write_label_table(root / "labels.csv", [p.name for p in paths], aus)
    return paths, aus


def mouth_brightness(images: np.ndarray) -> np.ndarray:
    """Mean grey level of the mouth patch of uint8 [N, H, W, 3] images."""
    images = np.asarray(images)
    rows, cols = mouth_region(images.shape[1])
    return images[:, rows, cols].astype(np.float32).mean(axis=(1, 2, 3))

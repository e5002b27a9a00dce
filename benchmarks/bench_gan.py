"""GAN training speed on the CPU at 128x128: steps/s at the default and a reduced width, and the
share of each step spent loading data.

Runs the real trainer (``miex_gen.gan.trainer.train``) on a synthetic 128x128 labelled face set
(``miex_gen.gan.synthetic``), with every configuration in the same process and the same threads.
A "step" is one iteration: one critic update, plus a generator update every ``--critic-steps``
iterations (5, as GANimation), so the average covers both. The timed iterations skip the first
``--warmup`` ones (allocator and oneDNN warm-up); times come from the trainer's own per-iteration
clocks, so epoch-end work (checkpoints, sample grid) is not counted.

Data loading is measured two ways on the same images and batches:

* miex: the batch is read from the face cache (a memory-mapped uint8 array, built once), then
  flipped and normalised: what the trainer does;
* baseline, the originals' way: every image of the batch is decoded from its PNG and resized
  with PIL at every step.

    python benchmarks/bench_gan.py                      # default width 64 vs 16, batch 4
    python benchmarks/bench_gan.py --iters 10 --widths 64 32 16 --batch-size 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def baseline_load(paths: list[Path], indices: np.ndarray, size: int, rng: np.random.Generator):
    """Decode + resize + flip + normalise every image of a batch from its file (the originals' loader)."""
    import torch
    from PIL import Image

    images = []
    for i in indices:
        with Image.open(paths[i]) as img:
            arr = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC))
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        images.append(arr)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 16], help="conv_dim of G and D; first = baseline")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per width")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--critic-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from miex_gen.gan.config import TrainConfig
    from miex_gen.gan.data import FaceAuData
    from miex_gen.gan.synthetic import make_synthetic_faces
    from miex_gen.gan.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    total = args.warmup + args.iters
    # the generator step falls on iterations critic_steps-1, 2*critic_steps-1, ...: time whole cycles
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = args.batch_size * total
        paths, _ = make_synthetic_faces(root / "faces", n, size=args.image_size, seed=0)
        rows = []
        for width in args.widths:
            config = TrainConfig(data=str(root / "faces"), out=str(root / f"run{width}"), image_size=args.image_size,
                                 conv_dim=width, batch_size=args.batch_size, epochs=1, decay_epochs=0,
                                 critic_steps=args.critic_steps, device=args.device, progress=False,
                                 plot_every_s=1e9, stop_after=args.warmup)
            train(config)  # warm-up iterations, then stop (the state is saved)
            config.stop_after = None
            result = train(config, resume=True)
            t = result.timing
            rows.append((width, t["iterations"] / t["step_s"], t["step_s"] / t["iterations"], t["data_s"] / t["step_s"]))

        # data loading, same batches: the trainer's cache vs decoding files at every step
        cache = min((root / f"run{args.widths[0]}" / "cache").glob("faces_*.npy"))
        data = FaceAuData(np.load(cache, mmap_mode="r"), np.zeros((n, 17), np.float32))
        rng = np.random.default_rng(0)
        batches = [rng.choice(n, args.batch_size, replace=False) for _ in range(20)]
        t0 = time.perf_counter()
        for b in batches:
            data.batch(b, rng)
        cache_s = (time.perf_counter() - t0) / len(batches)
        t0 = time.perf_counter()
        for b in batches:
            baseline_load(paths, b, args.image_size, rng)
        files_s = (time.perf_counter() - t0) / len(batches)

    base = rows[0][1]
    print(f"\nGAN training on {args.device}, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"{args.critic_steps} critic steps per G step, {torch.get_num_threads()} threads, {args.iters} timed iterations")
    print(f"{'conv_dim':>8} {'steps/s':>9} {'s/step':>8} {'vs default':>10} {'data share':>10}")
    for width, sps, sec, share in rows:
        print(f"{width:>8} {sps:>9.3f} {sec:>8.2f} {sps / base:>9.1f}x {100 * share:>9.2f}%")
    print(f"\ndata loading per batch: cache {1000 * cache_s:.2f} ms, decode files (baseline) {1000 * files_s:.2f} ms "
          f"({files_s / cache_s:.0f}x); target: data < 10 % of a step")
    for width, _sps, sec, _share in rows:
        print(f"  conv_dim {width}: cache {100 * cache_s / sec:.2f} % of a step, files {100 * files_s / sec:.2f} %")


if __name__ == "__main__":
    main()

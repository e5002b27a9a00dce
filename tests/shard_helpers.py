"""Small synthetic shard datasets for tests (random pixels; every field exercised, non-ASCII text too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miex_gen.shards import ShardWriter, merge_dataset, shard_name

T, H, W = 3, 16, 20


def shard_attrs(k: int, num_shards: int) -> dict:
    return {"renderer": "test", "renderer_weights_sha256": "", "config": {"seed": 1, "licence": "CC-BY-4.0"},
            "config_hash": "abc123", "shard_index": k, "num_shards": num_shards}


def make_samples(n: int, seed: int, start: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "frames": rng.integers(0, 256, size=(n, T, H, W, 3), dtype=np.uint8),
        "aus": rng.uniform(0, 5, size=(n, T, 17)).astype(np.float32),
        "label": rng.integers(0, 3, size=n),
        "apex_index": rng.integers(0, T, size=n),
        "source_kind": [("exp", "mie", "mae")[i % 3] for i in range(n)],
        "identity": [f"celeba/{i:06d}.jpg" for i in range(start, start + n)],
        "dataset": ["casme2" if i % 2 else "" for i in range(n)],
        "subject": [f"sub{i % 4:02d}" for i in range(n)],
        "clip": [f"EP0{i}_ñ" for i in range(n)],
        "onset_frame": rng.integers(-1, 100, size=n),
        "apex_frame": rng.integers(-1, 100, size=n),
        "sample_seed": rng.integers(2**62, 2**63, size=n, dtype=np.uint64),
        "sample_index": np.arange(start, start + n),
        "render_meta": [{"path": "mesh", "k": i, "ok": True} for i in range(n)],
    }


def write_dataset(directory: Path, sizes=(5, 4), seed: int = 0, merge: bool = True, **writer_kw) -> list[dict]:
    written, start = [], 0
    for k, n in enumerate(sizes):
        s = make_samples(n, seed + k, start)
        with ShardWriter(directory / shard_name(k), num_frames=T, height=H, width=W,
                         attrs=shard_attrs(k, len(sizes)), capacity=n, **writer_kw) as w:
            half = n // 2
            for i in range(half):  # per-sample and batched appends both used
                w.append(**{key: v[i] for key, v in s.items()})
            w.append_batch(**{key: v[half:] for key, v in s.items()})
        written.append(s)
        start += n
    if merge:
        merge_dataset(directory, expected_shards=len(sizes))
    return written


def concat(samples: list[dict]) -> dict:
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = np.concatenate(values) if isinstance(values[0], np.ndarray) else sum(values, [])
    return out

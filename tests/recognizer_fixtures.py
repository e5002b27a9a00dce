"""Tiny fixture datasets for the recognizer tests, with the class visibly encoded in the motion.

Each sample's apex differs from its onset by a brightened patch in a class-specific place
(0 negative: brows band, 1 positive: left mouth corner, 2 surprise: right jaw), ramping from the
onset to the apex and back; identity-specific texture and brightness make identities differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_PATCH = {0: (0.15, 0.35, 0.2, 0.8), 1: (0.6, 0.85, 0.1, 0.45), 2: (0.6, 0.85, 0.55, 0.9)}  # y0, y1, x0, x1


def face(size: int, identity: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + identity)
    base = rng.integers(70, 140)
    img = np.full((size, size, 3), base, np.float32)
    img += rng.normal(0, 12, (size, size, 1))  # identity texture
    return img


def frame(base: np.ndarray, label: int, strength: float) -> np.ndarray:
    size = base.shape[0]
    y0, y1, x0, x1 = (int(v * size) for v in CLASS_PATCH[label])
    img = base.copy()
    img[y0:y1, x0:x1] += 90 * strength
    return np.clip(img, 0, 255).astype(np.uint8)


def clip_frames(identity: int, label: int, num_frames: int, apex: int, size: int) -> np.ndarray:
    base = face(size, identity)
    ramp = [min(t / apex, (num_frames - 1 - t) / max(1, num_frames - 1 - apex) + 0.5, 1.0) if t else 0.0
            for t in range(num_frames)]
    return np.stack([frame(base, label, r) for r in ramp])


def make_casme2(root: Path, clips: list[tuple[int, str, str]], *, num_frames: int = 6, size: int = 40,
                first: int = 46) -> Path:
    """A CASME II tree (MER_PROTOCOL §7.1): coding xlsx (one header row, 9 columns) + ``Cropped`` frames."""
    import cv2
    from openpyxl import Workbook

    labels = {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2, "others": 0}
    wb = Workbook()
    ws = wb.active
    ws.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
               "Estimated Emotion"])
    apex = num_frames // 2
    for k, (subject, filename, emotion) in enumerate(clips):
        ws.append([subject, filename, None, first, first + apex, first + num_frames - 1, None, "4", emotion])
        folder = root / "Cropped" / f"sub{subject:02d}" / filename
        folder.mkdir(parents=True, exist_ok=True)
        for t, img in enumerate(clip_frames(subject * 7 + k, labels[emotion], num_frames, apex, size)):
            cv2.imwrite(str(folder / f"reg_img{first + t}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "CASME2-coding-20140508.xlsx")
    return root


def casme2_clips(subjects: int = 3, per_class: int = 2, emotions: tuple[str, ...] = ("disgust", "happiness", "surprise")):
    out = []
    for s in range(1, subjects + 1):
        for e_i, emotion in enumerate(emotions):
            for j in range(per_class):
                out.append((s, f"EP0{e_i + 1}_{j + 1:02d}f", emotion))
    return out


def write_shards(directory: Path, identities: range, *, per_class: int = 2, num_frames: int = 4, size: int = 40,
                 shards: int = 2) -> Path:
    """A miex shard dataset written by ``miex_gen.shards.ShardWriter`` (the generator's writer)."""
    from miex_gen.shards import ShardWriter, shard_name

    samples = [(i, c, k) for i in identities for c in (0, 1, 2) for k in range(per_class)]
    directory.mkdir(parents=True, exist_ok=True)
    apex = num_frames // 2
    per_shard = -(-len(samples) // shards)
    for s in range(shards):
        attrs = {"renderer": "fixture", "renderer_weights_sha256": "", "config": {"fixture": True},
                 "config_hash": "fixture", "shard_index": s, "num_shards": shards}
        with ShardWriter(directory / shard_name(s), num_frames=num_frames, height=size, width=size, attrs=attrs) as w:
            for n, (identity, label, k) in enumerate(samples[s * per_shard:(s + 1) * per_shard], start=s * per_shard):
                w.append(frames=clip_frames(identity * 10 + k, label, num_frames, apex, size),
                         aus=np.zeros((num_frames, 17), np.float32), label=label, apex_index=apex,
                         source_kind="exp", identity=f"id{identity:03d}", dataset="casme2",
                         subject=f"sub{(identity % 5) + 1:02d}", clip=f"EP{k:02d}", onset_frame=-1, apex_frame=-1,
                         sample_seed=n, sample_index=n)
    return directory

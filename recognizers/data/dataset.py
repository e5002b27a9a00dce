"""The torch Dataset every recognizer trains on: a source + the model's input spec + a split role.

``RecognizerDataset(source, spec, train=True, seed=s)`` yields ``{"x", "y", "index"}`` with ``x``
shaped for ``spec`` (frames ``[T, C, H, W]``, flow ``[C, 28, 28]``). All randomness of a sample (its
randomised apex, its one shared augmentation draw) comes from ``numpy_rng(seed, "sample", epoch,
index)``: the same in any DataLoader worker, with any worker count, and after a resume. Call
``set_epoch`` before each epoch (the trainer does). ``__getitems__`` lets the DataLoader read a
whole batch at once, which the shard source turns into one sorted HDF5 read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from miex_gen.seeding import numpy_rng

from ..models.registry import InputSpec
from .flow import FlowCache, FlowConfig, flow_features
from .frames import DEFAULT_APEX_R, select_positions
from .sources import SampleSource
from .transforms import AugmentConfig, FrameTransform, flip_flow


@dataclass(frozen=True)
class DataOptions:
    """How samples become model inputs (content: changes what the model sees)."""

    apex_r: float | None = None  # None: 0.4 for frame models, 0 (annotated apex) for flow models
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    mean: float = 0.5  # frame normalisation: (x/255 - mean) / std
    std: float = 0.5

    def resolved_apex_r(self, spec: InputSpec) -> float:
        if self.apex_r is not None:
            return float(self.apex_r)
        return DEFAULT_APEX_R if spec.kind == "frames" else 0.0


class RecognizerDataset(Dataset):
    def __init__(self, source: SampleSource, spec: InputSpec, *, train: bool, seed: int = 0,
                 options: DataOptions = DataOptions(), flow_cache: str | Path | None = None):
        self.source, self.spec, self.train, self.seed = source, spec, train, int(seed)
        self.options = options
        self.apex_r = options.resolved_apex_r(spec)
        self.epoch = 0
        if spec.kind == "frames":
            self.transform = FrameTransform(spec.size, spec.channels, train=train,
                                            augment=options.augment if train else AugmentConfig.none(
                                                options.augment.resize_ratio),
                                            mean=options.mean, std=options.std)
        elif spec.kind == "flow":
            self.flow = FlowConfig(method=options.flow.method, size=spec.size, params=dict(options.flow.params))
            self.cache = FlowCache(flow_cache) if flow_cache is not None else None
        else:
            raise ValueError(f"unknown input kind {spec.kind!r}")

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _plan(self, index: int) -> tuple[list[int], np.random.Generator]:
        meta = self.source.meta[index]
        rng = numpy_rng(self.seed, "sample", self.epoch if self.train else 0, index)
        num = self.spec.num_frames if self.spec.kind == "frames" else 2
        positions, _ = select_positions(meta.onset, meta.apex, meta.last, num_frames=num,
                                        train=self.train, r=self.apex_r, rng=rng)
        return positions, rng

    def _finish(self, index: int, frames: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        if self.spec.kind == "frames":
            x = self.transform(frames, rng)
        else:
            onset, apex = frames[0], frames[1]
            if self.cache is not None:
                features = self.cache.get(onset, apex, self.spec.channels, self.flow)
            else:
                features = flow_features(onset, apex, self.spec.channels, self.flow)
            if self.train and self.options.augment.flip and rng.random() < 0.5:
                features = flip_flow(features)
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        return {"x": x, "y": self.source.meta[index].label, "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        positions, rng = self._plan(index)
        return self._finish(index, self.source.load(index, positions), rng)

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        plans = [self._plan(i) for i in indices]
        frames = self.source.load_many([(i, p) for i, (p, _) in zip(indices, plans)])
        return [self._finish(i, f, rng) for i, f, (_, rng) in zip(indices, frames, plans)]

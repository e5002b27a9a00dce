"""Per-model input transforms with ONE shared random draw per sample (onset and apex move together).

The training pipeline follows MiE-X (MIEX_PROTOCOL.md §9.2): resize to ``size·ratio`` (256/224) → random
rotation → colour jitter → random crop ``size`` → [flip] → [0, 1] → normalise. The test pipeline is
deterministic (resize → centre crop), unlike the original which applied the random transform at test
time. Every random number comes from the ``numpy.random.Generator`` the dataset derives per sample
from the run seed, the epoch and the index, so results do not depend on worker count or order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; ``AugmentConfig.none()`` switches it all off."""

    rotation: float = 0.0  # max degrees (MiE-X: 10 on synthetic data, 0 on real)
    jitter: float = 0.2  # brightness/contrast/saturation factor spread and hue shift (MiE-X 0.2)
    flip: bool = False  # horizontal flip with p = 0.5 (flow: u is negated)
    resize_ratio: float = 256 / 224  # resize to size·ratio, then crop size (random in training, centre in test)

    @classmethod
    def none(cls, resize_ratio: float = 256 / 224) -> "AugmentConfig":
        return cls(rotation=0.0, jitter=0.0, flip=False, resize_ratio=resize_ratio)


class FrameTransform:
    """uint8 frames ``[K, H, W, 3]`` → float tensor ``[K, C, size, size]``, same random draw for all K."""

    def __init__(self, size: int, channels: int, *, train: bool, augment: AugmentConfig = AugmentConfig(),
                 mean: float = 0.5, std: float = 0.5):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.size, self.channels, self.train, self.augment = size, channels, train, augment
        self.mean, self.std = mean, std
        if augment.resize_ratio < 1:
            raise ValueError(f"resize_ratio must be >= 1, got {augment.resize_ratio}")
        self.resize_to = max(size, round(size * augment.resize_ratio))

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [K, 3, H, W] uint8
        if self.channels == 1:
            t = TF.rgb_to_grayscale(t, num_output_channels=1)
        t = TF.resize(t, [self.resize_to, self.resize_to], antialias=True)
        aug = self.augment
        if self.train:
            if aug.rotation > 0:
                t = TF.rotate(t, float(rng.uniform(-aug.rotation, aug.rotation)))
            if aug.jitter > 0:
                t = self._jitter(t, rng)
            top, left = (int(rng.integers(0, self.resize_to - self.size + 1)) for _ in range(2))
            t = TF.crop(t, top, left, self.size, self.size)
            if aug.flip and rng.random() < 0.5:
                t = TF.horizontal_flip(t)
        else:
            t = TF.center_crop(t, [self.size, self.size])
        x = t.to(torch.float32).div_(255.0)
        return x.sub_(self.mean).div_(self.std)

    def _jitter(self, t: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        j = self.augment.jitter
        b, c, s = (float(rng.uniform(max(0.0, 1 - j), 1 + j)) for _ in range(3))
        h = float(rng.uniform(-min(j, 0.5), min(j, 0.5)))
        t = TF.adjust_brightness(t, b)
        t = TF.adjust_contrast(t, c)
        if self.channels == 3:
            t = TF.adjust_saturation(t, s)
            t = TF.adjust_hue(t, h)
        return t


def flip_flow(features: np.ndarray) -> np.ndarray:
    """Mirror flow features ``[C, H, W]`` left-right; u changes sign.

    Features are min–max normalised to [0, 1] per map, so the negated u is ``1 − u`` (exactly the
    min–max normalisation of −u); v and strain are only mirrored.
    """
    out = features[:, :, ::-1].copy()
    out[0] = 1.0 - out[0]
    return out

"""The GANimation renderer: what MiE-X rendered its onset/apex faces with (GANIMATION.md section 8).

``prepare`` detects the face and cuts the tight box resized to 128 x 128, as GANimation's
training data was made (``detect=False``: the image is already such a crop and is only
resized). ``render`` feeds every frame's *absolute* target AUs (divided by 5 in
``miex_gen.aus.to_model_scale``) with the identity photo and composes
``A * input + (1 - A) * C``.

Differences from the original scripts, on purpose:

* back to uint8 by **rounding** (half to even) and clipping: ``round((x + 1) * 127.5)``. The
  replicate/MiE-X ``numpy2im`` truncates ``(x/2 + 0.5) * 255`` (a -0.5 grey-level bias on
  average) and the official ``tensor2im`` truncates ``(x * 0.5 + 0.5) * 254`` (never reaches
  255). ``compat="replicate"`` / ``compat="official"`` reproduce those formulas exactly;
* all ``B * T`` frames go through the generator in batches of one fixed size per device (the
  last batch padded), instead of one ``[onset, apex]`` pair per call; instance norm works per
  sample, and the fixed size keeps the convolution kernels the same, so a frame is bit-identical
  however the samples are grouped into ``render`` calls (same device, threads and batch size).
  A *different* batch size can move a rare pixel by one grey level (different float kernels);
* the cycle pass the official ``forward`` also runs in test mode is skipped.

Weights are required; both public dialects load (see :mod:`miex_gen.gan.weights`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..aus import NUM_AUS, to_model_scale
from ..errors import CheckpointError, ConfigError
from ..faces import check_image, crop_face, detect_face, resize_face
from ..gan.weights import (
    GENERATOR_FILES,
    GeneratorInfo,
    convert_official_to_replicate,
    convert_replicate_to_official,
    load_generator,
)
from .base import Prepared, RenderResult, Renderer, check_render_inputs, register_renderer

__all__ = [
    "GANimationRenderer", "convert_replicate_to_official", "convert_official_to_replicate",
    "to_uint8", "COMPAT_MODES", "DEFAULT_BATCH",
]

log = logging.getLogger(__name__)

COMPAT_MODES = ("miex", "replicate", "official")
INPUT_SIZE = 128
# Frames per generator call when batch_size="auto". CPU: the fastest size measured by
# benchmarks/bench_render.py on 2 cores (larger batches only add memory traffic there);
# CUDA/MPS: large enough to fill a GPU at 128 x 128 (about 1.6 GiB of activations in fp32).
DEFAULT_BATCH = {"cpu": 8, "cuda": 64, "mps": 32}
CALIBRATION_SIZES = (1, 2, 8, 32)
_CALIBRATED: dict[tuple[Any, ...], int] = {}

NO_WEIGHTS_HINT = (
    "pass --checkpoint FILE (Python: checkpoint=...), a GANimation generator file, " + GENERATOR_FILES +
    ": e.g. the CelebA/EmotionNet 30_net_gen.pth linked from the ganimation_replicate README, or "
    "train one with `miex gan train`; or use the weight-free renderer: --renderer warp"
)


def to_uint8(x: Any, compat: str = "miex") -> Any:
    """Generator output in [-1, 1] (torch tensor) -> uint8 tensor, by the chosen formula."""
    import torch

    if compat == "miex":
        scaled = torch.round((x + 1.0) * 127.5)
    elif compat == "replicate":  # numpy2im: uint8((x / 2 + 0.5) * 255), truncating
        scaled = torch.floor((x / 2.0 + 0.5) * 255.0)
    elif compat == "official":  # tensor2im: uint8((x * 0.5 + 0.5) * 254), truncating
        scaled = torch.floor((x * 0.5 + 0.5) * 254.0)
    else:
        raise ConfigError(f"unknown compat mode {compat!r}", hint=f"use one of {', '.join(COMPAT_MODES)}")
    return scaled.clamp_(0, 255).to(torch.uint8)


@register_renderer("ganimation")
class GANimationRenderer(Renderer):
    """AU-conditioned GANimation generator (replicate or official weights) as a miex renderer.

    Options: ``checkpoint`` (path or in-memory state dict, required), ``device`` (``auto``),
    ``dialect`` (expected dialect, default: whatever the file is), ``batch_size`` (frames per
    generator call: an int, ``"auto"`` = ``DEFAULT_BATCH`` for the device, or ``"calibrate"`` =
    time 1/2/8/32 once per process and keep the fastest), ``amp`` (float16 autocast, CUDA only),
    ``saturate_mask`` (the official code's optional mask saturation, default off), ``compat``
    (uint8 formula: ``miex`` | ``replicate`` | ``official``), ``detector`` (face detector),
    ``input_size`` (128, the size GANimation is trained at; the network is fully convolutional,
    so weights trained at another size, or small test networks, can use theirs).
    """

    name = "ganimation"
    input_size = INPUT_SIZE

    def __init__(self, checkpoint: str | Path | Mapping[str, Any] | None = None, *, device: Any = "auto",
                 dialect: str | None = None, batch_size: int | str = "auto", amp: bool = False,
                 saturate_mask: bool = False, compat: str = "miex", detector: str = "auto",
                 input_size: int = INPUT_SIZE) -> None:
        import torch

        from ..device import resolve_device

        if checkpoint is None or (isinstance(checkpoint, str) and not checkpoint.strip()):
            raise CheckpointError("the ganimation renderer needs generator weights and none were given",
                                  hint=NO_WEIGHTS_HINT)
        if compat not in COMPAT_MODES:
            raise ConfigError(f"unknown compat mode {compat!r}", hint=f"use one of {', '.join(COMPAT_MODES)}")
        if not (isinstance(input_size, int) and input_size >= 8 and input_size % 4 == 0):
            raise ConfigError(f"input_size must be a multiple of 4 (>= 8), got {input_size!r}",
                              hint="GANimation was trained at 128; keep the default unless your weights were not")
        self.input_size = input_size
        if not (batch_size in ("auto", "calibrate") or (isinstance(batch_size, int) and batch_size >= 1)):
            raise ConfigError(f"batch_size must be a positive integer, 'auto' or 'calibrate', got {batch_size!r}")
        self._device = resolve_device(device)
        net, info = load_generator(checkpoint if isinstance(checkpoint, Mapping) else Path(checkpoint),
                                   dialect=dialect)
        self.info: GeneratorInfo = info
        self.amp = bool(amp) and self._device.type == "cuda"
        if amp and not self.amp:
            log.warning("amp asked for on %s: mixed precision is used on CUDA only, rendering in float32",
                        self._device)
        self.saturate_mask = bool(saturate_mask)
        self.compat = compat
        self.detector = detector
        if self._device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed 128 x 128 shapes: pick the fastest kernels once
            net = net.to(memory_format=torch.channels_last)
        self.net = net.to(self._device).eval().requires_grad_(False)
        self._batch_option = batch_size
        self._batch_size: int | None = batch_size if isinstance(batch_size, int) else None

    # -- Renderer protocol --------------------------------------------------------------------

    @property
    def weights_sha256(self) -> str | None:
        return self.info.sha256

    @property
    def device(self) -> Any:
        return self._device

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "dialect": self.info.dialect,
            "conv_dim": self.info.conv_dim,
            "repeat_num": self.info.repeat_num,
            "checkpoint": None if self.info.path is None else Path(self.info.path).name,
            "compat": self.compat,
            "saturate_mask": self.saturate_mask,
            "amp": self.amp,
            "crop": f"tight face box (no margin), resized to {self.input_size}",
        }

    def prepare(self, face: np.ndarray, *, detect: bool = True) -> Prepared:
        """Tight face crop (``detect=True``) or plain resize (``detect=False``) to ``input_size``."""
        import torch

        image = check_image(face, where="face image")
        if detect:
            box = detect_face(image, detector=self.detector)
            crop = crop_face(image, box, size=self.input_size, margin=0.0, square=True)
            meta = {"crop": "detected", "box": box.to_dict()}
        else:
            crop = resize_face(image, self.input_size)
            meta = {"crop": "resized", "box": None}
        tensor = torch.from_numpy(crop).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        return Prepared(face=crop, meta=meta, state=tensor.contiguous())

    def render(self, prepared: Sequence[Prepared], aus: np.ndarray) -> RenderResult:
        """All ``B * T`` frames, in batches; returns uint8 ``[B, T, size, size, 3]``."""
        import torch

        arr = check_render_inputs(prepared, aus)
        b, t = arr.shape[:2]
        size = self.input_size
        frames = np.empty((b, t, size, size, 3), dtype=np.uint8)
        if b * t == 0:
            return RenderResult(frames, [self._sample_meta(p) for p in prepared])
        identities = torch.stack([self._state(p) for p in prepared]).to(self._device)
        conditions = to_model_scale(torch.from_numpy(arr.reshape(b * t, NUM_AUS))).to(self._device)
        owner = torch.arange(b, device=self._device).repeat_interleave(t)
        flat = frames.reshape(b * t, size, size, 3)
        step = self.batch_size
        with torch.inference_mode():
            for start in range(0, b * t, step):
                stop = min(start + step, b * t)
                index = torch.arange(start, start + step, device=self._device).clamp_(max=b * t - 1)
                # every call has exactly `step` frames (the last one padded by repeating its last
                # frame): kernels are chosen per batch size, so a fixed size makes each frame
                # independent of how the samples were grouped into render calls
                out = self._forward(identities[owner[index]], conditions[index])[: stop - start]
                flat[start:stop] = out.permute(0, 2, 3, 1).cpu().numpy()
        return RenderResult(frames, [self._sample_meta(p) for p in prepared])

    # -- internals ----------------------------------------------------------------------------

    def _state(self, p: Prepared) -> Any:
        import torch

        state = p.state
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != (3, self.input_size, self.input_size):
            # a Prepared from elsewhere (e.g. cached as an image only): rebuild its tensor
            image = check_image(p.face, where="prepared face")
            if image.shape[:2] != (self.input_size, self.input_size):
                image = resize_face(image, self.input_size)
            state = torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        return state

    def _forward(self, images: Any, conditions: Any) -> Any:
        """One batch: generator, composition, uint8 (on the device: only bytes travel back)."""
        import torch

        from ..gan.networks import compose, saturate_mask

        if self._device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self._device.type, dtype=torch.float16, enabled=self.amp):
            color, attention = self.net(images, conditions)
        color, attention = color.float(), attention.float()
        if self.saturate_mask:
            attention = saturate_mask(attention)
        return to_uint8(compose(images.float(), color, attention), self.compat)

    def _sample_meta(self, p: Prepared) -> dict[str, Any]:
        return {**p.meta, "dialect": self.info.dialect}

    @property
    def default_batch_size(self) -> int:
        """Samples per ``render`` call that fill one generator call with onset/apex pairs
        (what ``miex generate`` uses unless told otherwise): no padding is wasted."""
        return max(1, self.batch_size // 2)

    @property
    def batch_size(self) -> int:
        """Frames per generator call (see the class doc)."""
        if self._batch_size is None:
            if self._batch_option == "calibrate":
                self._batch_size = self.calibrate()
            else:
                self._batch_size = DEFAULT_BATCH.get(self._device.type, 8)
        return self._batch_size

    def calibrate(self, sizes: Sequence[int] = CALIBRATION_SIZES, *, seconds: float = 0.5) -> int:
        """Time each batch size on random inputs and return the fastest (cached per process)."""
        import torch

        key = (str(self._device), torch.get_num_threads(), self.info.conv_dim, self.info.repeat_num, self.amp)
        if key in _CALIBRATED:
            return _CALIBRATED[key]
        gen = torch.Generator().manual_seed(0)
        best, best_rate = sizes[0], -1.0
        with torch.inference_mode():
            for size in sizes:
                images = (torch.rand(size, 3, self.input_size, self.input_size, generator=gen) * 2 - 1).to(self._device)
                conds = torch.rand(size, NUM_AUS, generator=gen).to(self._device)
                self._forward(images, conds)  # warm-up
                done, start = 0, time.perf_counter()
                while True:
                    self._forward(images, conds)
                    if self._device.type == "cuda":
                        torch.cuda.synchronize(self._device)
                    done += size
                    elapsed = time.perf_counter() - start
                    if elapsed >= seconds:
                        break
                rate = done / elapsed
                if rate > best_rate:
                    best, best_rate = size, rate
        _CALIBRATED[key] = best
        log.info("ganimation: %d frames per call is fastest on %s (%.1f frames/s)", best, self._device, best_rate)
        return best

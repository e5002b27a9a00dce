"""Model registry and the small interface every recognizer follows.

* ``input_spec`` says what the data pipeline must feed: frames (how many, grey or RGB, size)
  or optical-flow features (channels, size).
* ``forward(x)`` returns logits ``[B, num_classes]`` (or a dict with ``"logits"`` plus extras).
  Frame models get ``x`` float ``[B, T, C, H, W]`` (T = onset, apex); flow models get
  ``[B, C, H, W]``.
* ``loss(output, target, x)`` returns ``(total, {term: value})``; the default is cross-entropy.
  Models with auxiliary terms (FRL-DGT's self-supervised displacement loss) override it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from miex_gen.errors import ConfigError


@dataclass(frozen=True)
class InputSpec:
    kind: str  # "frames" | "flow"
    channels: int  # per frame (1 grey, 3 RGB) or flow channels (u, v[, strain])
    size: int  # square input side in pixels
    num_frames: int = 2  # frames models: onset, apex

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecognizerModel(nn.Module):
    """Base class: subclasses set ``input_spec`` and implement ``forward``."""

    input_spec: InputSpec
    num_classes: int

    @staticmethod
    def logits_of(output: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        return output["logits"] if isinstance(output, dict) else output

    def loss(self, output: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor,
             x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(self.logits_of(output), target)
        return ce, {"ce": float(ce.detach())}


_BUILTIN_MODULES: dict[str, str] = {
    "branches": "recognizers.models.branches",
    "apex": "recognizers.models.branches",
    "off_apexnet": "recognizers.models.off_apexnet",
    "ststnet": "recognizers.models.ststnet",
    "frl_dgt": "recognizers.models.frl_dgt",
}
_REGISTRY: dict[str, Callable[..., RecognizerModel]] = {}


def register_model(name: str) -> Callable[[Callable[..., RecognizerModel]], Callable[..., RecognizerModel]]:
    def decorator(factory: Callable[..., RecognizerModel]) -> Callable[..., RecognizerModel]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_models() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def create_model(name: str, num_classes: int = 3, **cfg: Any) -> RecognizerModel:
    """Build the model registered as ``name``; unknown names and options give a ConfigError."""
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}", hint=f"choose one of {', '.join(available_models())}") from None
    try:
        return factory(num_classes=num_classes, **cfg)
    except TypeError as exc:
        raise ConfigError(f"bad option for model {name!r}: {exc}") from exc

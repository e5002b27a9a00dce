"""Pick the torch device once, the same way everywhere: cuda, then mps, then cpu."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(spec: "str | torch.device | None" = "auto") -> "torch.device":
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:1`` / ``mps`` into a usable ``torch.device``.

    ``auto`` (or None) prefers CUDA, then Apple MPS, then the CPU. Under ``torchrun`` with
    CUDA, ``auto`` picks the GPU of ``LOCAL_RANK``. An explicit device that is not available
    is an error rather than a silent fallback, so a cluster job never trains on the CPU by
    accident.
    """
    import os

    import torch

    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {spec!r}", hint="use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for, but CUDA is not available", hint="use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {spec!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible",
                hint="pick an index below the GPU count",
            )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device {spec!r} asked for, but MPS is not available", hint="use --device cpu or auto")
    return device

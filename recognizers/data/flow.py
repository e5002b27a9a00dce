"""Onset→apex optical flow and optical strain at 28 × 28 for the flow baselines, cached on disk.

Pipeline (MER_PROTOCOL.md §8.1): grey frames at crop resolution → flow (OpenCV-contrib Dual TV-L1,
the papers' choice, or DIS, ~100× faster) → optical strain ‖ε‖ = sqrt(u_x² + v_y² + ½(u_y + v_x)²)
→ per-sample min–max of each map to [0, 1] → resize to 28 × 28 (area). Flow is computed at crop
resolution and resized afterwards because resizing first gives weak flow.

The cache key is the SHA-256 of both frames' pixels and every parameter, so changing the crop, the
apex, the method or a solver setting computes a new entry; entries are written atomically, so
several DataLoader workers (or processes) can fill one cache at the same time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miex_gen.atomic import atomic_path
from miex_gen.errors import ConfigError

FLOW_VERSION = 1  # bump when the feature computation changes: old cache entries are then ignored
METHODS = ("tvl1", "dis")


@dataclass(frozen=True)
class FlowConfig:
    method: str = "tvl1"
    size: int = 28
    params: dict[str, Any] = field(default_factory=dict)  # solver settings passed to OpenCV setters

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"flow.method must be one of {', '.join(METHODS)}, got {self.method!r}")

    def key_dict(self) -> dict[str, Any]:
        return {"version": FLOW_VERSION, **asdict(self)}


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(frame)


def _solver(method: str, params: dict[str, Any]) -> Any:
    import cv2

    if method == "tvl1":
        solver = cv2.optflow.DualTVL1OpticalFlow_create()
    else:
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for name, value in params.items():
        setter = getattr(solver, "set" + name[:1].upper() + name[1:], None)
        if setter is None:
            raise ConfigError(f"unknown {method} flow parameter {name!r}",
                              hint="use an OpenCV setter name without 'set', e.g. lambda, tau, scalesNumber")
        setter(value)
    return solver


def compute_flow(onset: np.ndarray, apex: np.ndarray, method: str = "tvl1",
                 params: dict[str, Any] | None = None) -> np.ndarray:
    """Dense flow from onset to apex, float32 ``[H, W, 2]`` (u right, v down), in pixels."""
    if method not in METHODS:
        raise ConfigError(f"flow method must be one of {', '.join(METHODS)}, got {method!r}")
    a, b = _grey(onset), _grey(apex)
    if a.shape != b.shape:
        raise ValueError(f"onset {a.shape} and apex {b.shape} differ in size")
    flow = _solver(method, params or {}).calc(a, b, None)
    return np.asarray(flow, dtype=np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude sqrt(u_x² + v_y² + ½(u_y + v_x)²) of a flow ``[H, W, 2]``."""
    u, v = flow[..., 0], flow[..., 1]
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def flow_features(onset: np.ndarray, apex: np.ndarray, channels: int, config: FlowConfig = FlowConfig()) -> np.ndarray:
    """float32 ``[channels, size, size]`` in [0, 1]: (u, v) for 2 channels, (u, v, strain) for 3."""
    import cv2

    if channels not in (2, 3):
        raise ConfigError(f"flow features have 2 (u, v) or 3 (u, v, strain) channels, not {channels}")
    flow = compute_flow(onset, apex, config.method, config.params)
    maps = [flow[..., 0], flow[..., 1]] + ([optical_strain(flow)] if channels == 3 else [])
    out = [cv2.resize(_minmax(m), (config.size, config.size), interpolation=cv2.INTER_AREA) for m in maps]
    return np.stack(out).astype(np.float32)


class FlowCache:
    """Flow features on disk under ``root/<key[:2]>/<key>.npy``; safe for concurrent writers."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(onset: np.ndarray, apex: np.ndarray, channels: int, config: FlowConfig) -> str:
        h = hashlib.sha256()
        for frame in (onset, apex):
            frame = np.ascontiguousarray(frame)
            h.update(f"{frame.dtype}{frame.shape}".encode())
            h.update(frame.tobytes())
        h.update(json.dumps({"channels": channels, **config.key_dict()}, sort_keys=True).encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, onset: np.ndarray, apex: np.ndarray, channels: int, config: FlowConfig) -> np.ndarray:
        """Cached features for this pair, computing and storing them on a miss."""
        path = self.path(self.key(onset, apex, channels, config))
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError):
                pass  # unreadable entry (disk trouble): recompute and replace it
        features = flow_features(onset, apex, channels, config)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, features, allow_pickle=False)
        return features

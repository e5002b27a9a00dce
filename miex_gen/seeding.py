"""One seed, spawned: every random choice in miex derives from a run seed and a key path.

``numpy_rng(seed, "plan", shard)`` always gives the same stream for the same arguments, in
any process and in any order, which is what makes shard k identical whether it was made alone,
in a Slurm array job or after a crash.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

Key = int | str


def _key_to_int(key: Key) -> int:
    if isinstance(key, (int, np.integer)):
        if key < 0:
            raise ValueError(f"seed keys must be non-negative, got {key}")
        return int(key)
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def seed_sequence(seed: int, *keys: Key) -> np.random.SeedSequence:
    """The SeedSequence for ``seed`` and a path of keys (ints or names)."""
    if seed is None or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=tuple(_key_to_int(k) for k in keys))


def numpy_rng(seed: int, *keys: Key) -> np.random.Generator:
    """A numpy Generator for ``seed`` and a key path."""
    return np.random.default_rng(seed_sequence(seed, *keys))


def derive_seed(seed: int, *keys: Key) -> int:
    """A 63-bit integer seed for ``seed`` and a key path (for libraries that take an int)."""
    return int(seed_sequence(seed, *keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, *keys: Key, device: "str | torch.device" = "cpu") -> "torch.Generator":
    """A torch Generator on ``device`` seeded from ``seed`` and a key path."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *keys))
    return gen

"""Shard-aware batches: random order, yet each batch read from one shard (at most two)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..seeding import numpy_rng


class ShardBatchSampler:
    """Batches of global indices for ``DataLoader(batch_sampler=...)`` or ``sampler=..., batch_size=None``.

    Each epoch shuffles the shard order and the samples inside each shard, cuts the concatenation
    into batches (so a batch spans at most two shards) and shuffles the batch order. The stream
    depends only on ``seed`` and the epoch (``set_epoch``; each iteration advances it). With
    ``world_size > 1`` rank r takes every world_size-th batch (equal counts on all ranks).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), shuffle, int(seed), drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self, epoch: int) -> list[np.ndarray]:
        rng = numpy_rng(self.seed, "batch_sampler", epoch)
        shard_order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        pieces = []
        for k in shard_order:
            local = rng.permutation(self.lengths[k]) if self.shuffle else np.arange(self.lengths[k])
            pieces.append(local + self.offsets[k])
        flat = np.concatenate(pieces) if pieces else np.array([], dtype=np.int64)
        batches = [flat[i:i + self.batch_size] for i in range(0, len(flat), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            usable = len(batches) - len(batches) % self.world_size
            batches = batches[self.rank:usable:self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches(self.epoch)
        self.epoch += 1
        for batch in batches:
            yield np.sort(batch).tolist()

    def __len__(self) -> int:
        total = int(self.lengths.sum())
        n = total // self.batch_size if self.drop_last else -(-total // self.batch_size)
        return n // self.world_size if self.world_size > 1 else n

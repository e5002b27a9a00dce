"""Batches of indices for one epoch: seeded shuffle, rank sharding for torchrun, sorted within a batch.

One sampler serves shards and clips, single process and ``torchrun``: the epoch order is a pure
function of (seed, epoch), each rank takes every ``world_size``-th index of it (padded by wrapping,
as ``DistributedSampler`` does, so all ranks run the same number of steps), and indices are sorted
inside each batch so the shard source reads them in storage order in one go.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from miex_gen.seeding import numpy_rng


class EpochBatchSampler(Sampler[list[int]]):
    def __init__(self, size: int, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, min_batch: int = 1):
        if size <= 0:
            raise ValueError("cannot sample batches from an empty dataset")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.min_batch = min_batch  # a smaller final batch is dropped (training: 2, as BatchNorm needs > 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rank_indices(self) -> np.ndarray:
        order = numpy_rng(self.seed, "order", self.epoch).permutation(self.size) if self.shuffle else np.arange(self.size)
        if self.world_size > 1:
            per_rank = -(-self.size // self.world_size)
            order = np.resize(order, per_rank * self.world_size)  # wrap-around padding
            order = order[self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[list[int]]:
        order = self._rank_indices()
        stop = self._stop(len(order))
        for start in range(0, stop, self.batch_size):
            yield sorted(int(i) for i in order[start:start + self.batch_size])

    def _stop(self, n: int) -> int:
        tail = n % self.batch_size
        return n - tail if tail and (self.drop_last or tail < self.min_batch) else n

    def __len__(self) -> int:
        return -(-self._stop(len(self._rank_indices())) // self.batch_size)

"""Hand frame batches from DataLoader workers to the main process through reused shared memory.

torch sends a tensor from a worker by putting it in fresh shared memory and passing a file
descriptor over a socket, per tensor and per batch. For a batch of 64 two-frame 128² clips
(6.3 MB) the page faults of fresh shared memory alone cost about 7 ms, plus a socket handshake
for each small tensor: several times more than reading the batch from a shard (measured by
``benchmarks/bench_read.py``).

Here each worker keeps a few shared-memory *slabs* and reuses them. A slab travels to the main
process once (torch's file-descriptor passing); later batches name it by (worker pid, slab
number). The main process gives the user the frames as a tensor over the slab, without a copy,
and the slab becomes free for its worker again when the last tensor or view of those frames is
gone (a ``weakref.finalize`` on the array the tensor holds). Small fields (labels, AUs, ids)
travel inside the pickle as numpy arrays and become tensors on arrival: no descriptor, no
handshake.

Keeping batches is safe: a worker that finds no free slab (the main process holds them, or a batch
was dropped unread) makes up to ``MAX_SLABS_PER_WORKER`` and then falls back to torch's own path
for that batch, which is always correct, only slower.
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any

import numpy as np

# bytes before the frame data: byte 0 is the slab state (below); the rest keeps data aligned
_HEADER_BYTES = 64
_FREE, _IN_USE = 0, 1
MAX_SLABS_PER_WORKER = 8


def in_dataloader_worker() -> bool:
    """True inside a torch DataLoader worker (never imports torch itself)."""
    data = sys.modules.get("torch.utils.data")
    return data is not None and data.get_worker_info() is not None


class _Slab:
    """One shared-memory buffer of a worker: a state byte, then up to ``capacity`` frame bytes."""

    def __init__(self, number: int, capacity: int):
        import torch

        self.number = number
        self.capacity = capacity
        storage = torch.UntypedStorage._new_shared(_HEADER_BYTES + capacity)
        self.tensor = torch.empty(0, dtype=torch.uint8).set_(storage)
        self.memory = self.tensor.numpy()
        self.sent = False  # has the main process received the slab itself yet?

    @property
    def free(self) -> bool:
        return int(self.memory[0]) == _FREE

    def claim(self, nbytes: int) -> np.ndarray:
        self.memory[0] = _IN_USE
        return self.memory[_HEADER_BYTES:_HEADER_BYTES + nbytes]


class _WorkerSlabs:
    """The slabs of one worker process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.slabs: list[_Slab] = []

    def claim(self, nbytes: int) -> tuple[_Slab, np.ndarray] | None:
        for slab in self.slabs:
            if slab.capacity >= nbytes and slab.free:
                return slab, slab.claim(nbytes)
        if len(self.slabs) < MAX_SLABS_PER_WORKER:
            slab = _Slab(len(self.slabs), nbytes)
            self.slabs.append(slab)
            return slab, slab.claim(nbytes)
        for i, slab in enumerate(self.slabs):  # all busy or too small: grow one that is free
            if slab.free:
                self.slabs[i] = bigger = _Slab(slab.number, nbytes)
                return bigger, bigger.claim(nbytes)
        return None


_worker_slabs: _WorkerSlabs | None = None


def _slabs_of_this_process() -> _WorkerSlabs:
    global _worker_slabs
    if _worker_slabs is None or _worker_slabs.pid != os.getpid():
        _worker_slabs = _WorkerSlabs()
    return _worker_slabs


class SlabBatch(dict):
    """A batch made in a DataLoader worker whose ``frames`` live in a slab.

    Pickles as (slab reference, shape, small fields); unpickles into a plain dict that owns its
    frames (see the module docstring).
    """

    def __init__(self, fields: dict[str, Any], slab: _Slab, frames: np.ndarray):
        super().__init__(fields)
        self["frames"] = frames
        self._slab = slab

    def __reduce__(self) -> tuple[Any, ...]:
        import torch

        slab = self._slab
        shared = None if slab.sent else slab.tensor
        slab.sent = True
        frames = self["frames"]
        small, tensor_keys = {}, []
        for name, value in self.items():
            if name == "frames":
                small[name] = None
            elif isinstance(value, torch.Tensor):
                small[name] = value.numpy()
                tensor_keys.append(name)
            else:
                small[name] = value
        return (_receive, ((os.getpid(), slab.number, slab.capacity), shared, frames.shape, small,
                           tuple(tensor_keys)))


def to_slab_batch(fields: dict[str, Any], frames: np.ndarray | list[np.ndarray]) -> dict[str, Any] | None:
    """``fields`` plus ``frames`` (an array, or per-sample arrays to stack) copied into a free slab
    of this DataLoader worker; None outside a worker or when no slab is free."""
    if not in_dataloader_worker():
        return None
    if isinstance(frames, list):
        shape = (len(frames),) + tuple(np.shape(frames[0]))
    else:
        shape = tuple(frames.shape)
    claimed = _slabs_of_this_process().claim(int(np.prod(shape)))
    if claimed is None:
        return None
    slab, memory = claimed
    view = memory.reshape(shape)
    try:
        if isinstance(frames, list):
            np.stack(frames, out=view)
        else:
            np.copyto(view, frames)
    except BaseException:
        slab.memory[0] = _FREE
        raise
    return SlabBatch(fields, slab, view)


# ------------------------------------------------------------------------------ main process
# (worker pid, slab number) -> (capacity, uint8 tensor over the whole slab)
_received: dict[tuple[int, int], tuple[int, Any]] = {}


def _forget_dead_workers() -> None:
    for pid in {pid for pid, _ in _received}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            for key in [k for k in _received if k[0] == pid]:
                del _received[key]
        except PermissionError:  # pragma: no cover - a live process of another user
            pass


def _release(memory: np.ndarray) -> None:
    memory[0] = _FREE


def _receive(ref: tuple[int, int, int], shared: Any, shape: tuple[int, ...], small: dict[str, Any],
             tensor_keys: tuple[str, ...]) -> dict[str, Any]:
    """Unpickle a SlabBatch: frames as a view of the slab (freed with its last user), small fields as tensors."""
    import torch

    pid, number, capacity = ref
    if shared is not None:
        if pid not in {p for p, _ in _received}:
            _forget_dead_workers()
        _received[(pid, number)] = (capacity, shared)
    entry = _received.get((pid, number))
    if entry is None or entry[0] != capacity:
        raise RuntimeError(f"batch from DataLoader worker {pid} names shared slab {number}, which this "
                           "process never received; do not pickle SlabBatch objects outside a DataLoader")
    memory = entry[1].numpy()
    frames = memory[_HEADER_BYTES:_HEADER_BYTES + int(np.prod(shape))].reshape(shape)
    # the tensor made below (and every view of it) keeps ``frames`` alive; when the last one
    # goes, the slab is free for its worker again
    weakref.finalize(frames, _release, memory)
    out: dict[str, Any] = {}
    for name, value in small.items():
        if name == "frames":
            out[name] = torch.from_numpy(frames)
        elif name in tensor_keys:
            out[name] = torch.from_numpy(value)
        else:
            out[name] = value
    return out

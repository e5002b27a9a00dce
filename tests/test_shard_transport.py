"""The fast read path: raw chunk reads (pread) and shared-memory slabs between DataLoader workers and the main process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from miex_gen.errors import FormatError
from miex_gen.shards import DatasetReader, collate, transport
from shard_helpers import concat, write_dataset


@pytest.mark.parametrize("checksum", [False, True])
def test_raw_chunk_reads_match_hdf5(tmp_path, checksum):
    """Unfiltered shards are read with pread; any order, duplicates and negative indices give the
    same pixels as the written data (and as HDF5 gives for checksummed shards)."""
    d = tmp_path / "ds"
    expected = concat(write_dataset(d, sizes=(7, 6), checksum=checksum))
    r = DatasetReader(d)
    order = [12, 0, 5, 5, 6, 7, -1, 3, 8, 7]
    batch = r.read_batch(order)
    want = np.array(order) % 13
    np.testing.assert_array_equal(batch["frames"], expected["frames"][want])
    np.testing.assert_array_equal(batch["aus"], expected["aus"][want])
    np.testing.assert_array_equal(batch["sample_index"], want)
    for i in range(13):
        np.testing.assert_array_equal(r[i]["frames"], expected["frames"][i])
        np.testing.assert_array_equal(r[i]["aus"], expected["aus"][i])
    assert all((s._open().direct is not None) == (not checksum) for s in r.shards)


def test_raw_reads_use_hdf5s_descriptor(tmp_path):
    """One open file per shard and process, as before the raw path: datasets of hundreds of shards
    stay far from the descriptor limit."""
    d = tmp_path / "ds"
    write_dataset(d, sizes=(3, 3, 3))
    r = DatasetReader(d)
    before = len(os.listdir("/proc/self/fd"))
    r.read_batch([0, 3, 6])
    assert all(s._open().direct is not None for s in r.shards)
    assert len(os.listdir("/proc/self/fd")) - before == 3
    r.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_raw_read_of_a_file_truncated_after_opening_is_an_error(tmp_path):
    d = tmp_path / "ds"
    write_dataset(d, sizes=(6,), merge=False)
    r = DatasetReader(d)
    shard = r.shards[0]
    direct = shard._open().direct
    assert direct is not None
    last = int(np.argmax(direct.offsets))
    os.truncate(shard.path, int(direct.offsets[last]) + 10)
    with pytest.raises(FormatError, match="truncated"):
        r.read_batch([last])


def _frames_of(expected: dict, batch: dict) -> np.ndarray:
    return expected["frames"][batch["sample_index"].numpy()]


def test_dataloader_batches_stay_correct_while_slabs_are_reused(tmp_path):
    """Workers hand frames over in a few reused shared-memory slabs: batches the main process drops
    free their slab, batches it keeps stay intact (the worker falls back to fresh memory)."""
    import torch
    from torch.utils.data import DataLoader

    d = tmp_path / "ds"
    expected = concat(write_dataset(d, sizes=(40, 30)))
    r = DatasetReader(d)
    loader = DataLoader(r, batch_sampler=r.batch_sampler(2, seed=0), num_workers=2, collate_fn=collate,
                        multiprocessing_context="fork", persistent_workers=True)
    kept = list(loader)  # 35 batches held at once: more than the slabs of both workers
    assert len(kept) == 35 > 2 * transport.MAX_SLABS_PER_WORKER
    assert sorted(i for b in kept for i in b["sample_index"].tolist()) == list(range(70))
    for batch in kept:
        np.testing.assert_array_equal(batch["frames"].numpy(), _frames_of(expected, batch))
        assert batch["frames"].dtype == torch.uint8 and batch["label"].dtype == torch.int8
    assert any(b["frames"].is_shared() for b in kept)  # the fallback carried some
    del kept, batch

    pids = {w.pid for w in loader._iterator._workers}
    before = {k for k in transport._received if k[0] in pids}
    checked = 0
    for batch in loader:  # dropped one by one, as in a training loop
        np.testing.assert_array_equal(batch["frames"].numpy(), _frames_of(expected, batch))
        assert not batch["frames"].is_shared()  # every batch came through a slab
        checked += 1
    slabs = {k for k in transport._received if k[0] in pids}
    assert checked == 35 and slabs == before and len(slabs) <= 2 * transport.MAX_SLABS_PER_WORKER


def test_slab_batches_pickle_only_in_workers():
    """Outside a DataLoader worker collate returns plain tensors (no shared memory involved)."""
    batch = collate([{"frames": np.zeros((2, 4, 4, 3), np.uint8), "aus": np.zeros((2, 17), np.float32),
                      "label": 1}])
    assert type(batch) is dict and tuple(batch["frames"].shape) == (1, 2, 4, 4, 3)
    assert transport.to_slab_batch({}, np.zeros((1, 2), np.uint8)) is None

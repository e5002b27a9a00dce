"""The dataset format v1: bit-exact round trip, atomic writes, validation, merge, index, preview, DataLoader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from miex_gen.errors import DataError, FormatError
from miex_gen.shards import (
    DatasetReader, ShardReader, ShardWriter, collate, dataset_info, merge_dataset, shard_name, validate_dataset,
    write_preview,
)
from miex_gen.shards import preview as preview_mod
from shard_helpers import H, T, W, concat, make_samples, shard_attrs, write_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def dataset(tmp_path) -> tuple[Path, dict]:
    d = tmp_path / "ds"
    return d, concat(write_dataset(d))


def test_compression_specs():
    from miex_gen.errors import ConfigError
    from miex_gen.shards import Compression

    assert str(Compression.parse(None)) == "none"  # the default: no per-chunk checksum on frames
    assert str(Compression.parse("gzip")) == "gzip:1"
    assert str(Compression.parse("none+fletcher32")) == "none+fletcher32"
    assert str(Compression.parse("lzf+nofletcher32")) == "lzf"
    assert Compression.parse("gzip:6", checksum=False).h5py_kwargs() == {
        "fletcher32": False, "compression": "gzip", "compression_opts": 6}
    for bad in ("zstd", "gzip:12", "none:3"):
        with pytest.raises(ConfigError, match="compression"):
            Compression.parse(bad)


def test_shard_name():
    assert shard_name(0) == "shard-00000.h5"
    assert shard_name(123456) == "shard-123456.h5"


@pytest.mark.parametrize("compression,checksum", [("none", True), ("none", False), ("gzip:1", True), ("lzf", False)])
def test_round_trip_is_bit_exact(tmp_path, compression, checksum):
    d = tmp_path / "ds"
    expected = concat(write_dataset(d, compression=compression, checksum=checksum))
    r = DatasetReader(d)
    assert len(r) == 9 and r.attrs["format_version"] == 1 and r.class_names == ("negative", "positive", "surprise")
    assert json.loads(r.attrs["config"])["seed"] == 1
    for i in range(len(r)):
        s = r[i]
        np.testing.assert_array_equal(s["frames"], expected["frames"][i])
        np.testing.assert_array_equal(s["aus"], expected["aus"][i])
        assert s["frames"].dtype == np.uint8 and s["aus"].dtype == np.float32
        for key in ("label", "apex_index", "onset_frame", "apex_frame", "sample_seed", "sample_index"):
            assert s[key] == int(expected[key][i]), key
        for key in ("source_kind", "identity", "dataset", "subject", "clip"):
            assert s[key] == expected[key][i], key
        assert s["render_meta"] == expected["render_meta"][i]
    order = [8, 0, 5, 5, 2, 7]  # across shards, unsorted, repeated
    batch = r.read_batch(order)
    np.testing.assert_array_equal(batch["frames"], expected["frames"][order])
    np.testing.assert_array_equal(batch["aus"], expected["aus"][order])
    np.testing.assert_array_equal(batch["sample_index"], order)
    assert list(batch["clip"]) == [expected["clip"][i] for i in order]
    assert [json.loads(m) for m in batch["render_meta"]] == [expected["render_meta"][i] for i in order]
    view = r.__getitems__(order)  # what a DataLoader with batch_size / batch_sampler gets
    assert len(view) == 6 and view[3]["render_meta"] == expected["render_meta"][5]
    np.testing.assert_array_equal(collate(view)["frames"].numpy(), expected["frames"][order])
    out = np.empty((3, T, H, W, 3), np.uint8)
    assert r.read_batch([3, 4, 5], frames_out=out)["frames"] is out  # in place across the shard boundary
    np.testing.assert_array_equal(out, expected["frames"][3:6])
    table = r.table()
    assert "frames" not in table and list(table["shard"]) == [0] * 5 + [1] * 4
    np.testing.assert_array_equal(table["label"], expected["label"])
    assert list(table["subject"]) == expected["subject"]
    assert validate_dataset(d) == []


def test_writer_rejects_bad_samples_with_field_names(tmp_path):
    s = make_samples(1, 0)
    row = {key: v[0] for key, v in s.items()}
    with ShardWriter(tmp_path / shard_name(0), num_frames=T, height=H, width=W, attrs=shard_attrs(0, 1)) as w:
        for change, match in [({"aus": row["aus"] + 6}, "0-5 scale"), ({"label": 3}, "label=3"),
                              ({"apex_index": T}, "apex_index"), ({"source_kind": "real"}, "source_kind"),
                              ({"frames": row["frames"].astype(np.float32)}, "uint8"),
                              ({"frames": row["frames"][:, :8]}, "shape"), ({"clip": "x" * 200}, "clip"),
                              ({"render_meta": {"x": object()}}, "render_meta"),
                              ({"sample_seed": 2**63}, "sample_seed")]:
            with pytest.raises(DataError, match=match):
                w.append(**{**row, **change})
        w.append(**row)
    assert len(DatasetReader(tmp_path / shard_name(0))) == 1
    with pytest.raises(ValueError, match="config_hash"):
        ShardWriter(tmp_path / "x.h5", num_frames=T, height=H, width=W, attrs={"renderer": "x"})


def test_exception_midway_leaves_no_file(tmp_path):
    s = make_samples(3, 0)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path / shard_name(0), num_frames=T, height=H, width=W, attrs=shard_attrs(0, 1)) as w:
            w.append_batch(**{key: v[:2] for key, v in s.items()})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_nothing_that_validates(tmp_path):
    """A writer process killed mid-shard leaves only a temp file; readers ignore it, validate rejects it."""
    out = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os, signal, sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from miex_gen.shards import ShardWriter, shard_name
        from miex_gen.shards import writer as writer_mod
        writer_mod.BLOCK_BYTES = 1  # write every sample to disk at once
        w = ShardWriter({str(out)!r} + "/" + shard_name(0), num_frames=2, height=8, width=8, capacity=4,
                        attrs=dict(renderer="t", renderer_weights_sha256="", config="{{}}", config_hash="h",
                                   shard_index=0, num_shards=1))
        w.open()
        for i in range(3):
            w.append(frames=np.zeros((2, 8, 8, 3), np.uint8), aus=np.zeros((2, 17), np.float32), label=0,
                     apex_index=1, source_kind="exp", identity="a", dataset="", subject="", clip="",
                     onset_frame=-1, apex_frame=-1, sample_seed=1, sample_index=i)
        w._file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9
    leftovers = list(out.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".shard-00000.h5.tmp-")
    assert not (out / shard_name(0)).exists()
    problems = validate_dataset(out)
    assert any("temp file" in p.message for p in problems) and any("no complete shard" in p.message for p in problems)
    assert validate_dataset(leftovers[0])  # the temp file itself does not validate either
    with pytest.raises(FormatError, match="no shard files"):
        DatasetReader(out)
    with pytest.raises(FormatError, match="no shard files"):
        merge_dataset(out)


def _fields(problems) -> set[tuple[str, str]]:
    return {(p.file, p.field) for p in problems}


@pytest.mark.parametrize("checksum", [False, True])
def test_validate_catches_flipped_byte_in_frames(tmp_path, checksum):
    """The manifest's SHA-256 always catches it; fletcher32 (opt-in) also the frame read itself."""
    d = tmp_path / "ds"
    write_dataset(d, checksum=checksum)
    path = d / shard_name(1)
    with h5py.File(path, "r") as f:
        assert f["frames"].fletcher32 == checksum and f["aus"].fletcher32
        info = f["frames"].id.get_chunk_info(2)  # sample 2's chunk
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + 1000)
        byte = handle.read(1)
        handle.seek(info.byte_offset + 1000)
        handle.write(bytes([byte[0] ^ 0x01]))
    problems = validate_dataset(d)
    assert ("shard-00001.h5", "sha256") in _fields(problems)
    if checksum:  # caught even in a shard that has no manifest yet, and at read time
        frames_problem = next(p for p in problems if p.field == "frames")
        assert "1 sample(s): 2" in frames_problem.message
        with pytest.raises(OSError):
            DatasetReader(d)[5 + 2]
    else:
        assert ("shard-00001.h5", "frames") not in _fields(problems)


def test_validate_catches_truncated_file(dataset):
    d, _ = dataset
    path = d / shard_name(0)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    problems = validate_dataset(d)
    assert ("shard-00000.h5", "file") in _fields(problems)
    assert ("shard-00000.h5", "sha256") in _fields(problems)


def test_validate_catches_missing_dataset(dataset):
    d, _ = dataset
    with h5py.File(d / shard_name(0), "a") as f:
        del f["apex_index"]
    problems = validate_dataset(d)
    assert ("shard-00000.h5", "apex_index") in _fields(problems)
    with pytest.raises(FormatError, match="apex_index"):
        DatasetReader(d)


def test_validate_catches_values_out_of_range(tmp_path):
    d = tmp_path / "ds"
    write_dataset(d, merge=False)
    with h5py.File(d / shard_name(0), "a") as f:
        f["label"][1] = 7
        aus = f["aus"][:]
        aus[3, 0, 5] = 5.5
        f["aus"][:] = aus
        f["apex_index"][0] = T
    fields = {p.field: p.message for p in validate_dataset(d)}
    assert "outside 0..2 for 1 sample(s): 1" in fields["label"]
    assert "1 sample(s): 3" in fields["aus"]
    assert "apex_index" in fields and "file" in fields  # and no manifest yet


def test_validate_catches_manifest_mismatches(dataset, tmp_path):
    d, _ = dataset
    extra = make_samples(2, 9)
    with ShardWriter(d / shard_name(2), num_frames=T, height=H, width=W, attrs=shard_attrs(2, 3)) as w:
        w.append_batch(**extra)
    (d / shard_name(0)).rename(tmp_path / "moved.h5")
    problems = _fields(validate_dataset(d))
    assert ("shard-00002.h5", "file") in problems  # shard not in the manifest
    assert ("shard-00000.h5", "file") in problems  # manifest entry without a shard
    merge_dataset(d)
    problems = validate_dataset(d)
    assert [p.field for p in problems] == ["missing_shards"]  # shard 0 of 3 planned is missing
    with pytest.raises(FormatError, match="1 of 3 planned shards are missing"):
        merge_dataset(d, expected_shards=3)


def test_merge_refuses_damaged_or_mixed_shards(tmp_path):
    d = tmp_path / "ds"
    write_dataset(d, merge=False)
    with h5py.File(d / shard_name(1), "a") as f:
        f.attrs["config_hash"] = "other"
    with pytest.raises(FormatError, match="config_hash"):
        merge_dataset(d)
    with h5py.File(d / shard_name(1), "a") as f:
        f["label"][0] = 9
    with pytest.raises(FormatError, match="label"):
        merge_dataset(d)
    assert not (d / "manifest.json").exists()


def test_manifest_card_and_info(dataset):
    d, expected = dataset
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["num_samples"] == 9 and manifest["num_shards"] == 2 and manifest["missing_shards"] == []
    counts = np.bincount(expected["label"], minlength=3)
    assert manifest["class_counts"] == dict(zip(("negative", "positive", "surprise"), counts.tolist()))
    assert [e["file"] for e in manifest["shards"]] == [shard_name(0), shard_name(1)]
    assert all(len(e["sha256"]) == 64 for e in manifest["shards"])
    card = (d / "DATASET_CARD.md").read_text()
    assert "How to Synthesize a Large-Scale and Trainable Micro-Expression Dataset" in card
    assert "CC-BY-4.0" in card and "| negative |" in card
    info = dataset_info(d)
    assert info["num_samples"] == 9 and (info["num_frames"], info["height"], info["width"]) == (T, H, W)
    assert info["class_counts"] == manifest["class_counts"] and info["renderer"] == "test"
    assert info["source_kind_counts"] == {"exp": 4, "mae": 2, "mie": 3}
    assert info["size_bytes"] > sum(e["size_bytes"] for e in manifest["shards"])
    assert info["has_manifest"] and info["has_index"]


def test_index_reads_the_same_samples_as_the_shards(dataset, tmp_path):
    d, expected = dataset
    moved = tmp_path / "elsewhere"
    d.rename(moved)  # relative source names: the directory moves as a whole
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with h5py.File(moved / "index.h5", "r") as f:
            assert f["frames"].is_virtual and f["frames"].shape == (9, T, H, W, 3)
            np.testing.assert_array_equal(f["frames"][:], expected["frames"])
            np.testing.assert_array_equal(f["aus"][:], expected["aus"])
            np.testing.assert_array_equal(f["label"][:], expected["label"])
            np.testing.assert_array_equal(f["sample_index"][:], expected["sample_index"])
            assert [c.decode() for c in f["clip"][:]] == expected["clip"]
            assert [json.loads(m) for m in f["render_meta"].asstr()[:]] == expected["render_meta"]
            np.testing.assert_array_equal(f["shard"][:], [0] * 5 + [1] * 4)
            assert list(f["label"].attrs["class_names"]) == ["negative", "positive", "surprise"]
    finally:
        os.chdir(cwd)


def test_preview_png_has_expected_size(dataset, tmp_path):
    from PIL import Image

    d, _ = dataset
    out = write_preview(d, tmp_path / "sheet.png", n=4, gif=True)
    scale = -(-preview_mod.MIN_ROW_HEIGHT // H)
    with Image.open(out) as image:
        assert image.size == (preview_mod.PANEL_WIDTH + T * W * scale, 4 * H * scale)
        assert image.format == "PNG"
    with Image.open(tmp_path / "sheet.gif") as gif:
        assert gif.n_frames == T


def test_batch_sampler_covers_every_sample_once_and_stays_in_shards(tmp_path):
    from miex_gen.shards import ShardBatchSampler

    sampler = ShardBatchSampler([50, 30, 21], 8, shuffle=True, seed=3)
    epoch0, epoch1 = list(sampler), list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(101))
    assert epoch0 != epoch1 and len(epoch0) == len(sampler) == 13
    offsets = np.array([0, 50, 80, 101])
    spans = [len(set(np.searchsorted(offsets, b, side="right"))) for b in epoch0]
    assert max(spans) <= 2 and sum(s == 2 for s in spans) <= 2
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    ranks = [list(ShardBatchSampler([50, 30, 21], 8, seed=3, rank=k, world_size=2)) for k in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6 and not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))


def _epoch(loader) -> tuple[int, list[int]]:
    total, seen = 0, []
    for batch in loader:
        total += int(batch["frames"].long().sum())
        seen += batch["sample_index"].tolist()
    return total, sorted(seen)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_reader_in_dataloader_workers(dataset, context):
    """Per-sample (fork), shard batch sampler with batched reads (both): same samples, same pixels."""
    from torch.utils.data import DataLoader

    d, expected = dataset
    want = (int(expected["frames"].astype(np.int64).sum()), list(range(9)))
    r = DatasetReader(d)
    r.read_batch([0, 1])  # a parent that already opened its files must not leak handles into workers
    loaders = [DataLoader(r, batch_sampler=r.batch_sampler(4, shuffle=True, seed=0), num_workers=2,
                          multiprocessing_context=context, collate_fn=collate)]
    if context == "fork":  # spawn costs a torch import per worker: one loader is enough there
        loaders.append(DataLoader(r, sampler=r.batch_sampler(4, seed=1), batch_size=None, num_workers=2,
                                  multiprocessing_context=context, collate_fn=collate))
        loaders.append(DataLoader(_PerSample(r), batch_size=4, shuffle=True, num_workers=2,
                                  multiprocessing_context=context, collate_fn=collate))
        loaders.append(DataLoader(r, batch_size=4, shuffle=True, num_workers=2,  # torch's default_collate
                                  multiprocessing_context=context))
    for loader in loaders:
        assert _epoch(loader) == want


class _PerSample:
    """Hides ``__getitems__`` so the DataLoader reads one sample per call."""

    def __init__(self, reader):
        self.reader = reader

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, i):
        return self.reader[i]


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        DatasetReader(tmp_path / "nope")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="cannot be opened as HDF5"):
        DatasetReader(tmp_path / "junk.h5")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match="not a miex dataset"):
        validate_dataset(empty)
    with pytest.raises(FormatError, match="not a miex shard"):
        ShardReader(_write_foreign_h5(tmp_path / "foreign.h5"))


def _write_foreign_h5(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    return path


def test_merge_reuses_a_fresh_digest_and_rehashes_a_changed_file(tmp_path):
    """generate hands merge the hashes taken right after writing; a file touched since is hashed again."""
    from dataclasses import replace

    from miex_gen.fileio import digest_file, sha256_file

    d = tmp_path / "ds"
    write_dataset(d, sizes=(4,), merge=False)
    shard = d / shard_name(0)
    taken = replace(digest_file(shard), sha256="0" * 64)  # a stand-in hash shows whether it was reused
    manifest = merge_dataset(d, digests={shard.name: taken})
    assert manifest["shards"][0]["sha256"] == "0" * 64
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    manifest = merge_dataset(d, digests={shard.name: taken})
    assert manifest["shards"][0]["sha256"] == sha256_file(shard)


def test_a_column_is_read_alone_and_matches_the_table(tmp_path):
    write_dataset(tmp_path, sizes=(6,))
    path = tmp_path / shard_name(0)
    alone = ShardReader(path)
    columns = {name: alone.column(name) for name in ("label", "identity", "source_kind", "render_meta")}
    assert alone._table is None  # merge and the card read shard after shard without keeping tables
    table = ShardReader(path).table()
    for name, values in columns.items():
        np.testing.assert_array_equal(values, table[name], err_msg=name)
    with pytest.raises(KeyError, match="frames"):
        alone.column("frames")

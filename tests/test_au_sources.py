"""AU pools: z^MiE / z^MaE / z^exp builders, leakage restriction, reproducibility, the HDF5 file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from au_fixture_trees import make_ckplus, make_megc2019, write_clip_au

from miex_gen.au_sources import (
    EXP_RULES, AuPool, build_exp_pool, build_mae_pool, build_mie_pool, mae_apex_index, sample_exp,
)
from miex_gen.aus import AU_INDEX
from miex_gen.datasets import ClipRecord, load_ckplus, load_ground_truth, load_megc2019, load_miex_3fold
from miex_gen.errors import DataError, FormatError


# ----------------------------------------------------------------------------- z^MiE
@pytest.fixture(scope="module")
def megc(tmp_path_factory):
    root = make_megc2019(tmp_path_factory.mktemp("megc"))
    clips = load_megc2019(root)
    au_dir = root / "aus"
    written = {c.key: write_clip_au(au_dir, c, seed=i) for i, c in enumerate(clips)}
    return clips, au_dir, written


def test_mie_onset_and_apex_from_annotated_frames(megc):
    clips, au_dir, written = megc
    pool = build_mie_pool(clips, au_dir, seed=3)
    keys = list(zip(pool.dataset, pool.subject, pool.clip))
    clip = next(c for c in clips if c.key == ("casme2", "sub01", "EP02_01f"))
    i = keys.index(clip.key)
    np.testing.assert_allclose(pool.onset[i], written[clip.key][clip.onset], atol=1e-5)
    np.testing.assert_allclose(pool.apex[i], written[clip.key][clip.apex], atol=1e-5)
    assert (pool.onset_frame[i], pool.apex_frame[i], pool.label[i]) == (0, 13, 1)
    smic = keys.index(("smic", "s01", "s01_ne_01"))
    assert pool.apex_frame[smic] == 2 and pool.attrs["apex_sources"] == ["annotated", "middle"]
    # casme2 EP19_05f has a '/' apex and samm 006_1_3... is not in the GT: skipped with a reason
    assert any("EP19_05f" in s and "no apex" in s for s in pool.attrs["skipped"])
    assert pool.kind == "mie" and pool.attrs["seed"] == 3


def test_mie_pool_file_is_byte_reproducible(megc, tmp_path):
    clips, au_dir, _ = megc
    build_mie_pool(clips, au_dir, seed=3).save(tmp_path / "a.h5")
    build_mie_pool(clips, au_dir, seed=3).save(tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert AuPool.load(tmp_path / "a.h5").arrays_equal(build_mie_pool(clips, au_dir, seed=3))


def test_mie_failed_tracker_frame_and_missing_table_are_reported(megc, tmp_path):
    clips, _, _ = megc
    au_dir = tmp_path / "aus"
    first, second = [c for c in clips if c.apex is not None][:2]
    write_clip_au(au_dir, first, failed=(first.apex,))
    pool = build_mie_pool([first, second], au_dir)
    assert len(pool) == 0 and len(pool.attrs["skipped"]) == 2
    assert "tracker failed" in pool.attrs["skipped"][0] and "does not exist" in pool.attrs["skipped"][1]
    with pytest.raises(DataError, match="tracker failed"):
        build_mie_pool([first], au_dir, strict=True)
    short = write_clip_au(au_dir, second)[:3]
    (au_dir / second.dataset / second.subject / f"{second.clip}.csv").write_text(
        "frame,success," + ",".join(f"AU{n}" for n in ("01", "02", "04", "05", "06", "07", "09", "10", "11", "12", "14",
                                                       "15", "17", "20", "23", "24", "25", "26", "28", "43"))
        + "\n" + "\n".join(f"{i},1," + ",".join(["0.1"] * 20) for i in range(len(short))) + "\n")
    pool = build_mie_pool([second], au_dir)
    assert "spans 3 frames" in pool.attrs["skipped"][0]


def _all_gt_clips(tmp_path: Path) -> tuple[list[ClipRecord], Path]:
    """One 4-frame clip per GT row (apex = frame 2) and its AU table."""
    au_dir = tmp_path / "aus"
    clips = []
    for i, row in enumerate(load_ground_truth()):
        clip = ClipRecord(row.dataset, row.subject, row.clip, tuple(Path(f"{k}.jpg") for k in range(4)), 0, 2, 3,
                          "", row.label)
        write_clip_au(au_dir, clip, seed=i)
        clips.append(clip)
    return clips, au_dir


@pytest.fixture(scope="module")
def all_gt(tmp_path_factory):
    return _all_gt_clips(tmp_path_factory.mktemp("gt"))


def test_fold_pools_never_hold_a_test_subject_miex_3fold(all_gt):
    clips, au_dir = all_gt
    for fold in load_miex_3fold():
        excluded = build_mie_pool(clips, au_dir, exclude_subjects=fold.test_subjects, seed=0)
        restricted = build_mie_pool(clips, au_dir, subjects=fold.train_subjects, seed=0)
        for pool in (excluded, restricted):
            assert not pool.subjects() & fold.test_subjects
            assert set(zip(pool.dataset, pool.subject, pool.clip)) == set(fold.train_keys)
            assert len(pool) == len(fold.train_keys)
        assert excluded.arrays_equal(restricted)


def test_fold_pools_never_hold_a_test_subject_loso(all_gt):
    clips, au_dir = all_gt
    full = build_mie_pool(clips, au_dir, seed=0)
    assert len(full) == 442
    subjects = sorted(full.subjects())
    assert len(subjects) == 68
    for subject in subjects:  # every LOSO fold, on the pool
        held_out = full.exclude_subjects({subject})
        assert subject not in held_out.subjects() and len(held_out) == 442 - int(full.subject_mask({subject}).sum())
    # and in the builder, with non-canonical spellings of the held-out subject
    for dataset, raw in (("samm", 6), ("smic", "s1"), ("casme2", "sub1")):
        pool = build_mie_pool(clips, au_dir, exclude_subjects={(dataset, raw)}, seed=0)
        assert not any(d == dataset and s in ("006", "s01", "sub01") for d, s in pool.subjects())


# ----------------------------------------------------------------------------- z^MaE
def test_mae_apex_index_rule_and_compat():
    # 11 frames (0..10), p = 0.3: miex floor(0.3 * 10) = 3; original int(12 * 0.3) = 3; p = 0.5: 5 vs 6
    assert mae_apex_index(0.5, 0, 10) == 5 and mae_apex_index(0.5, 0, 10, compat=True) == 6
    assert mae_apex_index(0.25, 0, 3) == 0 and mae_apex_index(0.25, 0, 3, compat=True) == 1
    assert mae_apex_index(1.0, 0, 3, compat=True) == 3  # never past the last frame


@pytest.fixture(scope="module")
def ckplus(tmp_path_factory):
    root = make_ckplus(tmp_path_factory.mktemp("ck"))
    clips = load_ckplus(root)
    au_dir = root / "aus"
    for i, clip in enumerate(clips):
        write_clip_au(au_dir, clip, fmt="openface", seed=10 + i)
    return clips, au_dir


def test_mae_pool_draws_and_sadness_negative(ckplus):
    clips, au_dir = ckplus
    pool = build_mae_pool(clips, au_dir, seed=5)
    assert len(pool) == 30 and Counter(pool.clip.tolist()) == {"001": 10, "002": 10, "003": 10}
    for clip in clips:
        mask = (pool.subject == clip.subject) & (pool.clip == clip.clip)
        n = len(clip.frames)
        low, high = int(np.floor(0.25 * (n - 1))), int(np.floor(0.5 * (n - 1)))
        assert ((pool.apex_frame[mask] >= low) & (pool.apex_frame[mask] <= high)).all()
        assert (pool.onset_frame[mask] == 0).all()
    sad = pool.emotion == "sadness"
    assert (pool.label[sad] == 0).all()
    compat = build_mae_pool(clips, au_dir, seed=5, compat=True)
    assert (compat.label[compat.emotion == "sadness"] == 1).all()
    assert compat.attrs["apex_rule"] == "int((n+1)*p)" and pool.attrs["ckplus_sadness"] == "negative"


def test_mae_reproducible_from_seed_same_bytes(ckplus, tmp_path):
    clips, au_dir = ckplus
    a, b = build_mae_pool(clips, au_dir, seed=11), build_mae_pool(clips, au_dir, seed=11)
    assert a.arrays_equal(b)
    assert not build_mae_pool(clips, au_dir, seed=12).arrays_equal(a)
    # a clip's draws do not depend on the other clips in the list
    alone = build_mae_pool(clips[1:2], au_dir, seed=11)
    np.testing.assert_array_equal(alone.apex_frame, a.apex_frame[a.clip == clips[1].clip])
    a.save(tmp_path / "a.h5")
    b.save(tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# ----------------------------------------------------------------------------- z^exp
def test_exp_rules_respected():
    labels = np.repeat([0, 1, 2], 3000)
    onset, apex, names = sample_exp(np.random.default_rng(0), labels)
    assert (onset == 0).all() and apex.shape == (9000, 17)
    assert set(names[labels == 0]) == {"sadness", "fear", "anger", "disgust", "contempt"}
    assert set(names[labels == 1]) == {"happiness"} and set(names[labels == 2]) == {"surprise"}
    active = apex > 0
    assert ((apex[active] >= 0.5) & (apex[active] <= 1.5)).all()
    assert not active[:, AU_INDEX["AU45"]].any()
    assert active.any(axis=1).all()  # all-zero apexes are redrawn by default
    for name, rule in EXP_RULES.items():
        rows = names == name
        outside = [i for a, i in AU_INDEX.items() if a not in rule]
        assert not active[rows][:, outside].any(), name
        for au, p in rule.items():
            rate = active[rows, AU_INDEX[au]].mean()
            if p == 1.0:
                assert rate == 1.0
            elif name != "fear":  # fear's rates are conditioned by the redraw of all-zero vectors
                assert abs(rate - p) < 0.06, (name, au, rate)


def test_exp_compat_keeps_empty_fear():
    labels = np.zeros(4000, dtype=np.int8)
    _, apex, names = sample_exp(np.random.default_rng(1), labels, compat=True)
    empty = ~apex.any(axis=1)
    assert empty.sum() > 0 and set(names[empty]) == {"fear"}
    assert abs(empty.mean() - 1 / 80) < 0.01


def test_exp_pool_reproducible_and_file_bytes_identical(tmp_path):
    a, b = build_exp_pool(50, seed=4), build_exp_pool(50, seed=4)
    assert a.arrays_equal(b) and a.class_counts() == {0: 50, 1: 50, 2: 50}
    assert not a.arrays_equal(build_exp_pool(50, seed=5))
    a.save(tmp_path / "a.h5")
    b.save(tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# ----------------------------------------------------------------------------- the pool file
def test_pool_round_trip_select_merge(tmp_path, ckplus):
    clips, au_dir = ckplus
    mae = build_mae_pool(clips, au_dir, seed=5, draws_per_clip=2)
    path = mae.save(tmp_path / "mae.h5")
    loaded = AuPool.load(path)
    assert loaded.arrays_equal(mae) and loaded.attrs["draws_per_clip"] == 2
    with h5py.File(path) as f:
        assert f["onset"].dtype == np.float32 and f["label"].dtype == np.int8 and f["apex_frame"].dtype == np.int32
        assert f.attrs["kind"] == "mae" and f.attrs["au_scale"] == "openface_0_5" and f.attrs["seed"] == 5
        assert f["subject"].dtype.kind == "S"  # fixed-length UTF-8
    sub = loaded.select(loaded.label == 0)
    assert set(sub.label.tolist()) == {0} and len(sub) == 4
    merged = AuPool.merge([loaded, sub])
    assert len(merged) == len(loaded) + 4 and len(merged.attrs["merged_from"]) == 2
    assert merged.class_counts()[0] == 8
    with pytest.raises(DataError, match="different kinds"):
        AuPool.merge([loaded, build_exp_pool(1, seed=0)])
    means = loaded.mean_aus()
    assert means.shape == (3, 17) and np.isnan(means[2]).all()  # no surprise clip in the fixture


def test_bad_pool_files(tmp_path):
    garbage = tmp_path / "g.h5"
    garbage.write_bytes(b"nothing here")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        AuPool.load(garbage)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FormatError, match="not a miex AU pool"):
        AuPool.load(other)
    path = build_exp_pool(2, seed=0).save(tmp_path / "p.h5")
    with h5py.File(path, "a") as f:
        del f["apex"]
    with pytest.raises(FormatError, match="lacks pool datasets apex"):
        AuPool.load(path)
    with pytest.raises(DataError, match="not found"):
        AuPool.load(tmp_path / "missing.h5")

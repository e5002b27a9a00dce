"""Recognizer data: apex randomisation, shared transforms, flow/strain features and their cache,
real-clip sources from a CASME II fixture tree, worker-count independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from miex_gen.atomic import TMP_MARKER
from miex_gen.errors import DataError
from recognizers.data import (
    AugmentConfig, DataOptions, EpochBatchSampler, FlowCache, FlowConfig, FrameTransform, RecognizerDataset, apex_range,
    compute_flow, flip_flow, flow_features, open_data, optical_strain, randomise_apex, select_positions,
)
from recognizers.models import InputSpec
from recognizer_fixtures import casme2_clips, make_casme2


def test_apex_range_hand_computed_cases():
    assert apex_range(46, 59, 86, 0.4) == (54, 64)  # FRL_DGT.md §2.5 example: ⌊13·0.4⌋ = 5
    assert apex_range(0, 1, 9, 0.4) == (1, 1)  # apex = onset + 1: ⌊0.4⌋ = 0
    assert apex_range(10, 20, 20, 0.4) == (16, 20)  # apex = last: hi clipped to last
    assert apex_range(0, 3, 9, 0.4) == (2, 4)
    assert apex_range(5, 7, 30, 1.0) == (6, 9)  # lo never reaches the onset
    assert apex_range(0, 9, 9, 0.0) == (9, 9)
    with pytest.raises(ValueError):
        apex_range(5, 5, 9, 0.4)


def test_randomise_apex_is_seeded_and_covers_the_range():
    rng = np.random.default_rng(0)
    draws = [randomise_apex(46, 59, 86, 0.4, rng) for _ in range(400)]
    assert set(draws) == set(range(54, 65))
    again = np.random.default_rng(0)
    assert draws[:20] == [randomise_apex(46, 59, 86, 0.4, again) for _ in range(20)]
    rng = np.random.default_rng(1)
    assert select_positions(0, 5, 9, num_frames=2, train=False, r=0.4, rng=rng) == ([0, 5], 5)
    assert select_positions(0, 1, 1, num_frames=2, train=True, r=0.4, rng=rng) == ([0, 1], 1)  # T = 2 shard
    positions, used = select_positions(0, 5, 9, num_frames=1, train=True, r=0.4, rng=rng)
    assert positions == [used] and 3 <= used <= 7


def test_frame_transform_shares_one_draw_and_test_is_deterministic():
    frames = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), dtype=np.uint8)
    frames[1] = frames[0]
    train = FrameTransform(32, 3, train=True, augment=AugmentConfig(rotation=10, jitter=0.2, flip=True))
    out = train(frames, np.random.default_rng(3))
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out[0], out[1])  # onset and apex got the same augmentation
    assert not torch.equal(out, train(frames, np.random.default_rng(4)))
    test = FrameTransform(32, 1, train=False, mean=0.0, std=1.0)
    a, b = test(frames, np.random.default_rng(1)), test(frames, np.random.default_rng(2))
    assert a.shape == (2, 1, 32, 32) and torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1


def _pattern(shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (80, 80), dtype=np.uint8)
    img = np.asarray(__import__("cv2").GaussianBlur(img, (7, 7), 2))
    return np.roll(img, shift, axis=1)


def test_flow_strain_and_flip():
    onset, apex = _pattern(), _pattern(2)
    flow = compute_flow(onset, apex, "dis")
    assert flow.shape == (80, 80, 2)
    assert abs(float(np.median(flow[20:60, 20:60, 0])) - 2.0) < 0.3  # moved right by 2 px
    assert abs(float(np.median(flow[20:60, 20:60, 1]))) < 0.3
    assert np.allclose(optical_strain(np.zeros((9, 9, 2), np.float32)), 0)
    ramp = np.zeros((9, 9, 2), np.float32)
    ramp[..., 0] = np.arange(9)[None, :] * 0.5  # u_x = 0.5 everywhere
    assert np.allclose(optical_strain(ramp), 0.5)
    features = flow_features(onset, apex, 3, FlowConfig(method="dis"))
    assert features.shape == (3, 28, 28) and features.min() >= 0 and features.max() <= 1
    flipped = flip_flow(features)
    assert np.allclose(flipped[0], 1 - features[0][:, ::-1]) and np.allclose(flipped[2], features[2][:, ::-1])
    tvl1 = compute_flow(onset, apex, "tvl1")
    assert abs(float(np.median(tvl1[20:60, 20:60, 0])) - 2.0) < 0.3


def test_flow_cache_keys_and_atomic_entries(tmp_path):
    cache = FlowCache(tmp_path)
    onset, apex = _pattern(), _pattern(1)
    dis = FlowConfig(method="dis")
    first = cache.get(onset, apex, 2, dis)
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.rglob(f"*{TMP_MARKER}*"))
    stamp = files[0].stat().st_mtime_ns
    assert np.array_equal(cache.get(onset, apex, 2, dis), first)
    assert files[0].stat().st_mtime_ns == stamp  # served from disk
    keys = {cache.key(onset, apex, 2, dis), cache.key(onset, _pattern(2), 2, dis), cache.key(onset, apex, 3, dis),
            cache.key(onset, apex, 2, FlowConfig(method="tvl1")),
            cache.key(onset, apex, 2, FlowConfig(method="dis", params={"finestScale": 1}))}
    assert len(keys) == 5  # inputs, channels, method and parameters all change the key
    files[0].write_bytes(b"truncated")  # a damaged entry is recomputed, not trusted
    assert np.array_equal(cache.get(onset, apex, 2, dis), first)


def test_sampler_orders_shards_ranks_and_epochs():
    a = EpochBatchSampler(10, 4, shuffle=True, seed=1, min_batch=2)
    a.set_epoch(0)
    e0 = list(a)
    assert all(b == sorted(b) for b in e0) and sorted(sum(e0, [])) == list(range(10))
    a.set_epoch(1)
    assert list(a) != e0
    b = EpochBatchSampler(10, 4, shuffle=True, seed=1)
    assert list(b) == e0
    ranks = [EpochBatchSampler(9, 2, shuffle=True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    seen = [sum(list(s), []) for s in ranks]
    assert len(seen[0]) == len(seen[1]) == 5 and set(seen[0]) | set(seen[1]) == set(range(9))
    assert len(EpochBatchSampler(9, 4, shuffle=False, min_batch=2)) == 2  # a final batch of 1 is dropped


@pytest.fixture(scope="module")
def casme2_root(tmp_path_factory):
    return make_casme2(tmp_path_factory.mktemp("casme2"), casme2_clips(subjects=2, per_class=1) + [(2, "EP09_01", "others")])


def test_casme2_source_from_the_documented_layout(casme2_root):
    source = open_data(f"casme2:{casme2_root}", crop_size=36)
    assert len(source) == 6  # "others" is left out
    m = source.meta[0]
    assert (m.dataset, m.subject, m.clip, m.label, m.onset, m.apex, m.last) == ("casme2", "sub01", "EP01_01f", 0, 0, 3, 5)
    frames = source.load(0, [0, 3])
    assert frames.shape == (2, 36, 36, 3) and frames.dtype == np.uint8
    assert int(np.abs(frames[1].astype(int) - frames[0]).sum()) > 0
    assert sorted({s.group("subject") for s in source.meta}) == ["casme2/sub01", "casme2/sub02"]


def test_dataset_is_the_same_with_and_without_workers(casme2_root, tmp_path):
    source = open_data(f"casme2:{casme2_root}", crop_size=36)
    for spec, options in ((InputSpec("frames", 3, 32, 2), DataOptions(augment=AugmentConfig(rotation=5, flip=True))),
                          (InputSpec("flow", 3, 28), DataOptions(flow=FlowConfig(method="dis"),
                                                                 augment=AugmentConfig(flip=True)))):
        dataset = RecognizerDataset(source, spec, train=True, seed=5, options=options, flow_cache=tmp_path / "flow")
        dataset.set_epoch(2)
        sampler = EpochBatchSampler(len(dataset), 4, shuffle=True, seed=5)
        runs = [torch.cat([b["x"] for b in DataLoader(dataset, batch_sampler=sampler, num_workers=w)]) for w in (0, 2)]
        assert torch.equal(runs[0], runs[1])
        dataset.set_epoch(3)
        other = torch.cat([b["x"] for b in DataLoader(dataset, batch_sampler=sampler)])
        assert not torch.equal(other, runs[0])  # a new epoch draws new augmentation / apexes


def test_bad_data_inputs(tmp_path, casme2_root):
    with pytest.raises(DataError, match="not found"):
        open_data(f"casme2:{tmp_path / 'nowhere'}")
    only_others = make_casme2(tmp_path / "others", [(1, "EP01_01", "others")])
    with pytest.raises(DataError, match="no labelled clips"):
        open_data("casme2", only_others)
    broken = casme2_root / "Cropped" / "sub01" / "EP01_01f" / "reg_img49.jpg"
    source = open_data(f"casme2:{casme2_root}")
    saved = broken.read_bytes()
    broken.write_bytes(b"not a jpeg")
    try:
        with pytest.raises(DataError, match="cannot read image"):
            source.load(0, [0, 3])
    finally:
        broken.write_bytes(saved)


def test_raw_frames_are_face_cropped_with_one_box_per_clip(feat_test_data, tmp_path):
    """A release without crops (raw CASME II frames): the face box is found once (miex_gen.faces) and
    cut from every frame; the photo's face is placed off-centre on a larger canvas."""
    import cv2
    from openpyxl import Workbook

    from miex_gen.faces import detect_faces, load_image

    photo = load_image(feat_test_data / "single_face.jpg")
    photo = cv2.resize(photo, (photo.shape[1] * 160 // photo.shape[0], 160))
    canvas = np.full((240, 320, 3), 30, np.uint8)
    canvas[60:220, 140:140 + photo.shape[1]] = photo[:, : 320 - 140]
    folder = tmp_path / "CASME2_RAW_selected" / "sub01" / "EP02_01f"
    folder.mkdir(parents=True)
    for n in range(46, 50):
        cv2.imwrite(str(folder / f"img{n}.jpg"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    wb = Workbook()
    wb.active.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                      "Estimated Emotion"])
    wb.active.append([1, "EP02_01f", None, 46, 48, 49, None, "12", "happiness"])
    wb.save(tmp_path / "CASME2-coding-20140508.xlsx")
    calls = []

    def spy(image):
        calls.append(image.shape)
        boxes = detect_faces(image)
        return boxes[0] if boxes else None

    source = open_data("casme2", tmp_path, crop_size=64, face_box=spy)
    frames = source.load(0, [0, 2, 3])
    assert frames.shape == (3, 64, 64, 3) and calls == [(240, 320, 3)]  # one detection per clip, on the onset
    assert np.array_equal(frames[0], frames[1])  # the same box for every frame
    box = detect_faces(canvas)[0]
    assert box.x0 > 120  # the face is found where it was placed, so the crop is not the whole frame
    whole = cv2.resize(canvas, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[0].astype(int) - whole).mean() > 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")

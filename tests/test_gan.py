"""GANimation training (issue 10): critic, losses, schedule, data, trainer, resume, DDP, CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from miex_gen.aus import AU_NAMES, NUM_AUS, au_index
from miex_gen.errors import CheckpointError, ConfigError, DataError
from miex_gen.gan import losses as L
from miex_gen.gan.critic import Critic, convert_critic_state, critic_depth, critic_from_state, load_strict
from miex_gen.gan.data import FaceAuData, collect_labelled_faces, read_label_table, write_label_table
from miex_gen.gan.schedule import Schedule

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- critic

def test_critic_at_128_has_the_public_checkpoints_keys_and_shapes():
    with torch.device("meta"):
        rep = Critic("replicate", image_size=128, conv_dim=64)
        off = Critic("official", image_size=128, conv_dim=64)
    shapes = {k: tuple(v.shape) for k, v in rep.state_dict().items()}
    assert len(shapes) == 14 and sum(p.numel() for p in rep.parameters()) == 44_860_352
    assert shapes["model.0.weight"] == (64, 3, 4, 4) and shapes["model.10.bias"] == (2048,)
    assert shapes["dis_top.weight"] == (1, 2048, 3, 3) and shapes["aus_top.weight"] == (17, 2048, 2, 2)
    off_keys = set(off.state_dict())
    assert {"main.0.weight", "main.10.weight", "conv1.weight", "conv2.weight"} <= off_keys
    assert not any(k.startswith("model.") for k in off_keys)


def test_critic_depth_follows_image_size_and_outputs_are_flattened():
    assert [critic_depth(s) for s in (8, 32, 64, 128)] == [2, 4, 5, 6]
    with pytest.raises(ConfigError, match="power of two"):
        critic_depth(100)
    critic = Critic("official", image_size=32, conv_dim=8)
    patch, aus = critic(torch.zeros(1, 3, 32, 32))
    assert patch.shape == (1, 4) and aus.shape == (1, NUM_AUS)  # B = 1 keeps its batch axis


def test_critic_weights_convert_between_dialects_exactly():
    torch.manual_seed(0)
    rep = Critic("replicate", image_size=32, conv_dim=8)
    x = torch.randn(2, 3, 32, 32)
    official_state = convert_critic_state({f"module.{k}": v for k, v in rep.state_dict().items()}, "official")
    off = critic_from_state(official_state)
    assert off.dialect == "official" and off.image_size == 32 and off.conv_dim == 8
    for a, b in zip(rep(x), off(x)):
        torch.testing.assert_close(a, b)
    state = {k: v for k, v in rep.state_dict().items() if k != "model.6.weight"}
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="missing: model.6.weight; unexpected: extra.weight"):
        load_strict(Critic("replicate", image_size=32, conv_dim=8), state, what="critic")


# ----------------------------------------------------------------------------- losses

def test_gradient_penalty_is_zero_for_a_1_lipschitz_critic_and_grows_otherwise():
    torch.manual_seed(1)
    w = torch.randn(3, 16, 16)
    w = w / w.norm()
    real, fake = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    alpha = torch.rand(4)
    linear = lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)  # noqa: E731 - gradient w, norm 1
    assert L.gradient_penalty(linear, real, fake, alpha).item() == pytest.approx(0.0, abs=1e-10)
    steep = lambda x: 3 * linear(x)  # noqa: E731 - gradient norm 3 -> (3 - 1)^2
    assert L.gradient_penalty(steep, real, fake, alpha).item() == pytest.approx(4.0, rel=1e-5)
    critic = Critic("replicate", image_size=16, conv_dim=4)
    gp = L.gradient_penalty(critic.patch_map, real, fake, alpha)
    assert torch.isfinite(gp) and gp.item() > 0
    gp.backward()  # the double backward reaches the critic's weights
    assert critic.model[0].weight.grad is not None and critic.model[0].weight.grad.abs().sum() > 0


def test_adversarial_au_cycle_and_attention_terms_behave():
    hi, lo = torch.full((4, 4), 2.0), torch.full((4, 4), -1.0)
    assert L.wasserstein_critic(real_map=hi, fake_map=lo).item() == -3.0  # critic happy: real above fake
    assert L.wasserstein_critic(real_map=lo, fake_map=hi).item() == 3.0
    assert L.wasserstein_generator(hi) < L.wasserstein_generator(lo)  # G gains when fakes score higher
    y = torch.rand(5, 17)
    assert L.au_regression(y, y).item() == 0
    assert L.au_regression(y + 0.1, y).item() == pytest.approx(0.01, rel=1e-4)
    assert L.au_regression(y + 0.1, y, per_batch=True).item() == pytest.approx(0.01 / 5, rel=1e-4)
    img = torch.rand(2, 3, 8, 8)
    assert L.cycle_l1(img, img).item() == 0 and L.cycle_l1(img + 0.5, img).item() == pytest.approx(0.5)
    flat = torch.full((2, 1, 8, 8), 0.3)
    assert L.mask_magnitude(flat).item() == pytest.approx(0.3)
    assert L.mask_total_variation(flat, "abs_sum").item() == 0 and L.mask_total_variation(flat, "sq_mean").item() == 0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # columns alternate: 3 horizontal jumps per row, no vertical ones
    assert L.mask_total_variation(stripes, "abs_sum").item() == 12.0
    assert L.mask_total_variation(stripes, "sq_mean").item() == pytest.approx(2.0)
    for value in (L.mask_total_variation(torch.rand(2, 1, 8, 8)), L.gradient_penalty(
            lambda x: x.sum(dim=(1, 2, 3)), img, img.flip(0), torch.rand(2))):
        assert torch.isfinite(value)
    composed = L.compose(img, torch.zeros_like(img), torch.ones(2, 1, 8, 8))
    torch.testing.assert_close(composed, img)  # A = 1 keeps the input


def test_loss_presets():
    assert L.DEFAULT_PRESET == "paper"
    paper, official, replicate = (L.loss_weights(p) for p in ("paper", "official", "replicate"))
    assert (paper.mask, paper.tv, paper.au, paper.gp, paper.cyc) == (0.1, 1e-5, 160.0, 10.0, 10.0)
    assert official.au == 4000.0 and official.au_per_batch
    assert replicate.mask == 0 and replicate.tv == 0 and replicate.tv_kind == "sq_mean"
    assert L.loss_weights("replicate", mask=0.2).mask == 0.2
    with pytest.raises(ConfigError, match="unknown loss preset"):
        L.loss_weights("nope")
    with pytest.raises(ConfigError, match=">= 0"):
        L.loss_weights("paper", cyc=-1)


# ----------------------------------------------------------------------------- schedule

def test_lr_schedule_decays_linearly_per_iteration_without_the_off_by_one():
    s = Schedule(epochs=30, decay_epochs=10, iters_per_epoch=4)
    factors = [s.lr_factor(i) for i in range(s.total_iters)]
    assert all(f == 1.0 for f in factors[:20 * 4 + 1])  # epochs 1-20 and the first decay step at lr0
    decay = np.array(factors[20 * 4:])
    np.testing.assert_allclose(np.diff(decay), -1 / 40)  # linear, per iteration
    assert decay[-1] == pytest.approx(1 / 40) and decay.min() > 0  # no iteration trains at lr 0
    assert [s.trains_generator(i) for i in range(10)] == [False] * 4 + [True] + [False] * 4 + [True]
    assert Schedule(epochs=3, decay_epochs=0, iters_per_epoch=2).lr_factor(5) == 1.0
    with pytest.raises(ConfigError):
        Schedule(epochs=3, decay_epochs=4, iters_per_epoch=2)


# ----------------------------------------------------------------------------- data

def _faces(root: Path, n: int, size: int = 16) -> list[Path]:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_label_table_skips_and_counts_unlabelled_and_failed_faces(tmp_path):
    paths = _faces(tmp_path / "faces", 5)
    aus = np.zeros((4, NUM_AUS), np.float32)
    aus[:, au_index("AU12")] = [1, 2, 3, 4]
    write_label_table(tmp_path / "faces" / "labels.csv", [p.name for p in paths[:4]], aus)
    with open(tmp_path / "faces" / "labels.csv", "a") as handle:  # a failed track: empty AU cells
        handle.write("img4.png" + "," * NUM_AUS + "\n")
    faces = collect_labelled_faces(tmp_path / "faces")
    assert [p.name for p in faces.images] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    np.testing.assert_allclose(faces.aus[:, au_index("AU12")], [1, 2, 3, 4])
    assert faces.skipped == {"tracking failed": 1}
    # a success column and a missing label
    header = ["image", "success", *(f"AU{n[2:]}" for n in AU_NAMES)]
    with open(tmp_path / "t.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerow(["faces/img0.png", 1, *([0.5] * NUM_AUS)])
        writer.writerow(["faces/img1.png", 0, *([0.5] * NUM_AUS)])
        writer.writerow(["img2", 1, *([5.0] * NUM_AUS)])
    faces = collect_labelled_faces(tmp_path / "faces", tmp_path / "t.csv")
    assert [p.name for p in faces.images] == ["img0.png", "img2.png"]
    assert faces.skipped == {"tracking failed": 1, "no AU label": 2}


def test_pyfeat_style_table_is_converted_to_the_openface_scale(tmp_path):
    from miex_gen.aus import FEAT_AU_NAMES

    _faces(tmp_path / "faces", 2)
    with open(tmp_path / "feat.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", *FEAT_AU_NAMES, "input"])
        for i in range(2):
            probs = np.full(20, 0.1)
            probs[FEAT_AU_NAMES.index("AU43")] = 0.8
            writer.writerow([0, *probs, f"/somewhere/else/img{i}.png"])
    labels, failed, fmt = read_label_table(tmp_path / "feat.csv")
    assert fmt == "feat" and not failed
    vec = labels["/somewhere/else/img0.png"]
    assert vec[au_index("AU45")] == pytest.approx(4.0) and vec[au_index("AU12")] == pytest.approx(0.5)
    faces = collect_labelled_faces(tmp_path / "faces", tmp_path / "feat.csv")
    assert len(faces) == 2


def test_a_dataset_without_usable_labels_is_a_clear_error(tmp_path):
    _faces(tmp_path / "faces", 3)
    with pytest.raises(DataError, match="no usable labelled faces.*3 no AU label") as info:
        collect_labelled_faces(tmp_path / "faces")
    assert "labels.csv" in str(info.value)  # the hint says how to provide labels
    write_label_table(tmp_path / "faces" / "labels.csv", ["other.png"], np.zeros((1, NUM_AUS)))
    with pytest.raises(DataError, match="no usable labelled faces"):
        collect_labelled_faces(tmp_path / "faces")
    (tmp_path / "faces" / "labels.csv").write_text("file,AU01_r\nimg0.png,1\n")
    with pytest.raises(DataError, match="lacks AU column"):
        collect_labelled_faces(tmp_path / "faces")
    (tmp_path / "faces" / "labels.csv").write_text(
        "file," + ",".join(f"{n}_r" for n in AU_NAMES) + "\nimg0.png," + ",".join(["7"] * NUM_AUS) + "\n")
    with pytest.raises(DataError, match="0-5 scale"):
        collect_labelled_faces(tmp_path / "faces")


def test_batches_draw_targets_from_other_images_reproducibly():
    faces = np.zeros((6, 8, 8, 3), np.uint8)
    faces[:, :, :4] = 255  # left half white: flips are visible
    aus = np.zeros((6, NUM_AUS), np.float32)
    aus[:, 0] = np.arange(6)  # every image has its own AU01 value
    data = FaceAuData(faces, aus, flip=True, aus_noise=0.0)
    a = data.batch(np.arange(6), np.random.default_rng(3))
    b = data.batch(np.arange(6), np.random.default_rng(3))
    torch.testing.assert_close(a.target_aus, b.target_aus)
    torch.testing.assert_close(a.real, b.real)
    assert a.real.shape == (6, 3, 8, 8) and a.real.min() == -1 and a.real.max() == 1
    torch.testing.assert_close(a.real_aus[:, 0], torch.arange(6.0) / 5)
    for _ in range(20):
        batch = data.batch(np.arange(6), np.random.default_rng(_))
        assert not torch.any(batch.target_aus[:, 0] == batch.real_aus[:, 0])  # never its own label
    flipped = a.real[:, 0, 0, 0] < 0  # flipped images start black
    assert flipped.any() and (~flipped).any()
    noisy = FaceAuData(faces, aus, aus_noise=0.1).batch(np.arange(6), np.random.default_rng(3))
    assert 0 < (noisy.target_aus - a.target_aus).abs().max() <= 0.1

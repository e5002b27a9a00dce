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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    linear = lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)
    assert L.gradient_penalty(linear, real, fake, alpha).item() == pytest.approx(0.0, abs=1e-10)
    steep = lambda x: 3 * linear(x)
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


def test_one_openface_or_pyfeat_csv_per_image(tmp_path, feat_test_data):
    """py-feat's own OpenFace and py-feat CSVs, read in place through au_io (``--labels DIR``)."""
    from miex_gen.au_io import read_au_table

    _faces(tmp_path / "faces", 3)
    for i, stem in enumerate(("OpenFace_Test", "Feat_Test", "nolabel")):
        (tmp_path / "faces" / f"img{i}.png").rename(tmp_path / "faces" / f"{stem}.png")
    faces = collect_labelled_faces(tmp_path / "faces", feat_test_data)
    assert [p.stem for p in faces.images] == ["Feat_Test", "OpenFace_Test"]
    assert faces.skipped == {"no AU label": 1}
    openface = read_au_table(feat_test_data / "OpenFace_Test.csv")
    np.testing.assert_allclose(faces.aus[1], openface.aus[np.flatnonzero(openface.success)[0]])
    # FaceLandmarkImg layout in OpenFace's processed/ folder; a face it could not track is skipped
    processed = tmp_path / "faces" / "processed"
    processed.mkdir()
    header = "face, confidence, " + ", ".join(f"{n}_r" for n in AU_NAMES)
    (processed / "nolabel.csv").write_text(header + "\n0, 0.0, " + ", ".join([""] * NUM_AUS) + "\n")
    (processed / "Feat_Test.csv").write_text(header + "\n0, 0.9, " + ", ".join(["2.5"] * NUM_AUS) + "\n")
    faces = collect_labelled_faces(tmp_path / "faces")
    assert [p.stem for p in faces.images] == ["Feat_Test"] and faces.aus[0, 0] == 2.5
    assert faces.skipped == {"no AU label": 1, "tracking failed": 1}


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


# ----------------------------------------------------------------------------- training

TINY = ["--image-size", "32", "--conv-dim", "8", "--repeat-num", "1", "--device", "cpu", "-q"]


def _miex(args: list[str]):
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A generator trained on synthetic faces whose mouth brightness is AU12 (the learning test's run)."""
    from miex_gen.gan.synthetic import make_synthetic_faces

    root = tmp_path_factory.mktemp("gan")
    make_synthetic_faces(root / "faces", 128, size=32, seed=1, au="AU12")
    run = root / "run"
    result = _miex(["gan", "train", "--data", str(root / "faces"), "--out", str(run), *TINY,
                    "--batch-size", "16", "--epochs", "25", "--decay-epochs", "0", "--critic-steps", "2",
                    "--lr", "5e-4", "--seed", "0"])
    assert result.exit_code == 0, result.output
    return run


def test_trained_generator_follows_the_target_au_on_held_out_faces(trained):
    """Held-out neutral faces (AU12 = 0, as `miex generate` treats identity photos) rendered at AU12
    0..5 through the renderer (so the checkpoint training wrote loads in `miex generate`'s renderer):
    the mouth brightness must follow the target, the rest of the face must stay."""
    from miex_gen.gan.synthetic import mouth_brightness, mouth_region, synthetic_face
    from miex_gen.render.base import get_renderer
    from miex_gen.seeding import numpy_rng

    renderer = get_renderer("ganimation", checkpoint=trained / "25_net_gen.pth", device="cpu", input_size=32)
    assert renderer.info.dialect == "replicate" and renderer.info.conv_dim == 8
    rng = numpy_rng(123, "held-out")  # faces the generator never saw
    levels = np.linspace(0, 5, 6, dtype=np.float32)
    targets, measured, elsewhere = [], [], []
    for _ in range(8):
        face = synthetic_face(rng, 32, 0.0)
        aus = np.zeros((1, len(levels), NUM_AUS), np.float32)
        aus[0, :, au_index("AU12")] = levels
        frames = renderer.render([renderer.prepare(face, detect=False)], aus).frames[0]
        targets += list(levels)
        measured += list(mouth_brightness(frames))
        outside = np.ones(face.shape[:2], bool)
        outside[mouth_region(32)] = False
        elsewhere.append(np.abs(frames.astype(float) - face)[:, outside].mean())
    corr = float(np.corrcoef(targets, measured)[0, 1])
    print(f"corr {corr:.3f}, mean |change| outside the mouth {np.mean(elsewhere):.1f}")
    assert corr >= 0.8, f"target AU12 vs mouth brightness correlation {corr:.3f}"
    assert np.mean(elsewhere) < 25, "the generator should keep the face outside the AU's region"


def test_a_run_writes_checkpoints_grids_logs_and_its_config(trained):
    from PIL import Image

    from miex_gen.gan.losslog import read_losses

    names = {p.name for p in trained.iterdir()}
    assert {"1_net_gen.pth", "25_net_gen.pth", "25_net_dis.pth", "state.pt", "losses.csv", "losses.png",
            "config.json", "environment.json", "data.json"} <= names
    assert not any(n.startswith(".") for n in names)  # no temp files left
    critic = critic_from_state(torch.load(trained / "25_net_dis.pth", weights_only=True))
    assert critic.image_size == 32 and critic.dialect == "replicate"
    grid = np.asarray(Image.open(trained / "samples" / "epoch_025.png"))
    assert grid.shape == (4 * 34 + 2, 9 * 34 + 2, 3)  # 4 faces x (input + 4 targets + 4 masks)
    rows = read_losses(trained / "losses.csv")
    assert len(rows) == 25 * 8 and all(np.isfinite(r["d_total"]) for r in rows)
    assert sum(r["g_total"] is not None for r in rows) == 100  # every 2nd iteration (--critic-steps 2)
    assert json.loads((trained / "config.json").read_text())["resolved_loss_weights"]["mask"] == 0.1
    assert json.loads((trained / "data.json").read_text())["usable"] == 128


def test_gan_sample_sweeps_every_au(trained, tmp_path):
    from PIL import Image

    from miex_gen.gan.synthetic import synthetic_face

    face = tmp_path / "face.png"
    Image.fromarray(synthetic_face(np.random.default_rng(5), 32, 1.0)).save(face)
    result = _miex(["gan", "sample", str(trained), str(face), "-o", str(tmp_path / "grid.png"), "--no-detect",
                    "--device", "cpu"])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape[0] == 18 + 17 * 34 + 2 and grid.shape[1] == 56 + 7 * 34 + 2
    result = _miex(["gan", "sample", str(trained), str(face), "-o", str(tmp_path / "g2.png"), "--no-detect",
                    "--au", "AU12", "--levels", "0,5", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "g2.png")).shape[:2] == (18 + 34 + 2, 56 + 3 * 34 + 2)


def _resume_data(root: Path) -> Path:
    from miex_gen.gan.synthetic import make_synthetic_faces

    make_synthetic_faces(root, 16, size=16, seed=2)
    return root


def test_resume_after_a_stop_continues_with_identical_losses(tmp_path):
    from miex_gen.gan.config import TrainConfig
    from miex_gen.gan.losslog import read_losses
    from miex_gen.gan.trainer import train

    data = _resume_data(tmp_path / "faces")
    common = dict(data=str(data), image_size=16, conv_dim=4, repeat_num=1, batch_size=4, epochs=3,
                  decay_epochs=2, seed=7, device="cpu", progress=False)
    full = train(TrainConfig(out=str(tmp_path / "full"), **common))
    assert full.iteration == 12 and not full.stopped_early
    args = ["gan", "train", "--data", str(data), "--out", str(tmp_path / "cut"), "--image-size", "16",
            "--conv-dim", "4", "--repeat-num", "1", "--batch-size", "4", "--epochs", "3", "--decay-epochs", "2",
            "--seed", "7", "--device", "cpu", "-q"]
    result = _miex([*args, "--stop-after", "6"])  # mid-epoch 2, after a generator step
    assert result.exit_code == 0 and "stopped at iteration 6/12" in result.output, result.output
    assert len(read_losses(tmp_path / "cut" / "losses.csv")) == 6
    again = _miex(args)  # the same command without --resume must not overwrite the run
    assert again.exit_code == 1 and "already holds a training run" in again.output
    changed = _miex(["gan", "train", "--out", str(tmp_path / "cut"), "--resume", "--epochs", "4", "-q"])
    assert changed.exit_code == 1 and "epochs: run has 3, now 4" in changed.output
    resumed = _miex(["gan", "train", "--out", str(tmp_path / "cut"), "--resume", "-q"])
    assert resumed.exit_code == 0 and "finished at iteration 12/12" in resumed.output, resumed.output
    assert read_losses(tmp_path / "cut" / "losses.csv") == read_losses(tmp_path / "full" / "losses.csv")
    for name in ("3_net_gen.pth", "3_net_dis.pth"):
        a = torch.load(tmp_path / "full" / name, weights_only=True)
        b = torch.load(tmp_path / "cut" / name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_official_dialect_run_uses_its_own_file_naming(tmp_path):
    from miex_gen.gan.weights import load_generator

    data = _resume_data(tmp_path / "faces")
    (tmp_path / "opts.toml").write_text('[gan.train]\ndialect = "official"\nlambda_tv = 0.5\n')
    result = _miex(["gan", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--config",
                    str(tmp_path / "opts.toml"), "--image-size", "16", "--conv-dim", "4", "--repeat-num", "1", "--batch-size", "8",
                    "--epochs", "1", "--decay-epochs", "0", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    _, info = load_generator(tmp_path / "run" / "net_epoch_1_id_G.pth")
    assert info.dialect == "official" and (info.conv_dim, info.repeat_num) == (4, 1)
    critic = critic_from_state(torch.load(tmp_path / "run" / "net_epoch_1_id_D.pth", weights_only=True))
    assert critic.dialect == "official"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())  # options from --config FILE
    assert saved["dialect"] == "official" and saved["resolved_loss_weights"]["tv"] == 0.5


def test_training_without_usable_labels_fails_clearly(tmp_path):
    _faces(tmp_path / "faces", 3, size=32)
    result = _miex(["gan", "train", "--data", str(tmp_path / "faces"), "--out", str(tmp_path / "run"), *TINY])
    assert result.exit_code == 1
    assert "no usable labelled faces" in result.output and "3 no AU label" in result.output


def test_two_process_ddp_run_on_cpu(tmp_path):
    """torchrun with 2 gloo processes: DistributedSampler shards, rank 0 writes, weights stay in sync."""
    from miex_gen.gan.losslog import read_losses
    from miex_gen.gan.weights import load_generator

    data = _resume_data(tmp_path / "faces")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cli.main", "gan", "train", "--data", str(data), "--out", str(tmp_path / "run"),
           "--image-size", "16", "--conv-dim", "4", "--repeat-num", "1", "--batch-size", "4", "--epochs", "2",
           "--decay-epochs", "1", "--device", "cpu", "-q"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_losses(tmp_path / "run" / "losses.csv")
    assert len(rows) == 2 * 2  # 16 faces / 2 ranks / batch 4 = 2 iterations per epoch
    assert proc.stdout.count("finished at iteration 4/4") == 1  # rank 0 reports, rank 1 stays quiet
    _, info = load_generator(tmp_path / "run" / "2_net_gen.pth")
    assert info.conv_dim == 4


def test_ctrl_c_stops_after_the_current_iteration_and_saves_a_resumable_state(tmp_path):
    import signal
    import time

    from miex_gen.gan.checkpoint import load_state
    from miex_gen.gan.losslog import read_losses

    data = _resume_data(tmp_path / "faces")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["--image-size", "16", "--conv-dim", "4", "--repeat-num", "1", "--batch-size", "4", "--device", "cpu", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "gan", "train", "--data", str(data), "--out", str(run),
                             "--epochs", "500", "--decay-epochs", "0", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "losses.csv").is_file() and len((run / "losses.csv").read_text().splitlines()) > 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "stopped at iteration" in out and "--resume" in out
    state = load_state(run / "state.pt")
    assert 3 <= state["iteration"] < 2000 and len(read_losses(run / "losses.csv")) == state["iteration"]
    resumed = _miex(["gan", "train", "--out", str(run), "--resume", "--stop-after", str(state["iteration"] + 2), "-q"])
    assert resumed.exit_code == 0 and f"stopped at iteration {state['iteration'] + 2}/2000" in resumed.output

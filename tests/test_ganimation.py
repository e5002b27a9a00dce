"""GANimation: both checkpoint dialects load strictly, convert exactly and render deterministically."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from miex_gen.aus import au_vector, to_model_scale
from miex_gen.errors import CheckpointError, ConfigError
from miex_gen.faces import FaceRejected
from miex_gen.gan.networks import Generator, compose, expected_shapes, init_weights
from miex_gen.gan.weights import (
    convert_official_to_replicate,
    convert_replicate_to_official,
    detect_dialect,
    load_generator,
)
from miex_gen.render.base import get_renderer
from miex_gen.render.ganimation import GANimationRenderer, to_uint8

SMALL = 8  # conv_dim of the test networks: same code path, ~1/64 of the compute
SIZE = 32  # input_size of the test renders (the network is fully convolutional)

# GANIMATION.md section 5.4, copied key by key
REPLICATE_KEYS = [
    ("model.0.weight", (64,20,7,7)),
    ("model.0.bias", (64,)),
    ("model.3.weight", (128,64,4,4)),
    ("model.3.bias", (128,)),
    ("model.6.weight", (256,128,4,4)),
    ("model.6.bias", (256,)),
    ("model.9.conv_block.0.weight", (256,256,3,3)),
    ("model.9.conv_block.0.bias", (256,)),
    ("model.9.conv_block.3.weight", (256,256,3,3)),
    ("model.9.conv_block.3.bias", (256,)),
    ("model.10.conv_block.0.weight", (256,256,3,3)),
    ("model.10.conv_block.0.bias", (256,)),
    ("model.10.conv_block.3.weight", (256,256,3,3)),
    ("model.10.conv_block.3.bias", (256,)),
    ("model.11.conv_block.0.weight", (256,256,3,3)),
    ("model.11.conv_block.0.bias", (256,)),
    ("model.11.conv_block.3.weight", (256,256,3,3)),
    ("model.11.conv_block.3.bias", (256,)),
    ("model.12.conv_block.0.weight", (256,256,3,3)),
    ("model.12.conv_block.0.bias", (256,)),
    ("model.12.conv_block.3.weight", (256,256,3,3)),
    ("model.12.conv_block.3.bias", (256,)),
    ("model.13.conv_block.0.weight", (256,256,3,3)),
    ("model.13.conv_block.0.bias", (256,)),
    ("model.13.conv_block.3.weight", (256,256,3,3)),
    ("model.13.conv_block.3.bias", (256,)),
    ("model.14.conv_block.0.weight", (256,256,3,3)),
    ("model.14.conv_block.0.bias", (256,)),
    ("model.14.conv_block.3.weight", (256,256,3,3)),
    ("model.14.conv_block.3.bias", (256,)),
    ("model.15.weight", (256,128,4,4)),
    ("model.15.bias", (128,)),
    ("model.18.weight", (128,64,4,4)),
    ("model.18.bias", (64,)),
    ("color_top.0.weight", (3,64,7,7)),
    ("au_top.0.weight", (1,64,7,7)),
]
OFFICIAL_KEYS = [
    ("main.0.weight", (64,20,7,7)),
    ("main.1.weight", (64,)),
    ("main.1.bias", (64,)),
    ("main.3.weight", (128,64,4,4)),
    ("main.4.weight", (128,)),
    ("main.4.bias", (128,)),
    ("main.6.weight", (256,128,4,4)),
    ("main.7.weight", (256,)),
    ("main.7.bias", (256,)),
    ("main.9.main.0.weight", (256,256,3,3)),
    ("main.9.main.1.weight", (256,)),
    ("main.9.main.1.bias", (256,)),
    ("main.9.main.3.weight", (256,256,3,3)),
    ("main.9.main.4.weight", (256,)),
    ("main.9.main.4.bias", (256,)),
    ("main.10.main.0.weight", (256,256,3,3)),
    ("main.10.main.1.weight", (256,)),
    ("main.10.main.1.bias", (256,)),
    ("main.10.main.3.weight", (256,256,3,3)),
    ("main.10.main.4.weight", (256,)),
    ("main.10.main.4.bias", (256,)),
    ("main.11.main.0.weight", (256,256,3,3)),
    ("main.11.main.1.weight", (256,)),
    ("main.11.main.1.bias", (256,)),
    ("main.11.main.3.weight", (256,256,3,3)),
    ("main.11.main.4.weight", (256,)),
    ("main.11.main.4.bias", (256,)),
    ("main.12.main.0.weight", (256,256,3,3)),
    ("main.12.main.1.weight", (256,)),
    ("main.12.main.1.bias", (256,)),
    ("main.12.main.3.weight", (256,256,3,3)),
    ("main.12.main.4.weight", (256,)),
    ("main.12.main.4.bias", (256,)),
    ("main.13.main.0.weight", (256,256,3,3)),
    ("main.13.main.1.weight", (256,)),
    ("main.13.main.1.bias", (256,)),
    ("main.13.main.3.weight", (256,256,3,3)),
    ("main.13.main.4.weight", (256,)),
    ("main.13.main.4.bias", (256,)),
    ("main.14.main.0.weight", (256,256,3,3)),
    ("main.14.main.1.weight", (256,)),
    ("main.14.main.1.bias", (256,)),
    ("main.14.main.3.weight", (256,256,3,3)),
    ("main.14.main.4.weight", (256,)),
    ("main.14.main.4.bias", (256,)),
    ("main.15.weight", (256,128,4,4)),
    ("main.16.weight", (128,)),
    ("main.16.bias", (128,)),
    ("main.18.weight", (128,64,4,4)),
    ("main.19.weight", (64,)),
    ("main.19.bias", (64,)),
    ("img_reg.0.weight", (3,64,7,7)),
    ("attetion_reg.0.weight", (1,64,7,7)),
]


def _random_generator(dialect: str, seed: int = 0, conv_dim: int = SMALL, repeat_num: int = 6) -> Generator:
    """Seeded weights; biases and norm affines away from their init so nothing cancels by luck."""
    gen = torch.Generator().manual_seed(seed)
    net = init_weights(Generator(dialect, conv_dim=conv_dim, repeat_num=repeat_num), gen)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.ndim == 1:
                param.add_(torch.randn(param.shape, generator=gen) * 0.3)
            else:  # larger weights than N(0, 0.02) so that the AUs visibly change the output
                param.mul_(8.0)
    return net.eval()


def _faces(n: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128]
    out = []
    for _ in range(n):
        base = np.stack([xx, yy, 255 - xx], axis=2) * rng.uniform(0.5, 1.0)
        out.append(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    return out


def _aus(b: int = 2, t: int = 3) -> np.ndarray:
    aus = np.zeros((b, t, 17), dtype=np.float32)
    for k in range(t):
        aus[:, k] = au_vector(AU12=5.0 * k / max(t - 1, 1), AU06=1.0)
    return aus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def replicate_state() -> OrderedDict:
    return OrderedDict(_random_generator("replicate").state_dict())


# ---- architecture ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "table", "params"), [
    ("replicate", REPLICATE_KEYS, 8_467_584),
    ("official", OFFICIAL_KEYS, 8_471_296),
])
def test_full_size_keys_shapes_and_parameter_counts(dialect: str, table: list, params: int) -> None:
    shapes = expected_shapes(dialect)  # conv_dim 64, 6 residual blocks, built on the meta device
    assert list(shapes.items()) == [(k, tuple(s)) for k, s in table]
    with torch.device("meta"):
        net = Generator(dialect)
    assert sum(p.numel() for p in net.parameters()) == params
    assert len(net.state_dict()) == len(table)
    assert detect_dialect(shapes) == (dialect, "generator")


@pytest.mark.parametrize("dialect", ["replicate", "official"])
def test_full_size_forward_shapes(dialect: str) -> None:
    net = Generator(dialect).eval()  # full width; fully convolutional, so a 32 x 32 input is enough
    with torch.inference_mode():
        color, attention = net(torch.zeros(2, 3, 32, 32), torch.zeros(2, 17))
    assert color.shape == (2, 3, 32, 32) and attention.shape == (2, 1, 32, 32)
    assert float(color.abs().max()) <= 1.0 and 0.0 <= float(attention.min()) <= float(attention.max()) <= 1.0


def test_train_and_eval_modes_agree() -> None:
    net = _random_generator("official")
    x, a = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 17)
    with torch.no_grad():
        out_eval = net.eval()(x, a)
        out_train = net.train()(x, a)
    assert all(torch.equal(p, q) for p, q in zip(out_eval, out_train))


# ---- loading -----------------------------------------------------------------------------------


def _render(renderer: GANimationRenderer, faces: list[np.ndarray], aus: np.ndarray) -> np.ndarray:
    prepared = [renderer.prepare(f, detect=False) for f in faces]
    return renderer.render(prepared, aus).frames


def test_each_dialect_prefix_and_serialisation_loads(tmp_path: Path, replicate_state: OrderedDict) -> None:
    official_state = OrderedDict(_random_generator("official", seed=3).state_dict())
    for dialect, state in (("replicate", replicate_state), ("official", official_state)):
        prefixed = OrderedDict(("module." + k, v) for k, v in state.items())
        variants = {
            "plain.pth": (state, {}),
            "legacy.pth": (state, {"_use_new_zipfile_serialization": False}),
            "module.pth": (prefixed, {}),
            "module_legacy.pth": (prefixed, {"_use_new_zipfile_serialization": False}),
        }
        for name, (content, kwargs) in variants.items():
            path = tmp_path / f"{dialect}_{name}"
            torch.save(content, path, **kwargs)
            net, info = load_generator(path)
            assert info.dialect == dialect and info.conv_dim == SMALL and info.repeat_num == 6
            assert info.stripped_module_prefix == name.startswith("module")
            assert len(info.sha256) == 64 and info.path == str(path)
            loaded = net.state_dict()
            assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)
        # the renderer reads the same files and records the hash of the bytes it loaded
        renderer = GANimationRenderer(tmp_path / f"{dialect}_module_legacy.pth", device="cpu", input_size=SIZE)
        assert renderer.describe()["dialect"] == dialect
        assert renderer.weights_sha256 == load_generator(tmp_path / f"{dialect}_module_legacy.pth")[1].sha256
        assert renderer.weights_sha256 != load_generator(tmp_path / f"{dialect}_plain.pth")[1].sha256
        direct = _render(GANimationRenderer(state, device="cpu", input_size=SIZE), _faces(1), _aus(1, 2))
        np.testing.assert_array_equal(_render(renderer, _faces(1), _aus(1, 2)), direct)


def test_wrong_file_gives_one_key_report(tmp_path: Path, replicate_state: OrderedDict) -> None:
    bad = OrderedDict(replicate_state)
    del bad["model.3.bias"]
    bad["model.99.weight"] = torch.zeros(3)
    bad["au_top.0.weight"] = torch.zeros(2, SMALL, 7, 7)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "bad.pth")
    text = str(info.value)
    assert "bad.pth" in text
    assert "missing: model.3.bias" in text
    assert "unexpected: model.99.weight" in text
    assert "mis-shaped: au_top.0.weight (2, 8, 7, 7) != (1, 8, 7, 7)" in text


def test_other_bad_files_are_refused_with_a_reason(tmp_path: Path, replicate_state: OrderedDict) -> None:
    cases = {}
    cases["text.pth"] = "not a readable PyTorch weights file"
    (tmp_path / "text.pth").write_text("hello")
    torch.save(Generator("replicate", conv_dim=SMALL), tmp_path / "module_object.pth")
    cases["module_object.pth"] = "not a readable PyTorch weights file"
    torch.save({"state_dict": replicate_state, "epoch": 3}, tmp_path / "nested.pth")
    cases["nested.pth"] = "not a flat state_dict"
    mixed = OrderedDict(replicate_state)
    mixed["module.extra"] = mixed.pop("model.0.bias")
    torch.save(mixed, tmp_path / "mixed.pth")
    cases["mixed.pth"] = "mixes keys"
    torch.save({"model.0.weight": torch.zeros(1), "dis_top.weight": torch.zeros(1)}, tmp_path / "30_net_dis.pth")
    cases["30_net_dis.pth"] = "critic"
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "other.pth")
    cases["other.pth"] = "not a GANimation checkpoint"
    cases["absent.pth"] = "does not exist"
    for name, expected in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_generator(tmp_path / name)
        assert expected in str(info.value), (name, str(info.value))
        assert name in str(info.value)
    with pytest.raises(CheckpointError, match="official dialect was asked for"):
        load_generator(replicate_state, dialect="official")


def test_renderer_requires_weights() -> None:
    with pytest.raises(CheckpointError) as info:
        get_renderer("ganimation")
    assert "miex gan train" in str(info.value) and "--checkpoint" in str(info.value)


# ---- conversion --------------------------------------------------------------------------------


def test_replicate_converts_exactly_to_official(replicate_state: OrderedDict) -> None:
    official = convert_replicate_to_official(replicate_state)
    assert list(official) == list(expected_shapes("official", SMALL))
    rep_net, off_net = Generator("replicate", SMALL), Generator("official", SMALL)
    rep_net.load_state_dict(replicate_state)
    off_net.load_state_dict(official)
    assert any(float(v.abs().max()) > 0.1 for k, v in replicate_state.items() if k.endswith("bias"))
    x = torch.from_numpy(np.stack(_faces(3))[:, ::4, ::4].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    a = to_model_scale(torch.from_numpy(_aus(3, 1)[:, 0]))
    with torch.inference_mode():
        out_rep = compose(x, *rep_net.eval()(x, a))
        out_off = compose(x, *off_net.eval()(x, a))
    assert float((out_rep - out_off).abs().max()) <= 1e-4
    # through the renderer: the same frames up to a rounding flip
    frames_rep = _render(GANimationRenderer(replicate_state, device="cpu", input_size=SIZE), _faces(), _aus())
    frames_off = _render(GANimationRenderer(official, device="cpu", input_size=SIZE), _faces(), _aus())
    assert np.abs(frames_rep.astype(int) - frames_off.astype(int)).max() <= 1
    # and back, because every norm of a converted file is exactly the identity
    back = convert_official_to_replicate(official)
    assert list(back) == list(replicate_state)
    for k in back:
        if not k.endswith("bias"):
            assert torch.equal(back[k], replicate_state[k])


def test_official_to_replicate_is_refused_in_general() -> None:
    official = _random_generator("official", seed=5).state_dict()
    with pytest.raises(CheckpointError, match="cannot be converted to the replicate dialect"):
        convert_official_to_replicate(official)


def test_conversion_checks_its_input(replicate_state: OrderedDict) -> None:
    broken = OrderedDict(replicate_state)
    del broken["color_top.0.weight"]
    with pytest.raises(CheckpointError, match="missing: color_top.0.weight"):
        convert_replicate_to_official(broken)


# ---- rendering ---------------------------------------------------------------------------------


def test_render_matches_the_documented_formula(replicate_state: OrderedDict) -> None:
    renderer = get_renderer("ganimation", checkpoint=replicate_state, device="cpu", input_size=SIZE)
    faces, aus = _faces(), _aus(2, 3)
    prepared = [renderer.prepare(f, detect=False) for f in faces]
    frames = renderer.render(prepared, aus).frames
    assert frames.shape == (2, 3, SIZE, SIZE, 3) and frames.dtype == np.uint8
    net = Generator("replicate", SMALL)
    net.load_state_dict(replicate_state)
    for b in range(2):
        x = torch.from_numpy(prepared[b].face).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        for t in range(3):
            a = torch.from_numpy(aus[b, t][None]) / 5.0
            with torch.inference_mode():
                color, attention = net.eval()(x, a)
                out = attention * x + (1 - attention) * color
            expected = np.clip(np.rint((out[0].permute(1, 2, 0).numpy() + 1.0) * 127.5), 0, 255)
            assert np.abs(frames[b, t].astype(int) - expected.astype(int)).max() <= 1
    # the AUs change the frame; the identity changes the frame
    assert not np.array_equal(frames[0, 0], frames[0, 2])
    assert not np.array_equal(frames[0, 0], frames[1, 0])


def test_render_is_deterministic_and_grouping_independent(replicate_state: OrderedDict) -> None:
    faces, aus = _faces(3), _aus(3, 3)
    renderer = GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, batch_size=4)
    together = _render(renderer, faces, aus)
    np.testing.assert_array_equal(together, _render(renderer, faces, aus))
    fresh = GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, batch_size=4)
    np.testing.assert_array_equal(together, _render(fresh, faces, aus))
    # a sample's frames do not depend on the other samples of the call
    for b in range(3):
        np.testing.assert_array_equal(_render(renderer, faces[b:b + 1], aus[b:b + 1])[0], together[b])
    # another batch size: the same frames up to a rare one-level rounding flip
    other = _render(GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, batch_size=1), faces, aus)
    assert np.abs(other.astype(int) - together.astype(int)).max() <= 1
    assert (other != together).mean() < 1e-3


def test_uint8_formulas() -> None:
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 1.2])
    assert to_uint8(x, "miex").tolist() == [0, 64, 128, 255, 255, 255]  # round half to even, clip
    assert to_uint8(x, "replicate").tolist() == [0, 63, 127, 254, 255, 255]  # truncates
    assert to_uint8(x, "official").tolist() == [0, 63, 127, 253, 254, 255]  # x 254, truncates, clips
    with pytest.raises(ConfigError):
        to_uint8(x, "nearest")


def test_options_change_what_they_should(replicate_state: OrderedDict) -> None:
    faces, aus = _faces(1), _aus(1, 2)
    base = _render(GANimationRenderer(replicate_state, device="cpu", input_size=SIZE), faces, aus)
    saturated = _render(GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, saturate_mask=True), faces, aus)
    official = _render(GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, compat="official"), faces, aus)
    assert not np.array_equal(base, saturated)
    assert 0 < np.abs(base.astype(int) - official.astype(int)).max() <= 2
    renderer = GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, amp=True)  # CUDA only: ignored on CPU
    assert renderer.describe()["amp"] is False
    np.testing.assert_array_equal(_render(renderer, faces, aus), base)
    with pytest.raises(ConfigError):
        GANimationRenderer(replicate_state, compat="nearest")
    with pytest.raises(ConfigError):
        GANimationRenderer(replicate_state, batch_size=0)


def test_calibrate_picks_one_of_the_sizes(replicate_state: OrderedDict) -> None:
    renderer = GANimationRenderer(replicate_state, device="cpu", input_size=SIZE, batch_size="calibrate")
    assert renderer.calibrate((1, 2), seconds=0.01) in (1, 2)


def test_prepare_detects_and_crops_a_real_face(feat_test_data: Path, replicate_state: OrderedDict) -> None:
    from miex_gen.faces import load_image

    photo = load_image(feat_test_data / "single_face.jpg")
    default = GANimationRenderer(replicate_state, device="cpu")  # GANimation's training crop: 128 x 128
    assert default.input_size == 128 and default.prepare(photo).face.shape == (128, 128, 3)
    renderer = GANimationRenderer(replicate_state, device="cpu", input_size=SIZE)
    prepared = renderer.prepare(photo)
    assert prepared.face.shape == (SIZE, SIZE, 3)
    assert prepared.meta["crop"] == "detected" and prepared.meta["box"]["detector"].startswith("mediapipe")
    plain = renderer.prepare(photo, detect=False)
    assert plain.meta == {"crop": "resized", "box": None}
    frames = renderer.render([prepared, plain], _aus(2, 2)).frames
    assert frames.shape == (2, 2, SIZE, SIZE, 3)
    with pytest.raises(FaceRejected) as info:
        renderer.prepare(load_image(feat_test_data / "free-mountain-vector-01.jpg"))
    assert info.value.reason == "no_face"

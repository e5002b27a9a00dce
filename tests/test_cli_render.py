"""``miex render``: writes the PNG (input beside output) and a sweep strip, with any registered renderer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from miex_gen.aus import AU_INDEX
from miex_gen.gan.networks import Generator, init_weights
from miex_gen.render.base import Prepared, Renderer, RenderResult, check_render_inputs, register_renderer
from miex_gen.render.preview import CAPTION_HEIGHT

SIZE = 32


class BrightnessRenderer(Renderer):
    """A third renderer, registered only here: AU12 brightens the face (proves the CLI is generic)."""

    name = "test-brightness"

    def __init__(self, input_size: int = 128, *, device: object = None, gain: float = 10.0) -> None:
        self.input_size, self.gain = input_size, gain

    def prepare(self, face: np.ndarray, *, detect: bool = True) -> Prepared:
        from miex_gen.faces import resize_face

        return Prepared(face=resize_face(face, self.input_size), meta={"detect": detect})

    def render(self, prepared: Sequence[Prepared], aus: np.ndarray) -> RenderResult:
        arr = check_render_inputs(prepared, aus)
        faces = np.stack([p.face for p in prepared]).astype(np.float32)[:, None]
        lift = self.gain * arr[:, :, AU_INDEX["AU12"]][:, :, None, None, None]
        frames = np.clip(faces + lift, 0, 255).astype(np.uint8)
        return RenderResult(frames, [{"gain": self.gain} for _ in prepared])


@pytest.fixture(autouse=True, scope="module")
def _test_renderer_registered():
    """Registered for this module only, so other tests see the real registry."""
    from miex_gen.render import base

    register_renderer("test-brightness")(BrightnessRenderer)
    yield
    base._REGISTRY.pop("test-brightness", None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "30_net_gen.pth"
    net = init_weights(Generator("replicate", conv_dim=8), torch.Generator().manual_seed(0))
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture()
def face(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "face.png"
    Image.fromarray(rng.integers(0, 200, (96, 80, 3), dtype=np.uint8)).save(path)
    return path


def _run(args: list[str]) -> object:
    result = CliRunner().invoke(cli, ["render", *args], catch_exceptions=False)
    return result


def _tiles(png: Path, size: int) -> list[np.ndarray]:
    strip = np.asarray(Image.open(png).convert("RGB"))
    assert strip.shape[0] == size + CAPTION_HEIGHT and strip.shape[1] % size == 0
    return [strip[:size, k * size:(k + 1) * size] for k in range(strip.shape[1] // size)]


def test_render_writes_input_beside_output(tmp_path: Path, face: Path, checkpoint: Path) -> None:
    out = tmp_path / "out" / "smile.png"
    result = _run([str(face), "--checkpoint", str(checkpoint), "--au", "AU12=2", "--au", "AU06=1",
                   "--no-detect", "--image-size", str(SIZE), "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tiles = _tiles(out, SIZE)
    assert len(tiles) == 2
    # left: the input as the renderer saw it (the photo's central square, resized)
    from miex_gen.faces import load_image, resize_face

    np.testing.assert_array_equal(tiles[0], resize_face(load_image(face), SIZE))
    # right: exactly what the library renders
    from miex_gen.aus import au_vector
    from miex_gen.render import get_renderer

    renderer = get_renderer("ganimation", checkpoint=checkpoint, device="cpu", input_size=SIZE)
    frames = renderer.render([renderer.prepare(load_image(face), detect=False)],
                             au_vector(AU12=2, AU06=1)[None, None]).frames
    np.testing.assert_array_equal(tiles[1], frames[0, 0])
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["renderer"]["name"] == "ganimation" and record["renderer"]["dialect"] == "replicate"
    assert len(record["renderer"]["weights_sha256"]) == 64
    assert record["aus"] == {"AU12 2.0, AU06 1.0": {"AU06": 1.0, "AU12": 2.0}}
    assert "torch" in json.dumps(record["versions"])


def test_sweep_strip(tmp_path: Path, face: Path, checkpoint: Path) -> None:
    out = tmp_path / "sweep.png"
    result = _run([str(face), "--checkpoint", str(checkpoint), "--sweep", "au12", "--au", "AU06=1", "--no-detect",
                   "--image-size", str(SIZE), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    tiles = _tiles(out, SIZE)
    assert len(tiles) == 1 + 6
    record = json.loads(out.with_suffix(".json").read_text())
    assert list(record["aus"]) == [f"AU12={v}" for v in range(6)]
    assert record["aus"]["AU12=5"] == {"AU06": 1.0, "AU12": 5.0}
    assert not np.array_equal(tiles[1], tiles[-1])  # the AU changes the frame


def test_any_registered_renderer(tmp_path: Path, face: Path) -> None:
    out = tmp_path / "b.png"
    result = _run([str(face), "--renderer", "test-brightness", "-O", "gain=20", "--sweep", "AU12", "--steps", "3",
                   "--image-size", str(SIZE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    tiles = _tiles(out, SIZE)
    assert len(tiles) == 4
    np.testing.assert_array_equal(tiles[1], tiles[0])  # AU12 = 0 reproduces the input
    expected = np.clip(tiles[0].astype(int) + 50, 0, 255)  # AU12 = 2.5, gain 20
    np.testing.assert_array_equal(tiles[2], expected)


def test_warp_renderer_on_a_real_photo(tmp_path: Path, feat_test_data: Path) -> None:
    out = tmp_path / "warp.png"
    result = _run([str(feat_test_data / "single_face.jpg"), "--au", "AU12=2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tiles = _tiles(out, 128)
    assert len(tiles) == 2 and json.loads(out.with_suffix(".json").read_text())["renderer"]["name"] == "warp"


@pytest.mark.parametrize(("args", "message"), [
    (["--au", "AU99=1"], "not one of the 17 AUs"),
    (["--au", "AU12"], "is not AU=VALUE"),
    (["--au", "AU12=7"], "0-5 scale"),
    (["--sweep", "AU3"], "--sweep"),
    (["--renderer", "ganimation"], "miex gan train"),
    (["--renderer", "nope"], "unknown renderer"),
    (["--renderer", "test-brightness", "-O", "colour=1"], "does not accept"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, face: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli, ["render", str(face), *args, "-o", str(out)])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists()


def test_unusable_photo_is_rejected(tmp_path: Path, checkpoint: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = CliRunner().invoke(cli, ["render", str(bad), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "bad.jpg" in result.output and "not an image" in result.output

"""``miex aus extract``: fail fast without weights, and the real Detectorv2 path offline on random
stand-in weights laid out as a Hugging Face cache tree (DEPENDENCIES.md §1.5), in a temporary folder
(never in the shared venv's site-packages), on image folders (no FFmpeg here)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from miex_gen.au_extract import feat_resource_dir, locate_feat_weights
from miex_gen.errors import DependencyError


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _frames(folder: Path, source: Path, names: list[str], size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(source).convert("RGB").resize((size, size))
    for i, name in enumerate(names):
        image.rotate(3 * i).save(folder / name)
    return folder


# ----------------------------------------------------------------------------- no weights
def test_missing_weights_fail_fast_with_instructions(tmp_path, feat_test_data, monkeypatch):
    monkeypatch.delenv("FEAT_MULTITASK_WEIGHTS", raising=False)
    clip = _frames(tmp_path / "clip", feat_test_data / "single_face.jpg", ["img1.jpg"])
    feat_loaded = "feat.detector_v2" in sys.modules
    start = time.perf_counter()
    result = run("aus", "extract", clip, "-o", tmp_path / "out")  # py-feat's own resources dir: no weights there
    elapsed = time.perf_counter() - start
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "not available offline" in text and "py-feat/retinaface_r34" in text
    assert str(feat_resource_dir() / "models--py-feat--retinaface_r34") in text
    assert "refs/main" in text and "snapshots/<commit>/model.safetensors" in text and "--weights-dir" in text
    assert elapsed < 10  # no hub retries (~47 s) and no py-feat import (12-17 s)
    if not feat_loaded:
        assert "feat.detector_v2" not in sys.modules
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_multitask_weights_mention_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("FEAT_MULTITASK_WEIGHTS", raising=False)
    ref = tmp_path / "models--py-feat--retinaface_r34"
    (ref / "refs").mkdir(parents=True)
    (ref / "refs" / "main").write_text("abc")
    (ref / "snapshots" / "abc").mkdir(parents=True)
    (ref / "snapshots" / "abc" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(DependencyError, match="face_multitask_v2.*FEAT_MULTITASK_WEIGHTS"):
        locate_feat_weights(tmp_path)
    monkeypatch.setenv("FEAT_MULTITASK_WEIGHTS", str(tmp_path / "nope.safetensors"))
    with pytest.raises(DependencyError, match="nope.safetensors .*FEAT_MULTITASK_WEIGHTS.* do not exist"):
        locate_feat_weights(tmp_path)


# ----------------------------------------------------------------------------- real path, stand-in weights
def _hf_tree(root: Path, repo: str, commit: str, filename: str) -> Path:
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    (base / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    return base / "snapshots" / commit / filename


@pytest.fixture(scope="module")
def standin_weights(tmp_path_factory):
    """Random-init RetinaFace and multitask checkpoints in the HF cache layout (the one `import feat`).

    The RetinaFace class head is set so that only the coarsest (256-px) anchors fire: on the 64-px test
    frames that is one face per frame, deterministic. The multitask model uses a small ConvNeXt-V2 backbone and narrow heads so that
    a CPU test stays fast. Both load through py-feat's own code paths.
    """
    import dataclasses

    from safetensors.torch import save_file

    from miex_gen.au_extract import keep_thread_settings

    with keep_thread_settings():  # the one `import feat` of this test module
        from feat.face_detectors.Retinaface.Retinaface_model import RETINAFACE_R34_CFG, RetinaFace
        from feat.multitask.model_v2 import MEGraphAUv2, ModelV2Config

    root = tmp_path_factory.mktemp("feat_weights")
    torch.manual_seed(0)
    state = {k: v.clone().contiguous() for k, v in RetinaFace(RETINAFACE_R34_CFG).state_dict().items()}
    for level in range(3):
        state[f"ClassHead._convs.{level}.weight"].zero_()
        state[f"ClassHead._convs.{level}.bias"][:] = torch.tensor([8.0, -8.0, 8.0, -8.0])  # background
        state[f"BboxHead._convs.{level}.weight"].zero_()
        state[f"BboxHead._convs.{level}.bias"].zero_()
    state["ClassHead._convs.2.bias"][:] = torch.tensor([-8.0, 8.0, 8.0, -8.0])  # face at the 256-px anchors
    save_file(state, str(_hf_tree(root, "py-feat/retinaface_r34", "0123abcd", "model.safetensors")))
    config = ModelV2Config(backbone="convnextv2_atto", pretrained=False, afg_channels=32, mefl_channels=32,
                           unified_lmk_dim=32)
    model = MEGraphAUv2(config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(_hf_tree(root, "py-feat/face_multitask_v2", "4567cdef", "face_multitask_v28.safetensors")),
              metadata={"config": json.dumps(dataclasses.asdict(config))})
    return root


def test_extract_real_detector_offline_on_standin_weights(tmp_path, feat_test_data, standin_weights, monkeypatch):
    monkeypatch.delenv("FEAT_MULTITASK_WEIGHTS", raising=False)
    resources_before = sorted(p.name for p in feat_resource_dir().iterdir())
    torch_threads_before = torch.get_num_threads()
    clip = _frames(tmp_path / "clipA", feat_test_data / "single_face.jpg", ["img9.jpg", "img10.jpg"])
    ck = tmp_path / "ck"
    _frames(ck / "cohn-kanade-images" / "S005" / "001", feat_test_data / "0-f15-hao-ph.jpg",
            ["S005_001_00000001.png", "S005_001_00000002.png"])
    (ck / "Emotion" / "S005" / "001").mkdir(parents=True)
    (ck / "Emotion" / "S005" / "001" / "S005_001_00000002_emotion.txt").write_text("5.0\n")
    out = tmp_path / "out"

    result = run("aus", "extract", clip, f"ckplus:{ck}", "-o", out, "--weights-dir", standin_weights,
                 "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    assert "wrote 2 AU table(s)" in " ".join(result.output.split())

    from miex_gen.au_io import read_au_table

    table = read_au_table(out / "clipA.csv")
    assert table.format == "feat" and table.aus.shape == (2, 17) and table.success.all()
    assert table.frame.tolist() == [0, 1]
    assert 0.0 <= table.aus.min() and table.aus.max() <= 5.0 and table.aus.std() > 0  # probabilities x 5
    lines = (out / "clipA.csv").read_text().splitlines()
    assert lines[0].startswith("frame,input,success,FaceScore,AU01") and "img9.jpg" in lines[1]  # numeric order

    ck_csv = out / "ckplus" / "S005" / "001.csv"  # the pool builders' layout
    assert read_au_table(ck_csv).aus.shape == (2, 17)
    from miex_gen.au_sources import build_mae_pool
    from miex_gen.datasets import load_ckplus

    pool = build_mae_pool(load_ckplus(ck), out, seed=0, draws_per_clip=2)
    assert len(pool) == 2 and pool.label.tolist() == [1, 1]
    np.testing.assert_allclose(pool.onset[0], read_au_table(ck_csv).aus[0])

    # resumable: a second run finds both CSVs and builds no detector
    again = run("aus", "extract", clip, f"ckplus:{ck}", "-o", out, "--weights-dir", standin_weights, "-q")
    assert again.exit_code == 0 and "kept 2 existing" in " ".join(again.output.split())
    # nothing was written into py-feat's installed resources
    assert sorted(p.name for p in feat_resource_dir().iterdir()) == resources_before
    assert torch_threads_before == torch.get_num_threads()
    assert torch.is_grad_enabled(), "py-feat's detectors must not switch autograd off for the process"

"""`miex generate` end to end: demo, determinism, resume after SIGKILL, screening, refusal, scaling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from face_helpers import save_face_photos
from PIL import Image

from cli.main import cli
from miex_gen.config import GenerateConfig
from miex_gen.errors import ConfigError
from miex_gen.generate import generate
from miex_gen.shards import DatasetReader, list_shards, validate_dataset

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, feat_test_data) -> Path:
    """Four real face photos (downscaled copies made at test time) plus three unusable files."""
    folder = save_face_photos(feat_test_data, tmp_path_factory.mktemp("faces"), PHOTOS, 320)
    (folder / "zz_notes.jpg").write_text("this is not an image")
    full = (feat_test_data / "single_face.jpg").read_bytes()
    (folder / "zz_truncated.jpg").write_bytes(full[: len(full) // 3])
    Image.open(feat_test_data / "free-mountain-vector-01.jpg").convert("RGB").resize((320, 180)).save(
        folder / "zz_landscape.png")
    return folder


def _config(folder: Path, out: Path, **kw) -> GenerateConfig:
    base = {"ids": [f"folder:{folder}"], "sources": ["exp"], "samples_per_id": 6, "samples_per_shard": 7,
            "seed": 5, "out": str(out), "progress": False}
    base.update(kw)
    return GenerateConfig.from_mapping({**GenerateConfig().to_dict(), **base})


def _content(out: Path) -> dict[str, np.ndarray]:
    reader = DatasetReader(out)
    batch = reader.read_batch(list(range(len(reader))))
    return {k: np.asarray(batch[k]) for k in ("frames", "aus", "label", "identity", "source_kind", "sample_index")}


@pytest.fixture(scope="module")
def reference(face_folder, tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("ref")
    result = generate(_config(face_folder, out))
    assert result.complete
    return out, _content(out)


def test_bad_identity_images_are_skipped_and_reported(reference):
    out, content = reference
    rows = (out / "skipped.csv").read_text().splitlines()
    assert rows[0] == "identity,path,reason"
    reasons = {line.split(",")[0]: line.split(",")[-1] for line in rows[1:]}
    assert set(reasons) == {"folder/zz_notes", "folder/zz_truncated", "folder/zz_landscape"}
    assert reasons["folder/zz_landscape"] == "no_face"
    assert len(set(content["identity"])) == 4
    assert len(content["label"]) == 4 * 6


def test_output_validates_and_explains_itself(reference):
    out, content = reference
    assert validate_dataset(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(s["num_samples"] for s in manifest["shards"]) == 24
    config = json.loads((out / "config.json").read_text())
    assert config["config_hash"] and config["versions"]["miex"]
    with h5py.File(list_shards(out)[0], "r") as shard:
        assert shard.attrs["config_hash"] == config["config_hash"]
        assert json.loads(shard.attrs["config"])["config_hash"] == config["config_hash"]
    np.testing.assert_array_equal(content["sample_index"], np.arange(24))
    assert (out / "DATASET_CARD.md").exists() and (out / "plan.json").exists()


def test_same_content_config_same_data_whatever_workers_batch_and_shard_subsets(face_folder, reference, tmp_path):
    _, expected = reference
    out = tmp_path / "parts"
    first = generate(_config(face_folder, out, shards="2-3", batch_size=2))
    assert first.shards_made == [2, 3] and not first.complete and not (out / "manifest.json").exists()
    second = generate(_config(face_folder, out, workers=2, batch_size=5))
    assert second.shards_made == [0, 1] and second.shards_reused == [2, 3] and second.complete
    got = _content(out)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_mismatched_config_is_refused_and_overwrite_replaces(face_folder, tmp_path):
    out = tmp_path / "d"
    generate(_config(face_folder, out, shards="0"))
    with pytest.raises(ConfigError, match="another configuration.*seed"):
        generate(_config(face_folder, out, seed=6, shards="0"))
    again = generate(_config(face_folder, out, seed=6, shards="0", overwrite=True))
    assert again.shards_made == [0]


def test_resume_after_sigkill_gives_the_same_data(face_folder, reference, tmp_path):
    _, expected = reference
    out = tmp_path / "killed"
    config = _config(face_folder, out, batch_size=1)
    script = (
        "import json, sys\n"
        "from miex_gen.config import GenerateConfig\n"
        "from miex_gen.generate import generate\n"
        "generate(GenerateConfig.from_mapping(json.loads(sys.argv[1])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(config.to_dict())], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            temps = [p for p in out.glob(".shard-*")] if out.exists() else []
            if temps and list_shards(out):  # one shard done, the next one half-written
                break
            time.sleep(0.02)
        else:
            pytest.fail("the generate subprocess never wrote a shard")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    done_before = {p.name for p in list_shards(out)}
    result = generate(config)
    assert result.complete and set(done_before) == {f"shard-{k:05d}.h5" for k in result.shards_reused}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    got = _content(out)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_two_processes_disjoint_shards_then_merge(face_folder, reference, tmp_path):
    _, expected = reference
    out = tmp_path / "array"
    base = ["generate", "--ids", f"folder:{face_folder}", "--source", "exp", "--samples-per-id", "6",
            "--samples-per-shard", "7", "--seed", "5", "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen([sys.executable, "-m", "cli.main", *base, "--shards", part], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for part in ("0-1", "2-3")]
    for proc in runs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output.decode()
    merged = CliRunner().invoke(cli, ["data", "merge", str(out)])
    assert merged.exit_code == 0, merged.output
    assert validate_dataset(out) == []
    got = _content(out)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_dask_local_cluster_through_joblib(face_folder, reference, tmp_path):
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    _, expected = reference
    out = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            result = generate(_config(face_folder, out, workers=2))
    assert result.complete
    got = _content(out)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_demo_runs_end_to_end_and_validates(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["generate", "--demo", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "miex data preview" in result.output
    assert validate_dataset(out) == []
    reader = DatasetReader(out)
    assert 200 <= len(reader) <= 500
    assert set(reader.table()["source_kind"]) == {"exp"}
    validated = CliRunner().invoke(cli, ["data", "validate", str(out)])
    assert validated.exit_code == 0, validated.output


def test_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["generate", "--ids", f"folder:{tmp_path}", "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "no image" in result.output.lower()
    bad = CliRunner().invoke(cli, ["generate", "--demo", str(tmp_path / "x"), "--frames", "1", "-q"])
    assert bad.exit_code == 1 and "frames" in bad.output


def test_a_failing_shard_still_lets_the_rendered_one_finish(face_folder, reference, monkeypatch, tmp_path):
    """Shards finish (fsync, rename, hash) in a background thread while the next renders: an error
    in shard 1 is raised, shard 0 is completed under its final name with the reference's data."""
    import miex_gen.generate as generate_module

    real = generate_module.render_shard_unfinished

    def fail_on_second(out, k, *args, **kwargs):
        if k == 1:
            raise RuntimeError("renderer broke on shard 1")
        return real(out, k, *args, **kwargs)

    monkeypatch.setattr(generate_module, "render_shard_unfinished", fail_on_second)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="shard 1"):
        generate(_config(face_folder, out))
    assert [p.name for p in list_shards(out)] == ["shard-00000.h5"]
    assert not list(out.glob(".shard-*"))  # no temp file left behind
    monkeypatch.undo()
    result = generate(_config(face_folder, out))  # resume: shard 0 is reused as it is
    assert result.shards_reused == [0] and result.complete
    for key, want in reference[1].items():
        np.testing.assert_array_equal(_content(out)[key], want)
    assert validate_dataset(out) == []


def test_screened_photos_are_handed_out_once_within_the_budget():
    from miex_gen.generate import ScreenedImages

    held = ScreenedImages(budget_bytes=300)
    a, b = np.zeros((10, 10, 3), np.uint8), np.ones((10, 10, 3), np.uint8)  # 300 bytes each
    held.keep("a", a)
    held.keep("b", b)  # over the budget: not kept (the earliest photos are the ones needed first)
    assert held.take("b") is None
    assert held.take("a") is a and held.take("a") is None
    held.keep("b", b)  # room again once "a" was taken
    assert held.take("b") is b


def test_generate_runs_blas_on_one_thread():
    from threadpoolctl import threadpool_info

    from miex_gen.generate import single_threaded_blas

    with single_threaded_blas():
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")

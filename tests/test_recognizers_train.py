"""miex train / predict end to end: real-clip fixture, resume, torchrun, and the bad-input errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from recognizer_fixtures import casme2_clips, make_casme2, write_shards

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> object:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def casme2_root(tmp_path_factory):
    return make_casme2(tmp_path_factory.mktemp("casme2"), casme2_clips(subjects=3, per_class=2))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _flow_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIEX_CACHE_DIR", str(tmp_path / "cache"))


def test_training_on_shards_learns_held_out_identities(tmp_path):
    """Shards written by miex_gen.shards, read by the users' Dataset: UF1 >= 0.8 on unseen identities (chance 0.33)."""
    train_dir = write_shards(tmp_path / "train", range(0, 18))  # 108 samples, T = 4, two shards
    test_dir = write_shards(tmp_path / "test", range(18, 24), shards=1)  # 36 samples of 6 new identities
    out = tmp_path / "run"
    result = run("train", "--model", "ststnet", "--flow-method", "dis", "--data", f"shards:{train_dir}", "--out", out,
                 "--epochs", "12", "--lr", "0.01", "--batch-size", "16", "--val-split", "0.2", "--val-by", "identity",
                 "--seed", "1", "-q")
    assert result.exit_code == 0, result.output
    config = __import__("json").loads((out / "config.json").read_text())
    assert config["train_data"]["samples"] + config["val_data"]["samples"] == 108
    assert config["val_data"]["samples"] == 24  # 4 of 18 identities held out, whole
    preds = tmp_path / "preds.csv"
    assert run("predict", out / "model.pt", "--data", f"shards:{test_dir}", "-o", preds, "-q").exit_code == 0
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 36 and rows[0]["sample_id"].startswith("miex:")
    from recognizers.metrics import scores

    truth = [int(r["truth"]) for r in rows]
    pred = [int(r["prediction"]) for r in rows]
    result = scores(truth, pred)
    assert result.uf1 >= 0.8 and result.accuracy >= 0.8, result


SMALL_APEX = ["--model", "apex", "--model-option", "size=32", "--crop-size", "36", "-q"]


def test_casme2_fixture_trains_one_step_and_predicts(casme2_root, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "train.toml"
    config.write_text("[train]\nepochs = 1\nbatch_size = 18\nlr = 1e-3\n")
    result = run("train", *SMALL_APEX, "--data", f"casme2:{casme2_root}", "--out", out, "--config", config,
                 "--lr", "2e-3", "--seed", "3")
    assert result.exit_code == 0, result.output
    resolved = __import__("json").loads((out / "config.json").read_text())["config"]
    assert (resolved["batch_size"], resolved["lr"], resolved["seed"], resolved["model"]) == (18, 2e-3, 3, "apex")
    assert resolved["weight_decay"] == 5e-4  # the apex recipe where neither the file nor a flag says otherwise
    for name in ("model.pt", "last.pt", "metrics.csv", "metrics.png", "config.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 1 and {"train_loss", "train_uf1", "train_uar", "lr", "data_wait"} <= set(rows[0])
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["model"] == "apex" and ckpt["epoch"] == 1
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"]) and ckpt["optimizer_state"]["state"]
    preds = tmp_path / "preds.csv"
    result = run("predict", out / "model.pt", "--data", f"casme2:{casme2_root}", "-o", preds, "--fold", "0", "-q")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(preds.open()))
    assert len(table) == 18
    assert list(table[0])[:7] == ["dataset", "subject", "clip", "truth", "prediction", "fold", "sample_id"]
    assert table[0]["dataset"] == "casme2" and table[0]["subject"] == "sub01" and table[0]["fold"] == "0"
    assert abs(sum(float(table[0][k]) for k in table[0] if k.startswith("prob_")) - 1) < 1e-4


def test_resume_after_a_stop_reaches_the_same_weights(casme2_root, tmp_path):
    # dropout, BatchNorm, Adam state, a decaying schedule, flips, apex randomisation and batch order all
    # depend on the RNG and the epoch: a resumed run must replay them exactly
    common = ["--model", "ststnet", "--flow-method", "dis", "--apex-r", "0.4", "--flip", "--schedule", "linear",
              "--data", f"casme2:{casme2_root}", "--epochs", "4", "--batch-size", "4", "--val-split", "0.34",
              "--seed", "11", "--workers", "0", "--lr", "0.01", "-q"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", *common, "--out", straight).exit_code == 0
    first = run("train", *common, "--out", split, "--stop-after", "1")
    assert first.exit_code == 0 and "stopped after epoch 1" in first.output
    assert not (split / "model.pt").exists()
    refused = run("train", *common, "--out", split)
    assert refused.exit_code == 1 and "already holds a training run" in refused.output
    changed = run("train", *common, "--out", split, "--resume", "--lr", "0.5")
    assert changed.exit_code == 1 and "different configuration" in changed.output
    assert run("train", *common, "--out", split, "--resume", "--workers", "2").exit_code == 0
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(split / "model.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    assert [r["val_uf1"] for r in a["history"]] == [r["val_uf1"] for r in b["history"]]


def test_torchrun_two_processes_gloo(casme2_root, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MIEX_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "cli.main", "train", "--model", "ststnet", "--flow-method", "dis", "--data", f"casme2:{casme2_root}",
           "--out", str(out), "--epochs", "2", "--batch-size", "4", "--device", "cpu", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        stdout, stderr = proc.communicate()
        pytest.fail("torchrun did not finish in 240 s:\n" + stderr[-3000:])
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert (out / "metrics.csv").read_text().count("\n") == 3
    assert len(list((tmp_path / "cache" / "flow").rglob("*.npy"))) == 18  # each pair computed once, shared


def test_bad_inputs_give_one_clear_error(casme2_root, tmp_path):
    data = ["--data", f"casme2:{casme2_root}", "--epochs", "1", "-q"]
    result = run("train", "--model", "resnet9000", *data, "--out", tmp_path / "a")
    assert result.exit_code == 1 and "unknown model 'resnet9000'" in result.output
    assert result.output.count("error:") == 1

    empty = make_casme2(tmp_path / "empty", [(1, "EP01_01", "others")])
    result = run("train", *SMALL_APEX, "--data", f"casme2:{empty}", "--out", tmp_path / "b", "--epochs", "1")
    assert result.exit_code == 1 and "no labelled clips" in result.output

    no_samples = write_shards(tmp_path / "no_samples", range(0), shards=1)
    result = run("train", "--model", "ststnet", "--data", f"shards:{no_samples}", "--out", tmp_path / "b2")
    assert result.exit_code == 1 and "the shard dataset has no samples" in result.output

    two = make_casme2(tmp_path / "two", casme2_clips(subjects=1, per_class=1, emotions=("disgust", "happiness")))
    result = run("train", *SMALL_APEX, "--data", f"casme2:{two}", "--out", tmp_path / "c", "--epochs", "1")
    assert result.exit_code == 1 and "class 2 (surprise) has no samples" in result.output

    flow_run = tmp_path / "flow"
    assert run("train", "--model", "ststnet", "--flow-method", "dis", *data, "--out", flow_run).exit_code == 0
    result = run("train", *SMALL_APEX, *data, "--out", tmp_path / "d", "--init", flow_run / "model.pt")
    assert result.exit_code == 1 and "holds a 'ststnet' model, not 'apex'" in result.output
    (tmp_path / "junk.pt").write_bytes(b"junk")
    result = run("predict", tmp_path / "junk.pt", "--data", f"casme2:{casme2_root}", "-o", tmp_path / "p.csv")
    assert result.exit_code == 1 and "not a readable checkpoint" in result.output

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepoch = 3\n")
    result = run("train", "--model", "ststnet", *data, "--out", tmp_path / "f", "--config", bad)
    assert result.exit_code == 1 and "unknown train option(s) epoch" in result.output

    result = run("train", "--model", "ststnet", *data, "--out", tmp_path / "e", "--amp", "--device", "cpu")
    assert result.exit_code == 1 and "amp needs a CUDA device" in result.output

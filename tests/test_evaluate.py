"""End-to-end ``miex evaluate`` / ``miex report`` on a tiny CASME II-layout tree built here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from recognizers.results import read_predictions

pytestmark = pytest.mark.filterwarnings("ignore::recognizers.metrics.UndefinedMetricWarning")

SUBJECTS = 8
EMOTIONS = ("disgust", "happiness", "surprise")  # -> negative, positive, surprise
FRAMES = 4


def _face(size: int, shift: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A grey face-like pattern with a bright blob displaced by ``shift`` (the 'expression')."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = 90 + 60 * np.exp(-((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 3) ** 2))
    cy, cx = size / 2 + shift[0], size / 2 + shift[1]
    image += 90 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0 ** 2))
    image += rng.normal(0, 2, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_casme2_tree(root: Path, *, subjects: int = SUBJECTS, size: int = 40, seed: int = 0) -> Path:
    """``CASME2-coding-test.csv`` plus ``Cropped/subNN/EPxx/reg_img<N>.jpg`` (the cropped-release layout)."""
    import cv2

    rng = np.random.default_rng(seed)
    motion = {"disgust": (0, -1), "happiness": (1, 1), "surprise": (-1, 0)}
    rows = [["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame", "Unnamed: 6",
             "Action Units", "Estimated Emotion"]]
    for s in range(1, subjects + 1):
        for k, emotion in enumerate(EMOTIONS):
            clip = f"EP0{k + 1}_0{s}"
            folder = root / "Cropped" / f"sub{s:02d}" / clip
            folder.mkdir(parents=True)
            first = 10 * s
            dy, dx = motion[emotion]
            for t in range(FRAMES):
                amount = 5 * min(t, 2)
                image = _face(size, (dy * amount, dx * amount), rng)
                cv2.imwrite(str(folder / f"reg_img{first + t}.jpg"), image)
            rows.append([str(s), clip, "", str(first), str(first + 2), str(first + FRAMES - 1), "", "4", emotion])
    with open(root / "CASME2-coding-test.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


@pytest.fixture(scope="module")
def casme2_root(tmp_path_factory) -> Path:
    return make_casme2_tree(tmp_path_factory.mktemp("casme2"))


def _args(root: Path, run: Path, cache: Path, *extra: str) -> list[str]:
    return ["evaluate", "--protocol", "holdout", "--holdout-fraction", "0.25", "--model", "ststnet",
            "--data", f"casme2:{root}", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3",
            "--train-option", "flow_method=dis", "--train-option", f"flow_cache={cache}",
            "--train-option", "crop_size=32", "--out", str(run), "--seed", "0", "--device", "cpu", "-q", *extra]


def test_evaluate_holdout_end_to_end_then_report(casme2_root, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(cli, _args(casme2_root, run, tmp_path / "flow"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("predictions.csv", "megc_log.txt", "summary.json", "confusion.png", "config.json", "folds.json",
                 "training.json", "folds/holdout/predictions.csv", "folds/holdout/fold.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    config = summary["config"]
    # a stated fraction of subjects held out: round(0.25 * 8) = 2 subjects, 3 clips each
    folds = json.loads((run / "folds.json").read_text())
    assert len(folds) == 1 and len(folds[0]["test_subjects"]) == 2 and len(folds[0]["train_subjects"]) == 6
    assert summary["n"] == 6 and summary["complete"] is True and summary["num_folds"] == 1
    assert config["evaluation"]["protocol"] == "holdout" and config["seeds"]["seed"] == 0
    assert config["versions"]["miex"] and config["train_config"]["epochs"] == 2
    assert summary["training"]["holdout"]["selection"] == {"method": "fixed epochs"}
    rows = read_predictions(run / "predictions.csv")
    tested = {(r.dataset, r.subject) for r in rows}
    assert tested == {tuple(k) for k in folds[0]["test_subjects"]}
    assert [r.fold for r in rows] == ["holdout"] * 6 and all(r.sample_id.startswith("casme2/") for r in rows)
    log_lines = (run / "megc_log.txt").read_text().splitlines()
    assert log_lines[0].startswith("casme2 sub") and len(log_lines) == 2 + 6

    # report re-computes the same numbers from predictions.csv alone
    first_scores = summary["scores"]
    log_text = (run / "megc_log.txt").read_text()
    (run / "summary.json").unlink()
    (run / "megc_log.txt").unlink()
    result = runner.invoke(cli, ["report", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = json.loads((run / "summary.json").read_text())
    assert again["scores"] == first_scores and again["uf1"] == summary["uf1"] and again["uar"] == summary["uar"]
    assert (run / "megc_log.txt").read_text() == log_text
    assert "UF1" in result.output

    # scoring a bare MEGC log writes nothing and prints the same UF1
    result = runner.invoke(cli, ["report", str(run / "megc_log.txt")], catch_exceptions=False)
    assert result.exit_code == 0 and f"{summary['uf1']:.4f}" in result.output

    # a finished run is not overwritten; --resume finds the completed fold and re-scores
    result = runner.invoke(cli, _args(casme2_root, run, tmp_path / "flow"))
    assert result.exit_code == 1 and "--resume" in result.output
    before = (run / "folds/holdout/predictions.csv").stat().st_mtime_ns
    result = runner.invoke(cli, _args(casme2_root, run, tmp_path / "flow", "--resume"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (run / "folds/holdout/predictions.csv").stat().st_mtime_ns == before
    # a crash after training but before the fold's predictions were written: --resume re-predicts
    (run / "folds/holdout/predictions.csv").unlink()
    (run / "summary.json").unlink()
    result = runner.invoke(cli, _args(casme2_root, run, tmp_path / "flow", "--resume"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "summary.json").read_text())["scores"] == first_scores
    # resuming with different content options is refused
    changed = _args(casme2_root, run, tmp_path / "flow", "--resume")
    changed[changed.index("--epochs") + 1] = "3"
    result = runner.invoke(cli, changed)
    assert result.exit_code == 1 and "different options" in result.output


def make_shards(directory: Path, *, n: int = 36, size: int = 32, seed: int = 0) -> list[tuple[str, str]]:
    """A merged miex shard dataset whose AU provenance mixes the fixture's CASME II subjects (z^MiE),
    another dataset (z^MaE) and the FACS rules (z^exp, no subject). Returns each sample's (dataset, subject)."""
    from miex_gen.shards import ShardWriter, merge_dataset, shard_name

    rng = np.random.default_rng(seed)
    motion = [(0, -1), (1, 1), (-1, 0)]
    provenance = []
    for i in range(n):
        kind = ("mie", "mie", "mae", "exp")[i % 4]
        if kind == "mie":  # canonical and raw spellings of the fixture's subjects
            number = 1 + (i // 4) % SUBJECTS
            provenance.append((kind, "casme2", f"sub{number:02d}" if i % 8 else str(number)))
        else:
            provenance.append((kind, "ckplus" if kind == "mae" else "", "S005" if kind == "mae" else ""))
    half = n // 2
    for k, (lo, hi) in enumerate([(0, half), (half, n)]):
        attrs = {"renderer": "test", "renderer_weights_sha256": "", "config": {"seed": seed}, "config_hash": "t",
                 "shard_index": k, "num_shards": 2}
        with ShardWriter(directory / shard_name(k), num_frames=3, height=size, width=size, attrs=attrs) as writer:
            for i in range(lo, hi):
                label = i % 3
                frames = np.stack([np.repeat(_face(size, (motion[label][0] * 4 * t, motion[label][1] * 4 * t), rng)
                                             [..., None], 3, axis=2) for t in (0, 1, 2)])
                kind, dataset, subject = provenance[i]
                writer.append(frames=frames, aus=np.zeros((3, 17), np.float32), label=label, apex_index=2,
                              source_kind=kind, identity=f"id{i % 5}", dataset=dataset, subject=subject,
                              clip=f"c{i}", onset_frame=-1, apex_frame=-1, sample_seed=i, sample_index=i)
    merge_dataset(directory, expected_shards=2)
    return [(d, s) for _, d, s in provenance]


def test_pretrain_applies_leakage_guard_per_fold_then_finetunes(casme2_root, tmp_path):
    """--pretrain shards:DIR: the guard drops the synthetic samples of the fold's test subjects before
    pre-training; the model is then fine-tuned per fold; selection uses training subjects only."""
    from recognizers.protocols import canonical_subject_key

    shards = tmp_path / "shards"
    provenance = make_shards(shards)
    run = tmp_path / "run"
    args = _args(casme2_root, run, tmp_path / "flow", "--pretrain", f"shards:{shards}",
                 "--pretrain-epochs", "1", "--val-fraction", "0.2")
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    fold_info = json.loads((run / "folds/holdout/fold.json").read_text())
    test_subjects = {tuple(k) for k in fold_info["test_subjects"]}
    expected = sum(canonical_subject_key(d, s) in test_subjects for d, s in provenance)
    assert expected > 0 and fold_info["synthetic_removed_by_leakage_guard"] == expected
    # the guard reads the shard reader's provenance table directly, too
    from miex_gen.shards import DatasetReader
    from recognizers.protocols import filter_synthetic

    keep, removed = filter_synthetic(DatasetReader(shards), test_subjects)
    assert removed == expected and len(keep) == len(provenance) - expected
    (pretrain_dir,) = list((run / "pretrain").iterdir())
    pre = json.loads((pretrain_dir / "config.json").read_text())
    assert pre["train_data"]["samples"] == len(provenance) - expected and pre["config"]["epochs"] == 1
    fine = json.loads((run / "folds/holdout/train/config.json").read_text())
    assert fine["init"] == str(pretrain_dir / "model.pt")
    # model selection on an inner split of training subjects, never the test subjects
    selection = fold_info["selection"]
    assert selection["method"] == "inner subject split" and 1 <= selection["epochs"] <= 2
    assert not {tuple(k) for k in selection["val_subjects"]} & test_subjects
    assert fine["config"]["epochs"] == selection["epochs"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["leakage_guard_removed"] == {"holdout": expected} and summary["n"] == 6
    assert f"removed {expected} synthetic samples" in " ".join(result.output.split())


def test_torchrun_gathers_predictions_without_padding_duplicates(tmp_path):
    """2 gloo ranks, 9 test samples: DistributedSampler pads to 10; the run still scores 9 unique samples."""
    import os
    import subprocess
    import sys

    root = make_casme2_tree(tmp_path / "casme2", subjects=7)
    run = tmp_path / "run"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    args = _args(root, run, tmp_path / "flow")
    args[args.index("--holdout-fraction") + 1] = "0.4"  # round(0.4 * 7) = 3 subjects = 9 clips
    args[args.index("--epochs") + 1] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cli.main", *args]
    done = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = read_predictions(run / "predictions.csv")
    assert len(rows) == 9 and len({r.sample_id for r in rows}) == 9
    folds = json.loads((run / "folds.json").read_text())
    assert {(r.dataset, r.subject) for r in rows} == {tuple(k) for k in folds[0]["test_subjects"]}
    assert json.loads((run / "summary.json").read_text())["n"] == 9


def test_bad_options_fail_with_one_clear_line(casme2_root, tmp_path):
    runner = CliRunner()
    cases = [
        (["--folds", "3"], "outside 0-0"),
        (["--protocol", "kfold"], "unknown protocol"),
        (["--model", "nonet"], "nonet"),
        (["--train-option", "val_split=0.2"], "--val-fraction"),
    ]
    for i, (extra, message) in enumerate(cases):
        args = _args(casme2_root, tmp_path / f"run{i}", tmp_path / "flow")
        for flag, value in zip(extra[::2], extra[1::2]):
            if flag in args and flag != "--train-option":
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output and result.output.startswith("error:"), (extra, result.output)
        assert not (tmp_path / f"run{i}" / "config.json").exists()

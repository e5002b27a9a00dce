"""``miex data info|validate|preview|merge`` through click's CliRunner (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from miex_gen.shards import shard_name

from shard_helpers import write_dataset


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def unmerged(tmp_path) -> Path:
    d = tmp_path / "ds"
    write_dataset(d, merge=False)
    return d


def test_help_lists_the_data_commands(runner):
    result = runner.invoke(cli, ["data", "--help"])
    assert result.exit_code == 0
    for name in ("info", "validate", "preview", "merge"):
        assert name in result.output


def test_merge_then_validate_then_info(runner, unmerged):
    result = runner.invoke(cli, ["data", "validate", str(unmerged)])
    assert result.exit_code == 1 and "manifest.json: file:" in result.output
    result = runner.invoke(cli, ["data", "merge", str(unmerged), "--expected-shards", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "merged 2 shard(s), 9 samples" in result.output
    assert (unmerged / "manifest.json").exists() and (unmerged / "index.h5").exists()
    result = runner.invoke(cli, ["data", "validate", str(unmerged)])
    assert result.exit_code == 0 and "valid" in result.output
    result = runner.invoke(cli, ["data", "info", str(unmerged)])
    assert result.exit_code == 0, result.output
    for text in ("samples", "9", "3×16×20", "negative", "exp", "test", "abc123", "size on disk"):
        assert text in result.output


def test_validate_prints_one_line_per_problem_and_exits_1(runner, unmerged):
    assert runner.invoke(cli, ["data", "merge", str(unmerged)]).exit_code == 0
    (unmerged / shard_name(1)).unlink()
    with open(unmerged / shard_name(0), "r+b") as handle:
        handle.truncate(4096)
    result = runner.invoke(cli, ["data", "validate", str(unmerged), "--quick"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("shard-")]
    assert any(line.startswith("shard-00000.h5: file: cannot be opened") for line in lines)
    assert any(line.startswith("shard-00000.h5: sha256:") for line in lines)
    assert any(line.startswith("shard-00001.h5: file: listed in manifest.json but missing") for line in lines)
    assert any(line.startswith("index.h5: attrs/shard_files:") for line in result.output.splitlines())
    assert "4 problem(s)" in result.output


def test_preview_writes_png_and_gif(runner, unmerged, tmp_path):
    out = tmp_path / "sheet.png"
    result = runner.invoke(cli, ["data", "preview", str(unmerged), "-o", str(out), "-n", "3", "--gif"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.with_suffix(".gif").exists()


@pytest.mark.parametrize("command", ["info", "validate", "preview", "merge"])
def test_not_a_dataset_is_one_clean_error_line(runner, tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["data", command, str(empty)] + (["-o", str(tmp_path / "x.png")] if command == "preview" else [])
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(empty) in lines[0], result.output
    assert "Traceback" not in result.output


def test_missing_path_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["data", "info", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output

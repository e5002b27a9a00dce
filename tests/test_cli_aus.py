"""``miex aus pool build / info`` in-process with CliRunner, on fixture trees."""

from __future__ import annotations

import pytest
from au_fixture_trees import make_ckplus, make_megc2019, write_clip_au
from click.testing import CliRunner

from cli.main import cli
from miex_gen.au_sources import AuPool
from miex_gen.datasets import load_ckplus, load_megc2019


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    megc = make_megc2019(base / "megc")
    ck = make_ckplus(base / "ck")
    au_dir = base / "aus"
    for i, clip in enumerate([*load_megc2019(megc), *load_ckplus(ck)]):
        write_clip_au(au_dir, clip, seed=i)
    return base, megc, ck, au_dir


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_build_mie_with_fold_and_loso(trees):
    base, megc, _, au_dir = trees
    out = base / "mie.h5"
    result = run("aus", "pool", "build", "mie", f"megc2019:{megc}", "--au-dir", au_dir, "-o", out)
    assert result.exit_code == 0, result.output
    full = AuPool.load(out)
    assert len(full) >= 4 and ("samm", "006") in full.subjects()
    # sub01 is a fold-2 test subject, samm 006 a fold-1 one: --fold miex3:1 keeps sub01, drops 006
    result = run("aus", "pool", "build", "mie", f"megc2019:{megc}", "--au-dir", au_dir, "--fold", "miex3:1",
                 "-o", base / "f1.h5")
    assert result.exit_code == 0, result.output
    fold1 = AuPool.load(base / "f1.h5")
    assert ("samm", "006") not in fold1.subjects() and ("casme2", "sub01") in fold1.subjects()
    assert fold1.attrs["fold"] == "miex3:1"
    result = run("aus", "pool", "build", "mie", f"megc2019:{megc}", "--au-dir", au_dir, "--loso", "casme2:1",
                 "-o", base / "loso.h5")
    assert result.exit_code == 0, result.output
    assert ("casme2", "sub01") not in AuPool.load(base / "loso.h5").subjects()
    subjects = base / "subjects.txt"
    subjects.write_text("# keep one\nsmic s1\n")
    run("aus", "pool", "build", "mie", f"megc2019:{megc}", "--au-dir", au_dir, "--subjects", subjects, "-o", base / "s.h5")
    assert AuPool.load(base / "s.h5").subjects() == {("smic", "s01")}


def test_build_mae_exp_and_info_with_plot(trees):
    base, _, ck, au_dir = trees
    result = run("aus", "pool", "build", "mae", f"ckplus:{ck}", "--au-dir", au_dir, "-o", base / "mae.h5",
                 "--seed", 3, "--draws", 4)
    assert result.exit_code == 0, result.output
    assert "12 z^mae entries" in result.output
    result = run("aus", "pool", "build", "exp", "--n-per-class", 20, "-o", base / "exp.h5", "--seed", 1)
    assert result.exit_code == 0 and "60 z^exp entries" in result.output
    png = base / "means.png"
    result = run("aus", "pool", "info", base / "mae.h5", base / "exp.h5", "--plot", png)
    assert result.exit_code == 0, result.output
    assert "negative" in result.output and "mean apex AU per class" in result.output and "AU12" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line(trees, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"junk")
    result = CliRunner().invoke(cli, ["aus", "pool", "info", str(bad)])
    assert result.exit_code == 1 and "not an HDF5 file" in result.output
    result = CliRunner().invoke(cli, ["aus", "pool", "build", "mie", f"megc2019:{trees[1]}", "--au-dir",
                                      str(trees[3]), "--fold", "miex3:7", "-o", str(tmp_path / "x.h5")])
    assert result.exit_code == 1 and "miex3:0" in result.output
    assert not (tmp_path / "x.h5").exists()

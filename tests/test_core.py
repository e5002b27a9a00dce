"""The foundation every other module relies on: AU vocabulary, seeds, atomic writes, CLI shell."""

from __future__ import annotations

import click
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import CommonOptions, KindPath, MiexGroup, cli, common_options
from miex_gen import aus
from miex_gen.atomic import atomic_path, atomic_write_json, is_temp_file, remove_stale_temp_files
from miex_gen.device import resolve_device
from miex_gen.errors import ConfigError, DataError, MiexError
from miex_gen.seeding import derive_seed, numpy_rng, torch_generator


def test_au_order_is_ganimation_order():
    assert aus.AU_NAMES == ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                            "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
    assert aus.OPENFACE_COLUMNS[8] == "AU12_r"


def test_au_names_are_canonicalised_and_unknown_rejected():
    assert aus.canonical_au_name(" au12_r ") == "AU12"
    assert aus.au_index("6") == aus.AU_NAMES.index("AU06")
    with pytest.raises(DataError, match="AU11 is not one of the 17"):
        aus.au_index("AU11")


def test_feat20_mapping_roundtrip_and_blink_alias():
    vec = np.arange(1, 18, dtype=np.float32) / 4
    v20 = aus.to_feat20(vec)
    assert v20.shape == (20,)
    assert v20[aus.FEAT_AU_NAMES.index("AU43")] == vec[aus.AU_INDEX["AU45"]]
    for missing in ("AU11", "AU24", "AU28"):
        assert v20[aus.FEAT_AU_NAMES.index(missing)] == 0
    np.testing.assert_array_equal(aus.from_feat20(v20), vec)


def test_model_scale_is_division_by_five_for_numpy_and_torch():
    import torch

    np.testing.assert_allclose(aus.to_model_scale(np.full(17, 5.0)), 1.0)
    assert torch.allclose(aus.to_model_scale(torch.full((2, 17), 2.5)), torch.full((2, 17), 0.5))


def test_check_aus_rejects_wrong_shape_range_and_nan():
    with pytest.raises(DataError, match="17 values"):
        aus.check_aus(np.zeros(16), where="x")
    with pytest.raises(DataError, match="0-5 scale"):
        aus.check_aus(np.full(17, 6.0), where="x")
    with pytest.raises(DataError, match="NaN"):
        aus.check_aus(np.full(17, np.nan), where="x")
    assert aus.au_vector(AU12=2)[aus.AU_INDEX["AU12"]] == 2


def test_seeds_are_reproducible_and_key_dependent():
    a = numpy_rng(7, "plan", 3).random(4)
    b = numpy_rng(7, "plan", 3).random(4)
    c = numpy_rng(7, "plan", 4).random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert derive_seed(1, "x") == derive_seed(1, "x") != derive_seed(2, "x")
    import torch

    t1 = torch.rand(3, generator=torch_generator(5, "gan"))
    t2 = torch.rand(3, generator=torch_generator(5, "gan"))
    assert torch.equal(t1, t2)


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            assert is_temp_file(tmp)
            raise RuntimeError("crash")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"a": 1})
    assert target.read_text().strip().startswith("{")
    (tmp_path / ".x.h5.tmp-1-ab").write_bytes(b"stale")
    assert len(remove_stale_temp_files(tmp_path)) == 1


def test_device_resolution():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu-ish")


def test_error_message_is_one_line_with_fix():
    err = MiexError("bad value\nin table", hint="use 0-5", path="x.csv")
    assert str(err) == "x.csv: bad value in table (fix: use 0-5)"


def _probe_app() -> click.Group:
    @click.group(cls=MiexGroup)
    def app():
        pass

    @app.command()
    @click.argument("data", type=KindPath(("shards", "celeba"), must_exist=False))
    @common_options
    def probe(data, common: CommonOptions):
        if data.kind == "celeba":
            raise DataError("no images in folder", path=data.path, hint="point at img_align_celeba/")
        click.echo(f"{data.kind} {data.path} seed={common.seed} device={common.device} v={common.verbosity}")

    return app


def test_shared_options_come_after_the_command_name():
    result = CliRunner().invoke(_probe_app(), ["probe", "shards:some/dir", "--seed", "3", "--device", "cpu", "-v"])
    assert result.exit_code == 0, result.output
    assert "shards some/dir seed=3 device=cpu v=1" in result.output


def test_kind_path_rejects_unknown_kind_and_missing_colon():
    app = _probe_app()
    bad_kind = CliRunner().invoke(app, ["probe", "zip:x"])
    assert bad_kind.exit_code == 2 and "unknown kind 'zip'" in bad_kind.output
    no_colon = CliRunner().invoke(app, ["probe", "justapath"])
    assert no_colon.exit_code == 2 and "is not KIND:PATH" in no_colon.output


def test_library_error_becomes_one_readable_line_and_nonzero_exit():
    result = CliRunner().invoke(_probe_app(), ["probe", "celeba:/nowhere"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: /nowhere: no images in folder (fix: point at img_align_celeba/)"]
    verbose = CliRunner().invoke(_probe_app(), ["probe", "celeba:/nowhere", "-v"])
    assert "Traceback" in verbose.output and verbose.exit_code == 1


def test_version_and_help():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("miex ")
    assert runner.invoke(cli, ["--help"]).exit_code == 0


def _config_app() -> click.Group:
    @click.group(cls=MiexGroup)
    def app():
        pass

    @app.group()
    def data():
        pass

    @data.command()
    @click.option("-n", "count", type=int, default=16)
    @click.option("--gif", is_flag=True)
    @common_options
    def preview(count, gif, common: CommonOptions):
        click.echo(f"n={count} gif={gif} seed={common.seed}")

    return app


def test_config_file_supplies_defaults_for_any_command_and_flags_win(tmp_path):
    toml = tmp_path / "miex.toml"
    toml.write_text("[data.preview]\ncount = 4\ngif = true\nseed = 9\n")
    app = _config_app()
    result = CliRunner().invoke(app, ["data", "preview", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "n=4 gif=True seed=9"
    result = CliRunner().invoke(app, ["data", "preview", "--config", str(toml), "-n", "2", "--seed", "1"])
    assert result.output.strip() == "n=2 gif=True seed=1"
    toml.write_text("[data.preview]\ncolour = 'red'\n")
    bad = CliRunner().invoke(app, ["data", "preview", "--config", str(toml)])
    assert bad.exit_code == 1 and "has no option 'colour'" in bad.output
    toml.write_text("[data.preview]\ncount = 'many'\n")
    bad = CliRunner().invoke(app, ["data", "preview", "--config", str(toml)])
    assert bad.exit_code == 1 and "option 'count'" in bad.output

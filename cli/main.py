"""The ``miex`` click group, shared options, the ``kind:path`` type and the one error handler."""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from miex_gen import __version__
from miex_gen.errors import MiexError

# results go to stdout, logs/progress/errors to stderr
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_COMMON_KEY = "miex.common"


@dataclass(frozen=True)
class CommonOptions:
    """The options every command accepts (after its name): config, seed, device, verbosity."""

    config: Path | None = None
    seed: int | None = None
    device: str = "auto"
    verbosity: int = 0  # -q: -1, default 0, -v: 1, -vv: 2

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    @property
    def verbose(self) -> bool:
        return self.verbosity > 0


def _configure_logging(verbosity: int) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    root = logging.getLogger("miex")
    root.handlers[:] = [RichHandler(console=err_console, show_path=False, rich_tracebacks=False)]
    root.setLevel(level)
    root.propagate = False
    for name in ("miex_gen", "recognizers"):
        lib = logging.getLogger(name)
        lib.handlers[:] = root.handlers
        lib.setLevel(level)
        lib.propagate = False


def common_options(func: Callable[..., Any] | None = None, *, reads_config: bool = False) -> Any:
    """Add ``--config --seed --device -v -q`` to a command and pass them as ``common``.

    Commands with a config schema of their own (``generate``, ``train``, ``evaluate``, ``gan
    train``) read ``common.config`` themselves (``reads_config=True``). For every other command the
    TOML file supplies option defaults: keys of the table named after the command path
    (``[data.preview]``, ``[aus.pool.build]``), or of the top level, set options that were not given on
    the command line; an unknown key is an error naming it.
    """
    if func is None:
        return functools.partial(common_options, reads_config=reads_config)

    @click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="TOML file with options; flags given on the command line win.")
    @click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed for every random choice.")
    @click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N | mps")
    @click.option("-v", "--verbose", count=True, help="More output; -v also shows tracebacks on errors.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and results (no progress bars).")
    @functools.wraps(func)
    def wrapper(*args: Any, config: Path | None, seed: int | None, device: str, verbose: int, quiet: bool,
                **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if config is not None and not reads_config:
            file_values = _config_defaults(ctx, config, {**kwargs, "seed": seed, "device": device})
            seed = file_values.pop("seed", seed)
            device = file_values.pop("device", device)
            kwargs.update(file_values)
        common = CommonOptions(config=config, seed=seed, device=device, verbosity=-1 if quiet else verbose)
        ctx.meta[_COMMON_KEY] = common
        _configure_logging(common.verbosity)
        return func(*args, common=common, **kwargs)

    return wrapper


def _config_defaults(ctx: click.Context, path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """Option values from the TOML file for options left at their defaults on the command line."""
    from click.core import ParameterSource

    from miex_gen.errors import ConfigError
    from miex_gen.fileio import read_toml

    data = read_toml(path)
    table: Any = data
    for part in ctx.command_path.split()[1:]:
        table = table.get(part, {}) if isinstance(table, dict) else {}
    if not table:
        table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    params = {p.name: p for p in ctx.command.params if p.name}
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in given or name not in params:
            raise ConfigError(f"{path}: {ctx.command_path!r} has no option {key!r}",
                              hint=f"known options: {', '.join(sorted(n for n in given))}")
        if ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            try:
                out[name] = params[name].type_cast_value(ctx, value)
            except click.BadParameter as exc:
                raise ConfigError(f"{path}: option {key!r}: {exc.message}") from None
    return out


@dataclass(frozen=True)
class KindPathValue:
    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


class KindPath(click.ParamType):
    """``kind:path`` arguments such as ``celeba:ROOT``, ``shards:DIR``, ``megc2019:ROOT``."""

    name = "KIND:PATH"

    def __init__(self, kinds: tuple[str, ...] | None = None, *, must_exist: bool = True):
        self.kinds = tuple(kinds) if kinds else None
        self.must_exist = must_exist

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: D401
        return "|".join(f"{k}:PATH" for k in self.kinds) if self.kinds else "KIND:PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> KindPathValue:
        if isinstance(value, KindPathValue):
            return value
        text = str(value)
        kind, sep, path = text.partition(":")
        if not sep or not kind or not path:
            self.fail(f"{text!r} is not KIND:PATH (e.g. shards:out/demo)", param, ctx)
        kind = kind.strip().lower()
        if self.kinds and kind not in self.kinds:
            self.fail(f"unknown kind {kind!r} in {text!r}; expected one of {', '.join(self.kinds)}", param, ctx)
        resolved = Path(path).expanduser()
        if self.must_exist and not resolved.exists():
            self.fail(f"{resolved} does not exist (from {text!r})", param, ctx)
        return KindPathValue(kind, resolved)


def parse_key_values(pairs: tuple[str, ...] | list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (``--model-option``, ``-O``): values read as TOML scalars, else strings."""
    from miex_gen.errors import ConfigError
    from miex_gen.fileio import parse_toml_scalar

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {pair!r} is not KEY=VALUE")
        out[key.strip()] = parse_toml_scalar(value)
    return out


def _verbosity(ctx: click.Context) -> int:
    common = ctx.meta.get(_COMMON_KEY)
    if common is not None:
        return common.verbosity
    return sum(arg in ("-v", "--verbose") or arg.startswith("-vv") for arg in sys.argv[1:])


def report_error(ctx: click.Context, exc: BaseException) -> None:
    """Print one readable line for ``exc`` (plus the traceback with -v) and exit non-zero."""
    if _verbosity(ctx) > 0:
        err_console.print("".join(traceback.format_exception(exc)), markup=False)
    text = str(exc) if isinstance(exc, MiexError) else f"{type(exc).__name__}: {exc}"
    err_console.print("error: " + text, style="bold red", soft_wrap=True, markup=False)
    ctx.exit(2 if isinstance(exc, click.UsageError) else 1)


class MiexGroup(click.Group):
    """A click group whose invocation turns MiexError (and OS errors on user paths) into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except MiexError as exc:
            report_error(ctx, exc)
        except OSError as exc:
            report_error(ctx, exc)
        except KeyboardInterrupt:
            err_console.print("interrupted", style="bold red")
            ctx.exit(130)


def discover_commands() -> list[click.Command]:
    """Every ``COMMANDS`` list defined by a module of the ``cli`` package (except this one)."""
    import cli

    commands: list[click.Command] = []
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cli.{info.name}")
        commands.extend(getattr(module, "COMMANDS", []))
    return commands


@click.group(cls=MiexGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="miex", message="%(prog)s %(version)s")
def cli() -> None:
    """miex: synthetic micro-expression datasets (MiE-X) and MEGC-correct recognizers.

    Every command accepts --config FILE, --seed N, --device, -v and -q after its name.
    """


for _command in discover_commands():
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="miex")


if __name__ == "__main__":  # pragma: no cover
    main()

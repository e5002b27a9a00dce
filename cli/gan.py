"""``miex gan train`` and ``miex gan sample``: train a GANimation generator, look at what it learned."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cli.main import common_options, console, err_console

_LOSS_FLAGS = {"lambda_adv": "adv", "lambda_au": "au", "lambda_gp": "gp", "lambda_cyc": "cyc",
               "lambda_mask": "mask", "lambda_tv": "tv"}


@click.group("gan")
def gan() -> None:
    """Train GANimation generators (miex gan train) and look at them (miex gan sample)."""


def _explicit(ctx: click.Context, names: list[str]) -> set[str]:
    from click.core import ParameterSource

    return {n for n in names if ctx.get_parameter_source(n) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def _toml_options(path: Path | None) -> dict[str, Any]:
    """Options from ``--config FILE``: the ``[gan.train]`` table, else the top level."""
    if path is None:
        return {}
    from miex_gen.fileio import read_toml

    data = read_toml(path)
    section = data.get("gan", {}).get("train", data)
    return {str(k).replace("-", "_"): v for k, v in section.items() if not isinstance(v, dict)}


@gan.command("train")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Face folder: 128x128 crops, or photos to crop (see --crop).")
@click.option("--labels", type=click.Path(exists=True, path_type=Path),
              help="AU labels: a table CSV or a folder of per-image CSVs [default: labels.csv in --data, "
                   "else <stem>.csv beside each image or in processed/].")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--decay-epochs", type=click.IntRange(min=0), default=10, show_default=True,
              help="Last epochs over which the learning rate falls linearly (per iteration) to 0.")
@click.option("--batch-size", type=click.IntRange(min=1), default=25, show_default=True, help="Per process.")
@click.option("--image-size", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--conv-dim", type=click.IntRange(min=1), default=64, show_default=True, help="Width of G and D.")
@click.option("--repeat-num", type=click.IntRange(min=0), default=6, show_default=True, help="Residual blocks in G.")
@click.option("--dialect", type=click.Choice(["replicate", "official"]), default="replicate", show_default=True,
              help="Key and file naming of the checkpoints (and G's layer layout).")
@click.option("--loss-preset", type=click.Choice(["paper", "official", "replicate"]), default="paper",
              show_default=True, help="Loss weights of the paper, or of either implementation.")
@click.option("--lambda-adv", type=float, help="Override the preset's adversarial weight.")
@click.option("--lambda-au", type=float, help="Override the AU regression weight.")
@click.option("--lambda-gp", type=float, help="Override the gradient-penalty weight.")
@click.option("--lambda-cyc", type=float, help="Override the cycle-consistency weight.")
@click.option("--lambda-mask", type=float, help="Override the attention-magnitude weight.")
@click.option("--lambda-tv", type=float, help="Override the attention total-variation weight.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate of G and D.")
@click.option("--critic-steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Critic steps per generator step.")
@click.option("--aus-noise", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="U(-x, x) noise on target AUs (model scale, i.e. AU/5).")
@click.option("--no-flip", is_flag=True, help="No random horizontal flips.")
@click.option("--crop", type=click.Choice(["auto", "none", "detect"]), default="auto", show_default=True,
              help="auto: square images are taken as face crops, others are detected and cropped.")
@click.option("--amp", is_flag=True, help="bf16 autocast (CUDA only).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its training state.")
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Iterations between training-state saves (also saved every epoch and on Ctrl-C).")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop (saving the state) after this many iterations in all, e.g. to fit a job's time limit.")
@common_options(reads_config=True)
def train_cmd(common: Any, **opts: Any) -> None:
    """Train a GANimation generator and critic on labelled faces.

    Writes RUN/<epoch>_net_gen.pth (replicate naming; official: net_epoch_<N>_id_G.pth) every epoch,
    usable at once by `miex generate --renderer ganimation --checkpoint`, plus state.pt for --resume,
    samples/epoch_NNN.png, losses.csv and losses.png. Multi-GPU: torchrun --nproc_per_node N $(which miex) gan train ...
    """
    from miex_gen.errors import ConfigError
    from miex_gen.gan.config import TrainConfig, resume_config
    from miex_gen.gan.trainer import train

    ctx = click.get_current_context()
    toml = _toml_options(common.config)
    names = [p.name for p in ctx.command.params]
    explicit = _explicit(ctx, names)
    values: dict[str, Any] = {}
    for name in names:
        if name in ("resume", "config", "seed", "device", "verbose", "quiet"):
            continue
        if name in explicit:
            values[name] = opts[name]
        elif name in toml:
            values[name] = toml[name]
        elif not opts["resume"]:
            values[name] = opts[name]
    if "no_flip" in values:
        values["flip"] = not values.pop("no_flip")
    if "lr" in values:
        values["lr_g"] = values["lr_d"] = values.pop("lr")
    overrides = {_LOSS_FLAGS[k]: values.pop(k) for k in list(values) if k in _LOSS_FLAGS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        values["loss_overrides"] = overrides
    for key in ("data", "labels", "out"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    if common.seed is not None:
        values["seed"] = common.seed
    if "device" in explicit or not opts["resume"]:
        values["device"] = common.device
    values["progress"] = not common.quiet

    if opts["resume"]:
        config = resume_config(values.pop("out"), **values)
    else:
        if values.get("data") is None:
            raise ConfigError("--data is required for a new run", hint="give the face folder, or --resume a run")
        config = TrainConfig(**values)

    main_rank = int(os.environ.get("RANK", "0")) == 0
    callbacks, progress = _progress_callbacks(config.progress and main_rank)
    try:
        result = train(config, resume=opts["resume"], callbacks=callbacks)
    finally:
        if progress is not None:
            progress.stop()
    if main_rank:
        console.print(f"data: {result.data_summary}")
        state = "stopped" if result.stopped_early else "finished"
        console.print(f"{state} at iteration {result.iteration}/{result.total_iterations} "
                      f"({result.epochs_completed} epochs) in {result.run_dir}")
        if "generator" in result.files:
            console.print(f"generator: {result.files['generator']}")
        if result.stopped_early:
            console.print(f"continue with: miex gan train --out {result.run_dir} --resume")


@gan.command("sample")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("face", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--levels", default="0,1,2,3,4,5", show_default=True, help="AU intensities (0-5), comma-separated.")
@click.option("--au", "aus", multiple=True, help="AU to sweep (repeatable) [default: all 17].")
@click.option("--no-detect", is_flag=True, help="FACE is already a face crop: only resize it.")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Generator input size [default: the run's, else 128].")
@common_options
def sample_cmd(common: Any, checkpoint: Path, face: Path, out: Path, levels: str, aus: tuple[str, ...],
               no_detect: bool, image_size: int | None) -> None:
    """One face through a 0 -> 5 sweep of each AU, as a grid (rows AUs, columns intensities).

    CHECKPOINT is a generator file (either dialect) or a `miex gan train` run folder (its latest epoch).
    """
    from miex_gen.aus import AU_NAMES
    from miex_gen.errors import ConfigError
    from miex_gen.gan.sample import sample_sweep

    try:
        values = [float(v) for v in levels.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"--levels {levels!r} is not a comma-separated list of numbers") from exc
    if not values or min(values) < 0 or max(values) > 5:
        raise ConfigError(f"--levels {levels!r} must be numbers on the 0-5 AU scale")
    path = sample_sweep(checkpoint, face, out, levels=values, au_names=list(aus) or list(AU_NAMES),
                        detect=not no_detect, image_size=image_size, device=common.device)
    console.print(f"wrote {path}")


def _progress_callbacks(show: bool):
    from miex_gen.gan.trainer import Callbacks

    if not show:
        return Callbacks(), None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=err_console,
                        transient=False)
    tasks: dict[str, int] = {}

    def on_data(done: int, total: int) -> None:
        if "data" not in tasks:
            progress.start()
            tasks["data"] = progress.add_task("caching faces", total=total, losses="")
        progress.update(tasks["data"], completed=done)

    def on_start(first: int, total: int) -> None:
        progress.start()
        tasks["train"] = progress.add_task("training", total=total, completed=first, losses="")

    def on_iteration(iteration: int, row: dict) -> None:
        text = f"D {row['d_total']:.3g}"
        if "g_total" in row:
            tasks["g"] = row["g_total"]
        if "g" in tasks:
            text += f"  G {tasks['g']:.3g}"
        progress.update(tasks["train"], completed=iteration + 1, losses=text)

    def on_epoch(epoch: int, paths: dict) -> None:
        progress.console.print(f"epoch {epoch}: {paths['generator'].name}, {paths['grid']}")

    return Callbacks(on_data=on_data, on_start=on_start, on_iteration=on_iteration, on_epoch=on_epoch), progress


COMMANDS = [gan]

"""``miex generate``: build a synthetic micro-expression dataset (parse, call the library, print)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .main import CommonOptions, common_options, console, err_console


def _progress_printer(quiet: bool):
    """A progress callback for ``miex_gen.generate.generate`` drawing a rich bar (or nothing)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    state: dict[str, Any] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TextColumn("shards {task.fields[shards]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=quiet)

    def callback(event: str, info: dict[str, Any]) -> None:
        if event == "status":
            if not quiet:
                err_console.print(f"[dim]{info['message']}…[/]")
        elif event == "start":
            progress.start()
            state["task"] = progress.add_task("rendering", total=info["total_samples"], rate="",
                                              shards=f"0/{info['shards']}")
            state["shards"], state["total_shards"], state["done"] = 0, info["shards"], 0
            state["t0"] = time.perf_counter()
        elif event == "samples":
            state["done"] += info["n"]
            elapsed = max(1e-6, time.perf_counter() - state["t0"])
            progress.update(state["task"], advance=info["n"], rate=f"{state['done'] / elapsed:.0f} samples/s")
        elif event == "shard":
            state["shards"] += 1
            progress.update(state["task"], shards=f"{state['shards']}/{state['total_shards']}")

    return progress, callback


@click.command("generate")
@click.option("--demo", "demo_out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Make the embedded demo dataset in this directory (needs nothing but the installed package).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output directory.")
@click.option("--ids", multiple=True, help="Identity source: celeba:ROOT | emotionnet:ROOT | folder:ROOT | demo (repeatable).")
@click.option("--num-ids", type=int, default=None, help="Use this many usable identities (default: all).")
@click.option("--min-ids", type=int, default=None, help="Fail if fewer usable identities remain after screening.")
@click.option("--source", "sources", multiple=True, help="AU source: mie=POOL.h5 | mae=POOL.h5 | exp (repeatable).")
@click.option("--mix", default=None, help="Source ratios, e.g. mie=0.5,mae=0.5 (default: equal).")
@click.option("--class-ratio", default=None, help="negative,positive,surprise ratios (default 1,1,1: balanced).")
@click.option("--samples-per-id", type=int, default=None, help="Samples per identity (default 3 x number of sources).")
@click.option("--replacement/--no-replacement", default=None, help="Draw pool triplets with replacement.")
@click.option("--au-jitter", type=float, default=None, help="Gaussian noise sigma on the 0-5 AU scale (default 0).")
@click.option("--frames", type=int, default=None, help="2 = onset, apex (default); T > 2 = a sequence.")
@click.option("--profile", type=click.Choice(["linear", "onset-apex-offset"]), default=None,
              help="Temporal AU profile for T > 2.")
@click.option("--renderer", default=None, help="warp (default, weight-free) or ganimation.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Generator weights for --renderer ganimation.")
@click.option("--image-size", type=int, default=None, help="Frame side in pixels (default 128).")
@click.option("--samples-per-shard", type=int, default=None, help="Samples per HDF5 shard (default 512).")
@click.option("--num-shards", type=int, default=None, help="Split the dataset into N shards instead.")
@click.option("--compression", default=None, help="Shard compression (default: the format's default; 'none' for off).")
@click.option("--workers", type=int, default=None, help="Local worker processes (joblib).")
@click.option("--batch-size", type=int, default=None, help="Samples per render call (default: the renderer's best).")
@click.option("--shards", "shard_subset", default=None, help="Make only these shards, e.g. 0-9,12 (Slurm arrays).")
@click.option("--overwrite", is_flag=True, default=None, help="Replace a dataset made with another configuration.")
@common_options(reads_config=True)
def generate(common: CommonOptions, demo_out: Path | None, **options: Any) -> None:
    """Build (or resume) a MiE-X-style synthetic dataset of HDF5 shards.

    \b
    Examples:
      miex generate --demo demo/
      miex generate --ids celeba:/data/celeba --num-ids 5000 --source exp \\
          --source mae=ck.h5 --source mie=fold0.h5 -o miex_celeba/ --workers 8
    """
    from miex_gen.config import GenerateConfig
    from miex_gen.generate import demo_config, generate as run_generate

    # flags given on the command line win over the TOML file, which wins over the defaults
    overrides = {
        "ids": list(options.pop("ids")) or None,
        "sources": list(options.pop("sources")) or None,
        "shards": options.pop("shard_subset"),
        "seed": common.seed,
        "device": common.device if common.device != "auto" else None,
        "progress": False if common.quiet else None,
        **options,
    }
    base = demo_config(demo_out) if demo_out is not None else GenerateConfig()
    if common.config is not None:
        base = GenerateConfig.from_toml(common.config, base=base)
    if demo_out is not None and overrides["out"] is None:
        overrides["out"] = demo_out
    config = base.with_overrides(**overrides)

    progress, callback = _progress_printer(common.quiet)
    try:
        result = run_generate(config, progress=callback)
    finally:
        progress.stop()
    _print_summary(result, common.quiet)


def _print_summary(result, quiet: bool) -> None:
    from rich.table import Table

    table = Table(title=f"miex generate → {result.out}", show_header=False)
    table.add_row("samples", f"{result.num_samples} in {result.num_shards} shard(s)")
    table.add_row("shards made / reused", f"{len(result.shards_made)} / {len(result.shards_reused)}")
    table.add_row("identities", f"{result.num_identities} used, {len(result.skipped_identities)} skipped"
                  + (" (see skipped.csv)" if result.skipped_identities else ""))
    table.add_row("config_hash", result.config_hash)
    table.add_row("time", f"{result.seconds:.1f} s")
    if not quiet:
        console.print(table)
    if result.complete:
        console.print(f"Dataset complete: {result.out}")
        console.print(f"Next: miex data preview {result.out} -o {result.out / 'preview.png'}")
        console.print(f"      miex data validate {result.out}")
    else:
        console.print(f"Shards made; {result.out} is not complete yet. When every shard exists, run: "
                      f"miex data merge {result.out}")


COMMANDS = [generate]

"""``miex data {info,validate,preview,merge}``: inspect, check, look at and index a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.main import CommonOptions, common_options, console

_PATH = click.Path(exists=True, path_type=Path)


def _counts(counts: dict[str, int]) -> str:
    total = max(1, sum(counts.values()))
    return ", ".join(f"{k} {v} ({100 * v / total:.0f} %)" for k, v in counts.items()) or "-"


@click.group("data")
def data() -> None:
    """Inspect, validate, preview and merge miex datasets (directories of HDF5 shards)."""


@data.command("info")
@click.argument("path", type=_PATH)
@common_options
def info(path: Path, common: CommonOptions) -> None:
    """Summary of a dataset directory or shard: samples, classes, frames, AU sources, renderer, size."""
    from rich.table import Table

    from miex_gen.shards import dataset_info
    from miex_gen.shards.card import human_bytes

    summary: dict[str, Any] = dataset_info(path)
    table = Table(title=f"miex dataset {path}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    planned = summary["planned_shards"]
    rows = [
        ("samples", str(summary["num_samples"])),
        ("shards", f"{summary['num_shards']}" + (f" of {planned} planned" if planned is not None else "")),
        ("frames (T×H×W)", f"{summary['num_frames']}×{summary['height']}×{summary['width']} RGB"),
        ("classes", _counts(summary["class_counts"])),
        ("AU sources", _counts(summary["source_kind_counts"])),
        ("AU provenance", _counts(summary["au_datasets"])),
        ("identities", str(summary["num_identities"])),
        ("renderer", summary["renderer"] + (f" (weights {summary['renderer_weights_sha256'][:16]}…)"
                                            if summary["renderer_weights_sha256"] else "")),
        ("config hash", str(summary["config_hash"])),
        ("compression", str(summary["compression"])),
        ("size on disk", human_bytes(summary["size_bytes"])),
        ("manifest / index", f"{'yes' if summary['has_manifest'] else 'no'} / "
                             f"{'yes' if summary['has_index'] else 'no'}"),
        ("created", f"{summary['created_utc']} by miex {summary['miex_version']}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@data.command("validate")
@click.argument("path", type=_PATH)
@click.option("--quick", is_flag=True, help="Skip reading every frame back (schema, values and checksums only).")
@common_options
def validate(path: Path, quick: bool, common: CommonOptions) -> None:
    """Check every shard and the manifest; print one line per problem; exit 1 if any."""
    from miex_gen.shards import validate_dataset

    problems = validate_dataset(path, check_frames=not quick)
    for problem in problems:
        console.print(str(problem), markup=False, soft_wrap=True)
    if problems:
        console.print(f"{len(problems)} problem(s) in {path}", style="bold red", markup=False)
        click.get_current_context().exit(1)
    if not common.quiet:
        console.print(f"{path}: valid", style="green", markup=False)


@data.command("preview")
@click.argument("path", type=_PATH)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@click.option("-n", "count", type=click.IntRange(min=1), default=16, show_default=True,
              help="Samples (rows) in the sheet.")
@click.option("--gif", is_flag=True, help="Also write an animated GIF next to the PNG.")
@common_options
def preview(path: Path, output: Path, count: int, gif: bool, common: CommonOptions) -> None:
    """Contact sheet: one row per sample with all its frames, its label and strongest apex AUs."""
    from miex_gen.shards import write_preview

    written = write_preview(path, output, n=count, gif=gif)
    console.print(f"wrote {written}" + (f" and {written.with_suffix('.gif')}" if gif else ""), markup=False)


@data.command("merge")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--expected-shards", type=click.IntRange(min=1), default=None,
              help="Refuse unless shards 0..N-1 are all present.")
@click.option("--no-verify", is_flag=True, help="Do not check every shard before writing the manifest.")
@common_options
def merge(directory: Path, expected_shards: int | None, no_verify: bool, common: CommonOptions) -> None:
    """(Re)build manifest.json, DATASET_CARD.md and index.h5 from the shards present."""
    from miex_gen.shards import merge_dataset
    from miex_gen.shards.card import human_bytes

    manifest = merge_dataset(directory, expected_shards=expected_shards, verify=not no_verify)
    missing = manifest["missing_shards"]
    console.print(f"merged {manifest['num_shards']} shard(s), {manifest['num_samples']} samples "
                  f"({human_bytes(manifest['size_bytes'])}) into {directory}"
                  + (f"; {len(missing)} planned shard(s) missing" if missing else ""), markup=False)


COMMANDS = [data]

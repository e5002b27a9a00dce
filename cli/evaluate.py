"""``miex evaluate`` and ``miex report``: parse options, call ``recognizers.evaluate`` / ``recognizers.results``, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .main import KindPath, common_options, console, err_console, parse_key_values

REAL_KINDS = ("megc2019", "casme2", "samm", "smic")


def _config_tables(path: Path | None) -> dict[str, dict[str, Any]]:
    """``[evaluate]``, ``[train]`` and ``[pretrain]`` tables of the --config TOML file."""
    if path is None:
        return {}
    from miex_gen.errors import ConfigError
    from miex_gen.fileio import read_toml

    data = read_toml(path)
    unknown = set(data) - {"evaluate", "train", "pretrain"}
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(sorted(unknown))} in the config",
                          hint="use [evaluate], [train] and [pretrain]", path=path)
    return {k: dict(v) for k, v in data.items()}


def _print_scores(summary: dict[str, Any], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("", "n", "UF1", "UAR", "accuracy", "F1 neg / pos / sur"):
        table.add_column(column, justify="right" if column else "left")
    for name, s in summary["scores"].items():
        f1 = " / ".join(f"{v:.4f}" for v in s["f1_per_class"].values())
        table.add_row(name, str(s["n"]), f"{s['uf1']:.4f}", f"{s['uar']:.4f}", f"{s['accuracy']:.4f}", f1)
    console.print(table)
    for name, s in summary["scores"].items():
        for note in s.get("undefined", []):
            err_console.print(f"warning: {note}", style="yellow")
    if summary.get("complete") is False:
        missing = summary.get("missing_folds", [])
        err_console.print(f"warning: {len(missing)} fold(s) not evaluated yet (e.g. {', '.join(missing[:3])}); "
                          "these scores cover the completed folds only", style="yellow")


@click.command("evaluate")
@click.option("--protocol", default=None, metavar="NAME",
              help="loso (default) | loso:<dataset> | miex-3fold | holdout")
@click.option("--model", "model", default=None, help="branches | apex | off_apexnet | ststnet | frl_dgt")
@click.option("--data", "data", type=KindPath(REAL_KINDS), multiple=True,
              help="Real data (repeatable): megc2019:ROOT, casme2:ROOT, samm:ROOT, smic:ROOT.")
@click.option("--pretrain", type=KindPath(("shards",)), default=None,
              help="shards:DIR: pre-train on synthetic data (leakage guard per fold), then fine-tune per fold.")
@click.option("--no-finetune", is_flag=True, help="With --pretrain: test the synthetic-only model.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory.")
@click.option("--folds", default=None, metavar="SPEC", help="Subset of folds: indices/ranges (0,3-5) or names.")
@click.option("--resume", is_flag=True, help="Continue a half-finished evaluation in --out.")
@click.option("--holdout-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="holdout: fraction of each dataset's subjects tested [0.2].")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Choose the epoch count on this fraction of each fold's TRAINING subjects [0: fixed epochs].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs on real data per fold.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--pretrain-epochs", type=click.IntRange(min=1), default=None)
@click.option("--pretrain-lr", type=float, default=None)
@click.option("--model-option", "model_option", multiple=True, metavar="KEY=VALUE", help="Extra model option.")
@click.option("--train-option", "train_option", multiple=True, metavar="KEY=VALUE",
              help="Any other training option for the real-data stage (e.g. schedule=linear).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Folds in parallel [1 on CPU, one per GPU on CUDA].")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader workers per fold.")
@common_options(reads_config=True)
def evaluate(common: Any, protocol: str | None, model: str | None, data: tuple[Any, ...], pretrain: Any,
             no_finetune: bool, out: Path, folds: str | None, resume: bool, holdout_fraction: float | None,
             val_fraction: float | None, epochs: int | None, batch_size: int | None, lr: float | None,
             pretrain_epochs: int | None, pretrain_lr: float | None, model_option: tuple[str, ...],
             train_option: tuple[str, ...], jobs: int | None, workers: int | None) -> None:
    """Train and test every fold of a protocol; write predictions, the MEGC log, summary and plot to --out."""
    from miex_gen.errors import ConfigError
    from recognizers.evaluate import EvaluationConfig
    from recognizers.evaluate import evaluate as run_evaluate

    tables = _config_tables(common.config)
    values: dict[str, Any] = dict(tables.get("evaluate", {}))
    train = {**tables.get("train", {}), **parse_key_values(train_option, "--train-option")}
    pre = dict(tables.get("pretrain", {}))
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            train[key] = value
    for key, value in (("epochs", pretrain_epochs), ("lr", pretrain_lr)):
        if value is not None:
            pre[key] = value
    if model_option:
        train["model_options"] = {**train.get("model_options", {}), **parse_key_values(model_option, "--model-option")}
    for key, value in (("protocol", protocol), ("model", model), ("folds", folds), ("jobs", jobs),
                       ("holdout_fraction", holdout_fraction), ("val_fraction", val_fraction),
                       ("num_workers", workers)):
        if value is not None:
            values[key] = value
    if data:
        values["data"] = [str(d) for d in data]
    if pretrain is not None:
        values["pretrain"] = str(pretrain)
    if no_finetune:
        values["finetune"] = False
    if common.seed is not None:
        values["seed"] = common.seed
    if "model" not in values:
        raise ConfigError("no model given", hint="pass --model NAME (branches, apex, off_apexnet, ststnet, frl_dgt)")
    if not values.get("data"):
        raise ConfigError("no real data given", hint="pass --data megc2019:ROOT (or casme2:/samm:/smic:ROOT)")
    unknown = set(values) - set(EvaluationConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[evaluate]: unknown option(s) {', '.join(sorted(unknown))}")
    config = EvaluationConfig(**{**values, "data": tuple(values["data"]), "train": train, "pretrain_train": pre,
                                 "device": common.device, "progress": not common.quiet})
    result = run_evaluate(config, out, resume=resume)
    if result.summary:
        for fold, count in result.removed_synthetic.items():
            if count:
                err_console.print(f"leakage guard: fold {fold}: removed {count} synthetic samples "
                                  "whose AUs came from its test subjects")
        done = f"{len(result.folds_run)} fold(s) run" + (f", {len(result.folds_skipped)} already complete"
                                                        if result.folds_skipped else "")
        _print_scores(result.summary, f"{config.protocol} · {config.model} · {done} · pooled over all test predictions")
        console.print(f"outputs in {out}")


@click.command("report")
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("--no-plot", is_flag=True, help="Do not redraw the confusion-matrix plot.")
@common_options
def report(common: Any, run: Path, no_plot: bool) -> None:
    """Re-compute every number of a run from RUN/predictions.csv (rewrites summary.json, megc_log.txt, plot).

    RUN may also be a predictions CSV or a MEGC log file: it is scored and nothing is written.
    """
    from recognizers import results

    if run.is_dir():
        summary = results.report(run, plot=not no_plot)
        _print_scores(summary, f"{run} · re-computed from {results.PREDICTIONS_FILE}")
        console.print(f"rewrote {results.SUMMARY_FILE}, {results.MEGC_LOG_FILE}"
                      + ("" if no_plot else f", {results.CONFUSION_FILE}") + f" in {run}")
        return
    rows = results.read_predictions(run) if run.suffix.lower() == ".csv" else results.parse_megc_log(run)
    _print_scores(results.summary_dict(rows), f"{run} · {len(rows)} predictions")


COMMANDS = [evaluate, report]

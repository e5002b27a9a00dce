"""``miex train`` and ``miex predict``: parse options, call ``recognizers.train``, print the result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .main import KindPath, common_options, console, parse_key_values

DATA_KINDS = ("shards", "casme2", "samm", "smic", "megc2019")  # mirrors recognizers.data.open.DATA_KINDS


def _open_all(values: tuple[Any, ...], crop_size: int) -> Any:
    from recognizers.data import ConcatSource, open_data

    sources = [open_data(v.kind, v.path, crop_size=crop_size) for v in values]
    return sources[0] if len(sources) == 1 else ConcatSource(sources)


@click.command("train")
@click.option("--model", "model", required=False, help="branches | apex | off_apexnet | ststnet | frl_dgt")
@click.option("--data", "data", type=KindPath(DATA_KINDS), multiple=True, required=True,
              help="Training data (repeatable): shards:DIR, casme2:ROOT, samm:ROOT, smic:ROOT, megc2019:ROOT.")
@click.option("--val-data", type=KindPath(DATA_KINDS), multiple=True, help="Validation data, scored every epoch.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory.")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default=None)
@click.option("--weight-decay", type=float, default=None)
@click.option("--schedule", type=click.Choice(["constant", "linear", "step", "cosine"]), default=None)
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=None)
@click.option("--grad-clip", type=float, default=None, help="Max gradient L2 norm (0: off).")
@click.option("--amp/--no-amp", default=None, help="CUDA mixed precision.")
@click.option("--val-split", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Hold out this fraction of subjects/identities for validation.")
@click.option("--val-by", type=click.Choice(["subject", "identity"]), default=None)
@click.option("--apex-r", type=click.FloatRange(min=0), default=None, help="Apex randomisation ratio (0: off).")
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips in training (flow: u negated).")
@click.option("--rotation", type=click.FloatRange(min=0), default=None, help="Max random rotation in degrees.")
@click.option("--jitter", type=click.FloatRange(min=0), default=None, help="Colour-jitter strength (0: off).")
@click.option("--flow-method", type=click.Choice(["tvl1", "dis"]), default=None)
@click.option("--crop-size", type=click.IntRange(min=16), default=None, help="Face-crop side for real clips.")
@click.option("--num-classes", type=click.IntRange(min=2), default=None)
@click.option("--pretrained", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Local ImageNet ResNet-18 weights (branches, apex).")
@click.option("--model-option", "model_option", multiple=True, metavar="KEY=VALUE", help="Extra model option.")
@click.option("--init", "init", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tune a synthetic-pretrained model).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop after this many epochs in this invocation (continue later with --resume).")
@click.option("--flow-cache", type=click.Path(file_okay=False, path_type=Path), default=None)
@common_options(reads_config=True)
def train(common: Any, model: str | None, data: tuple[Any, ...], val_data: tuple[Any, ...], out: Path,
          init: Path | None, resume: bool, model_option: tuple[str, ...], pretrained: Path | None,
          **flags: Any) -> None:
    """Train a recognizer on shards or real clips; checkpoints, metrics.csv/png and config.json go to --out."""
    from miex_gen.errors import ConfigError
    from recognizers.config import TrainConfig, load_config_file
    from recognizers.train import crop_size_for, fit

    values: dict[str, Any] = load_config_file(common.config) if common.config else {}
    renames = {"workers": "num_workers"}
    for key, value in flags.items():
        if value is not None:
            values[renames.get(key, key)] = value
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    if model is not None:
        values["model"] = model
    if "model" not in values:
        raise ConfigError("no model given", hint="pass --model NAME (branches, apex, off_apexnet, ststnet, frl_dgt)")
    options = dict(values.get("model_options") or {})
    options.update(parse_key_values(model_option, "--model-option"))
    if pretrained is not None:
        options["pretrained"] = str(pretrained)
    values["model_options"] = options
    if common.seed is not None:
        values["seed"] = common.seed
    if common.device != "auto" or "device" not in values:
        values["device"] = common.device
    values["progress"] = not common.quiet
    if values.get("flow_cache") is not None:
        values["flow_cache"] = str(values["flow_cache"])
    config = TrainConfig.for_model(values.pop("model"), **values)

    from recognizers.models import create_model

    spec = create_model(config.model, num_classes=config.num_classes, **config.model_options).input_spec
    crop = crop_size_for(config, spec)
    train_source = _open_all(data, crop)
    val_source = _open_all(val_data, crop) if val_data else None
    result = fit(config, train_source, val_data=val_source, out_dir=out, init=init, resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    if result.history:
        last = result.history[-1]
        shown = {k: v for k, v in last.items() if k in ("epoch", "train_loss", "train_uf1", "val_loss", "val_uf1", "val_uar")}
        console.print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    state = "finished" if result.completed else f"stopped after epoch {len(result.history)} (continue with --resume)"
    console.print(f"{state}: {result.checkpoint}")


@click.command("predict")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--data", "data", type=KindPath(DATA_KINDS), multiple=True, required=True, help="Data to predict.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV to write.")
@click.option("--fold", default="", help="Value for the CSV's fold column.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--flow-cache", type=click.Path(file_okay=False, path_type=Path), default=None)
@common_options
def predict(common: Any, checkpoint: Path, data: tuple[Any, ...], output: Path, fold: str, batch_size: int,
            workers: int, flow_cache: Path | None) -> None:
    """Write per-sample predictions (dataset, subject, clip, truth, prediction, fold, sample_id, probs)."""
    from recognizers.config import TrainConfig
    from recognizers.train import crop_size_for, known_config_fields, load_model, predict as run_predict, write_predictions_csv

    model, ckpt = load_model(checkpoint)
    config = TrainConfig.from_dict(known_config_fields(ckpt["config"]))
    source = _open_all(data, crop_size_for(config, model.input_spec))
    rows = run_predict(model, source, device=common.device, batch_size=batch_size, num_workers=workers,
                       options=config.data_options(), flow_cache=flow_cache)
    write_predictions_csv(rows, output, fold=fold, class_names=tuple(ckpt.get("class_names") or ()))
    correct = sum(r.truth == r.prediction for r in rows)
    console.print(f"{len(rows)} predictions ({correct} correct) -> {output}")


COMMANDS = [train, predict]

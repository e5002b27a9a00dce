"""Train and apply recognizers: ``fit`` (one run, resumable, torchrun-aware) and ``predict``.

Library API (used by ``miex train`` / ``miex predict`` and by ``miex evaluate`` once per fold)::

    result = fit(TrainConfig.for_model("branches", epochs=30), train_source, val_data=None, out_dir=RUN)
    rows = predict(result.checkpoint, test_source, device="auto")

Reproducibility: the model is initialised from ``derive_seed(seed, "init")``; every epoch reseeds
torch from ``(seed, "epoch", epoch, rank)``, the batch order is a function of ``(seed, epoch)`` and
each sample's augmentation of ``(seed, epoch, index)``. A run stopped after epoch k and resumed from
its checkpoint therefore ends with the same weights as an uninterrupted run (on the same device and
software). RNG states are stored in every checkpoint as well.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from miex_gen.aus import CLASS_NAMES
from miex_gen.atomic import atomic_write_json, remove_stale_temp_files
from miex_gen.device import resolve_device
from miex_gen.errors import CheckpointError, ConfigError, DataError
from miex_gen.seeding import derive_seed, numpy_rng, torch_generator
from miex_gen.versions import environment_info

from .checkpoint import load_checkpoint, load_model_state, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data.dataset import DataOptions, RecognizerDataset
from .data.sampler import EpochBatchSampler
from .data.sources import SampleSource
from .history import plot_history, write_history_csv
from .models.registry import InputSpec, RecognizerModel, create_model

log = logging.getLogger("recognizers.train")

LAST = "last.pt"  # full state after the latest completed epoch (what --resume reads)
FINAL = "model.pt"  # full state after the last epoch (what predict and --init read)


@dataclass
class FitResult:
    checkpoint: Path  # FINAL, or LAST when the run stopped early (stop_after)
    history: list[dict[str, Any]]
    completed: bool = True  # False when stop_after ended the run before config.epochs


@dataclass(frozen=True)
class PredictionRow:
    sample_id: str
    dataset: str
    subject: str
    clip: str
    truth: int
    prediction: int
    probs: tuple[float, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------- helpers

def default_flow_cache() -> Path:
    """``$MIEX_CACHE_DIR/flow`` (default ``~/.cache/miex/flow``): flow features shared by all runs."""
    return Path(os.environ.get("MIEX_CACHE_DIR", Path.home() / ".cache" / "miex")).expanduser() / "flow"


def _scores(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Per-epoch UF1, UAR (MEGC pooled definitions, every class counted) and accuracy."""
    from .metrics import scores

    result = scores(truth, pred, labels=tuple(range(num_classes)), warn=False)
    return {"uf1": float(result.uf1), "uar": float(result.uar), "acc": float(result.accuracy)}


def split_by_group(source: SampleSource, fraction: float, by: str, seed: int) -> tuple[list[int], list[int]]:
    """Hold out ``ceil(fraction · groups)`` whole groups (subjects or identities), chosen from the seed."""
    groups = sorted({m.group(by) for m in source.meta})
    if len(groups) < 2:
        raise DataError(f"--val-split by {by} needs at least 2 {by}s, the data has {len(groups)}",
                        hint=f"use --val-by {'identity' if by == 'subject' else 'subject'} or no validation split")
    n_val = min(len(groups) - 1, max(1, math.ceil(fraction * len(groups))))
    held = set(numpy_rng(seed, "val_split").permutation(groups)[:n_val].tolist())
    train = [i for i, m in enumerate(source.meta) if m.group(by) not in held]
    val = [i for i, m in enumerate(source.meta) if m.group(by) in held]
    return train, val


def check_training_data(source: SampleSource, num_classes: int, *, what: str = "training data") -> None:
    """Empty data, labels outside the classes and classes without samples are user errors."""
    if len(source) == 0:
        raise DataError(f"the {what} ({source.name}) has no samples", hint="check the data path and filters")
    labels = source.labels()
    bad = sorted(set(labels[(labels < 0) | (labels >= num_classes)].tolist()))
    if bad:
        raise DataError(f"the {what} ({source.name}) has labels {bad} outside 0..{num_classes - 1}",
                        hint="check --num-classes and the label column")
    counts = np.bincount(labels, minlength=num_classes)
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if missing:
        names = ", ".join(f"{c} ({CLASS_NAMES[c]})" if num_classes == len(CLASS_NAMES) else str(c) for c in missing)
        raise DataError(f"class {names} has no samples in the {what} ({source.name}; counts {counts.tolist()})",
                        hint="every class needs training samples: add data or change the split")


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    e, n = epoch, config.epochs
    if config.schedule == "constant":
        factor = 1.0
    elif config.schedule == "linear":  # pix2pix-style: constant, then linear towards 0 (MiE-X 40 + 40)
        start = config.decay_start if config.decay_start is not None else n // 2
        factor = 1.0 - max(0, e + 1 - start) / float(n - start + 1)
    elif config.schedule == "step":
        factor = config.gamma ** (e // config.step_size)
    else:  # cosine after warm-up
        w = config.warmup_epochs
        factor = 0.5 * (1 + math.cos(math.pi * max(0, e - w) / max(1, n - w)))
    if config.warmup_epochs and e < config.warmup_epochs:
        factor *= (e + 1) / (config.warmup_epochs + 1)
    return factor


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        """Keep the group for later ``fit``/``predict`` calls in this process (one per fold); it is
        destroyed at interpreter exit."""


def _destroy_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _init_distributed(device_spec: str) -> tuple[_Dist, torch.device]:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: join the group (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), resolve_device(device_spec)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    owns = False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy_group)
        owns = True
    return _Dist(rank=rank, world_size=world, local_rank=local, owns_group=owns), device


def _loader(dataset: RecognizerDataset, sampler: EpochBatchSampler, config: TrainConfig, epoch: int) -> DataLoader:
    workers = config.num_workers
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=False,
                      generator=torch_generator(config.seed, "loader", epoch),
                      persistent_workers=False, prefetch_factor=2 if workers else None)


def crop_size_for(config: TrainConfig, spec: InputSpec) -> int:
    if config.crop_size is not None:
        return config.crop_size
    return max(128, spec.size) if spec.kind == "frames" else 128


def build_model(name: str, num_classes: int, options: dict[str, Any]) -> RecognizerModel:
    return create_model(name, num_classes=num_classes, **options)


# --------------------------------------------------------------------------------------- fit

def fit(config: TrainConfig, train_data: SampleSource, *, val_data: SampleSource | None = None,
        out_dir: str | Path, init: str | Path | None = None, resume: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> FitResult:
    """Train ``config.model`` on ``train_data``; write checkpoints, metrics and config to ``out_dir``.

    ``val_data`` (or ``config.val_split`` > 0, which holds out whole subjects or identities of
    ``train_data``) is scored every epoch; it never influences training. ``init`` loads the weights
    of a checkpoint of the same model (fine-tuning a synthetic-pretrained model: the MiE-X recipe).
    ``resume`` continues from ``out_dir/last.pt``. Under ``torchrun`` only rank 0 writes.
    """
    out_dir = Path(out_dir)
    dist, device = _init_distributed(config.device)
    try:
        return _fit(config, train_data, val_data, out_dir, init, resume, on_epoch, dist, device)
    finally:
        dist.close()


def _fit(config: TrainConfig, train_data: SampleSource, val_data: SampleSource | None, out_dir: Path,
         init: str | Path | None, resume: bool, on_epoch: Callable[[dict[str, Any]], None] | None,
         dist: _Dist, device: torch.device) -> FitResult:
    if config.amp and device.type != "cuda":
        raise ConfigError(f"train.amp needs a CUDA device, the run uses {device}", hint="drop --amp or use --device cuda")
    if val_data is None and config.val_split > 0:
        train_idx, val_idx = split_by_group(train_data, config.val_split, config.val_by, config.seed)
        train_data, val_data = train_data.subset(train_idx), train_data.subset(val_idx)
    check_training_data(train_data, config.num_classes)
    if val_data is not None and len(val_data) == 0:
        raise DataError(f"the validation data ({val_data.name}) has no samples")

    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build_model(config.model, config.num_classes, config.model_options)
    spec = model.input_spec
    if init is not None:
        ckpt = load_checkpoint(init, model=config.model)
        load_model_state(model, ckpt["model_state"], path=init)
    model.to(device)

    last_path = out_dir / LAST
    start_epoch, history = 0, []
    resume_state: dict[str, Any] | None = None
    if resume and last_path.is_file():
        resume_state = load_checkpoint(last_path, model=config.model)
        if resume_state.get("config_hash") != config.content_hash():
            raise CheckpointError("the run was started with a different configuration", path=last_path,
                                  hint="resume with the same options (only device/workers may change) or use a new --out")
    elif not resume and last_path.exists():
        raise ConfigError(f"{out_dir} already holds a training run", path=out_dir,
                          hint="pass --resume to continue it, or choose a new --out directory")

    core = model
    if dist.enabled:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            core = model
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(getattr(core, "ddp_find_unused_parameters", False)))
    optimizer = _optimizer(config, [p for p in core.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: _lr_factor(config, e))
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp)
    if resume_state is not None:
        load_model_state(core, resume_state["model_state"], path=last_path)
        optimizer.load_state_dict(resume_state["optimizer_state"])
        scheduler.load_state_dict(resume_state["scheduler_state"])
        scaler.load_state_dict(resume_state["scaler_state"])
        set_rng_state(resume_state["rng"])
        start_epoch, history = int(resume_state["epoch"]), list(resume_state["history"])
        log.info("resuming %s from epoch %d", out_dir, start_epoch)

    options = config.data_options()
    flow_cache = Path(config.flow_cache) if config.flow_cache else default_flow_cache()
    train_set = RecognizerDataset(train_data, spec, train=True, seed=config.seed, options=options, flow_cache=flow_cache)
    sampler = EpochBatchSampler(len(train_set), config.batch_size, shuffle=True, seed=config.seed,
                                rank=dist.rank, world_size=dist.world_size, min_batch=2)
    val_set = None if val_data is None else RecognizerDataset(val_data, spec, train=False, seed=config.seed,
                                                              options=options, flow_cache=flow_cache)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out_dir)
        atomic_write_json(out_dir / "config.json", {
            "config": config.to_dict(), "config_hash": config.content_hash(), "input_spec": spec.to_dict(),
            "train_data": {"name": train_data.name, "samples": len(train_data),
                           "class_counts": np.bincount(train_data.labels(), minlength=config.num_classes).tolist()},
            "val_data": None if val_data is None else {"name": val_data.name, "samples": len(val_data)},
            "init": None if init is None else str(init), "world_size": dist.world_size,
            "device": str(device), "environment": environment_info()})

    stop = config.epochs if config.stop_after is None else min(config.epochs, start_epoch + config.stop_after)
    progress = _Progress(config.progress and dist.is_main)
    with progress:
        for epoch in range(start_epoch, stop):
            row = _train_epoch(model, core, train_set, sampler, optimizer, scaler, config, epoch, device, dist, progress)
            scheduler.step()
            if val_set is not None and dist.is_main:
                row.update({f"val_{k}": v for k, v in evaluate(core, val_set, device=device, config=config).items()})
            history.append(row)
            if dist.is_main:
                _save(out_dir / LAST, core, optimizer, scheduler, scaler, config, spec, epoch + 1, history)
                write_history_csv(history, out_dir / "metrics.csv")
                plot_history(history, out_dir / "metrics.png")
                log.info(_describe(row))
                if on_epoch is not None:
                    on_epoch(row)
            dist.barrier()
    completed = stop >= config.epochs
    final = out_dir / (FINAL if completed else LAST)
    if completed and dist.is_main:
        _save(final, core, optimizer, scheduler, scaler, config, spec, config.epochs, history)
    dist.barrier()
    return FitResult(checkpoint=final, history=history, completed=completed)


def _describe(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}"]
    parts += [f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)]
    return "  ".join(parts)


def _save(path: Path, core: RecognizerModel, optimizer: torch.optim.Optimizer, scheduler: Any,
          scaler: torch.amp.GradScaler, config: TrainConfig, spec: InputSpec, epoch: int,
          history: list[dict[str, Any]]) -> None:
    save_checkpoint(path, {
        "model": config.model, "model_options": dict(config.model_options), "num_classes": config.num_classes,
        "class_names": list(CLASS_NAMES) if config.num_classes == len(CLASS_NAMES) else [str(c) for c in range(config.num_classes)],
        "input_spec": spec.to_dict(), "model_state": core.state_dict(), "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(), "scaler_state": scaler.state_dict(), "epoch": epoch,
        "rng": rng_state(), "config": config.to_dict(), "config_hash": config.content_hash(),
        "history": history, "environment": environment_info()})


def _train_epoch(model: nn.Module, core: RecognizerModel, dataset: RecognizerDataset, sampler: EpochBatchSampler,
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, config: TrainConfig, epoch: int,
                 device: torch.device, dist: _Dist, progress: "_Progress") -> dict[str, Any]:
    torch.manual_seed(derive_seed(config.seed, "epoch", epoch, dist.rank))
    dataset.set_epoch(epoch)
    sampler.set_epoch(epoch)
    if hasattr(core, "set_epoch"):
        core.set_epoch(epoch)  # models with staged training (FRL-DGT's DGM warm-up)
    model.train()
    lr = optimizer.param_groups[0]["lr"]
    sums: dict[str, float] = {}
    loss_sum, count = 0.0, 0
    truths, preds = [], []
    wait = 0.0
    started = time.perf_counter()
    task = progress.start(f"epoch {epoch + 1}/{config.epochs}", len(sampler))
    autocast = torch.autocast("cuda", dtype=torch.float16) if config.amp else nullcontext()
    tick = time.perf_counter()
    for batch in _loader(dataset, sampler, config, epoch):
        wait += time.perf_counter() - tick
        x = batch["x"].to(device, non_blocking=True)
        y = torch.as_tensor(batch["y"], device=device)
        with autocast:
            output = model(x)
            total, terms = core.loss(output, y, x)
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {float(total)} in epoch {epoch + 1}; lower --lr or enable --grad-clip")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(core.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        n = int(y.shape[0])
        loss_sum += float(total.detach()) * n
        count += n
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        truths.append(y.cpu())
        preds.append(RecognizerModel.logits_of(output).detach().argmax(1).cpu())
        progress.advance(task, float(total.detach()))
        tick = time.perf_counter()
    elapsed = time.perf_counter() - started
    keys = sorted(sums)
    reduced = dist.all_sum([loss_sum, float(count), wait, elapsed] + [sums[k] for k in keys], device)
    loss_sum, count, wait, elapsed = reduced[:4]
    truth, pred = torch.cat(truths).numpy(), torch.cat(preds).numpy()
    scores = _scores(truth, pred, config.num_classes)  # this rank's share of the epoch
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": float(lr), "train_loss": loss_sum / max(1.0, count)}
    row.update({f"train_{k}": v / max(1.0, count) for k, v in zip(keys, reduced[4:]) if k != "loss"})
    row.update({"train_uf1": scores["uf1"], "train_uar": scores["uar"], "train_acc": scores["acc"],
                "data_wait": wait / elapsed if elapsed > 0 else 0.0, "seconds": elapsed / dist.world_size})
    progress.finish(task)
    return row


def _eval_loader(dataset: RecognizerDataset, batch_size: int, num_workers: int) -> DataLoader:
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=False)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      persistent_workers=False, prefetch_factor=2 if num_workers else None)


def _infer(core: RecognizerModel, dataset: RecognizerDataset, device: torch.device, batch_size: int,
           num_workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Indices, truths, probabilities and mean CE loss over ``dataset`` in storage order."""
    was_training = core.training
    core.eval()
    idx, truths, probs = [], [], []
    loss_sum = 0.0
    with torch.inference_mode():
        for batch in _eval_loader(dataset, batch_size, num_workers):
            x = batch["x"].to(device)
            y = torch.as_tensor(batch["y"], device=device)
            logits = RecognizerModel.logits_of(core(x)).float()
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            idx.append(torch.as_tensor(batch["index"]))
            truths.append(y.cpu())
            probs.append(torch.softmax(logits, 1).cpu())
    core.train(was_training)
    truth = torch.cat(truths).numpy()
    return torch.cat(idx).numpy(), truth, torch.cat(probs).numpy(), loss_sum / max(1, len(truth))


def evaluate(core: RecognizerModel, dataset: RecognizerDataset, *, device: torch.device,
             config: TrainConfig) -> dict[str, float]:
    """Loss, UF1, UAR and accuracy of ``core`` on ``dataset`` (deterministic transform)."""
    batch = config.eval_batch_size or config.batch_size
    _, truth, probs, loss = _infer(core, dataset, device, batch, config.num_workers)
    return {"loss": loss, **_scores(truth, probs.argmax(1), config.num_classes)}


# ----------------------------------------------------------------------------------- predict

def load_model(checkpoint: str | Path, *, model: str | None = None,
               device: str | torch.device = "cpu") -> tuple[RecognizerModel, dict[str, Any]]:
    """Rebuild the model stored in ``checkpoint`` (eval mode) and return it with the checkpoint dict."""
    data = load_checkpoint(checkpoint, model=model)
    net = build_model(data["model"], int(data["num_classes"]), dict(data.get("model_options") or {}))
    load_model_state(net, data["model_state"], path=checkpoint)
    return net.to(resolve_device(device)).eval(), data


def predict(checkpoint_or_model: str | Path | RecognizerModel, data: SampleSource, *, device: str | torch.device = "auto",
            batch_size: int = 64, num_workers: int = 0, options: DataOptions | None = None,
            flow_cache: str | Path | None = None) -> list[PredictionRow]:
    """Per-sample predictions (deterministic test transform, annotated apex) in ``data`` order.

    With a checkpoint path the model and its data options come from the file; with a model object
    pass ``options`` if training used non-default ones (e.g. FRL-DGT's [0, 1] input scaling).
    """
    dev = resolve_device(device)
    if isinstance(checkpoint_or_model, (str, Path)):
        core, ckpt = load_model(checkpoint_or_model, device=dev)
        if options is None:
            options = TrainConfig.from_dict(known_config_fields(ckpt["config"])).data_options()
    else:
        core = checkpoint_or_model.to(dev)
    options = options or DataOptions()
    if len(data) == 0:
        raise DataError(f"no samples to predict in {data.name}")
    dataset = RecognizerDataset(data, core.input_spec, train=False, options=options,
                                flow_cache=flow_cache if flow_cache is not None else default_flow_cache())
    idx, truth, probs, _ = _infer(core, dataset, dev, batch_size, num_workers)
    rows = []
    for i, t, p in zip(idx.tolist(), truth.tolist(), probs):
        m = data.meta[i]
        rows.append(PredictionRow(sample_id=m.sample_id, dataset=m.dataset, subject=m.subject, clip=m.clip,
                                  truth=int(t), prediction=int(p.argmax()), probs=tuple(float(v) for v in p)))
    return rows


def known_config_fields(values: dict[str, Any]) -> dict[str, Any]:
    names = TrainConfig.field_names()
    return {k: v for k, v in values.items() if k in names}


def write_predictions_csv(rows: list[PredictionRow], path: str | Path, *, fold: str | int = "",
                          class_names: tuple[str, ...] = CLASS_NAMES) -> Path:
    """Predictions in the evaluation CSV format (``recognizers.results``) plus ``prob_<class>`` columns."""
    from .results import write_predictions

    n = len(rows[0].probs) if rows else len(class_names)
    names = class_names if len(class_names) == n else tuple(str(c) for c in range(n))
    mappings = [{"sample_id": r.sample_id, "dataset": r.dataset, "subject": r.subject, "clip": r.clip,
                 "truth": r.truth, "prediction": r.prediction, "fold": str(fold),
                 **{f"prob_{c}": f"{p:.6f}" for c, p in zip(names, r.probs)}} for r in rows]
    return write_predictions(mappings, path)


# ---------------------------------------------------------------------------------- progress

class _Progress:
    """A rich progress bar on stderr for rank 0, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, description: str, total: int) -> Any:
        return self._progress.add_task(description, total=total, loss=float("nan")) if self._progress else None

    def advance(self, task: Any, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(task, advance=1, loss=loss)

    def finish(self, task: Any) -> None:
        if self._progress is not None:
            self._progress.update(task, completed=self._progress.tasks[-1].total)

"""``miex evaluate``: train and test every fold of a protocol, then score the pooled predictions.

Per fold (:func:`run_fold`):

1. split the real data by the fold's *subjects* (:mod:`recognizers.protocols`);
2. with ``pretrain``: train on the synthetic shards after the **leakage guard** removed every sample
   whose AU provenance is one of the fold's test subjects (:func:`~recognizers.protocols.filter_synthetic`),
   then fine-tune on the fold's real training subjects (the MiE-X recipe). Folds whose guarded
   synthetic set is identical (same kept indices, same config) share one pre-trained model;
3. **model selection never sees the test fold**: a fixed epoch budget, or, with ``val_fraction``, an
   inner split of the fold's training subjects picks the epoch count, and the model is then re-trained
   on all training subjects for that many epochs;
4. predict the test subjects and write ``folds/<name>/predictions.csv`` atomically. That file is the
   fold's completion marker, so ``resume`` skips finished folds and continues half-trained ones from
   their last checkpoint.

At the end, all fold predictions are pooled and :func:`recognizers.results.write_report` writes the
MEGC log, ``predictions.csv``, ``summary.json`` and the confusion-matrix plot — the same function
``miex report`` runs on ``predictions.csv`` alone.

Folds run in parallel with joblib (``jobs``; default 1 on CPU, one per GPU on CUDA). Under ``torchrun``
every fold is trained by all ranks together, test predictions are sharded with ``DistributedSampler``
and gathered by sample id with the padding duplicates removed (:func:`recognizers.results.dedupe_predictions`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from miex_gen.atomic import atomic_write_json, remove_stale_temp_files
from miex_gen.aus import CLASS_NAMES
from miex_gen.errors import ConfigError, DataError
from miex_gen.versions import environment_info

from .protocols import Fold, filter_synthetic, inner_split, make_folds, subject_keys
from .results import (
    CONFIG_FILE, PREDICTIONS_FILE, TRAINING_FILE, PredictionRow, dedupe_predictions, read_predictions,
    write_predictions, write_report,
)

log = logging.getLogger("recognizers.evaluate")

FOLDS_DIR = "folds"
PRETRAIN_DIR = "pretrain"
FOLDS_FILE = "folds.json"
FOLD_INFO = "fold.json"
# TrainConfig fields shared by the pre-training and the fine-tuning stage unless set apart
SHARED_TRAIN_FIELDS = ("model_options", "num_classes", "batch_size", "seed", "amp", "flow_method", "crop_size",
                       "input_mean", "input_std", "device", "num_workers", "eval_batch_size", "flow_cache")
_EXECUTION_FIELDS = ("folds", "jobs", "device", "num_workers", "progress")


@dataclass
class EvaluationConfig:
    """What an evaluation run does. Execution fields (``folds``, ``jobs``, ``device``, ``num_workers``,
    ``progress``) may change on ``--resume``; everything else is hashed and must match."""

    model: str
    data: tuple[str, ...]  # "kind:path" specs of the real data (casme2, samm, smic, megc2019)
    protocol: str = "loso"
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides for (fine-)tuning on real data
    pretrain: str | None = None  # "shards:DIR" of synthetic data to pre-train on
    pretrain_train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides for pre-training
    finetune: bool = True  # False with pretrain: test the synthetic-only model
    holdout_fraction: float = 0.2
    val_fraction: float = 0.0  # > 0: choose the epoch count on an inner split of training subjects
    seed: int = 0
    # execution
    folds: str | None = None
    jobs: int | None = None
    device: str = "auto"
    num_workers: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        self.data = tuple(str(d) for d in self.data)
        if not self.data:
            raise ConfigError("evaluate needs real data: pass --data megc2019:ROOT (or casme2:, samm:, smic:)")
        for name, table in (("train", self.train), ("pretrain", self.pretrain_train)):
            if table.get("val_split"):
                raise ConfigError(f"{name}.val_split is not used by evaluate",
                                  hint="use --val-fraction: an inner split of each fold's training subjects")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {self.jobs}")
        if not self.finetune and not self.pretrain:
            raise ConfigError("finetune=False needs pretrain shards", hint="pass --pretrain shards:DIR")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_dict(self) -> dict[str, Any]:
        from .config import EXECUTION_FIELDS as TRAIN_EXECUTION

        values = {k: v for k, v in self.to_dict().items() if k not in _EXECUTION_FIELDS}
        for table in ("train", "pretrain_train"):  # e.g. flow_cache, eval_batch_size may change on resume
            values[table] = {k: v for k, v in values[table].items() if k not in TRAIN_EXECUTION}
        values["data"] = [_absolute_spec(d) for d in self.data]
        values["pretrain"] = _absolute_spec(self.pretrain) if self.pretrain else None
        return values

    def content_hash(self) -> str:
        text = json.dumps(self.content_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # the TrainConfigs of the two stages ----------------------------------------------------------
    def _execution(self) -> dict[str, Any]:
        return {"device": self.device, "num_workers": self.num_workers, "seed": self.seed}

    def train_config(self) -> Any:
        from .config import TrainConfig

        return TrainConfig.for_model(self.model, **{**self._execution(), **self.train, "progress": self.progress,
                                                    "val_split": 0.0})

    def pretrain_config(self) -> Any:
        from .config import TrainConfig

        shared = {k: v for k, v in self.train.items() if k in SHARED_TRAIN_FIELDS}
        return TrainConfig.for_model(self.model, **{**self._execution(), **shared, **self.pretrain_train,
                                                    "progress": self.progress, "val_split": 0.0})


@dataclass
class EvaluationResult:
    run_dir: Path
    summary: dict[str, Any]
    folds_run: list[str]
    folds_skipped: list[str]  # already complete (resume)
    removed_synthetic: dict[str, int]  # per fold, by the leakage guard


def _absolute_spec(spec: str) -> str:
    kind, sep, path = spec.partition(":")
    return f"{kind}:{Path(path).expanduser().resolve()}" if sep else spec


# ------------------------------------------------------------------------------------ fold subset

def parse_fold_spec(spec: str | None, folds: Sequence[Fold]) -> list[Fold]:
    """``"0,3-5"`` (indices in protocol order) or fold names (``"casme2-sub01,fold2"``); None: all."""
    if spec is None or not str(spec).strip():
        return list(folds)
    by_name = {f.name: f for f in folds}
    chosen: dict[int, Fold] = {}
    for token in str(spec).split(","):
        token = token.strip()
        if not token:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if match:
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) is not None else lo
            if hi < lo or hi >= len(folds):
                raise ConfigError(f"--folds {token!r} is outside 0-{len(folds) - 1} ({len(folds)} folds)")
            for i in range(lo, hi + 1):
                chosen[i] = folds[i]
        elif token in by_name:
            chosen[by_name[token].index] = by_name[token]
        else:
            shown = ", ".join(f.name for f in folds[:4])
            raise ConfigError(f"--folds: {token!r} is neither an index range nor a fold name",
                              hint=f"use e.g. 0,3-5 or names such as {shown}")
    return [chosen[i] for i in sorted(chosen)]


# ------------------------------------------------------------------------------------------- data

def open_real_data(specs: Sequence[str], train_config: Any) -> Any:
    """One sample source over every ``--data`` spec, with unique sample ids."""
    from .data import ConcatSource, open_data
    from .models import create_model
    from .train import crop_size_for

    spec = create_model(train_config.model, num_classes=train_config.num_classes,
                        **train_config.model_options).input_spec
    crop = crop_size_for(train_config, spec)  # the same face-crop side `miex train` uses
    sources = []
    for text in specs:
        kind, _, path = text.partition(":")
        if kind.strip().lower() == "shards":
            raise ConfigError(f"--data {text}: evaluation tests on real clips",
                              hint="pass synthetic shards with --pretrain shards:DIR")
        sources.append(open_data(kind, path, crop_size=crop))
    source = sources[0] if len(sources) == 1 else ConcatSource(sources)
    seen: dict[str, int] = {}
    for i, meta in enumerate(source.meta):
        if meta.sample_id in seen:
            raise DataError(f"sample {meta.sample_id} appears twice in --data",
                            hint="pass each dataset once (megc2019 already contains casme2, samm and smic)")
        seen[meta.sample_id] = i
    return source


# ----------------------------------------------------------------------------------- distributed

@dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed

            torch.distributed.barrier()


def _join_torchrun(device: str) -> _World:
    """Under torchrun, create the process group once so every fold's ``fit`` reuses it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    import torch
    import torch.distributed

    from miex_gen.device import resolve_device

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    return _World(rank=int(os.environ["RANK"]), size=size, local_rank=local)


def _predict_device(device: str, world: _World) -> str:
    if world.size > 1:
        from miex_gen.device import resolve_device

        if resolve_device(device).type == "cuda":
            import torch

            return f"cuda:{world.local_rank % torch.cuda.device_count()}"
    return device


def _rows_from_predict(rows: Sequence[Any], fold: str) -> list[PredictionRow]:
    names = CLASS_NAMES
    out = []
    for r in rows:
        probs = tuple(getattr(r, "probs", ()) or ())
        labels = names if len(probs) == len(names) else tuple(str(c) for c in range(len(probs)))
        extra = {f"prob_{n}": f"{p:.6f}" for n, p in zip(labels, probs)}
        out.append(PredictionRow(str(r.sample_id), str(r.dataset), str(r.subject), str(r.clip), int(r.truth),
                                 int(r.prediction), fold, extra))
    return out


def predict_fold(checkpoint: Path, test_source: Any, *, fold: str, device: str, num_workers: int = 0,
                 batch_size: int = 64, flow_cache: str | Path | None = None,
                 world: _World = _World()) -> list[PredictionRow]:
    """Test predictions in ``test_source`` order. Under torchrun each rank predicts its
    ``DistributedSampler`` share (padded), and the gathered rows are de-duplicated by sample id."""
    from .train import predict

    if world.size <= 1:
        rows = predict(checkpoint, test_source, device=device, batch_size=batch_size, num_workers=num_workers,
                       flow_cache=flow_cache)
        return _rows_from_predict(rows, fold)
    import torch.distributed
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(len(test_source)), num_replicas=world.size, rank=world.rank, shuffle=False)
    mine = list(iter(sampler))
    rows = predict(checkpoint, test_source.subset(mine), device=_predict_device(device, world),
                   batch_size=batch_size, num_workers=num_workers, flow_cache=flow_cache)
    gathered: list[Any] = [None] * world.size
    torch.distributed.all_gather_object(gathered, _rows_from_predict(rows, fold))
    unique = {r.sample_id: r for r in dedupe_predictions([r for part in gathered for r in part])}
    return [unique[m.sample_id] for m in test_source.meta]


# ------------------------------------------------------------------------------------- the stages

def _epochs_by_validation(history: Sequence[dict[str, Any]]) -> tuple[int, float]:
    """The epoch (1-based) with the best validation UF1; ties go to the earlier epoch."""
    best_epoch, best = 0, -1.0
    for row in history:
        value = row.get("val_uf1")
        if value is None:
            raise DataError("the selection run recorded no val_uf1", hint="report this as a bug")
        if float(value) > best:
            best_epoch, best = int(row["epoch"]), float(value)
    return best_epoch, best


def _fit(config: Any, data: Any, out_dir: Path, *, init: Path | None = None, val: Any = None) -> Any:
    """The trainer, always resumable: a fresh directory starts at epoch 0, a half-trained one continues."""
    from .train import fit

    return fit(config, data, val_data=val, out_dir=out_dir, init=init, resume=True)


@dataclass
class _FoldJob:
    """Everything one fold worker needs (picklable, for joblib)."""

    fold: Fold
    run_dir: Path
    config: EvaluationConfig
    source: Any
    init: Path | None
    removed: int
    pretrain_key: str | None
    device: str


def fold_dir(run_dir: Path, fold: Fold) -> Path:
    return run_dir / FOLDS_DIR / fold.name


def is_fold_complete(run_dir: Path, fold: Fold) -> bool:
    return (fold_dir(run_dir, fold) / PREDICTIONS_FILE).is_file()


def run_fold(job: _FoldJob, world: _World = _World()) -> dict[str, Any]:
    """Train (or fine-tune) and test one fold; returns its ``fold.json`` record."""
    started = time.time()
    cfg = job.config
    fold, directory = job.fold, fold_dir(job.run_dir, job.fold)
    keys = subject_keys(job.source)
    train_idx, test_idx = job.fold.split(keys)
    if not test_idx:
        raise DataError(f"fold {fold.name} has no test samples in the data",
                        hint="the data lacks this fold's subjects; pass the full dataset or choose --folds")
    train_src, test_src = job.source.subset(train_idx), job.source.subset(test_idx)
    train_cfg = cfg.train_config().replace(device=job.device, progress=cfg.progress and world.is_main)
    selection: dict[str, Any] | None = None
    checkpoint: Path | None = job.init
    if cfg.finetune:
        if cfg.val_fraction > 0:
            present = {keys[i] for i in train_idx}
            fit_subj, val_subj = inner_split(present, fraction=cfg.val_fraction, seed=cfg.seed, fold=fold.name)
            fit_idx = [i for i in train_idx if keys[i] in fit_subj]
            val_idx = [i for i in train_idx if keys[i] in val_subj]
            sel = _fit(train_cfg, job.source.subset(fit_idx), directory / "select", init=job.init,
                       val=job.source.subset(val_idx))
            epochs, best = _epochs_by_validation(sel.history)
            selection = {"method": "inner subject split", "val_subjects": [list(k) for k in sorted(val_subj)],
                         "fit_samples": len(fit_idx), "val_samples": len(val_idx), "epochs": epochs, "val_uf1": best}
            train_cfg = train_cfg.replace(epochs=epochs)
        result = _fit(train_cfg, train_src, directory / "train", init=job.init)
        checkpoint = result.checkpoint
    assert checkpoint is not None
    rows = predict_fold(checkpoint, test_src, fold=fold.name, device=job.device, num_workers=cfg.num_workers,
                        batch_size=train_cfg.eval_batch_size or max(train_cfg.batch_size, 64),
                        flow_cache=train_cfg.flow_cache, world=world)
    info = {
        "fold": fold.name, "index": fold.index, "train_samples": len(train_idx), "test_samples": len(test_idx),
        "test_subjects": [list(k) for k in sorted(fold.test_subjects)],
        "epochs": train_cfg.epochs if cfg.finetune else 0, "selection": selection or {"method": "fixed epochs" if cfg.finetune else "none (synthetic-only model)"},
        "pretrain": job.pretrain_key, "synthetic_removed_by_leakage_guard": job.removed,
        "checkpoint": str(checkpoint), "seconds": round(time.time() - started, 2),
    }
    if world.is_main:
        atomic_write_json(directory / FOLD_INFO, info)
        write_predictions(rows, directory / PREDICTIONS_FILE)  # last: the completion marker
    world.barrier()
    log.info("fold %s done: %d train, %d test samples (%.0f s)", fold.name, len(train_idx), len(test_idx),
             info["seconds"])
    return info


def _pretrain_one(key: str, run_dir: Path, config: EvaluationConfig, shard_source: Any, keep: np.ndarray,
                  device: str, world: _World = _World()) -> Path:
    out = run_dir / PRETRAIN_DIR / key
    final = out / "model.pt"
    if final.is_file():
        return final
    pre_cfg = config.pretrain_config().replace(device=device, progress=config.progress and world.is_main)
    result = _fit(pre_cfg, shard_source.subset(keep.tolist()), out)
    return Path(result.checkpoint)


def _pretrain_key(keep: np.ndarray, config_hash: str) -> str:
    digest = hashlib.sha256(config_hash.encode())
    digest.update(np.ascontiguousarray(keep, dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


# ------------------------------------------------------------------------------------ the driver

def _jobs(config: EvaluationConfig, world: _World) -> tuple[int, list[str]]:
    """Parallel folds and the device of each worker slot (one per GPU on CUDA, 1 on CPU)."""
    from miex_gen.device import resolve_device

    device = resolve_device(config.device)
    if world.size > 1:
        return 1, [config.device]
    if device.type == "cuda":
        import torch

        count = torch.cuda.device_count() if device.index is None else 1
        jobs = config.jobs or count
        devices = [f"cuda:{i % count}" for i in range(jobs)] if device.index is None else [str(device)] * jobs
        return jobs, devices
    jobs = config.jobs or 1
    return jobs, [config.device] * jobs


def _parallel(func: Callable[..., Any], calls: list[tuple[Any, ...]], jobs: int) -> list[Any]:
    if jobs <= 1 or len(calls) <= 1:
        return [func(*args) for args in calls]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(jobs, len(calls)), backend="loky")(delayed(func)(*args) for args in calls)


def _prepare_run_dir(run_dir: Path, config: EvaluationConfig, resume: bool, world: _World) -> None:
    config_path = run_dir / CONFIG_FILE
    if config_path.exists():
        if not resume:
            raise ConfigError(f"{run_dir} already holds an evaluation run", path=run_dir,
                              hint="pass --resume to continue it, or choose a new --out directory")
        try:
            stored = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read the run's config: {exc}", path=config_path) from exc
        if stored.get("content_hash") != config.content_hash():
            changed = sorted(k for k, v in config.content_dict().items()
                             if json.dumps(stored.get("evaluation", {}).get(k), sort_keys=True, default=str)
                             != json.dumps(v, sort_keys=True, default=str))
            raise ConfigError(f"--resume with different options than the run was started with ({', '.join(changed)})",
                              path=config_path, hint="resume with the same options (only --folds, --jobs, "
                                                     "--device, --num-workers may change) or use a new --out")
    elif run_dir.exists() and any(p for p in run_dir.iterdir() if not p.name.startswith(".")) and not resume:
        raise ConfigError(f"{run_dir} is not empty", path=run_dir, hint="choose a new --out directory")
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)


def _selection_rule(config: EvaluationConfig, epochs: int, pretrain_epochs: int | None) -> str:
    """How the tested model was chosen, in words (stored with every run; never the test fold)."""
    pre = f"pre-trained {pretrain_epochs} epochs on guarded synthetic data; " if pretrain_epochs else ""
    if not config.finetune:
        return pre + "no fine-tuning: the synthetic-only model is tested"
    if config.val_fraction > 0:
        return (pre + f"epoch count chosen on an inner split of {config.val_fraction:.0%} of each fold's training "
                "subjects, then re-trained on all training subjects")
    return pre + f"fixed epochs ({epochs})"


def evaluate(config: EvaluationConfig, out_dir: str | Path, *, resume: bool = False) -> EvaluationResult:
    """Run the protocol, write every output into ``out_dir``, return the summary (see module doc)."""
    run_dir = Path(out_dir)
    world = _join_torchrun(config.device)
    _prepare_run_dir(run_dir, config, resume, world)
    world.barrier()  # every rank has checked the directory before rank 0 writes into it
    train_cfg = config.train_config()
    pre_cfg = config.pretrain_config() if config.pretrain else None
    source = open_real_data(config.data, train_cfg)
    all_folds = make_folds(config.protocol, source, fraction=config.holdout_fraction, seed=config.seed)
    selected = parse_fold_spec(config.folds, all_folds)
    run_config = {
        "evaluation": config.content_dict(), "content_hash": config.content_hash(),
        "execution": {k: getattr(config, k) for k in _EXECUTION_FIELDS},
        "train_config": train_cfg.content_dict(), "pretrain_config": pre_cfg.content_dict() if pre_cfg else None,
        "model_selection": _selection_rule(config, train_cfg.epochs, pre_cfg.epochs if pre_cfg else None),
        "seeds": {"seed": config.seed, "train": train_cfg.seed, "pretrain": pre_cfg.seed if pre_cfg else None},
        "data": {"specs": list(config.data), "samples": len(source),
                 "class_counts": np.bincount(source.labels(), minlength=train_cfg.num_classes).tolist()},
        "folds": [f.name for f in all_folds],
        "versions": environment_info(),
    }
    if world.is_main:
        if not (run_dir / CONFIG_FILE).exists():
            atomic_write_json(run_dir / CONFIG_FILE, run_config)
            atomic_write_json(run_dir / FOLDS_FILE, [f.to_dict() for f in all_folds])
    world.barrier()
    stored_config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))

    todo = [f for f in selected if not is_fold_complete(run_dir, f)]
    skipped = [f.name for f in selected if f not in todo]
    if skipped:
        log.info("resume: %d fold(s) already complete", len(skipped))
    jobs, devices = _jobs(config, world)
    if jobs > 1 and config.progress:  # progress bars of parallel workers would interleave
        config = replace(config, progress=False)

    # pre-training on guarded synthetic data: one model per distinct kept set
    inits: dict[str, Path | None] = {f.name: None for f in todo}
    removed: dict[str, int] = {}
    keys: dict[str, str | None] = {f.name: None for f in todo}
    if config.pretrain and todo:
        from .data import open_data

        if config.pretrain.partition(":")[0].strip().lower() != "shards":
            raise ConfigError(f"--pretrain {config.pretrain}: expected shards:DIR")
        shards = open_data(config.pretrain)
        groups: dict[str, np.ndarray] = {}
        for fold in todo:
            keep, count = filter_synthetic(shards, fold.test_subjects)
            if len(keep) == 0:
                raise DataError(f"fold {fold.name}: the leakage guard removed all {count} synthetic samples",
                                hint="build the synthetic set from other subjects or AU sources")
            key = _pretrain_key(keep, pre_cfg.content_hash())
            groups.setdefault(key, keep)
            removed[fold.name], keys[fold.name] = count, key
            log.info("fold %s: leakage guard removed %d of %d synthetic samples", fold.name, count, len(shards))
        calls = [(key, run_dir, config, shards, keep, devices[i % len(devices)])
                 for i, (key, keep) in enumerate(sorted(groups.items()))]
        if world.size > 1:
            paths = [_pretrain_one(*args, world=world) for args in calls]
        else:
            paths = _parallel(_pretrain_one, calls, jobs)
        by_key = dict(zip(sorted(groups), paths))
        for fold in todo:
            inits[fold.name] = by_key[keys[fold.name]]

    job_list = [_FoldJob(f, run_dir, config, source, inits[f.name], removed.get(f.name, 0), keys[f.name],
                         devices[i % len(devices)]) for i, f in enumerate(todo)]
    if world.size > 1:
        infos = [run_fold(job, world) for job in job_list]
    else:
        infos = _parallel(run_fold, [(job,) for job in job_list], jobs)

    # pool every completed fold of the protocol (also those of earlier invocations)
    rows: list[PredictionRow] = []
    training: dict[str, Any] = {}
    for fold in all_folds:
        directory = fold_dir(run_dir, fold)
        if is_fold_complete(run_dir, fold):
            rows.extend(read_predictions(directory / PREDICTIONS_FILE))
            info_path = directory / FOLD_INFO
            if info_path.is_file():
                training[fold.name] = json.loads(info_path.read_text(encoding="utf-8"))
    summary: dict[str, Any] = {}
    if world.is_main:
        atomic_write_json(run_dir / TRAINING_FILE, training)
        summary = write_report(run_dir, rows, config=stored_config, training=training)
    world.barrier()
    return EvaluationResult(run_dir=run_dir, summary=summary, folds_run=[i["fold"] for i in infos],
                            folds_skipped=skipped, removed_synthetic={k: v for k, v in removed.items()})


__all__ = [
    "EvaluationConfig", "EvaluationResult", "evaluate", "fold_dir", "is_fold_complete",
    "open_real_data", "parse_fold_spec", "predict_fold", "run_fold",
]

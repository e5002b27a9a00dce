"""Training configuration: one dataclass, per-model recipes, TOML loading, a content hash for resume.

Content fields change what is learned (model, data options, optimisation, seed) and are hashed into
``content_hash()``; ``--resume`` refuses a run directory whose hash differs. Execution fields
(device, workers, progress, ``stop_after``, evaluation batch size) are not hashed: a run may be
resumed on another machine or with more workers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from miex_gen.errors import ConfigError
from miex_gen.fileio import read_toml

from .data.dataset import DataOptions
from .data.flow import METHODS, FlowConfig
from .data.transforms import AugmentConfig

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "linear", "step", "cosine")
VAL_GROUPS = ("subject", "identity")
EXECUTION_FIELDS = frozenset({"device", "num_workers", "eval_batch_size", "stop_after", "progress", "flow_cache"})


@dataclass
class TrainConfig:
    # model
    model: str = "branches"
    model_options: dict[str, Any] = field(default_factory=dict)  # create_model(**model_options)
    num_classes: int = 3
    # optimisation
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 5e-4
    schedule: str = "constant"
    decay_start: int | None = None  # linear: constant until this epoch, then linear to 0 (default epochs // 2)
    step_size: int = 10  # step: multiply lr by gamma every step_size epochs
    gamma: float = 0.8
    warmup_epochs: int = 0  # linear warm-up in front of any schedule
    grad_clip: float | None = 1.0  # max global L2 norm of the gradients; None: off
    amp: bool = False  # CUDA mixed precision
    seed: int = 0
    # data
    apex_r: float | None = None  # None: 0.4 for frame models, 0 for flow models
    rotation: float = 0.0
    jitter: float = 0.2
    flip: bool = False
    resize_ratio: float = 256 / 224  # frames: resize to size·ratio, then (random) crop size; 232/224 = ±4 px
    input_mean: float = 0.5
    input_std: float = 0.5
    flow_method: str = "tvl1"
    crop_size: int | None = None  # real clips: face-crop side before the model transform (None: 128, or input size if larger)
    val_split: float = 0.0  # fraction of groups held out for validation (0: none)
    val_by: str = "subject"
    # execution (not hashed)
    device: str = "auto"
    num_workers: int = 0
    eval_batch_size: int | None = None
    stop_after: int | None = None  # stop after this many epochs in this invocation (resume later)
    progress: bool = False
    flow_cache: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"train.{name}: {message} (got {getattr(self, name)!r})")

        need(self.epochs >= 1, "epochs", "must be at least 1")
        need(self.batch_size >= 1, "batch_size", "must be at least 1")
        need(self.lr > 0, "lr", "must be positive")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.num_classes >= 2, "num_classes", "must be at least 2")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(0 <= self.val_split < 1, "val_split", "must be in [0, 1)")
        need(self.val_by in VAL_GROUPS, "val_by", f"must be one of {', '.join(VAL_GROUPS)}")
        need(self.flow_method in METHODS, "flow_method", f"must be one of {', '.join(METHODS)}")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be positive or None")
        need(self.apex_r is None or self.apex_r >= 0, "apex_r", "must be >= 0")
        need(self.num_workers >= 0, "num_workers", "must be >= 0")
        need(self.stop_after is None or self.stop_after >= 1, "stop_after", "must be at least 1")
        need(self.input_std > 0, "input_std", "must be positive")
        need(self.resize_ratio >= 1, "resize_ratio", "must be >= 1")

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config") -> "TrainConfig":
        unknown = set(values) - cls.field_names()
        if unknown:
            raise ConfigError(f"{where}: unknown train option(s) {', '.join(sorted(unknown))}",
                              hint=f"valid options: {', '.join(sorted(cls.field_names()))}")
        return cls(**values)

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> "TrainConfig":
        """The model's recipe (``MODEL_RECIPES``), then ``overrides`` on top."""
        values = {"model": model, **MODEL_RECIPES.get(model, {}), **overrides}
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)

    # ------------------------------------------------------------------ derived
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}

    def content_hash(self) -> str:
        text = json.dumps(self.content_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def data_options(self) -> DataOptions:
        return DataOptions(apex_r=self.apex_r,
                           augment=AugmentConfig(rotation=self.rotation, jitter=self.jitter, flip=self.flip,
                                                 resize_ratio=self.resize_ratio),
                           flow=FlowConfig(method=self.flow_method), mean=self.input_mean, std=self.input_std)


# Paper recipes (MIEX_PROTOCOL §9.2, MER_PROTOCOL §8, FRL_DGT §3.7); the CLI applies them before user flags.
MODEL_RECIPES: dict[str, dict[str, Any]] = {
    "branches": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32, "weight_decay": 5e-4, "epochs": 80,
                 "schedule": "linear", "grad_clip": 1.0, "jitter": 0.2},
    "apex": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32, "weight_decay": 5e-4, "epochs": 80,
             "schedule": "linear", "grad_clip": 1.0, "jitter": 0.2},
    "ststnet": {"optimizer": "adam", "lr": 5e-5, "batch_size": 256, "weight_decay": 0.0, "epochs": 500,
                "schedule": "constant", "grad_clip": None, "jitter": 0.0},
    "off_apexnet": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32, "weight_decay": 0.0, "epochs": 100,
                    "schedule": "constant", "grad_clip": None, "jitter": 0.0},
    "frl_dgt": {"optimizer": "adamw", "lr": 1e-4, "batch_size": 32, "weight_decay": 0.05, "epochs": 100,
                "schedule": "cosine", "warmup_epochs": 5, "grad_clip": 1.0, "jitter": 0.0, "rotation": 5.0,
                "flip": True, "resize_ratio": 232 / 224, "apex_r": 0.4, "input_mean": 0.0, "input_std": 1.0},
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The ``[train]`` table of a TOML file (or the whole file when it has no such table)."""
    path = Path(path)
    data = read_toml(path)
    table = data.get("train", data)
    if not isinstance(table, dict):
        raise ConfigError("[train] must be a table", path=path)
    return dict(table)

"""The resolved configuration of one GAN training run, saved as ``RUN/config.json``.

Content fields decide the numbers a run produces (data, sizes, schedule, losses, seed); a
``--resume`` must match them exactly. Execution fields (device, progress, how often the state is
saved, a stop-after for tests) may change between a run and its resumption.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .critic import check_dialect, critic_depth
from .losses import DEFAULT_PRESET, LossWeights, loss_weights

EXECUTION_FIELDS = frozenset({"out", "device", "amp", "progress", "save_every", "stop_after", "plot_every_s"})


@dataclass
class TrainConfig:
    data: str
    out: str
    labels: str | None = None
    crop: str = "auto"
    dialect: str = "replicate"
    image_size: int = 128
    conv_dim: int = 64
    critic_conv_dim: int | None = None  # None: same as conv_dim (both implementations use 64 / 64)
    repeat_num: int = 6
    batch_size: int = 25
    epochs: int = 30
    decay_epochs: int = 10
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    critic_steps: int = 5
    loss_preset: str = DEFAULT_PRESET
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    aus_noise: float = 0.1
    flip: bool = True
    seed: int = 0
    sample_faces: int = 4
    # execution
    device: str = "auto"
    amp: bool = False
    progress: bool = True
    save_every: int = 500  # iterations between training-state saves (plus every epoch end)
    stop_after: int | None = None  # stop (saving the state) after this many global iterations
    plot_every_s: float = 60.0  # the loss plot is redrawn at an epoch end at most this often (and at the end)

    def __post_init__(self) -> None:
        check_dialect(self.dialect)
        critic_depth(self.image_size)
        for name in ("conv_dim", "repeat_num", "batch_size", "epochs", "critic_steps", "save_every"):
            if int(getattr(self, name)) < (0 if name == "repeat_num" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.decay_epochs <= self.epochs:
            raise ConfigError(f"decay_epochs must lie in 0..epochs ({self.epochs}), got {self.decay_epochs}")
        if self.aus_noise < 0:
            raise ConfigError(f"aus_noise must be >= 0, got {self.aus_noise}")
        loss_weights(self.loss_preset, **self.loss_overrides)  # validates the preset and overrides

    @property
    def weights(self) -> LossWeights:
        return loss_weights(self.loss_preset, **self.loss_overrides)

    @property
    def critic_width(self) -> int:
        return int(self.critic_conv_dim or self.conv_dim)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolved_loss_weights"] = self.weights.to_dict()
        return out

    def content(self) -> dict[str, Any]:
        d = self.to_dict()
        for name in EXECUTION_FIELDS:
            d.pop(name, None)
        d["data"] = str(Path(self.data).resolve())
        d["labels"] = str(Path(self.labels).resolve()) if self.labels else None
        return d

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.content(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def config_differences(saved: TrainConfig, given: TrainConfig) -> list[str]:
    """Content fields that differ between a saved run and the options of a ``--resume``."""
    a, b = saved.content(), given.content()
    return [f"{k}: run has {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with (``RUN/config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} holds no GAN training run (no config.json)", path=run_dir,
                          hint="point --out at the folder of the run to resume")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the run's configuration: {exc}", path=path) from exc


def resume_config(run_dir: str | Path, **given: Any) -> TrainConfig:
    """The saved configuration of ``run_dir`` with the options given now applied on top.

    Execution options (device, how often to save, ...) are taken from ``given`` or their
    defaults, not from the earlier invocation (a ``stop_after`` must not stop the resumed run at
    once); a content option that
    differs from the run's makes ``train(..., resume=True)`` refuse with the list of differences.
    """
    saved = {k: v for k, v in asdict(load_run_config(run_dir)).items() if k not in EXECUTION_FIELDS}
    merged = {**saved, **{k: v for k, v in given.items() if v is not None}, "out": str(run_dir)}
    return TrainConfig.from_dict(merged)

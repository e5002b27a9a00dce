"""Generation configuration: dataclasses, TOML loading, validation and the content hash.

Two kinds of fields (DESIGN.md "Contracts", Config):

* **content** fields change the data (identity sources and their list hash, AU sources and
  their file hashes, mix, classes, frames, renderer and weights hash, seed, sizes). They are
  hashed into ``config_hash``; a resumed run must match it.
* **execution** fields (workers, batch size, device, shard subset, progress) do not change a
  single byte of output and may differ between runs into the same directory.

Every field can come from a TOML file (``--config gen.toml``) and be overridden by a CLI flag;
validation errors name the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aus import CLASS_NAMES
from .errors import ConfigError
from .fileio import read_toml, sha256_file  # noqa: F401  (sha256_file re-exported)

SOURCE_KINDS = ("mie", "mae", "exp")
IDENTITY_KINDS = ("celeba", "emotionnet", "folder", "demo")
PROFILES = ("linear", "onset-apex-offset")

# fields that never influence the data
EXECUTION_FIELDS = frozenset({"out", "workers", "batch_size", "device", "shards", "overwrite", "progress"})


@dataclass(frozen=True)
class IdentitySpec:
    """Where identity photos come from: ``celeba:ROOT``, ``emotionnet:ROOT``, ``folder:ROOT`` or ``demo``."""

    kind: str
    root: Path | None = None

    @classmethod
    def parse(cls, text: str) -> IdentitySpec:
        kind, sep, root = str(text).partition(":")
        kind = kind.strip().lower()
        if kind == "demo" and not root:
            return cls("demo", None)
        if kind not in IDENTITY_KINDS or not sep or not root:
            raise ConfigError(
                f"ids: {text!r} is not a valid identity source",
                hint="use celeba:ROOT, emotionnet:ROOT, folder:ROOT or demo",
            )
        return cls(kind, Path(root).expanduser())

    def __str__(self) -> str:
        return self.kind if self.root is None else f"{self.kind}:{self.root}"


@dataclass(frozen=True)
class SourceSpec:
    """An AU source: ``mie=POOL.h5``, ``mae=POOL.h5`` or ``exp`` (drawn from the seed, no file)."""

    kind: str
    pool: Path | None = None

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        kind, sep, pool = str(text).partition("=")
        kind = kind.strip().lower()
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"source: unknown AU source {kind!r} in {text!r}", hint="use mie=POOL, mae=POOL or exp")
        if kind == "exp":
            if pool:
                raise ConfigError(f"source: {text!r}: z^exp is drawn from the seed and takes no file", hint="write just 'exp'")
            return cls("exp", None)
        if not pool:
            raise ConfigError(f"source: {kind} needs a pool file ({kind}=POOL.h5)",
                              hint=f"build one with 'miex aus pool build {kind} ...'")
        return cls(kind, Path(pool).expanduser())

    def __str__(self) -> str:
        return self.kind if self.pool is None else f"{self.kind}={self.pool}"


@dataclass
class GenerateConfig:
    """Everything ``miex generate`` needs. See the module docstring for content vs execution."""

    # --- content -----------------------------------------------------------------------------
    ids: list[IdentitySpec] = field(default_factory=lambda: [IdentitySpec("demo")])
    num_ids: int | None = None  # None: every usable identity
    min_ids: int = 1  # fail when fewer usable identities remain after screening
    sources: list[SourceSpec] = field(default_factory=lambda: [SourceSpec("exp")])
    mix: dict[str, float] = field(default_factory=dict)  # empty: equal shares of the sources
    class_ratio: tuple[float, float, float] = (1.0, 1.0, 1.0)  # negative, positive, surprise
    samples_per_id: int | None = None  # None: 3 classes x number of sources (MiE-X: 9)
    replacement: bool = False  # False: cycle through a seeded permutation of each pool class
    au_jitter: float = 0.0  # Gaussian sigma on the 0-5 scale, off by default
    frames: int = 2  # 2: onset, apex (MiE-X image variant); T > 2: a sequence
    profile: str = "linear"
    renderer: str = "warp"
    checkpoint: Path | None = None  # GANimation weights
    image_size: int = 128
    samples_per_shard: int = 512
    num_shards: int | None = None  # set instead of samples_per_shard: split the plan into N shards
    seed: int = 0
    exp_allow_empty: bool = False  # compat: keep the all-zero z^exp apex the original allowed
    compression: str = "default"
    # --- execution ---------------------------------------------------------------------------
    out: Path | None = None
    workers: int = 1
    batch_size: int | None = None  # None: the renderer's fastest batch
    device: str = "auto"
    shards: str | None = None  # e.g. "0-9,12": make only these shards
    overwrite: bool = False
    progress: bool = True

    # ------------------------------------------------------------------------------------------
    def validate(self) -> GenerateConfig:
        """Check every field; raise ConfigError naming the first bad one."""
        if not self.ids:
            raise ConfigError("ids: at least one identity source is needed", hint="e.g. --ids folder:faces/")
        if not self.sources:
            raise ConfigError("source: at least one AU source is needed", hint="e.g. --source exp")
        kinds = [s.kind for s in self.sources]
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"source: each AU source kind may be given once, got {kinds}",
                              hint="merge pools of one kind with 'miex aus pool build' first")
        for name in self.mix:
            if name not in kinds:
                raise ConfigError(f"mix: {name!r} is not one of the configured sources {kinds}")
        if any(v < 0 for v in self.mix.values()) or (self.mix and sum(self.mix.values()) <= 0):
            raise ConfigError(f"mix: ratios must be non-negative with a positive sum, got {self.mix}")
        if len(self.class_ratio) != len(CLASS_NAMES) or any(v < 0 for v in self.class_ratio) or sum(self.class_ratio) <= 0:
            raise ConfigError(f"class_ratio: need {len(CLASS_NAMES)} non-negative values with a positive sum "
                              f"({'/'.join(CLASS_NAMES)}), got {self.class_ratio}")
        _positive("num_ids", self.num_ids, allow_none=True)
        _positive("min_ids", self.min_ids)
        _positive("samples_per_id", self.samples_per_id, allow_none=True)
        _positive("samples_per_shard", self.samples_per_shard)
        _positive("num_shards", self.num_shards, allow_none=True)
        _positive("workers", self.workers)
        _positive("batch_size", self.batch_size, allow_none=True)
        if self.frames < 2 or self.frames > 127:
            raise ConfigError(f"frames: must be between 2 and 127, got {self.frames}")
        if self.profile not in PROFILES:
            raise ConfigError(f"profile: {self.profile!r} is not one of {PROFILES}")
        if not 0 <= self.au_jitter <= 1.0:
            raise ConfigError(f"au_jitter: sigma on the 0-5 scale must be in [0, 1], got {self.au_jitter}")
        if self.image_size < 32 or self.image_size > 1024:
            raise ConfigError(f"image_size: must be in 32..1024, got {self.image_size}")
        if self.seed < 0:
            raise ConfigError(f"seed: must be non-negative, got {self.seed}")
        if self.renderer == "ganimation" and self.checkpoint is None:
            raise ConfigError("checkpoint: the ganimation renderer needs generator weights",
                              hint="pass --checkpoint G.pth (train one with 'miex gan train') or use --renderer warp")
        if self.shards is not None:
            parse_shard_subset(self.shards, None)
        return self

    def mix_shares(self) -> dict[str, float]:
        """Normalised source shares in source order (equal shares when ``mix`` is empty)."""
        kinds = [s.kind for s in self.sources]
        raw = {k: float(self.mix.get(k, 0.0 if self.mix else 1.0)) for k in kinds}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}

    def shard_size(self, total_samples: int) -> int:
        """Samples per shard: ``samples_per_shard``, or ``total / num_shards`` rounded up."""
        if self.num_shards:
            return max(1, -(-total_samples // self.num_shards))
        return self.samples_per_shard

    def class_shares(self) -> tuple[float, ...]:
        total = float(sum(self.class_ratio))
        return tuple(float(v) / total for v in self.class_ratio)

    def resolved_samples_per_id(self) -> int:
        return self.samples_per_id or len(CLASS_NAMES) * len(self.sources)

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def content_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, where: str = "config") -> GenerateConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}",
                              hint=f"known fields: {', '.join(sorted(known))}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = _coerce(name, value, where)
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path, *, base: GenerateConfig | None = None) -> GenerateConfig:
        """Fields from a TOML file (top level or a ``[generate]`` table) over ``base`` (or the defaults)."""
        path = Path(path)
        start = (base or cls()).to_dict()
        return cls.from_mapping({**start, **load_toml_mapping(path)}, where=str(path))

    def with_overrides(self, **overrides: Any) -> GenerateConfig:
        """A copy with the given (non-None) fields replaced, coerced like TOML values."""
        merged = self.to_dict()
        for name, value in overrides.items():
            if value is not None:
                merged[name] = _plain(value)
        return GenerateConfig.from_mapping(merged, where="command line")


def load_toml_mapping(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    return dict(data.get("generate", data))


def _positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or int(value) < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}")


def _plain(value: Any) -> Any:
    """JSON/TOML-friendly form of a config value."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (IdentitySpec, SourceSpec)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _coerce(name: str, value: Any, where: str) -> Any:
    try:
        if name == "ids":
            items = [value] if isinstance(value, str) else list(value)
            return [v if isinstance(v, IdentitySpec) else IdentitySpec.parse(v) for v in items]
        if name == "sources":
            items = [value] if isinstance(value, str) else list(value)
            return [v if isinstance(v, SourceSpec) else SourceSpec.parse(v) for v in items]
        if name == "mix":
            return parse_mix(value) if isinstance(value, str) else {str(k): float(v) for k, v in dict(value).items()}
        if name == "class_ratio":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) for v in items)
        if name in {"checkpoint", "out"}:
            return None if value in (None, "") else Path(value).expanduser()
        if name in {"num_ids", "samples_per_id", "batch_size", "num_shards"}:
            return None if value in (None, "", 0) else int(value)
        if name in {"min_ids", "frames", "image_size", "samples_per_shard", "seed", "workers"}:
            if isinstance(value, bool) or int(value) != float(value):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if name in {"replacement", "exp_allow_empty", "overwrite", "progress"}:
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
            return value
        if name == "au_jitter":
            return float(value)
        if name == "shards":
            return None if value in (None, "") else str(value)
        return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: field {name!r}: {exc}") from None


def parse_mix(text: str) -> dict[str, float]:
    """``"mie=0.5,mae=0.5"`` -> ``{"mie": 0.5, "mae": 0.5}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip().lower()] = float(value)
        except ValueError:
            raise ConfigError(f"mix: {part!r} is not NAME=RATIO", hint="e.g. --mix mie=0.5,mae=0.5") from None
        if not sep:
            raise ConfigError(f"mix: {part!r} is not NAME=RATIO", hint="e.g. --mix mie=0.5,mae=0.5")
    return out


def parse_shard_subset(text: str, num_shards: int | None) -> list[int]:
    """``"0-9,12"`` -> ``[0, ..., 9, 12]``; checked against ``num_shards`` when it is known."""
    chosen: set[int] = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        lo, sep, hi = part.partition("-")
        try:
            start, stop = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ConfigError(f"shards: {part!r} is not N or N-M", hint="e.g. --shards 0-9,12") from None
        if start < 0 or stop < start:
            raise ConfigError(f"shards: bad range {part!r}")
        chosen.update(range(start, stop + 1))
    if not chosen:
        raise ConfigError(f"shards: {text!r} selects no shard")
    if num_shards is not None and max(chosen) >= num_shards:
        raise ConfigError(f"shards: {text!r} asks for shard {max(chosen)} but the plan has {num_shards} shards "
                          f"(0-{num_shards - 1})")
    return sorted(chosen)


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of the content fields and file hashes."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

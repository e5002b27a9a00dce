"""The plan: one deterministic row per sample, computed from the content config and the seed alone.

Row ``r`` belongs to identity ``r // samples_per_id`` and to shard ``r // samples_per_shard``.
Inside every shard the (class, AU source) combinations are fixed by quotas, so class balance and
mix ratios hold within one sample per shard, and they are dealt out evenly so that an identity
gets a spread of classes and sources (MiE-X gives each identity one triplet per class and source).
AU triplets are drawn from seeded streams keyed by the run seed and the shard (z^exp, jitter) or
by a per-(source, class) permutation of the pool (z^MiE, z^MaE), so shard k is the same whether
it is made alone, in a Slurm array job, by another worker count, or after a crash.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path, atomic_write_json
from .aus import AU_MAX, CLASS_NAMES, NUM_AUS
from .config import GenerateConfig
from .errors import ConfigError, DataError
from .seeding import derive_seed, numpy_rng

if TYPE_CHECKING:  # pragma: no cover
    from .au_sources import AuPool

EXP_DATASET = "facs_rules"


# ---------------------------------------------------------------------------------------------
# quotas
def rounded_counts(total: int, shares: Sequence[float]) -> np.ndarray:
    """Integers summing to ``total``, each within one of ``total * share`` (largest remainder)."""
    target = np.asarray(shares, dtype=np.float64) * total
    counts = np.floor(target + 1e-9).astype(np.int64)
    remainder = target - counts
    missing = int(total - counts.sum())
    order = sorted(range(len(shares)), key=lambda i: (-round(remainder[i], 9), i))
    for i in order[:missing]:
        counts[i] += 1
    return counts


def joint_counts(total: int, class_shares: Sequence[float], source_shares: Sequence[float]) -> np.ndarray:
    """A classes x sources count table for ``total`` samples.

    Every cell is the floor or ceiling of its target and every row (class) and column (source)
    sum is the floor or ceiling of its target, so both marginals hold within one sample. Such a
    rounding always exists (controlled rounding of a 2-D table); the table is tiny (3 x <=3),
    so the residual cells are chosen by exhaustive search.
    """
    target = np.outer(class_shares, source_shares) * total
    base = np.floor(target + 1e-9).astype(np.int64)
    frac = target - base
    missing = int(total - base.sum())
    cells = [(i, j) for i in range(target.shape[0]) for j in range(target.shape[1]) if frac[i, j] > 1e-9]
    row_target, col_target = target.sum(1), target.sum(0)
    best: tuple[float, tuple] | None = None
    for chosen in itertools.combinations(cells, missing):
        table = base.copy()
        for i, j in chosen:
            table[i, j] += 1
        row_dev = np.abs(table.sum(1) - row_target)
        col_dev = np.abs(table.sum(0) - col_target)
        if row_dev.max() >= 1 - 1e-9 or col_dev.max() >= 1 - 1e-9:
            continue
        score = -sum(frac[i, j] for i, j in chosen)
        if best is None or score < best[0] - 1e-12:
            best = (score, chosen)
    if best is None:  # pragma: no cover - controlled rounding always exists
        raise AssertionError("no controlled rounding found")
    table = base.copy()
    for i, j in best[1]:
        table[i, j] += 1
    return table


def spread(counts: np.ndarray) -> list[int]:
    """Deal ``counts[k]`` copies of each item k evenly along a sequence (deterministic)."""
    keyed = [((j + 0.5) / c, k) for k, c in enumerate(counts) for j in range(int(c))]
    return [k for _, k in sorted(keyed)]


# ---------------------------------------------------------------------------------------------
# temporal profiles
def frame_weights(num_frames: int, profile: str) -> tuple[np.ndarray, int]:
    """Per-frame interpolation weight from onset (0) to apex (1), and the apex frame index.

    ``linear``: a ramp to the last frame (MiE-X's video variant: z_i = z_o + (z_a - z_o) i/(T-1)).
    ``onset-apex-offset``: a raised-cosine rise to the apex at 40 % of the clip, then a
    raised-cosine decay back to the onset AUs at the last frame, the shape of a ~0.3 s
    micro-expression. T = 2 is always (onset, apex).
    """
    if num_frames == 2:
        return np.array([0.0, 1.0], dtype=np.float32), 1
    t = np.arange(num_frames, dtype=np.float64)
    if profile == "linear":
        return (t / (num_frames - 1)).astype(np.float32), num_frames - 1
    apex = max(1, min(num_frames - 2, int(round(0.4 * (num_frames - 1)))))
    weights = np.where(
        t <= apex,
        0.5 - 0.5 * np.cos(np.pi * t / apex),
        0.5 + 0.5 * np.cos(np.pi * (t - apex) / (num_frames - 1 - apex)),
    )
    return weights.astype(np.float32), apex


def frame_aus(onset: np.ndarray, apex: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[N, 17] onset and apex AUs -> [N, T, 17] per-frame AUs."""
    onset = np.asarray(onset, dtype=np.float32)[:, None, :]
    apex = np.asarray(apex, dtype=np.float32)[:, None, :]
    return (onset + (apex - onset) * weights[None, :, None]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """The whole dataset as rows; frames are the only thing rendering adds."""

    config_hash: str
    identities: list[str]  # usable identity ids, in plan order
    samples_per_id: int
    samples_per_shard: int
    num_frames: int
    frame_weights: np.ndarray  # f4[T]
    apex_frame_index: int
    identity_index: np.ndarray  # i4[N]
    label: np.ndarray  # i1[N]
    source_kind: np.ndarray  # U3[N]
    pool_row: np.ndarray  # i4[N] (-1 for z^exp)
    onset: np.ndarray  # f4[N, 17]
    apex: np.ndarray  # f4[N, 17]
    dataset: np.ndarray  # provenance of the AU triplet
    subject: np.ndarray
    clip: np.ndarray
    onset_frame: np.ndarray  # i4[N]
    apex_frame: np.ndarray  # i4[N]
    sample_seed: np.ndarray  # u8[N]

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def num_shards(self) -> int:
        return -(-len(self) // self.samples_per_shard)

    def shard_rows(self, k: int) -> range:
        start = k * self.samples_per_shard
        return range(start, min(start + self.samples_per_shard, len(self)))

    def row_identities(self, shards: Sequence[int]) -> list[str]:
        """The identity of every row of ``shards``, in rendering order."""
        rows = [self.shard_rows(k) for k in shards]
        return [self.identities[i] for r in rows for i in self.identity_index[r.start:r.stop].tolist()]

    def aus_of(self, rows: Sequence[int] | range) -> np.ndarray:
        idx = np.asarray(list(rows), dtype=np.int64)
        return frame_aus(self.onset[idx], self.apex[idx], self.frame_weights)

    # --- storage ------------------------------------------------------------------------------
    _ARRAYS = ("frame_weights", "identity_index", "label", "source_kind", "pool_row", "onset", "apex",
               "dataset", "subject", "clip", "onset_frame", "apex_frame", "sample_seed")

    def save(self, directory: str | Path) -> None:
        """``plan.json`` (readable summary + per-row columns) and ``plan.npz`` (exact AU keyframes)."""
        directory = Path(directory)
        summary = {
            "config_hash": self.config_hash,
            "num_samples": len(self),
            "num_shards": self.num_shards,
            "samples_per_id": self.samples_per_id,
            "samples_per_shard": self.samples_per_shard,
            "num_frames": self.num_frames,
            "apex_frame_index": self.apex_frame_index,
            "identities": self.identities,
            "rows": {
                "identity": [self.identities[i] for i in self.identity_index.tolist()],
                "label": self.label.tolist(),
                "source_kind": self.source_kind.tolist(),
                "pool_row": self.pool_row.tolist(),
                "dataset": self.dataset.tolist(),
                "subject": self.subject.tolist(),
                "clip": self.clip.tolist(),
                "shard": [r // self.samples_per_shard for r in range(len(self))],
                "sample_seed": [int(s) for s in self.sample_seed],
            },
        }
        atomic_write_json(directory / "plan.json", summary)
        with atomic_path(directory / "plan.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **{name: getattr(self, name) for name in self._ARRAYS})

    @classmethod
    def load(cls, directory: str | Path) -> Plan:
        directory = Path(directory)
        summary = json.loads((directory / "plan.json").read_text())
        with np.load(directory / "plan.npz", allow_pickle=False) as arrays:
            data = {name: arrays[name] for name in cls._ARRAYS}
        return cls(config_hash=summary["config_hash"], identities=list(summary["identities"]),
                   samples_per_id=summary["samples_per_id"], samples_per_shard=summary["samples_per_shard"],
                   num_frames=summary["num_frames"], apex_frame_index=summary["apex_frame_index"], **data)


def make_plan(config: GenerateConfig, identities: Sequence[str], pools: dict[str, AuPool],
              config_hash: str) -> Plan:
    """Build the plan for ``identities`` (already screened) and the loaded ``pools`` by kind."""
    from .au_sources import sample_exp

    if not identities:
        raise DataError("no usable identities to plan with")
    spi = config.resolved_samples_per_id()
    total = len(identities) * spi
    per_shard = config.shard_size(total)
    kinds = [s.kind for s in config.sources]
    source_shares = [config.mix_shares()[k] for k in kinds]
    class_shares = config.class_shares()
    _check_pools(config, pools, class_shares)

    label = np.empty(total, dtype=np.int8)
    source_index = np.empty(total, dtype=np.int64)
    for start in range(0, total, per_shard):
        n = min(per_shard, total - start)
        table = joint_counts(n, class_shares, source_shares)
        combos = spread(table.reshape(-1))
        label[start:start + n] = [c // len(kinds) for c in combos]
        source_index[start:start + n] = [c % len(kinds) for c in combos]

    onset = np.zeros((total, NUM_AUS), dtype=np.float32)
    apex = np.zeros((total, NUM_AUS), dtype=np.float32)
    pool_row = np.full(total, -1, dtype=np.int32)
    dataset = np.full(total, "", dtype=object)
    subject = np.full(total, "", dtype=object)
    clip = np.full(total, "", dtype=object)
    onset_frame = np.full(total, -1, dtype=np.int32)
    apex_frame = np.full(total, -1, dtype=np.int32)

    for s, kind in enumerate(kinds):
        rows = np.flatnonzero(source_index == s)
        if kind == "exp":
            continue
        pool = pools[kind]
        for c in range(len(CLASS_NAMES)):
            class_rows = rows[label[rows] == c]
            if class_rows.size == 0:
                continue
            candidates = np.flatnonzero(np.asarray(pool.label) == c)
            if config.replacement:
                picks = numpy_rng(config.seed, "draw", kind, c).choice(candidates, size=class_rows.size)
            else:
                perm = numpy_rng(config.seed, "cycle", kind, c).permutation(candidates)
                picks = perm[np.arange(class_rows.size) % perm.size]
            pool_row[class_rows] = picks
            onset[class_rows] = pool.onset[picks]
            apex[class_rows] = pool.apex[picks]
            dataset[class_rows] = np.asarray(pool.dataset)[picks]
            subject[class_rows] = np.asarray(pool.subject)[picks]
            clip[class_rows] = np.asarray(pool.clip)[picks]
            onset_frame[class_rows] = np.asarray(pool.onset_frame)[picks]
            apex_frame[class_rows] = np.asarray(pool.apex_frame)[picks]

    if "exp" in kinds:
        exp_index = kinds.index("exp")
        for start in range(0, total, per_shard):
            rows = np.arange(start, min(start + per_shard, total))
            rows = rows[source_index[rows] == exp_index]
            if rows.size == 0:
                continue
            rng = numpy_rng(config.seed, "exp", start // per_shard)
            exp_onset, exp_apex, names = sample_exp(rng, label[rows], allow_empty=config.exp_allow_empty)
            onset[rows], apex[rows] = exp_onset, exp_apex
            dataset[rows] = EXP_DATASET
            clip[rows] = list(names)

    if config.au_jitter > 0:
        for start in range(0, total, per_shard):
            rows = slice(start, min(start + per_shard, total))
            rng = numpy_rng(config.seed, "jitter", start // per_shard)
            for keyframes in (onset, apex):
                noisy = keyframes[rows] + rng.normal(0.0, config.au_jitter, keyframes[rows].shape)
                keyframes[rows] = np.clip(noisy, 0.0, AU_MAX).astype(np.float32)

    weights, apex_index = frame_weights(config.frames, config.profile)
    return Plan(
        config_hash=config_hash,
        identities=list(identities),
        samples_per_id=spi,
        samples_per_shard=per_shard,
        num_frames=config.frames,
        frame_weights=weights,
        apex_frame_index=apex_index,
        identity_index=(np.arange(total) // spi).astype(np.int32),
        label=label,
        source_kind=np.asarray(kinds, dtype="U3")[source_index],
        pool_row=pool_row,
        onset=onset,
        apex=apex,
        dataset=dataset.astype(str),
        subject=subject.astype(str),
        clip=clip.astype(str),
        onset_frame=onset_frame,
        apex_frame=apex_frame,
        sample_seed=np.array([derive_seed(config.seed, "sample", r) for r in range(total)], dtype=np.uint64),
    )


def _check_pools(config: GenerateConfig, pools: dict[str, Any], class_shares: Sequence[float]) -> None:
    for spec in config.sources:
        if spec.kind == "exp":
            continue
        pool = pools.get(spec.kind)
        if pool is None:
            raise ConfigError(f"source: no pool loaded for {spec.kind}")
        labels = np.asarray(pool.label)
        for c, share in enumerate(class_shares):
            if share > 0 and not np.any(labels == c):
                raise DataError(
                    f"pool {spec.pool} ({spec.kind}) has no {CLASS_NAMES[c]} samples but the class ratio asks for them",
                    hint=f"use a pool with all classes or set --class-ratio with 0 for {CLASS_NAMES[c]}",
                )

"""Evaluation protocols as inspectable subject folds, and the train-time leakage guard.

A protocol is a list of :class:`Fold` objects, each a pair of disjoint sets of subject keys
``(dataset, subject)`` in the canonical form of ``miex_gen.datasets`` (MER_PROTOCOL.md §2.1). Folds
are defined on *subjects*, never on samples, so no clip of a test subject can reach training.

* ``loso`` — leave one subject out over every subject present (68 on the MEGC 2019 composite).
* ``loso:<dataset>`` — LOSO within one dataset (train and test on that dataset's subjects only).
* ``miex-3fold`` — the MiE-X CompMiE split, taken from the shipped list files (MIEX_PROTOCOL.md §10).
* ``holdout`` — one fold: a stated fraction of each dataset's subjects, drawn from the seed, is tested.

:func:`filter_synthetic` is the leakage guard (DESIGN.md "Leakage"): it removes synthetic samples whose
AU provenance subject is a test subject of the fold, whatever the AU pool was restricted to. It is the
authority at train time; pools built per fold are a convenience, not a guarantee.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from miex_gen.datasets import canonical_subject, load_ground_truth, load_miex_3fold
from miex_gen.errors import ConfigError, DataError
from miex_gen.seeding import numpy_rng

log = logging.getLogger(__name__)

SubjectKey = tuple[str, str]
PROTOCOLS = ("loso", "loso:<dataset>", "miex-3fold", "holdout")
_CANONICAL_DATASETS = frozenset({"casme2", "samm", "smic"})


@dataclass(frozen=True)
class Fold:
    """One train/test split by subject. ``name`` is unique within its protocol and safe as a file name."""

    name: str
    index: int
    train_subjects: frozenset[SubjectKey]
    test_subjects: frozenset[SubjectKey]
    protocol: str = ""

    def __post_init__(self) -> None:
        overlap = self.train_subjects & self.test_subjects
        if overlap:  # a bug, never a user error: folds are built here
            raise ValueError(f"fold {self.name}: subjects {sorted(overlap)} are both train and test")

    def split(self, samples: Any) -> tuple[list[int], list[int]]:
        """Indices of ``samples`` in this fold's training and test parts (others belong to neither)."""
        train, test = [], []
        for i, key in enumerate(subject_keys(samples)):
            if key in self.test_subjects:
                test.append(i)
            elif key in self.train_subjects:
                train.append(i)
        return train, test

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "index": self.index, "protocol": self.protocol,
            "train_subjects": [list(k) for k in sorted(self.train_subjects)],
            "test_subjects": [list(k) for k in sorted(self.test_subjects)],
        }


# ------------------------------------------------------------------------------------------ keys

def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item[name]
    return getattr(item, name)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8")
    return str(value)


@lru_cache(maxsize=65536)  # a synthetic set has millions of rows but only a few hundred distinct subjects
def canonical_subject_key(dataset: Any, subject: Any) -> SubjectKey:
    """``(dataset, subject)`` with the composite datasets' ids canonical (``samm, 6`` -> ``samm, 006``).

    Other datasets (CK+, Oulu, the FACS-rule source ``exp``, ...) keep their ids verbatim; an id that
    cannot be canonicalised is kept verbatim too, so it can never match a composite subject by accident.
    """
    dataset_text = _text(dataset).strip().lower()
    subject_text = _text(subject).strip()
    if dataset_text in _CANONICAL_DATASETS and subject_text:
        try:
            return dataset_text, canonical_subject(dataset_text, subject_text)
        except DataError:
            return dataset_text, subject_text
    return dataset_text, subject_text


def _columns(table: Any) -> tuple[Sequence[Any], Sequence[Any]] | None:
    """``(dataset column, subject column)`` of a column mapping, or None if ``table`` is not one."""
    if isinstance(table, Mapping) and "dataset" in table and "subject" in table:
        datasets, subjects = table["dataset"], table["subject"]
        if not isinstance(datasets, (str, bytes)) and hasattr(datasets, "__len__"):
            if len(datasets) != len(subjects):
                raise DataError(f"provenance columns differ in length: dataset {len(datasets)}, subject {len(subjects)}")
            return datasets, subjects
    return None


def subject_keys(samples: Any) -> list[SubjectKey]:
    """The canonical subject key of every sample.

    ``samples`` may be a sample source (``.meta``), a shard reader (``.table()``), a mapping of columns
    with ``dataset`` and ``subject``, or a sequence of records, mappings or ``(dataset, subject[, clip])``
    tuples.
    """
    if hasattr(samples, "meta") and not isinstance(samples, Mapping):
        samples = samples.meta
    elif hasattr(samples, "table") and callable(samples.table):
        samples = samples.table()
    columns = _columns(samples)
    if columns is not None:
        return [canonical_subject_key(d, s) for d, s in zip(*columns)]
    if hasattr(samples, "to_dict") and hasattr(samples, "columns"):  # a pandas DataFrame
        return [canonical_subject_key(d, s) for d, s in zip(samples["dataset"], samples["subject"])]
    keys: list[SubjectKey] = []
    for i, item in enumerate(samples):
        try:
            if isinstance(item, tuple) and len(item) in (2, 3) and not hasattr(item, "_fields"):
                keys.append(canonical_subject_key(item[0], item[1]))
            else:
                keys.append(canonical_subject_key(_field(item, "dataset"), _field(item, "subject")))
        except (KeyError, AttributeError) as exc:
            raise DataError(f"sample {i} has no dataset/subject provenance ({exc})",
                            hint="pass records with 'dataset' and 'subject' fields") from exc
    return keys


def _default_samples() -> list[Any]:
    return load_ground_truth()


def _subjects(samples: Any) -> list[SubjectKey]:
    keys = sorted(set(subject_keys(samples)))
    if not keys:
        raise DataError("no samples to build folds from", hint="check the --data paths")
    return keys


def _slug(key: SubjectKey) -> str:
    return f"{key[0]}-{key[1]}".replace("/", "_").replace(" ", "_")


# ------------------------------------------------------------------------------------- protocols

def loso(samples: Any = None) -> list[Fold]:
    """One fold per subject (keyed by dataset and subject); the default samples are the 442 of MEGC 2019."""
    subjects = _subjects(_default_samples() if samples is None else samples)
    everyone = frozenset(subjects)
    return [Fold(_slug(s), i, everyone - {s}, frozenset({s}), "loso") for i, s in enumerate(subjects)]


def dataset_loso(dataset: str, samples: Any = None) -> list[Fold]:
    """LOSO within ``dataset``: each of its subjects is tested once, trained on the dataset's other subjects."""
    dataset = dataset.strip().lower()
    all_subjects = _subjects(_default_samples() if samples is None else samples)
    subjects = [s for s in all_subjects if s[0] == dataset]
    if len(subjects) < 2:
        present = sorted({d for d, _ in all_subjects})
        raise ConfigError(f"protocol loso:{dataset} needs at least 2 subjects of {dataset!r}, found {len(subjects)}",
                          hint=f"datasets in the data: {', '.join(present)}")
    mine = frozenset(subjects)
    return [Fold(_slug(s), i, mine - {s}, frozenset({s}), f"loso:{dataset}") for i, s in enumerate(subjects)]


def miex_3fold(samples: Any = None) -> list[Fold]:
    """The MiE-X CompMiE 3-fold split from the shipped lists (subject-disjoint; train = the other two folds).

    With ``samples``, every subject must belong to the split: the split is defined on the 68 composite
    subjects and cannot place any other.
    """
    folds = load_miex_3fold()
    tests = [frozenset(canonical_subject_key(d, s) for d, s in f.test_subjects) for f in folds]
    everyone = frozenset().union(*tests)
    if samples is not None:
        unknown = sorted(set(subject_keys(samples)) - everyone)
        if unknown:
            shown = ", ".join(f"{d}/{s}" for d, s in unknown[:5])
            raise DataError(f"the MiE-X 3-fold split does not contain {len(unknown)} subject(s) of the data: {shown}",
                            hint="miex-3fold covers the MEGC 2019 composite only; use --protocol loso or holdout")
    return [Fold(f"fold{k}", k, everyone - test, test, "miex-3fold") for k, test in enumerate(tests)]


def _draw_subjects(subjects: Sequence[SubjectKey], fraction: float, rng: np.random.Generator) -> set[SubjectKey]:
    """``round(fraction * n)`` subjects of each dataset (at least 1 where it has 2 or more)."""
    chosen: set[SubjectKey] = set()
    for dataset in sorted({d for d, _ in subjects}):
        mine = sorted(s for s in subjects if s[0] == dataset)
        if len(mine) < 2:
            continue
        k = min(len(mine) - 1, max(1, int(round(fraction * len(mine)))))
        picks = rng.permutation(len(mine))[:k]
        chosen.update(mine[i] for i in picks)
    return chosen


def _check_fraction(fraction: float, what: str) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{what} must be between 0 and 1 (exclusive), got {fraction}")
    return fraction


def holdout(samples: Any = None, *, fraction: float = 0.2, seed: int = 0) -> list[Fold]:
    """One fold testing ``fraction`` of each dataset's subjects (drawn from ``seed``; stratified by dataset)."""
    fraction = _check_fraction(fraction, "holdout fraction")
    subjects = _subjects(_default_samples() if samples is None else samples)
    if len(subjects) < 2:
        raise DataError(f"holdout needs at least 2 subjects, the data has {len(subjects)}")
    test = _draw_subjects(subjects, fraction, numpy_rng(seed, "protocol", "holdout"))
    if not test:
        raise DataError("holdout drew no test subjects: every dataset in the data has a single subject",
                        hint="use data with at least 2 subjects in one dataset")
    return [Fold("holdout", 0, frozenset(subjects) - test, frozenset(test), "holdout")]


def make_folds(protocol: str, samples: Any = None, *, fraction: float = 0.2, seed: int = 0) -> list[Fold]:
    """Folds of ``protocol`` (``loso``, ``loso:<dataset>``, ``miex-3fold``, ``holdout``) over ``samples``."""
    name = protocol.strip().lower()
    if name == "loso":
        return loso(samples)
    if name.startswith("loso:"):
        return dataset_loso(name.partition(":")[2], samples)
    if name in ("miex-3fold", "miex_3fold", "3fold"):
        return miex_3fold(samples)
    if name == "holdout":
        return holdout(samples, fraction=fraction, seed=seed)
    raise ConfigError(f"unknown protocol {protocol!r}", hint=f"use one of {', '.join(PROTOCOLS)}")


def inner_split(train_subjects: Iterable[SubjectKey], *, fraction: float, seed: int,
                fold: str = "") -> tuple[frozenset[SubjectKey], frozenset[SubjectKey]]:
    """Split a fold's *training* subjects into (fit, validation) for model selection (never the test fold)."""
    fraction = _check_fraction(fraction, "validation fraction")
    subjects = sorted(set(train_subjects))
    if len(subjects) < 2:
        raise DataError(f"fold {fold or '?'}: {len(subjects)} training subject(s) cannot be split for validation",
                        hint="use a fixed epoch budget (no --val-fraction) for this protocol")
    val = _draw_subjects(subjects, fraction, numpy_rng(seed, "protocol", "inner", fold))
    if not val:  # every dataset has one subject: draw across datasets
        rng = numpy_rng(seed, "protocol", "inner-any", fold)
        val = {subjects[int(rng.integers(len(subjects)))]}
    return frozenset(subjects) - val, frozenset(val)


def check_partition(folds: Sequence[Fold], samples: Any) -> None:
    """Raise unless every sample is tested in exactly one fold (true for loso, miex-3fold on full data)."""
    keys = subject_keys(samples)
    counts = np.zeros(len(keys), dtype=np.int64)
    for fold in folds:
        _, test = fold.split(keys)
        counts[test] += 1
    if not np.all(counts == 1):
        bad = int(np.sum(counts != 1))
        raise DataError(f"{bad} sample(s) are tested {'never' if counts.min() == 0 else 'more than once'}")


# ---------------------------------------------------------------------------------- leakage guard

def filter_synthetic(table_or_reader: Any, test_subjects: Iterable[SubjectKey]) -> tuple[np.ndarray, int]:
    """Indices of synthetic samples safe to train on for a fold, and how many were removed.

    A sample is removed when its AU provenance ``(dataset, subject)`` is one of ``test_subjects``:
    its motion came from a test subject's real clip, so training on it would leak the test subject.
    Samples with other provenance (other datasets, the FACS-rule source, training subjects) are kept.
    ``table_or_reader``: a shard source/reader or provenance table, as :func:`subject_keys` accepts.
    """
    tests = {canonical_subject_key(d, s) for d, s in test_subjects}
    keys = subject_keys(table_or_reader)
    removed_mask = np.fromiter((k in tests for k in keys), dtype=bool, count=len(keys))
    keep = np.flatnonzero(~removed_mask)
    removed = int(removed_mask.sum())
    if removed:
        log.info("leakage guard: removed %d of %d synthetic samples whose AUs came from the fold's test subjects",
                 removed, len(keys))
    return keep, removed


__all__ = [
    "Fold", "PROTOCOLS", "SubjectKey", "canonical_subject_key", "check_partition", "dataset_loso", "filter_synthetic",
    "holdout", "inner_split", "loso", "make_folds", "miex_3fold", "subject_keys",
]

"""UF1 and UAR exactly as MEGC 2019 defines them, plus accuracy and confusion matrices.

Why this module is strict (MER_PROTOCOL.md §4):

* **Pool, never average per fold.** Callers pass the concatenated predictions of every fold; the
  per-class counts TP/FP/FN are taken over all of them. Averaging per-subject scores is a known
  inflation.
* **The class set is fixed**, ``labels=(0, 1, 2)`` unless asked otherwise; it is never inferred from
  the data, and a class is never dropped. A class with ``2TP + FP + FN = 0`` scores F1 = 0 and a class
  without true samples scores recall 0 (scikit-learn's ``zero_division=0``); both stay in the mean
  and raise :class:`UndefinedMetricWarning`. Setting such a class to 1 (MiE-X) or skipping it
  (STSTNet/HTNet evaluators) is what this module exists to prevent.
* **Per-dataset scores are subsets of the pooled predictions**, not separate experiments.

    F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)      UF1 = mean_c F1_c
    Rec_c = TP_c / (TP_c + FN_c)                 UAR = mean_c Rec_c

Pure numpy; usable per epoch by the trainer (``warn=False`` silences the absent-class warning on
small validation sets).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miex_gen.errors import DataError

DEFAULT_LABELS: tuple[int, ...] = (0, 1, 2)


class UndefinedMetricWarning(UserWarning):
    """A class had no samples (recall undefined) or no TP/FP/FN at all (F1 undefined); scored 0."""


@dataclass(frozen=True)
class Scores:
    """Pooled scores of one set of predictions. ``confusion[i][j]``: truth ``labels[i]``, predicted ``labels[j]``."""

    uf1: float
    uar: float
    accuracy: float
    f1_per_class: tuple[float, ...]
    recall_per_class: tuple[float, ...]
    precision_per_class: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]
    n: int
    labels: tuple[int, ...] = DEFAULT_LABELS
    undefined: tuple[str, ...] = field(default=())  # human-readable notes on classes scored 0 by convention

    @property
    def support(self) -> tuple[int, ...]:
        """True samples per class (n_c = TP_c + FN_c)."""
        return tuple(int(sum(row)) for row in self.confusion)

    @property
    def tp(self) -> tuple[int, ...]:
        return tuple(int(self.confusion[i][i]) for i in range(len(self.labels)))

    @property
    def fp(self) -> tuple[int, ...]:
        k = len(self.labels)
        return tuple(int(sum(self.confusion[r][c] for r in range(k)) - self.confusion[c][c]) for c in range(k))

    @property
    def fn(self) -> tuple[int, ...]:
        return tuple(int(sum(row) - row[i]) for i, row in enumerate(self.confusion))

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict (the shape stored in ``summary.json``)."""
        names = list(class_names) if class_names is not None else [str(c) for c in self.labels]
        return {
            "uf1": self.uf1,
            "uar": self.uar,
            "accuracy": self.accuracy,
            "n": self.n,
            "labels": list(self.labels),
            "class_names": names,
            "f1_per_class": dict(zip(names, self.f1_per_class)),
            "recall_per_class": dict(zip(names, self.recall_per_class)),
            "precision_per_class": dict(zip(names, self.precision_per_class)),
            "support": dict(zip(names, self.support)),
            "tp": dict(zip(names, self.tp)),
            "fp": dict(zip(names, self.fp)),
            "fn": dict(zip(names, self.fn)),
            "confusion": [list(row) for row in self.confusion],
            "undefined": list(self.undefined),
        }


def _as_labels(values: Iterable[Any], what: str) -> np.ndarray:
    try:
        arr = np.asarray(list(values))
    except (TypeError, ValueError) as exc:  # pragma: no cover - exotic iterables
        raise DataError(f"{what}: cannot read labels ({exc})") from exc
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a flat sequence of class ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        try:
            as_int = arr.astype(np.int64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what}: class ids must be integers, got {arr[:3].tolist()}...",
                            hint="predictions and truth are class ids (0 negative, 1 positive, 2 surprise)") from exc
        if not np.array_equal(as_int, arr.astype(np.float64)):
            raise DataError(f"{what}: class ids must be integers, got {arr[:3].tolist()}...")
        arr = as_int
    return arr.astype(np.int64, copy=False)


def confusion_matrix(truth: Iterable[int], pred: Iterable[int], *, labels: Sequence[int] = DEFAULT_LABELS) -> np.ndarray:
    """Counts ``[len(labels), len(labels)]``: rows truth, columns prediction (scikit-learn's layout)."""
    t, p = _as_labels(truth, "truth"), _as_labels(pred, "prediction")
    labels = tuple(int(c) for c in labels)
    if len(set(labels)) != len(labels) or not labels:
        raise DataError(f"labels must be distinct and non-empty, got {labels}")
    if t.shape != p.shape:
        raise DataError(f"truth has {t.size} entries but prediction has {p.size}",
                        hint="pass one prediction per sample (pooled over all folds)")
    index = {c: i for i, c in enumerate(labels)}
    for arr, what in ((t, "truth"), (p, "prediction")):
        bad = sorted(set(np.unique(arr).tolist()) - set(labels))
        if bad:
            raise DataError(f"{what} contains class id(s) {bad} outside labels {list(labels)}",
                            hint="map every sample to one of the fixed classes before scoring")
    k = len(labels)
    ti = np.fromiter((index[int(v)] for v in t), dtype=np.int64, count=t.size)
    pi = np.fromiter((index[int(v)] for v in p), dtype=np.int64, count=p.size)
    return np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)


def scores_from_confusion(confusion: np.ndarray, *, labels: Sequence[int] = DEFAULT_LABELS, warn: bool = True,
                          where: str = "") -> Scores:
    """UF1/UAR/accuracy from pooled counts (the MEGC formulas; absent classes count as 0)."""
    cm = np.asarray(confusion, dtype=np.int64)
    labels = tuple(int(c) for c in labels)
    k = len(labels)
    if cm.shape != (k, k):
        raise DataError(f"confusion matrix has shape {cm.shape}, expected {(k, k)} for labels {list(labels)}")
    n = int(cm.sum())
    if n == 0:
        raise DataError(f"no predictions to score{' for ' + where if where else ''}",
                        hint="check that the run produced predictions for at least one fold")
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    f1_den = 2 * tp + fp + fn
    rec_den = tp + fn
    prec_den = tp + fp
    f1 = np.divide(2 * tp, f1_den, out=np.zeros(k), where=f1_den > 0)
    recall = np.divide(tp, rec_den, out=np.zeros(k), where=rec_den > 0)
    precision = np.divide(tp, prec_den, out=np.zeros(k), where=prec_den > 0)
    notes: list[str] = []
    prefix = f"{where}: " if where else ""
    for i, c in enumerate(labels):
        if rec_den[i] == 0:
            notes.append(f"{prefix}class {c} has no true samples: recall counted as 0"
                         + ("" if f1_den[i] > 0 else " and F1 counted as 0 (never predicted either)"))
        elif f1_den[i] == 0:  # pragma: no cover - impossible when rec_den > 0; kept for clarity
            notes.append(f"{prefix}class {c}: F1 undefined, counted as 0")
    if warn:
        for note in notes:
            warnings.warn(note + " (kept in the mean; MEGC 2019 always averages over all classes)",
                          UndefinedMetricWarning, stacklevel=3)
    return Scores(
        uf1=float(f1.mean()),
        uar=float(recall.mean()),
        accuracy=float(tp.sum() / n),
        f1_per_class=tuple(float(x) for x in f1),
        recall_per_class=tuple(float(x) for x in recall),
        precision_per_class=tuple(float(x) for x in precision),
        confusion=tuple(tuple(int(x) for x in row) for row in cm),
        n=n,
        labels=labels,
        undefined=tuple(notes),
    )


def scores(truth: Iterable[int], pred: Iterable[int], *, labels: Sequence[int] = DEFAULT_LABELS, warn: bool = True,
           where: str = "") -> Scores:
    """Pooled MEGC 2019 scores of ``pred`` against ``truth`` (one entry per sample, all folds together)."""
    cm = confusion_matrix(truth, pred, labels=labels)
    return scores_from_confusion(cm, labels=labels, warn=warn, where=where)


def uf1_uar(truth: Iterable[int], pred: Iterable[int], *, labels: Sequence[int] = DEFAULT_LABELS,
            warn: bool = False) -> tuple[float, float]:
    """``(UF1, UAR)``; quiet by default, for per-epoch logging in a trainer."""
    s = scores(truth, pred, labels=labels, warn=warn)
    return s.uf1, s.uar


def _labels_for(labels: Sequence[int] | None, num_classes: int | None) -> tuple[int, ...]:
    if labels is not None:
        return tuple(labels)
    return tuple(range(num_classes)) if num_classes is not None else DEFAULT_LABELS


def uf1(truth: Iterable[int], pred: Iterable[int], *, labels: Sequence[int] | None = None,
        num_classes: int | None = None, warn: bool = False) -> float:
    """Pooled UF1 (unweighted macro F1 over the fixed classes ``range(num_classes)`` or ``labels``)."""
    return scores(truth, pred, labels=_labels_for(labels, num_classes), warn=warn).uf1


def uar(truth: Iterable[int], pred: Iterable[int], *, labels: Sequence[int] | None = None,
        num_classes: int | None = None, warn: bool = False) -> float:
    """Pooled UAR (unweighted macro recall, i.e. balanced accuracy over the fixed classes)."""
    return scores(truth, pred, labels=_labels_for(labels, num_classes), warn=warn).uar


def _get(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row[name]
    return getattr(row, name)


def scores_by_dataset(rows: Iterable[Any], *, labels: Sequence[int] = DEFAULT_LABELS, warn: bool = True,
                      truth_field: str = "truth", pred_field: str = "prediction",
                      dataset_field: str = "dataset") -> dict[str, Scores]:
    """``{"all": pooled, <dataset>: that dataset's subset of the pooled predictions, ...}``.

    ``rows`` are mappings or objects with ``dataset``, ``truth`` and ``prediction``. Datasets appear in
    sorted order after ``"all"``.
    """
    rows = list(rows)
    if not rows:
        raise DataError("no predictions to score", hint="check that the run produced predictions for at least one fold")
    try:
        truth = [_get(r, truth_field) for r in rows]
        pred = [_get(r, pred_field) for r in rows]
        datasets = [str(_get(r, dataset_field)) for r in rows]
    except (KeyError, AttributeError) as exc:
        raise DataError(f"prediction rows need fields {dataset_field!r}, {truth_field!r}, {pred_field!r}: missing {exc}")
    out = {"all": scores(truth, pred, labels=labels, warn=warn, where="all")}
    for name in sorted(set(datasets)):
        idx = [i for i, d in enumerate(datasets) if d == name]
        out[name] = scores([truth[i] for i in idx], [pred[i] for i in idx], labels=labels, warn=warn, where=name)
    return out


__all__ = [
    "DEFAULT_LABELS", "Scores", "UndefinedMetricWarning", "confusion_matrix", "scores", "scores_by_dataset",
    "scores_from_confusion", "uar", "uf1", "uf1_uar",
]

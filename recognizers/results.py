"""Evaluation results on disk: ``predictions.csv``, the MEGC log, the summary, the confusion-matrix plot.

Why files first: a published number must be re-computable by anyone from the predictions alone.
:func:`write_report` derives every number in ``summary.json``, ``megc_log.txt`` and
``confusion.png`` from the prediction rows and nothing else, and ``miex report RUN/`` calls the same
function on ``predictions.csv`` read back from disk, so the two can never disagree.

``predictions.csv`` columns: ``dataset, subject, clip, truth, prediction, fold, sample_id`` (extra
columns, e.g. class probabilities, are kept). The MEGC log (MER_PROTOCOL.md §5) has, per fold and
subject, a header line ``<dataset> <subject>`` and one line ``<filename> <gt> <pred>`` per clip.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from miex_gen.atomic import atomic_write_json, atomic_write_text
from miex_gen.aus import CLASS_NAMES
from miex_gen.errors import DataError, FormatError
from miex_gen.versions import environment_info

from .metrics import DEFAULT_LABELS, Scores, scores_by_dataset

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"
MEGC_LOG_FILE = "megc_log.txt"
CONFUSION_FILE = "confusion.png"
CONFIG_FILE = "config.json"
TRAINING_FILE = "training.json"  # per-fold training facts (sizes, epochs, leakage-guard counts), if any
COLUMNS = ("dataset", "subject", "clip", "truth", "prediction", "fold", "sample_id")
REQUIRED = ("dataset", "subject", "clip", "truth", "prediction", "fold")


@dataclass(frozen=True)
class PredictionRow:
    """One test prediction. ``sample_id`` is unique within a run (real clips: ``dataset/subject/clip``)."""

    sample_id: str
    dataset: str
    subject: str
    clip: str
    truth: int
    prediction: int
    fold: str
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any], *, fold: str | None = None) -> "PredictionRow":
        names = {f.name for f in fields(cls)} - {"extra"}
        missing = [c for c in REQUIRED if c not in row and not (c == "fold" and fold is not None)]
        if missing:
            raise DataError(f"prediction row lacks {', '.join(missing)}", hint=f"rows need {', '.join(COLUMNS)}")
        sample_id = row.get("sample_id") or f"{row['dataset']}/{row['subject']}/{row['clip']}"
        return cls(
            sample_id=str(sample_id), dataset=str(row["dataset"]), subject=str(row["subject"]), clip=str(row["clip"]),
            truth=int(row["truth"]), prediction=int(row["prediction"]),
            fold=str(fold if fold is not None else row["fold"]),
            extra={str(k): str(v) for k, v in row.items() if k not in names},
        )

    def to_mapping(self) -> dict[str, Any]:
        base = asdict(self)
        extra = base.pop("extra")
        return {**base, **extra}


def as_rows(rows: Iterable[Any], *, fold: str | None = None) -> list[PredictionRow]:
    """Normalise mappings / objects to :class:`PredictionRow` (``fold`` overrides the rows' own)."""
    out = []
    for row in rows:
        if isinstance(row, PredictionRow):
            out.append(row if fold is None else PredictionRow(**{**asdict(row), "fold": fold}))
        elif isinstance(row, Mapping):
            out.append(PredictionRow.from_mapping(row, fold=fold))
        else:
            out.append(PredictionRow.from_mapping(vars(row), fold=fold))
    return out


# --------------------------------------------------------------------------------- dedupe / checks

def dedupe_predictions(rows: Iterable[Any]) -> list[PredictionRow]:
    """Rows gathered from several ranks, with DistributedSampler's padding duplicates removed.

    ``DistributedSampler`` pads the last batch by repeating samples so every rank gets the same count;
    gathered naively, those samples would be scored twice. Keeps the first row of each
    ``(fold, sample_id)``, in order. Duplicates with different truth are a bug in the data, not
    padding, and raise; different predictions (non-deterministic kernels) keep the first and warn.
    """
    seen: dict[tuple[str, str], PredictionRow] = {}
    out: list[PredictionRow] = []
    disagreements = 0
    for row in as_rows(rows):
        key = (row.fold, row.sample_id)
        first = seen.get(key)
        if first is None:
            seen[key] = row
            out.append(row)
            continue
        if first.truth != row.truth or (first.dataset, first.subject, first.clip) != (row.dataset, row.subject, row.clip):
            raise DataError(f"sample {row.sample_id!r} of fold {row.fold!r} appears twice with different truth or clip",
                            hint="sample ids must be unique within a data set")
        disagreements += first.prediction != row.prediction
    if disagreements:
        log.warning("%d padded duplicate(s) had a different prediction from their first copy; kept the first",
                    disagreements)
    return out


def check_rows(rows: Sequence[PredictionRow], *, where: str = "predictions") -> None:
    """Each sample is tested once across all folds, and labels are class ids."""
    folds_of: dict[str, str] = {}
    for row in rows:
        other = folds_of.setdefault(row.sample_id, row.fold)
        if other != row.fold:
            raise DataError(f"{where}: sample {row.sample_id!r} is tested in folds {other!r} and {row.fold!r}",
                            hint="every sample must be tested exactly once; folds must not overlap")
    if len(folds_of) != len(rows):
        raise DataError(f"{where}: {len(rows) - len(folds_of)} duplicate sample row(s)",
                        hint="deduplicate gathered predictions with dedupe_predictions()")


# ------------------------------------------------------------------------------------ CSV in/out

def predictions_csv_text(rows: Sequence[PredictionRow]) -> str:
    extra = sorted({k for r in rows for k in r.extra})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.to_mapping())
    return buffer.getvalue()


def write_predictions(rows: Iterable[Any], path: str | Path) -> Path:
    """Write rows atomically (a file under its final name is always complete)."""
    path = Path(path)
    atomic_write_text(path, predictions_csv_text(as_rows(rows)))
    return path


def read_predictions(path: str | Path) -> list[PredictionRow]:
    """Read ``predictions.csv``; a bad row names its line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError("predictions file not found", path=path,
                        hint="run `miex evaluate ... --out RUN/` first, or point at a run directory") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read predictions: {exc}", path=path) from exc
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise FormatError(f"predictions file lacks column(s) {', '.join(missing)}", path=path,
                          hint=f"columns: {', '.join(COLUMNS)}")
    rows: list[PredictionRow] = []
    for line, raw in enumerate(reader, start=2):
        for column in ("truth", "prediction"):
            value = (raw.get(column) or "").strip()
            if not value.lstrip("-").isdigit():
                raise FormatError(f"line {line}: {column} {value!r} is not a class id", path=path,
                                  hint="class ids are integers (0 negative, 1 positive, 2 surprise)")
        rows.append(PredictionRow.from_mapping({k: (v or "").strip() for k, v in raw.items() if k is not None}))
    if not rows:
        raise DataError("predictions file has no rows", path=path, hint="the run produced no test predictions")
    return rows


# -------------------------------------------------------------------------------------- MEGC log

def _ordered_groups(rows: Sequence[PredictionRow]) -> list[tuple[tuple[str, str, str], list[PredictionRow]]]:
    groups: dict[tuple[str, str, str], list[PredictionRow]] = {}
    for row in rows:
        groups.setdefault((row.fold, row.dataset, row.subject), []).append(row)
    return list(groups.items())


def megc_log_text(rows: Sequence[PredictionRow]) -> str:
    """The MEGC 2019 log: per fold (and, for multi-subject folds, per subject) ``<dataset> <subject>``,
    then ``<filename> <gt> <pred>`` per clip, in the order of the rows."""
    lines: list[str] = []
    for (_, dataset, subject), group in _ordered_groups(rows):
        lines.append(f"{dataset} {subject}")
        lines.extend(f"{r.clip} {r.truth} {r.prediction}" for r in group)
    return "\n".join(lines) + "\n"


def parse_megc_log(path: str | Path) -> list[PredictionRow]:
    """Read a MEGC log (ours or anyone's) back into rows, so any run can be re-scored from it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read MEGC log: {exc}", path=path) from exc
    rows: list[PredictionRow] = []
    header: tuple[str, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2:
            header = (parts[0], parts[1])
        elif len(parts) == 3 and header is not None:
            clip, gt, pred = parts
            if not (gt.isdigit() and pred.isdigit()):
                raise FormatError(f"line {number}: '{line.strip()}' needs integer gt and pred", path=path)
            rows.append(PredictionRow(f"{header[0]}/{header[1]}/{clip}", header[0], header[1], clip, int(gt),
                                      int(pred), f"{header[0]}-{header[1]}"))
        else:
            raise FormatError(f"line {number}: expected '<dataset> <subject>' or '<filename> <gt> <pred>', "
                              f"got {line.strip()!r}", path=path)
    if not rows:
        raise DataError("MEGC log has no predictions", path=path)
    return rows


# ------------------------------------------------------------------------------------ summary

def score_rows(rows: Sequence[PredictionRow], *, labels: Sequence[int] = DEFAULT_LABELS) -> dict[str, Scores]:
    """Pooled scores over all rows and per dataset (subsets of the pooled predictions)."""
    return scores_by_dataset(rows, labels=labels)


def summary_dict(rows: Sequence[PredictionRow], *, config: Mapping[str, Any] | None = None,
                 training: Mapping[str, Any] | None = None, labels: Sequence[int] = DEFAULT_LABELS) -> dict[str, Any]:
    """Everything in ``summary.json``: scores from ``rows`` only, plus the run's config and training facts."""
    by = score_rows(rows, labels=labels)
    names = list(CLASS_NAMES) if tuple(labels) == DEFAULT_LABELS else [str(c) for c in labels]
    folds: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = folds.setdefault(row.fold, {"n": 0, "subjects": set()})
        entry["n"] += 1
        entry["subjects"].add(f"{row.dataset}/{row.subject}")
    full = by["all"]
    expected = list(config.get("folds", [])) if config else []
    missing = [name for name in expected if name not in folds]
    guard = {name: info.get("synthetic_removed_by_leakage_guard") for name, info in (training or {}).items()
             if isinstance(info, Mapping) and info.get("synthetic_removed_by_leakage_guard") is not None}
    return {
        "scoring": "MEGC 2019: per-class TP/FP/FN pooled over all folds; UF1 = macro F1, UAR = macro recall; "
                   "all classes always counted (absent class scores 0)",
        "uf1": full.uf1,
        "uar": full.uar,
        "accuracy": full.accuracy,
        "n": full.n,
        "scores": {name: s.to_dict(names) for name, s in by.items()},
        "folds": {name: {"n": v["n"], "subjects": sorted(v["subjects"])} for name, v in folds.items()},
        "num_folds": len(folds),
        "complete": not missing if expected else None,
        "missing_folds": missing,
        "leakage_guard_removed": guard or None,
        "seeds": (config or {}).get("seeds"),
        "versions": (config or {}).get("versions") or environment_info(),
        "config": dict(config) if config is not None else None,
        "training": dict(training) if training is not None else None,
    }


def plot_confusion(by: Mapping[str, Scores], path: str | Path, *, class_names: Sequence[str] = CLASS_NAMES) -> Path:
    """One panel per score set (all, then per dataset): counts and row percentages."""
    import numpy as np

    from miex_gen.plotting import new_figure, save_figure

    names = list(by)
    fig, axes = new_figure(1, len(names), (3.6 * len(names), 3.6))
    for ax, name in zip(axes[0], names):
        s = by[name]
        cm = np.array(s.confusion, dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black")
        ticks = list(range(len(class_names)))
        ax.set_xticks(ticks, [c[:3] for c in class_names])
        ax.set_yticks(ticks, [c[:3] for c in class_names])
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        ax.set_title(f"{name} (n={s.n})\nUF1 {s.uf1:.4f}  UAR {s.uar:.4f}", fontsize=9)
    return save_figure(fig, path, dpi=110)


def write_report(run_dir: str | Path, rows: Sequence[Any], *, config: Mapping[str, Any] | None = None,
                 training: Mapping[str, Any] | None = None, labels: Sequence[int] = DEFAULT_LABELS,
                 plot: bool = True) -> dict[str, Any]:
    """Write ``predictions.csv`` (if absent or different), ``megc_log.txt``, ``summary.json``, ``confusion.png``."""
    run_dir = Path(run_dir)
    rows = as_rows(rows)
    check_rows(rows, where=str(run_dir / PREDICTIONS_FILE))
    text = predictions_csv_text(rows)
    pred_path = run_dir / PREDICTIONS_FILE
    if not pred_path.exists() or pred_path.read_text(encoding="utf-8") != text:
        atomic_write_text(pred_path, text)
    summary = summary_dict(rows, config=config, training=training, labels=labels)
    atomic_write_text(run_dir / MEGC_LOG_FILE, megc_log_text(rows))
    if plot:
        names = list(CLASS_NAMES) if tuple(labels) == DEFAULT_LABELS else [str(c) for c in labels]
        plot_confusion(score_rows(rows, labels=labels), run_dir / CONFUSION_FILE, class_names=names)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def report(run_dir: str | Path, *, plot: bool = True) -> dict[str, Any]:
    """Re-compute every number of a run from its ``predictions.csv`` alone and rewrite summary, log and plot."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise DataError("expected a run directory, got a file", path=run_dir,
                        hint="pass the directory given to `miex evaluate --out`")
    rows = read_predictions(run_dir / PREDICTIONS_FILE)
    config, training = _optional_json(run_dir / CONFIG_FILE), _optional_json(run_dir / TRAINING_FILE)
    return write_report(run_dir, rows, config=config, training=training, plot=plot)


def _optional_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FormatError(f"cannot read {path.name}: {exc}", path=path) from exc


__all__ = [
    "COLUMNS", "CONFIG_FILE", "CONFUSION_FILE", "MEGC_LOG_FILE", "PREDICTIONS_FILE", "PredictionRow", "SUMMARY_FILE",
    "TRAINING_FILE",
    "as_rows", "check_rows", "dedupe_predictions", "megc_log_text", "parse_megc_log", "plot_confusion",
    "read_predictions", "report", "score_rows", "summary_dict", "write_predictions", "write_report",
]

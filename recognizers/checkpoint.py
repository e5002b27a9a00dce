"""Recognizer checkpoints: one self-describing file with the full training state, written atomically.

A checkpoint holds the model name, options and input spec (so ``predict`` rebuilds the model and its
preprocessing from the file alone), the state of model, optimiser, scheduler and AMP scaler, the
number of completed epochs, the RNG states (python, numpy, torch, cuda), the resolved config, its
content hash, the metric history and the environment. Only plain types and tensors are stored, so it
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from miex_gen.atomic import atomic_path
from miex_gen.errors import CheckpointError

FORMAT = "miex-recognizer-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(_listify(random.getstate())),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format tags) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
    return path


def load_checkpoint(path: str | Path, *, model: str | None = None) -> dict[str, Any]:
    """Read a checkpoint; a missing file, a foreign file or another model's checkpoint is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path, hint="pass the model.pt or last.pt of a miex train run")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"not a readable checkpoint: {type(exc).__name__}: {str(exc)[:200]}", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("not a miex recognizer checkpoint", path=path,
                              hint="use a file written by miex train (model.pt or last.pt)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint version {data.get('version')} is newer than this miex ({VERSION})",
                              path=path, hint="upgrade miex")
    if model is not None and data.get("model") != model:
        raise CheckpointError(f"checkpoint holds a {data.get('model')!r} model, not {model!r}", path=path,
                              hint=f"use a checkpoint trained with --model {model}, or train with --model {data.get('model')}")
    return data


def load_model_state(module: torch.nn.Module, state: dict[str, torch.Tensor], *, path: str | Path) -> None:
    """``load_state_dict`` with a readable error when the shapes or keys do not fit."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"weights do not fit the model: {' '.join(first[:3])[:300]}", path=path,
                              hint="check --num-classes and the model options") from exc

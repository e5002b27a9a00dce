"""Files a training run writes: per-epoch weights in the dialect's naming, and the training state.

* weights: plain state dicts (tensors on the CPU, no ``module.`` prefix), exactly what the
  public checkpoints hold, so ``miex generate --renderer ganimation --checkpoint RUN/30_net_gen.pth``
  loads them: replicate ``<epoch>_net_gen.pth`` / ``<epoch>_net_dis.pth``, official
  ``net_epoch_<epoch>_id_G.pth`` / ``net_epoch_<epoch>_id_D.pth``;
* ``state.pt``: both networks, both optimisers, epoch, iteration, the config hash and every RNG
  state, loadable with ``torch.load(weights_only=True)``.

Every file is written atomically (a temp file renamed into place), so a file under its final
name is complete even if the run is killed while saving.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import CheckpointError

STATE_NAME = "state.pt"
STATE_FORMAT = "miex-gan-train-state"
STATE_VERSION = 1

_NAMING = {
    "replicate": ("{epoch}_net_gen.pth", "{epoch}_net_dis.pth"),
    "official": ("net_epoch_{epoch}_id_G.pth", "net_epoch_{epoch}_id_D.pth"),
}
_EPOCH_RE = {
    "replicate": re.compile(r"^(\d+)_net_gen\.pth$"),
    "official": re.compile(r"^net_epoch_(\d+)_id_G\.pth$"),
}


def weight_file_names(dialect: str, epoch: int) -> tuple[str, str]:
    """(generator, critic) file names of ``epoch`` (1-based) in ``dialect``'s naming."""
    gen, dis = _NAMING[dialect]
    return gen.format(epoch=epoch), dis.format(epoch=epoch)


def latest_generator(run_dir: str | Path) -> Path | None:
    """The generator file of the highest epoch in a run folder (either naming), or None."""
    best: tuple[int, Path] | None = None
    for path in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        for pattern in _EPOCH_RE.values():
            match = pattern.match(path.name)
            if match and (best is None or int(match.group(1)) > best[0]):
                best = (int(match.group(1)), path)
    return best[1] if best else None


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the unwrapped module's state dict (no DDP ``module.`` prefix)."""
    inner = module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in inner.state_dict().items()}


def save_atomic(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def save_weights(generator: nn.Module, critic: nn.Module, run_dir: str | Path, dialect: str,
                 epoch: int) -> tuple[Path, Path]:
    gen_name, dis_name = weight_file_names(dialect, epoch)
    run_dir = Path(run_dir)
    return (save_atomic(cpu_state_dict(generator), run_dir / gen_name),
            save_atomic(cpu_state_dict(critic), run_dir / dis_name))


# ----------------------------------------------------------------------------- RNG states

def capture_rng() -> dict[str, Any]:
    """Every global RNG state, as tensors and ints (so ``weights_only`` loading accepts them)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- training state

def save_state(path: str | Path, *, generator: nn.Module, critic: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, epoch: int, iteration: int, config_hash: str,
               extra: dict[str, Any] | None = None) -> Path:
    """Write ``state.pt``: ``iteration`` is the next global iteration to run, ``epoch`` its epoch."""
    state = {
        "format": STATE_FORMAT, "version": STATE_VERSION,
        "generator": cpu_state_dict(generator), "critic": cpu_state_dict(critic),
        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
        "epoch": int(epoch), "iteration": int(iteration), "config_hash": config_hash,
        "rng": capture_rng(), "extra": extra or {},
    }
    return save_atomic(state, path)


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read training state: {exc}", path=path,
                              hint="the file is damaged; resume from an earlier copy or start a new run") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError("not a miex GAN training state", path=path)
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(f"training state version {state.get('version')} is not supported "
                              f"(this miex writes {STATE_VERSION})", path=path)
    return state

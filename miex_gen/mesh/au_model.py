"""py-feat's linear AU -> 478-vertex face-mesh model, re-expressed in miex's 17 AUs.

The model (``au_to_mesh_pls_v4.npz``, a PLS regression fitted by py-feat) maps 20 py-feat AU
probabilities (0-1) plus head pose to an absolute mesh: ``flat = au20 @ coef[:20] + intercept``
with ``flat`` axis-major ``[x_0..x_477 | y_0.. | z_0..]``. Pose is held at 0 (frontal). Units are
roughly pixels of a 256-px face chip, **y up, +z out of the face**; the face is ~195 units tall.

Because it is linear, the displacement of an AU vector from the neutral mesh (all AUs 0) is
``aus17 @ basis`` with one ``[478, 3]`` basis per AU; ``basis`` folds in the 17 -> 20 map of
``miex_gen.aus`` and the OpenFace 0-5 -> py-feat 0-1 scale (``/ FEAT_TO_OPENFACE``), so an
OpenFace intensity of 5 is the model's probability 1 (its training range ends there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..aus import FEAT_AU_NAMES, FEAT_TO_OPENFACE, NUM_AUS, check_aus, to_feat20
from ..errors import DependencyError, FormatError
from ..fileio import sha256_file
from .resources import feat_resource

MODEL_FILE = "au_to_mesh_pls_v4.npz"
NUM_VERTICES = 478


@dataclass(frozen=True)
class AuMeshModel:
    """``neutral`` float32 [478, 3] = mesh(0); ``basis`` float32 [17, 478, 3] per OpenFace unit."""

    neutral: np.ndarray
    basis: np.ndarray
    name: str
    sha256: str

    def delta(self, aus: np.ndarray) -> np.ndarray:
        """Displacement [..., 478, 3] of absolute AUs [..., 17] (0-5) from the neutral mesh."""
        arr = check_aus(aus, where="AU->mesh input")
        flat = arr.reshape(-1, NUM_AUS) @ self.basis.reshape(NUM_AUS, -1)
        return flat.reshape(arr.shape[:-1] + (NUM_VERTICES, 3))

    def mesh(self, aus: np.ndarray) -> np.ndarray:
        """Absolute mesh [..., 478, 3] for AUs [..., 17]; ``mesh(0) == neutral``."""
        return self.neutral + self.delta(aus)


def _axis_major_to_vertices(flat: np.ndarray) -> np.ndarray:
    """``[..., 1434]`` axis-major -> ``[..., 478, 3]``."""
    return np.swapaxes(flat.reshape(flat.shape[:-1] + (3, NUM_VERTICES)), -1, -2)


@lru_cache(maxsize=2)
def load_au_mesh_model(path: str | Path | None = None) -> AuMeshModel:
    """Load the PLS model from the installed py-feat (or ``path``) with numpy only."""
    file = Path(path) if path is not None else feat_resource(MODEL_FILE)
    try:
        with np.load(file, allow_pickle=False) as npz:
            coef = np.asarray(npz["coef"], dtype=np.float32)
            intercept = np.asarray(npz["intercept"], dtype=np.float32)
            columns = tuple(str(c) for c in npz["au_columns"])
            card = str(npz["model_card"]) if "model_card" in npz.files else file.stem
    except (OSError, KeyError, ValueError) as exc:
        raise DependencyError(f"cannot read the AU->mesh model: {exc}", path=file,
                              hint="reinstall py-feat>=2.1") from exc
    if columns != FEAT_AU_NAMES or coef.shape[1] != 3 * NUM_VERTICES or coef.shape[0] < len(FEAT_AU_NAMES):
        raise FormatError(
            f"unexpected AU->mesh model layout: au_columns={columns}, coef {coef.shape}",
            path=file, hint=f"miex expects py-feat's {MODEL_FILE} (20 AUs + pose -> 478x3)",
        )
    # row k of `per_au` = our AU k mapped into py-feat's 20 and rescaled 0-5 -> 0-1
    per_au = to_feat20(np.eye(NUM_AUS, dtype=np.float32)) / FEAT_TO_OPENFACE
    basis = _axis_major_to_vertices(per_au @ coef[: len(FEAT_AU_NAMES)])
    neutral = _axis_major_to_vertices(intercept)
    return AuMeshModel(
        neutral=np.ascontiguousarray(neutral, dtype=np.float32),
        basis=np.ascontiguousarray(basis, dtype=np.float32),
        name=card,
        sha256=sha256_file(file),
    )

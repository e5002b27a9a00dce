"""The face mesh behind the warp renderer: AU -> 478-vertex mesh model, AU regions, landmarks.

* ``au_model``: py-feat's linear AU -> mesh model (read with numpy, py-feat is never imported);
* ``regions``: where each AU may move the face (locality weights);
* ``landmarks``: the 478 landmarks of an identity photo (MediaPipe, or a mean-mesh fallback);
* ``topology``: named vertex groups (lips, brows, lids, oval).
"""

from __future__ import annotations

from .au_model import NUM_VERTICES, AuMeshModel, load_au_mesh_model
from .regions import au_core_regions, au_vertex_weights

__all__ = ["NUM_VERTICES", "AuMeshModel", "au_core_regions", "au_vertex_weights", "load_au_mesh_model"]

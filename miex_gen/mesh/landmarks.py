"""The 478 landmarks of an identity photo, in pixels, and how the AU model's frame maps onto them.

Two paths place the mesh, and ``FaceLandmarks.source`` records which one did:

* ``"mediapipe"``: the legacy MediaPipe face mesh (``mediapipe==0.10.14`` ``solutions.face_mesh``,
  models inside the wheel, offline, ~10 ms): 478 points in the same index space as py-feat's
  AU->mesh model, including a relative depth;
* ``"fallback"``: where mediapipe is not installed or finds no face, the model's neutral mesh is
  scaled into the detected face box (frontal, upright). Coarser, but it keeps every identity
  renderable and needs nothing beyond numpy.

Points are ``[x, y, z]`` in pixels of the image they were found on: x right, y down, z away from the
camera (MediaPipe's convention; its z is scaled like x).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .au_model import NUM_VERTICES
from .resources import feat_resource
from .topology import NUM_FACE_VERTICES

MEDIAPIPE = "mediapipe"
FALLBACK = "fallback"

# Fallback placement, calibrated on six py-feat test faces against their MediaPipe meshes with the
# boxes of ``miex_gen.faces.detect_face`` (MediaPipe face detection): the mesh (vertices 0..467,
# forehead top to chin) is 0.99-1.05 box heights tall (mean 1.02) and its centre sits 0.006-0.013
# box heights below the box centre (horizontal offset within +-0.07 box widths: not modelled).
BOX_HEIGHT_TO_MESH_HEIGHT = 1.02
BOX_CENTER_TO_MESH_CENTER = 0.01


@dataclass(frozen=True)
class FaceLandmarks:
    points: np.ndarray  # float32 [478, 3], pixels (x right, y down, z away from the camera)
    source: str  # MEDIAPIPE or FALLBACK


def model_to_image_axes(mesh: np.ndarray) -> np.ndarray:
    """py-feat model axes (x right, y up, z out of the face) -> image axes (x right, y down, z away)."""
    out = np.array(mesh, dtype=np.float64, copy=True)
    out[..., 1:] *= -1.0
    return out


# ---------------------------------------------------------------------------------------------
# MediaPipe
_MP_LOCK = threading.Lock()
_MP_STATE: dict[tuple[int, int], Any] = {}


def _face_mesh() -> Any | None:
    """One static-image FaceMesh graph per process and thread (building one costs ~50 ms), or None.

    Per process: a forked worker must not use its parent's graph; per thread: graphs are not
    safe to share, and generation prepares identities in parallel threads.
    """
    key = (os.getpid(), threading.get_ident())
    with _MP_LOCK:
        if key not in _MP_STATE:
            try:
                from mediapipe.python.solutions import face_mesh  # legacy API, mediapipe<=0.10.21
            except (ImportError, AttributeError):
                _MP_STATE[key] = None
            else:
                _MP_STATE[key] = face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5
                )
        return _MP_STATE[key]


def mediapipe_landmarks(image: np.ndarray) -> np.ndarray | None:
    """float32 [478, 3] pixel landmarks of the most prominent face in RGB ``image``, or None.

    None means mediapipe is not installed (or lacks the legacy face mesh) or found no face.
    """
    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GetPrototype.*")  # protobuf noise inside mediapipe
        mesh = _face_mesh()
        if mesh is None:
            return None
        result = mesh.process(rgb)
    faces = getattr(result, "multi_face_landmarks", None)
    if not faces:
        return None
    marks = faces[0].landmark
    if len(marks) != NUM_VERTICES:
        return None
    h, w = rgb.shape[:2]
    pts = np.array([(m.x, m.y, m.z) for m in marks], dtype=np.float64)
    pts *= np.array([w, h, w], dtype=np.float64)  # MediaPipe scales z like x
    return pts.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Fallback
def fallback_landmarks(neutral: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """float32 [478, 3]: the model's neutral mesh, upright and frontal, scaled into face ``box``.

    ``box`` is ``(x0, y0, x1, y1)`` in pixels of the detector that ``miex_gen.faces`` uses.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    pts = model_to_image_axes(neutral)
    face = pts[:NUM_FACE_VERTICES]
    lo, hi = face.min(axis=0), face.max(axis=0)
    scale = BOX_HEIGHT_TO_MESH_HEIGHT * (y1 - y0) / (hi[1] - lo[1])
    centre = (lo + hi) / 2.0
    target = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 + BOX_CENTER_TO_MESH_CENTER * (y1 - y0), 0.0])
    return ((pts - centre) * scale + target).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Model frame -> image frame
@dataclass(frozen=True)
class Similarity3D:
    """``image = scale * rotation @ model + translation`` (model in image axes)."""

    scale: float
    rotation: np.ndarray  # [3, 3], det +1
    translation: np.ndarray  # [3]
    rms: float  # residual of the fit, pixels

    def apply_linear(self, vectors: np.ndarray) -> np.ndarray:
        """Map displacement vectors [..., 3] (model image-axes) into the image (no translation)."""
        return self.scale * (np.asarray(vectors, dtype=np.float64) @ self.rotation.T)


def fit_similarity(model_points: np.ndarray, image_points: np.ndarray) -> Similarity3D:
    """Least-squares similarity (Umeyama 1991) from model points to image points, both [N, 3].

    It carries the model's displacements into the photo with the face's scale and head pose
    (yaw/pitch/roll), so a 15-degree face gets foreshortened, rotated motion.
    """
    src = np.asarray(model_points, dtype=np.float64)
    dst = np.asarray(image_points, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    var_s = (a**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ fix) / var_s)
    translation = mu_d - scale * rotation @ mu_s
    residual = dst - (scale * src @ rotation.T + translation)
    rms = float(np.sqrt((residual[:, :2] ** 2).sum(axis=1).mean()))
    return Similarity3D(scale=scale, rotation=rotation, translation=translation, rms=rms)


# ---------------------------------------------------------------------------------------------
# Visibility
@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """int [898, 3]: the full triangulation of the 468-vertex canonical mesh (py-feat resource)."""
    path = feat_resource("canonical_face_tessellation.json")
    return np.asarray(json.loads(path.read_text())["triangles"], dtype=np.int64)


def facing_camera(points: np.ndarray, min_cos: float = 0.1) -> np.ndarray:
    """bool [478]: the surface at each vertex faces the camera (its normal's cosine > ``min_cos``).

    Vertices on the far side of a turned head project on top of visible ones; their motion must not
    drive the image. Normals are area-weighted over the canonical triangles; their sign is fixed so
    that the nose tip (vertex 1) faces the camera. Iris points follow their eye's visibility.
    """
    pts = np.asarray(points, dtype=np.float64)
    tri = face_triangles()
    cross = np.cross(pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]])
    normals = np.zeros((NUM_FACE_VERTICES, 3))
    for corner in range(3):
        np.add.at(normals, tri[:, corner], cross)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    toward = -normals[:, 2]  # camera looks along +z
    if toward[1] < 0:
        toward = -toward
    visible = np.ones(NUM_VERTICES, dtype=bool)
    visible[:NUM_FACE_VERTICES] = toward > min_cos
    visible[468:473] = visible[[33, 133, 159, 145]].all()  # right iris with the right eye
    visible[473:478] = visible[[263, 362, 386, 374]].all()
    return visible

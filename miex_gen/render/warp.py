"""The weight-free AU-warp renderer: AU vector -> face-mesh displacement -> image warp.

``prepare`` (once per identity, ~60 ms): find the face, crop it with a margin (``crop_margin`` of
the face box on every side, so forehead, chin and some background are in the frame and the image
border stays fixed), place the 478-point face mesh on the crop (MediaPipe, or the mean-mesh
fallback), carry py-feat's AU->mesh displacements into the crop's pixels with a 3D similarity fit
(scale + head pose), confine each AU to its region (``miex_gen.mesh.regions``), and triangulate
the landmarks with border anchors (``warp_field``). The identity photo is the neutral face.

``render`` (per frame): displacement = AUs @ per-AU bases (a [17] x [17, K*2] product), then the
exact piecewise-affine warp. A frame with all-zero AUs returns the prepared face bit for bit.

Amplitude limits, both reported in the metadata:
* per AU, the intensity at which that AU alone would compress some triangle below
  ``min_area_ratio`` of its area is its *saturation*: higher intensities render like it;
* per frame, if a combination still over-compresses, the frame's displacement is scaled down
  (``clamp``), so every output is fold-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..aus import AU_MAX, AU_NAMES
from ..errors import ConfigError, DataError
from ..mesh.au_model import AuMeshModel, load_au_mesh_model
from ..mesh.landmarks import (
    FALLBACK,
    MEDIAPIPE,
    Similarity3D,
    facing_camera,
    fallback_landmarks,
    fit_similarity,
    mediapipe_landmarks,
    model_to_image_axes,
)
from ..mesh.regions import DEFAULT_FALLOFF, DEFAULT_SMOOTHING, localize, smooth_on_mesh
from ..mesh.topology import NUM_FACE_VERTICES
from .base import Prepared, Renderer, RenderResult, check_render_inputs, register_renderer
from .warp_field import DEFAULT_MIN_AREA_RATIO, WarpField, build_warp_field

LANDMARK_SIZE = 256  # px: MediaPipe runs on the crop at this size (finer than a 128-px frame)
DEFAULT_CROP_MARGIN = 0.3
# py-feat's displacement at OpenFace 5 (= probability 1) is the mean shape change of faces in which
# its detector sees the AU: a moderate expression. x2 makes AU12 = 3 move a lip corner ~2 px on a
# 128-px crop (~2.5 % of the face height). See docs/WARP_RENDERER.md.
DEFAULT_GAIN = 2.0
LANDMARK_MODES = ("auto", MEDIAPIPE, FALLBACK)
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
# landmarks closer than this (px at 128) to a kept one do not drive the warp: fewer sliver triangles,
# which are what the fold clamp would otherwise stop first (measured: it raises the intensity at
# which AU09/AU14/AU23/AU45 saturate by 1.5-2x at no visible cost)
MIN_SPACING_128 = 2.0


@dataclass
class WarpState:
    """Per-identity cache: the triangulation and the per-AU displacement bases in its pixels."""

    field: WarpField
    landmarks: np.ndarray  # float32 [478, 3]: the mesh on the prepared face (pixels)
    bases: np.ndarray  # float32 [17, K, 2]: displacement (px) per unit of OpenFace intensity
    saturation: np.ndarray  # float32 [17]: intensity at which each AU alone reaches the clamp

    def displacements(self, aus: np.ndarray) -> np.ndarray:
        """[T, 17] absolute AUs -> [T, K, 2] landmark displacements in pixels."""
        effective = np.minimum(np.asarray(aus, dtype=np.float32), self.saturation)
        return np.einsum("tk,kvc->tvc", effective, self.bases, optimize=True)


_LOCAL_BASES: dict[tuple[str, int, float], np.ndarray] = {}


def _local_basis(model: AuMeshModel, smoothing: int, falloff: float) -> np.ndarray:
    """[17, 478, 3] in image axes: each AU's (denoised) displacement, confined to its region.

    Depends only on the mesh model and two options, and takes ~50 ms: made once per process, so
    a renderer built per shard or per worker costs nothing extra. Read-only once made.
    """
    key = (model.sha256, smoothing, falloff)
    basis = _LOCAL_BASES.get(key)
    if basis is None:
        smooth = smooth_on_mesh(model.basis, smoothing)
        basis = model_to_image_axes(localize(smooth, model.neutral, falloff))
        basis.setflags(write=False)
        _LOCAL_BASES[key] = basis
    return basis


@register_renderer("warp")
class WarpRenderer(Renderer):
    """Weight-free renderer; see the module docstring. Options are keyword arguments of
    ``get_renderer("warp", ...)``."""

    name = "warp"
    prepare_in_subprocess = True  # landmarks, triangulation and bases: ~30 ms of GIL-bound numpy

    def __init__(
        self,
        input_size: int = 128,
        *,
        gain: float = DEFAULT_GAIN,
        falloff: float = DEFAULT_FALLOFF,
        smoothing: int = DEFAULT_SMOOTHING,
        crop_margin: float = DEFAULT_CROP_MARGIN,
        min_area_ratio: float = DEFAULT_MIN_AREA_RATIO,
        landmarks: str = "auto",
        device: Any = None,
        checkpoint: Any = None,
    ) -> None:
        if checkpoint is not None:
            raise ConfigError("the warp renderer takes no checkpoint", hint="drop the checkpoint, or use renderer 'ganimation'")
        if not isinstance(input_size, int) or input_size < 32:
            raise ConfigError(f"warp renderer input_size must be an integer >= 32, got {input_size!r}")
        if not gain > 0:
            raise ConfigError(f"warp renderer gain must be > 0, got {gain!r}")
        if not falloff >= 0:
            raise ConfigError(f"warp renderer falloff must be >= 0 (model units), got {falloff!r}")
        if not isinstance(smoothing, int) or smoothing < 0:
            raise ConfigError(f"warp renderer smoothing must be an integer >= 0 (mesh steps), got {smoothing!r}")
        if not 0 <= crop_margin <= 2:
            raise ConfigError(f"warp renderer crop_margin must lie in [0, 2], got {crop_margin!r}")
        if not 0 < min_area_ratio < 1:
            raise ConfigError(f"warp renderer min_area_ratio must lie in (0, 1), got {min_area_ratio!r}")
        if landmarks not in LANDMARK_MODES:
            raise ConfigError(f"warp renderer landmarks must be one of {', '.join(LANDMARK_MODES)}, got {landmarks!r}")
        self.input_size = input_size
        self.gain = float(gain)
        self.falloff = float(falloff)
        self.smoothing = smoothing
        self.crop_margin = float(crop_margin)
        self.min_area_ratio = float(min_area_ratio)
        self.landmarks = landmarks
        self.model: AuMeshModel = load_au_mesh_model()
        self._local_basis = _local_basis(self.model, self.smoothing, self.falloff)
        self._model_face = model_to_image_axes(self.model.neutral[:NUM_FACE_VERTICES])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "gain": self.gain, "falloff": self.falloff, "smoothing": self.smoothing, "crop_margin": self.crop_margin,
            "min_area_ratio": self.min_area_ratio, "landmarks": self.landmarks,
            "mesh_model": self.model.name, "mesh_model_sha256": self.model.sha256,
        }

    # ------------------------------------------------------------------------------------------
    def screen(self, face: np.ndarray) -> None:
        """What decides whether ``prepare`` succeeds: a valid image with a detectable face (with
        ``landmarks="auto"`` a face without a MediaPipe mesh still renders, via the fallback)."""
        from ..faces import detect_face

        image = _check_image(face)
        if self.landmarks == MEDIAPIPE:
            self.prepare(image)
        else:
            detect_face(image)

    def warm_up(self) -> None:
        from ..faces import detect_faces

        blank = np.zeros((LANDMARK_SIZE, LANDMARK_SIZE, 3), dtype=np.uint8)
        detect_faces(blank)  # loads the detectors; finds nothing
        if self.landmarks in ("auto", MEDIAPIPE):
            mediapipe_landmarks(blank)  # builds this thread's face-mesh graph

    def prepare(self, face: np.ndarray, *, detect: bool = True) -> Prepared:
        image = _check_image(face)
        crop, landmark_image, box_in_crop, meta = self._crop(image, detect)
        points, source = self._place_mesh(crop, landmark_image, box_in_crop)
        fit = fit_similarity(self._model_face, points[:NUM_FACE_VERTICES])
        state = self._build_state(points, fit)
        meta.update(
            renderer=self.name, mesh_source=source, input_size=self.input_size,
            control_points=int(len(state.field.vertices)),
            mesh_scale_px_per_unit=round(fit.scale, 5), mesh_fit_rms_px=round(fit.rms, 4),
            au_saturation={AU_NAMES[k]: round(float(v), 3) for k, v in enumerate(state.saturation) if v < AU_MAX},
        )
        return Prepared(face=crop, meta=meta, state=state)

    def _crop(self, image: np.ndarray, detect: bool) -> tuple[np.ndarray, np.ndarray, Box | None, dict[str, Any]]:
        """(face at input_size, the same crop at LANDMARK_SIZE, face box in crop pixels, meta)."""
        from ..faces import crop_face, detect_face, resize_face

        if not detect:
            meta = {"face_box": None, "detector": None,
                    "crop_box": [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]}
            return resize_face(image, self.input_size), resize_face(image, LANDMARK_SIZE), None, meta
        box = detect_face(image)
        crop = crop_face(image, box, size=self.input_size, margin=self.crop_margin)
        landmark_image = crop_face(image, box, size=LANDMARK_SIZE, margin=self.crop_margin)
        crop_box = _square_crop_box(box, self.crop_margin)
        scale = self.input_size / (crop_box[2] - crop_box[0])
        box_in_crop = ((box.x0 - crop_box[0]) * scale, (box.y0 - crop_box[1]) * scale,
                       (box.x1 - crop_box[0]) * scale, (box.y1 - crop_box[1]) * scale)
        meta = {"face_box": [float(box.x0), float(box.y0), float(box.x1), float(box.y1)],
                "detector": str(box.detector), "crop_box": list(crop_box)}
        return crop, landmark_image, box_in_crop, meta

    def _place_mesh(self, crop: np.ndarray, landmark_image: np.ndarray, box_in_crop: Box | None) -> tuple[np.ndarray, str]:
        """478 landmarks [478, 3] in the crop's pixels, and which path placed them."""
        from ..faces import FaceRejected, detect_face

        if self.landmarks in ("auto", MEDIAPIPE):
            found = mediapipe_landmarks(landmark_image)
            if found is not None:
                return found * np.float32(self.input_size / LANDMARK_SIZE), MEDIAPIPE
            if self.landmarks == MEDIAPIPE:
                raise DataError("MediaPipe found no face mesh in the image",
                                hint="use landmarks='auto' to fall back to the mean mesh, or a clearer face photo")
        if box_in_crop is None:  # an already-cropped face: find its box, or trust the usual margin
            try:
                found_box = detect_face(crop)
                box_in_crop = (found_box.x0, found_box.y0, found_box.x1, found_box.y1)
            except FaceRejected:
                box_in_crop = _default_box(self.input_size, self.crop_margin)
        return fallback_landmarks(self.model.neutral, box_in_crop), FALLBACK

    def _build_state(self, points: np.ndarray, fit: Similarity3D) -> WarpState:
        size = self.input_size
        field = build_warp_field(points, facing_camera(points), size, size, min_area_ratio=self.min_area_ratio,
                                 min_spacing=MIN_SPACING_128 * size / 128.0)
        bases = self.gain * fit.apply_linear(self._local_basis)[:, field.vertices, :2]
        bases = np.ascontiguousarray(bases, dtype=np.float32)
        saturation = AU_MAX * field.clamp_factors(AU_MAX * bases)
        # a hair inside the limit, so that an AU at its saturation never trips the frame clamp
        saturation = np.where(saturation < AU_MAX, saturation * 0.999, AU_MAX).astype(np.float32)
        return WarpState(field=field, landmarks=np.asarray(points, dtype=np.float32), bases=bases,
                         saturation=saturation)

    # ------------------------------------------------------------------------------------------
    def render(self, prepared: Sequence[Prepared], aus: np.ndarray) -> RenderResult:
        arr = check_render_inputs(prepared, aus)
        size = self.input_size
        frames = np.empty((arr.shape[0], arr.shape[1], size, size, 3), dtype=np.uint8)
        metas: list[dict[str, Any]] = []
        for b, item in enumerate(prepared):
            state = _state(item, size)
            frames[b], factors = state.field.warp(item.face, state.displacements(arr[b]))
            saturated = sorted(AU_NAMES[k] for k in np.flatnonzero((arr[b] > state.saturation[None]).any(axis=0)))
            metas.append({
                "renderer": self.name, "mesh_source": item.meta.get("mesh_source"),
                "clamp_min": round(float(factors.min()), 4), "clamped_frames": int((factors < 1).sum()),
                "saturated_aus": saturated,
            })
        return RenderResult(frames=frames, meta=metas)

    # ------------------------------------------------------------------------------------------
    # Diagnostics: what tests, benchmarks and reports look at
    def sample_maps(self, prepared: Prepared, aus: np.ndarray) -> np.ndarray:
        """float32 [T, h, w, 2]: the (clamped) ``cv2.remap`` maps ``render`` uses for AUs [T, 17]."""
        state = _state(prepared, self.input_size)
        arr = check_render_inputs([prepared], np.asarray(aus, dtype=np.float32)[None])[0]
        disp = state.displacements(arr)
        factors = state.field.clamp_factors(disp)
        return np.stack([state.field.sample_map(d * f) for d, f in zip(disp, factors)])

    def region_mask(self, prepared: Prepared, au_names: Sequence[str]) -> np.ndarray:
        """bool [h, w]: pixels of the prepared face inside the core region of any of ``au_names``
        (the region's vertex indicator, interpolated over the triangulation, >= 0.5)."""
        from ..aus import canonical_au_name
        from ..mesh.regions import au_core_regions

        state = _state(prepared, self.input_size)
        core = np.zeros(len(state.landmarks), dtype=np.float64)
        for name in au_names:
            core[list(au_core_regions()[canonical_au_name(name)])] = 1.0
        return state.field.interpolate(core[state.field.vertices]) >= 0.5


def _state(prepared: Prepared, size: int) -> WarpState:
    state = prepared.state
    if not isinstance(state, WarpState) or prepared.face.shape != (size, size, 3):
        raise DataError(f"this face was not prepared by a warp renderer of size {size}",
                        hint="call prepare() of the same renderer instance")
    return state


def _check_image(face: Any) -> np.ndarray:
    from ..faces import check_image

    arr = check_image(face, where="warp renderer input")
    if min(arr.shape[:2]) < 32:
        raise DataError(f"face image is too small ({arr.shape[1]}x{arr.shape[0]} px)", hint="use a face of at least 32 px")
    return np.ascontiguousarray(arr)


def _square_crop_box(box: Any, margin: float) -> tuple[float, float, float, float]:
    """The pixel rectangle ``crop_face(..., margin=margin, square=True)`` cuts around ``box``
    (same centre, side and integer rounding), in the photo's pixels."""
    cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
    side = max(box.x1 - box.x0, box.y1 - box.y0, 1.0) * (1.0 + 2.0 * margin)
    x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    n = max(1, int(round(side)))
    return (float(x0), float(y0), float(x0 + n), float(y0 + n))


def _default_box(size: int, margin: float) -> tuple[float, float, float, float]:
    """Where the face box lies in an already-cropped face made with ``margin`` (centred)."""
    inset = size * margin / (1.0 + 2.0 * margin)
    return (inset, inset, size - inset, size - inset)

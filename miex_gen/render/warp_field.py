"""Exact, fold-free piecewise-affine image warps driven by displacements of control points.

Per identity (once, ``build_warp_field``): the face's landmarks plus fixed anchors on the image
border are triangulated (Delaunay, in the neutral image). That triangulation never changes.

Per frame (``WarpField.warp``): landmark ``i`` moves from ``p_i`` to ``p_i + d_i`` and every
triangle maps affinely onto its moved copy. If every moved triangle keeps a positive orientation,
the moved triangles tile the image exactly as the neutral ones do (the border anchors stay put), so
the forward map is a homeomorphism and its inverse, the map ``cv2.remap`` samples with, is exact:
each output pixel is located in its moved triangle and mapped back with that triangle's barycentric
coordinates. Only triangles with a moving vertex are rasterised; every other pixel is its own
source, and a frame whose displacements are all zero is the input, bit for bit.

Fold-free clamp: a triangle's signed area after a move by ``t * d`` is a quadratic in ``t``. For
each frame we find the largest ``t <= 1`` at which every triangle keeps at least ``min_area_ratio``
of its neutral area (compression by at most ``1 - min_area_ratio``; stretching is not limited, it
cannot fold) and scale the frame's displacements by it. One factor per frame keeps the
expression's shape and only lowers its amplitude (an eye cannot be warped fully shut: its content
would have to vanish). Renderers report the factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

DEFAULT_MIN_AREA_RATIO = 0.2


@dataclass
class WarpField:
    """The fixed triangulation of one identity and what a frame needs to be warped fast."""

    height: int
    width: int
    vertices: np.ndarray  # int64 [K]: indices of the landmarks that drive the warp
    points: np.ndarray  # float64 [K + A, 2]: those landmarks, then the A fixed border anchors
    simplices: np.ndarray  # int64 [M, 3] into ``points``
    min_area_ratio: float = DEFAULT_MIN_AREA_RATIO

    @property
    def num_controls(self) -> int:
        return len(self.vertices)

    @property
    def nbytes(self) -> int:
        return int(self.vertices.nbytes + self.points.nbytes + self.simplices.nbytes)

    def _full(self, displacement: np.ndarray) -> np.ndarray:
        """[K, 2] landmark displacements -> [K + A, 2] with the anchors' zeros."""
        full = np.zeros_like(self.points)
        full[: self.num_controls] = displacement
        return full

    def clamp_factor(self, displacement: np.ndarray) -> float:
        """Largest ``t`` in (0, 1] such that moving by ``t * displacement`` [K, 2] keeps every
        triangle's area ratio >= ``min_area_ratio``."""
        d = self._full(np.asarray(displacement, dtype=np.float64))
        p = self.points[self.simplices]  # [M, 3, 2]
        q = d[self.simplices]
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        f1, f2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
        a0 = _cross(e1, e2)
        a1 = _cross(e1, f2) + _cross(f1, e2)
        a2 = _cross(f1, f2)
        # g(t) = a2 t^2 + a1 t + (1 - rho) a0 > 0 at t = 0; find its smallest positive root
        c = (1.0 - self.min_area_ratio) * a0
        roots = np.full(len(a0), np.inf)
        lin = np.abs(a2) <= 1e-12 * np.maximum(np.abs(a0), 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_lin = np.where(a1 < 0, -c / a1, np.inf)
            disc = a1 * a1 - 4.0 * a2 * c
            sq = np.sqrt(np.maximum(disc, 0.0))
            r1 = (-a1 - sq) / (2.0 * a2)
            r2 = (-a1 + sq) / (2.0 * a2)
        r1 = np.where((disc >= 0) & (r1 > 0), r1, np.inf)
        r2 = np.where((disc >= 0) & (r2 > 0), r2, np.inf)
        roots = np.where(lin, t_lin, np.minimum(r1, r2))
        return float(min(1.0, roots.min(initial=np.inf)))

    def sample_map(self, displacement: np.ndarray) -> np.ndarray:
        """float32 [h, w, 2]: for each output pixel, where the neutral image is sampled (x, y).

        Exact inverse of the piecewise-affine forward map; requires a fold-free ``displacement``.
        """
        d = self._full(np.asarray(displacement, dtype=np.float64))
        grid = _pixel_grid(self.height, self.width)
        moving = np.any(d[self.simplices] != 0, axis=(1, 2))
        if not moving.any():
            return grid
        tri = self.simplices[moving]
        src = self.points[tri]  # [M, 3, 2] neutral corners
        dst = src + d[tri]  # moved corners
        _rasterise_inverse(dst, src, grid)
        return grid

    def warp(self, image: np.ndarray, displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp ``image`` uint8 [h, w, 3] by landmark displacements [F, K, 2] (pixels).

        Returns ``(frames uint8 [F, h, w, 3], clamp factors float32 [F])``.
        """
        disp = np.asarray(displacements, dtype=np.float64)
        frames = np.empty((disp.shape[0],) + image.shape, dtype=np.uint8)
        factors = np.ones(disp.shape[0], dtype=np.float32)
        for f in range(disp.shape[0]):
            if not np.any(disp[f]):
                frames[f] = image
                continue
            factors[f] = self.clamp_factor(disp[f])
            grid = self.sample_map(disp[f] * factors[f])
            frames[f] = cv2.remap(image, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        return frames, factors


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _pixel_grid(height: int, width: int) -> np.ndarray:
    """float32 [h, w, 2] of pixel-centre coordinates (x, y), cv2.remap's convention."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def _rasterise_inverse(dst: np.ndarray, src: np.ndarray, out: np.ndarray, eps: float = 1e-7) -> None:
    """For every pixel centre inside a triangle of ``dst`` [M, 3, 2], write into ``out`` [h, w, 2]
    the point with the same barycentric coordinates in the matching ``src`` triangle."""
    h, w = out.shape[:2]
    lo = np.clip(np.ceil(dst.min(axis=1) - eps), 0, [w - 1, h - 1]).astype(np.int64)
    hi = np.clip(np.floor(dst.max(axis=1) + eps), 0, [w - 1, h - 1]).astype(np.int64)
    span = np.maximum(hi - lo + 1, 0)
    counts = span[:, 0] * span[:, 1]
    total = int(counts.sum())
    if total == 0:
        return
    tri_id = np.repeat(np.arange(len(dst)), counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    bw = span[tri_id, 0]
    px = lo[tri_id, 0] + local % bw
    py = lo[tri_id, 1] + local // bw
    # barycentric coordinates of (px, py) in the moved triangle
    a, b, c = dst[:, 0], dst[:, 1], dst[:, 2]
    e1, e2 = b - a, c - a
    det = _cross(e1, e2)
    inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], -1), np.stack([-e1[:, 1], e1[:, 0]], -1)], 1) / det[:, None, None]
    rel = np.stack([px, py], -1) - a[tri_id]
    uv = np.einsum("nij,nj->ni", inv[tri_id], rel)
    inside = (uv[:, 0] >= -eps) & (uv[:, 1] >= -eps) & (uv.sum(axis=1) <= 1 + eps)
    uv, tri_id, px, py = uv[inside], tri_id[inside], px[inside], py[inside]
    s = src[tri_id]
    point = s[:, 0] + uv[:, :1] * (s[:, 1] - s[:, 0]) + uv[:, 1:] * (s[:, 2] - s[:, 0])
    out[py, px] = point


def border_anchors(height: int, width: int, per_side: int) -> np.ndarray:
    """Fixed points on the image border (pixel edges at -0.5 and size - 0.5), corners included."""
    xs = np.linspace(-0.5, width - 0.5, per_side + 2)
    ys = np.linspace(-0.5, height - 0.5, per_side + 2)[1:-1]
    return np.concatenate([
        np.stack([xs, np.full_like(xs, -0.5)], 1), np.stack([xs, np.full_like(xs, height - 0.5)], 1),
        np.stack([np.full_like(ys, -0.5), ys], 1), np.stack([np.full_like(ys, width - 0.5), ys], 1),
    ])


def select_control_points(points: np.ndarray, usable: np.ndarray, height: int, width: int,
                          min_spacing: float) -> np.ndarray:
    """Indices of the landmarks that drive the warp: usable, inside the image by ``min_spacing``,
    and at least ``min_spacing`` px from every earlier kept landmark. Near-duplicates (the inner
    lips of a closed mouth, the far cheek of a turned head) would make sliver triangles that the
    clamp would have to freeze."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    inside = (
        (pts[:, 0] >= min_spacing - 0.5) & (pts[:, 0] <= width - 0.5 - min_spacing)
        & (pts[:, 1] >= min_spacing - 0.5) & (pts[:, 1] <= height - 0.5 - min_spacing)
    )
    kept: list[int] = []
    for idx in np.flatnonzero(np.asarray(usable, dtype=bool) & inside):
        if kept and np.linalg.norm(pts[kept] - pts[idx], axis=1).min() < min_spacing:
            continue
        kept.append(int(idx))
    return np.asarray(kept, dtype=np.int64)


def build_warp_field(points: np.ndarray, usable: np.ndarray, height: int, width: int, *,
                     min_spacing: float = 1.0, border_per_side: int = 7,
                     min_area_ratio: float = DEFAULT_MIN_AREA_RATIO) -> WarpField:
    """Triangulate the usable landmarks ``points`` [N, >=2] (pixels) together with border anchors."""
    if not 0 < min_area_ratio < 1:
        raise ValueError("min_area_ratio must lie in (0, 1)")
    vertices = select_control_points(points, usable, height, width, min_spacing)
    ctrl = np.concatenate([np.asarray(points, dtype=np.float64)[vertices, :2],
                           border_anchors(height, width, border_per_side)])
    simplices = Delaunay(ctrl).simplices.astype(np.int64)
    p = ctrl[simplices]
    area = _cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    simplices[area < 0] = simplices[area < 0][:, [0, 2, 1]]  # all counter-clockwise in (x, y)
    simplices = simplices[np.abs(area) > 1e-9]
    return WarpField(height=height, width=width, vertices=vertices, points=ctrl, simplices=simplices,
                     min_area_ratio=float(min_area_ratio))

"""Exact, fold-free piecewise-affine image warps driven by displacements of control points.

Per identity (once, ``build_warp_field``): the face's landmarks plus fixed anchors on the image
border are triangulated (Delaunay, in the neutral image). That triangulation never changes.

Per frame (``WarpField.warp``): landmark ``i`` moves from ``p_i`` to ``p_i + d_i`` and every
triangle maps affinely onto its moved copy. If every moved triangle keeps a positive orientation,
the moved triangles tile the image exactly as the neutral ones do (the border anchors stay put), so
the forward map is a homeomorphism and its inverse, the map ``cv2.remap`` samples with, is exact:
each output pixel is located in its moved triangle (a short walk over the fixed adjacency, from
the pixel's neutral triangle) and mapped back with that triangle's barycentric coordinates. Pixels
of triangles that do not move are their own source, and a frame whose displacements are all zero
is the input, bit for bit.

Fold-free clamp: a triangle's signed area after a move by ``t * d`` is a quadratic in ``t``. For
each frame we find the largest ``t <= 1`` at which every triangle keeps at least ``min_area_ratio``
of its neutral area (compression by at most ``1 - min_area_ratio``; stretching is not limited, it
cannot fold) and scale the frame's displacements by it. One factor per frame keeps the
expression's shape and only lowers its amplitude (an eye cannot be warped fully shut: its content
would have to vanish). Renderers report the factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay, cKDTree

DEFAULT_MIN_AREA_RATIO = 0.2


@dataclass
class WarpField:
    """The fixed triangulation of one identity and what a frame needs to be warped fast."""

    height: int
    width: int
    vertices: np.ndarray  # int64 [K]: indices of the landmarks that drive the warp
    points: np.ndarray  # float64 [K + A, 2]: those landmarks, then the A fixed border anchors
    simplices: np.ndarray  # int64 [M, 3] into ``points``, counter-clockwise in (x, y)
    neighbours: np.ndarray  # int64 [M, 3]: triangle across the edge opposite corner i (-1: none)
    pixel_triangle: np.ndarray  # int16 [h * w]: neutral triangle of each pixel centre
    min_area_ratio: float = DEFAULT_MIN_AREA_RATIO
    max_walk: int = 64

    @property
    def num_controls(self) -> int:
        return len(self.vertices)

    @property
    def nbytes(self) -> int:
        arrays = (self.vertices, self.points, self.simplices, self.neighbours, self.pixel_triangle)
        return int(sum(a.nbytes for a in arrays))

    def _full(self, displacements: np.ndarray) -> np.ndarray:
        """[..., K, 2] landmark displacements -> [..., K + A, 2] with the anchors' zeros."""
        disp = np.asarray(displacements, dtype=np.float64)
        full = np.zeros(disp.shape[:-2] + self.points.shape, dtype=np.float64)
        full[..., : self.num_controls, :] = disp
        return full

    def clamp_factors(self, displacements: np.ndarray) -> np.ndarray:
        """float64 [F]: for each frame [F, K, 2], the largest ``t`` in (0, 1] such that moving by
        ``t * displacement`` keeps every triangle's area ratio >= ``min_area_ratio``."""
        d = self._full(displacements)[:, self.simplices]  # [F, M, 3, 2]
        p = self.points[self.simplices]
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        f1, f2 = d[:, :, 1] - d[:, :, 0], d[:, :, 2] - d[:, :, 0]
        a0 = _cross(e1, e2)[None]
        a1 = _cross(e1, f2) + _cross(f1, e2)
        a2 = _cross(f1, f2)
        # area(t) / area(0) >= rho  <=>  g(t) = a2 t^2 + a1 t + (1 - rho) a0 >= 0, and g(0) > 0:
        # the limit is g's smallest positive root
        c = (1.0 - self.min_area_ratio) * a0
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = np.abs(a2) > 1e-12 * a0
            disc = a1 * a1 - 4.0 * a2 * c
            sq = np.sqrt(np.maximum(disc, 0.0))
            r1 = np.where(quad & (disc >= 0), (-a1 - sq) / (2.0 * a2), np.inf)
            r2 = np.where(quad & (disc >= 0), (-a1 + sq) / (2.0 * a2), np.inf)
            r_lin = np.where(~quad & (a1 < 0), -c / a1, np.inf)
        roots = np.minimum(np.where(r1 > 0, r1, np.inf), np.where(r2 > 0, r2, np.inf))
        roots = np.minimum(roots, r_lin)
        return np.minimum(1.0, roots.min(axis=1))

    def sample_map(self, displacement: np.ndarray) -> np.ndarray:
        """float32 [h, w, 2]: for each output pixel, where the neutral image is sampled (x, y).

        The exact inverse of the piecewise-affine forward map of a fold-free ``displacement``
        [K, 2]. Each pixel that starts in a moving triangle walks across the (fixed) adjacency
        of the moved triangulation to the moved triangle that contains it (a few steps, since
        the motion is a few triangles wide) and takes that triangle's barycentric coordinates
        back to the neutral triangle.
        """
        d = self._full(displacement)
        grid = _flat_grid(self.height, self.width).copy()
        moving = np.any(d[self.simplices] != 0, axis=(1, 2))
        pixels = np.flatnonzero(moving[self.pixel_triangle])
        if len(pixels) == 0:
            return grid.reshape(self.height, self.width, 2)
        moved = self.points + d
        s = self.simplices
        cx, cy = moved[s[:, 0], 0], moved[s[:, 0], 1]
        e1x, e1y = moved[s[:, 1], 0] - cx, moved[s[:, 1], 1] - cy
        e2x, e2y = moved[s[:, 2], 0] - cx, moved[s[:, 2], 1] - cy
        det = e1x * e2y - e1y * e2x
        i00, i01, i10, i11 = e2y / det, -e2x / det, -e1y / det, e1x / det
        qx, qy = grid[pixels, 0].astype(np.float64), grid[pixels, 1].astype(np.float64)
        tri = self.pixel_triangle[pixels].astype(np.int64)
        l1s, l2s = np.zeros(len(pixels)), np.zeros(len(pixels))
        active = np.arange(len(pixels))
        eps = -1e-9
        for _ in range(self.max_walk):
            t = tri[active]
            rx, ry = qx[active] - cx[t], qy[active] - cy[t]
            l1 = i00[t] * rx + i01[t] * ry
            l2 = i10[t] * rx + i11[t] * ry
            l0 = 1.0 - l1 - l2
            inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
            l1s[active], l2s[active] = l1, l2  # the last triangle tried is kept if a walk gets stuck
            out = ~inside
            if not out.any():
                break
            lam = np.stack([l0[out], l1[out], l2[out]], axis=1)
            step = self.neighbours[t[out], lam.argmin(axis=1)]
            active = active[out]
            go = step >= 0  # a step off the hull cannot happen in a valid tiling
            tri[active[go]] = step[go]
            active = active[go]
            if len(active) == 0:
                break
        lam = np.stack([1.0 - l1s - l2s, l1s, l2s], axis=1)
        src = self.points[self.simplices[tri]]  # [n, 3, 2] neutral corners
        grid[pixels] = np.einsum("ni,nij->nj", lam, src).astype(np.float32)
        return grid.reshape(self.height, self.width, 2)

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """float32 [h, w]: per-control-point ``values`` [K] (anchors 0) interpolated linearly over
        the neutral triangulation at every pixel centre (e.g. to turn vertex regions into masks)."""
        full = np.zeros(len(self.points))
        full[: self.num_controls] = values
        grid = _pixel_grid(self.height, self.width).reshape(-1, 2).astype(np.float64)
        tri = self.simplices[self.pixel_triangle]
        p = self.points[tri]
        e1, e2, rel = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], grid - p[:, 0]
        det = _cross(e1, e2)
        l1, l2 = _cross(rel, e2) / det, _cross(e1, rel) / det
        out = (1.0 - l1 - l2) * full[tri[:, 0]] + l1 * full[tri[:, 1]] + l2 * full[tri[:, 2]]
        return out.reshape(self.height, self.width).astype(np.float32)

    def warp(self, image: np.ndarray, displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp ``image`` uint8 [h, w, 3] by landmark displacements [F, K, 2] (pixels).

        Returns ``(frames uint8 [F, h, w, 3], clamp factors float32 [F])``. A frame whose
        displacements are all zero is the input, bit for bit (no resampling).
        """
        disp = np.asarray(displacements, dtype=np.float64)
        frames = np.empty((disp.shape[0],) + image.shape, dtype=np.uint8)
        factors = np.ones(disp.shape[0], dtype=np.float32)
        moving = np.flatnonzero(np.any(disp.reshape(disp.shape[0], -1) != 0, axis=1))
        frames[:] = image
        if len(moving):
            factors[moving] = self.clamp_factors(disp[moving])
        for f in moving:
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


@lru_cache(maxsize=8)
def _flat_grid(height: int, width: int) -> np.ndarray:
    """Read-only float32 [h * w, 2] pixel centres, shared by every field of that size."""
    grid = _pixel_grid(height, width).reshape(-1, 2)
    grid.setflags(write=False)
    return grid


def _neighbours(simplices: np.ndarray) -> np.ndarray:
    """[M, 3]: the triangle sharing the edge opposite each corner, -1 on the hull."""
    m = len(simplices)
    edges = np.stack([simplices[:, [1, 2]], simplices[:, [2, 0]], simplices[:, [0, 1]]], axis=1)  # opposite corner i
    keys = np.sort(edges, axis=2).reshape(-1, 2)
    owner = np.repeat(np.arange(m), 3)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    out = np.full(3 * m, -1, dtype=np.int64)
    k = keys[order]
    same = np.all(k[1:] == k[:-1], axis=1)
    first, second = order[:-1][same], order[1:][same]
    out[first] = owner[second]
    out[second] = owner[first]
    return out.reshape(m, 3)


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
    candidates = np.flatnonzero(np.asarray(usable, dtype=bool) & inside)
    c = pts[candidates]
    pairs = cKDTree(c).query_pairs(min_spacing * 1.001 + 1e-9, output_type="ndarray")  # i < j, a superset
    d = c[pairs[:, 0]] - c[pairs[:, 1]]
    pairs = pairs[np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) < min_spacing]  # the exact test
    earlier, later = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))].T  # grouped by the later candidate
    kept = [True] * len(candidates)
    # greedy in landmark order: a candidate is dropped if an earlier *kept* one is too close, so
    # only the pairs that are too close need a look (a few hundred of ~470^2)
    for i, j in zip(later.tolist(), earlier.tolist()):
        if kept[j]:
            kept[i] = False
    return candidates[np.asarray(kept, dtype=bool)].astype(np.int64)


def build_warp_field(points: np.ndarray, usable: np.ndarray, height: int, width: int, *,
                     min_spacing: float = 1.0, border_per_side: int = 7,
                     min_area_ratio: float = DEFAULT_MIN_AREA_RATIO) -> WarpField:
    """Triangulate the usable landmarks ``points`` [N, >=2] (pixels) together with border anchors."""
    if not 0 < min_area_ratio < 1:
        raise ValueError("min_area_ratio must lie in (0, 1)")
    vertices = select_control_points(points, usable, height, width, min_spacing)
    ctrl = np.concatenate([np.asarray(points, dtype=np.float64)[vertices, :2],
                           border_anchors(height, width, border_per_side)])
    delaunay = Delaunay(ctrl)
    simplices = delaunay.simplices.astype(np.int64)
    p = ctrl[simplices]
    area = _cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    simplices[area < 0] = simplices[area < 0][:, [0, 2, 1]]  # all counter-clockwise in (x, y)
    keep = np.abs(area) > 1e-9
    new_index = np.cumsum(keep) - 1
    grid = _pixel_grid(height, width).reshape(-1, 2).astype(np.float64)
    found = delaunay.find_simplex(grid)
    pixel_triangle = np.where((found >= 0) & keep[found], new_index[found], -1).astype(np.int32)
    simplices = simplices[keep]
    lost = np.flatnonzero(pixel_triangle < 0)  # on a degenerate triangle's edge (measure zero)
    if len(lost):
        pixel_triangle[lost] = _locate(ctrl, simplices, grid[lost])
    index = np.int16 if len(simplices) < np.iinfo(np.int16).max else np.int32  # ~650 triangles at 128 px
    return WarpField(height=height, width=width, vertices=vertices, points=ctrl, simplices=simplices,
                     neighbours=_neighbours(simplices), pixel_triangle=pixel_triangle.astype(index),
                     min_area_ratio=float(min_area_ratio))


def _locate(points: np.ndarray, simplices: np.ndarray, queries: np.ndarray, chunk: int = 256) -> np.ndarray:
    """int32 [N]: index of a triangle containing each query point (brute force, build time only)."""
    p = points[simplices]
    corner, e1, e2 = p[:, 0], p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    det = _cross(e1, e2)
    out = np.full(len(queries), -1, dtype=np.int32)
    for start in range(0, len(queries), chunk):
        rel = queries[start:start + chunk, None, :] - corner[None]
        l1 = _cross(rel, e2) / det
        l2 = _cross(e1, rel) / det
        inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l1 + l2 <= 1 + 1e-9)
        out[start:start + chunk] = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    if np.any(out < 0):  # cannot happen: the border anchors enclose every pixel centre
        raise RuntimeError("warp triangulation does not cover the image")
    return out

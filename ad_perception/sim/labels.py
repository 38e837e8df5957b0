"""Ground truth from the renders: visible 2D boxes from the instance image, and KITTI-style
occlusion and truncation from each object's unoccluded silhouette.

The unoccluded silhouette is the union of the object's own triangles rasterised alone (after
clipping at the near plane), so visible / unoccluded pixels is a true visibility ratio rather
than a ratio against the object's box, which would call every car with a cabin "occluded".
The simulator gets it from the GL rasteriser itself (``CameraRenderer.silhouette_pixels``,
one occlusion query per object); ``unoccluded_pixel_count`` is the same quantity in numpy,
kept as the reference the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ad_perception.core.geometry import transform_points

NEAR_M = 0.3
MIN_VISIBLE_PIXELS = 20


@dataclass
class ObjectVisibility:
    visible_pixels: int
    unoccluded_pixels: int  # inside the image
    box_2d: np.ndarray | None  # visible box x_min, y_min, x_max, y_max (pixel edges)
    truncation: float  # fraction of the projected full 3D box outside the image
    occlusion_ratio: float  # 1 - visible / unoccluded

    @property
    def occlusion_level(self) -> int:
        """KITTI: 0 fully visible, 1 partly occluded, 2 largely occluded, 3 unknown."""
        if self.unoccluded_pixels == 0:
            return 3
        if self.occlusion_ratio < 0.15:
            return 0
        return 1 if self.occlusion_ratio < 0.5 else 2


def visible_boxes(instance_image: np.ndarray) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Tight boxes of each instance id's pixels, as pixel edges (x_min, y_min, x_max, y_max)
    with pixel centres at integers, plus the pixel count per id."""
    counts = np.bincount(instance_image.ravel().clip(0))
    boxes = {}
    for k, slc in enumerate(ndimage.find_objects(instance_image.clip(0)), start=1):
        if slc is None:
            continue
        rows, cols = slc
        boxes[k] = np.array([cols.start - 0.5, rows.start - 0.5, cols.stop - 0.5, rows.stop - 0.5])
    return boxes, counts


def _clip_near(polygon: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman against the plane z = near (camera frame)."""
    out = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.asarray(out).reshape(-1, 3)


def _project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = points_cam @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def _triangles_2d(triangles_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(T, 3, 2) image triangles; triangles crossing the near plane are clipped and fanned."""
    z = triangles_cam[:, :, 2]
    front = triangles_cam[(z >= NEAR_M).all(axis=1)]
    parts = [_project(front.reshape(-1, 3), K).reshape(-1, 3, 2)]
    for tri in triangles_cam[~(z >= NEAR_M).all(axis=1) & (z >= NEAR_M).any(axis=1)]:
        poly = _project(_clip_near(tri, NEAR_M), K)
        parts += [np.stack([poly[0], poly[k], poly[k + 1]])[None] for k in range(1, len(poly) - 1)]
    return np.concatenate(parts)


def unoccluded_pixel_count(
    triangles_cam: np.ndarray, K: np.ndarray, width: int, height: int, max_samples: int = 12_000
) -> int:
    """Pixels inside the image the object would cover with nothing in front of it.

    Pixel centres are tested against every triangle (the rasteriser's own coverage rule), so
    a fully visible object gets visible == unoccluded; large objects are sampled on a coarser
    grid and scaled, which only matters for objects already thousands of pixels big.
    """
    tri = _triangles_2d(triangles_cam, K)
    if not len(tri):
        return 0
    lo = np.maximum(np.ceil(tri.reshape(-1, 2).min(axis=0)), 0)
    hi = np.minimum(np.floor(tri.reshape(-1, 2).max(axis=0)), [width - 1, height - 1])
    if (hi < lo).any():
        return 0
    n_pixels = (hi - lo + 1).prod()
    stride = max(1, int(np.ceil(np.sqrt(n_pixels / max_samples))))
    xs = np.arange(lo[0], hi[0] + 1, stride)
    ys = np.arange(lo[1], hi[1] + 1, stride)
    px, py = (g.ravel() for g in np.meshgrid(xs, ys))
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # Front faces of the closed, outward-wound part boxes already cover the silhouette, and
    # with y down they have negative signed area; back faces only repeat the same pixels.
    keep = area < -1e-9
    a, b, c, sign = a[keep], b[keep], c[keep], np.sign(area[keep])[:, None]
    covered = np.zeros(len(px), dtype=bool)
    for start in range(0, len(a), max(1, 2_000_000 // max(len(px), 1))):
        sl = slice(start, start + max(1, 2_000_000 // max(len(px), 1)))
        inside = np.ones((len(a[sl]), len(px)), dtype=bool)
        for p0, p1 in ((a[sl], b[sl]), (b[sl], c[sl]), (c[sl], a[sl])):
            edge = (p1[:, 0:1] - p0[:, 0:1]) * (py[None] - p0[:, 1:2]) - (
                p1[:, 1:2] - p0[:, 1:2]
            ) * (px[None] - p0[:, 0:1])
            inside &= edge * sign[sl] >= 0
        covered |= inside.any(axis=0)
    return int(covered.sum()) * stride * stride


def truncation(corners_cam: np.ndarray, K: np.ndarray, width: int, height: int) -> float:
    """Fraction of the projected 3D box's 2D extent that lies outside the image."""
    if (corners_cam[:, 2] >= NEAR_M).all():
        # Nothing to clip: the clipped faces' points are exactly the eight corners.
        uv = _project(corners_cam, K)
    else:
        faces = [
            [0, 1, 2, 3],
            [4, 5, 6, 7],
            [0, 1, 5, 4],
            [1, 2, 6, 5],
            [2, 3, 7, 6],
            [3, 0, 4, 7],
        ]
        points = [c for f in faces for c in _clip_near(corners_cam[f], NEAR_M)]
        if not points:
            return 1.0
        uv = _project(np.asarray(points), K)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    area = max(hi[0] - lo[0], 1e-6) * max(hi[1] - lo[1], 1e-6)
    inside_lo = np.maximum(lo, [-0.5, -0.5])
    inside_hi = np.minimum(hi, [width - 0.5, height - 0.5])
    inside = np.clip(inside_hi - inside_lo, 0, None).prod()
    return float(np.clip(1.0 - inside / area, 0.0, 1.0))


def object_visibility(
    track_id: int,
    silhouette_pixels: int,
    corners_world: np.ndarray,
    T_cam_from_world: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    boxes: dict[int, np.ndarray],
    counts: np.ndarray,
) -> ObjectVisibility:
    corners_cam = transform_points(corners_world, T_cam_from_world)
    trunc = truncation(corners_cam, K, width, height)
    visible = int(counts[track_id]) if track_id < len(counts) else 0
    if (corners_cam[:, 2] < NEAR_M).all() or trunc >= 1.0:
        unoccluded = 0
    else:
        unoccluded = int(silhouette_pixels)
    unoccluded = max(unoccluded, visible)
    ratio = 1.0 - visible / unoccluded if unoccluded else 1.0
    box = boxes.get(track_id) if visible >= MIN_VISIBLE_PIXELS else None
    if box is not None:
        box = np.clip(box, 0.0, [width, height, width, height])
    return ObjectVisibility(visible, unoccluded, box, trunc, float(ratio))

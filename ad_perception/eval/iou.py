"""Box overlap geometry for evaluation: image-box IoU (COCO convention), rotated BEV IoU, 3D IoU.

Everything returns a full (D, G) matrix for D detections against G ground-truth boxes, because
matching needs every pair of one frame at once; loops run over the 4 clipping edges, never over
pairs. Pure numpy: no shapely, so the result does not depend on an optional package.
"""

from __future__ import annotations

import numpy as np

from ad_perception.core.types import Boxes3D

# A rectangle clipped by 4 half-planes grows by at most one vertex per clip: 4 -> 8.
_MAX_VERTICES = 8


def box_iou_2d(
    det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_is_crowd: np.ndarray | None = None
) -> np.ndarray:
    """IoU (D, G) of xyxy pixel boxes, computed exactly as COCO's ``bbIou`` does.

    COCO stores boxes as x, y, w, h and measures area as w * h with no "+1" pixel; the edges are
    rebuilt as x + w, so the arithmetic here follows the same path to agree bit for bit. A crowd
    ground truth is scored by intersection over the detection's own area, as in COCO.
    """
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    det_x, det_y, det_w, det_h = det[:, 0], det[:, 1], det[:, 2] - det[:, 0], det[:, 3] - det[:, 1]
    gt_x, gt_y, gt_w, gt_h = gt[:, 0], gt[:, 1], gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    width = np.minimum((det_w + det_x)[:, None], (gt_w + gt_x)[None, :]) - np.maximum(
        det_x[:, None], gt_x[None, :]
    )
    height = np.minimum((det_h + det_y)[:, None], (gt_h + gt_y)[None, :]) - np.maximum(
        det_y[:, None], gt_y[None, :]
    )
    overlaps = (width > 0) & (height > 0)
    intersection = np.where(overlaps, width * height, 0.0)
    det_area = (det_w * det_h)[:, None]
    union = det_area + (gt_w * gt_h)[None, :] - intersection
    if gt_is_crowd is not None:
        union = np.where(np.asarray(gt_is_crowd, dtype=bool)[None, :], det_area, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlaps, intersection / union, 0.0)


def bev_corners(centers_xy: np.ndarray, lengths: np.ndarray, widths: np.ndarray,
                yaws: np.ndarray) -> np.ndarray:
    """Counter-clockwise BEV rectangle corners (N, 4, 2); clipping relies on that winding."""
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    local = signs[None] * np.stack([lengths, widths], axis=-1)[:, None, :] / 2.0
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin
    y = local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, y], axis=-1) + np.asarray(centers_xy, dtype=np.float64)[:, None, :]


def _clip_by_convex(subject: np.ndarray, counts: np.ndarray, clip: np.ndarray):
    """Sutherland–Hodgman clipping of P polygons by P counter-clockwise quads, all pairs at once.

    Polygons are padded to a fixed vertex count with ``counts`` saying how many are real, so each
    clipping edge is a handful of array operations over every pair.
    """
    n_pairs = len(subject)
    for edge in range(clip.shape[1]):
        start, end = clip[:, edge], clip[:, (edge + 1) % clip.shape[1]]
        direction = end - start
        n_slots = subject.shape[1]
        rel = subject - start[:, None, :]
        side = direction[:, None, 0] * rel[..., 1] - direction[:, None, 1] * rel[..., 0]
        slots = np.arange(n_slots)[None, :]
        real = slots < counts[:, None]
        next_index = np.where(slots + 1 < counts[:, None], slots + 1, 0)
        following = np.take_along_axis(subject, next_index[..., None], axis=1)
        side_next = np.take_along_axis(side, next_index, axis=1)
        inside, inside_next = side >= 0.0, side_next >= 0.0
        denominator = side - side_next
        fraction = side / np.where(denominator == 0.0, 1.0, denominator)
        crossing = subject + fraction[..., None] * (following - subject)
        candidates = np.stack([subject, crossing], axis=2).reshape(n_pairs, 2 * n_slots, 2)
        emitted = np.stack([real & inside, real & (inside != inside_next)], axis=2).reshape(
            n_pairs, 2 * n_slots
        )
        order = np.argsort(~emitted, axis=1, kind="stable")[:, :_MAX_VERTICES]
        subject = np.take_along_axis(candidates, order[..., None], axis=1)
        counts = np.minimum(emitted.sum(axis=1), _MAX_VERTICES)
    return subject, counts


def _polygon_area(vertices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Shoelace area of padded polygons; padding repeats vertex 0 so it adds zero-length edges."""
    real = np.arange(vertices.shape[1])[None, :] < counts[:, None]
    closed = np.where(real[..., None], vertices, vertices[:, :1, :])
    following = np.roll(closed, -1, axis=1)
    twice_area = np.sum(closed[..., 0] * following[..., 1] - following[..., 0] * closed[..., 1], 1)
    return np.where(counts >= 3, np.abs(twice_area) / 2.0, 0.0)


def convex_intersection_area(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    """Intersection area of paired counter-clockwise quads (P, 4, 2) and (P, 4, 2)."""
    counts = np.full(len(corners_a), 4)
    polygon, counts = _clip_by_convex(np.asarray(corners_a, np.float64), counts, corners_b)
    return _polygon_area(polygon, counts)


def bev_intersection(det: Boxes3D, gt: Boxes3D, same_class_only: bool = False) -> np.ndarray:
    """BEV overlap area (D, G) of rotated footprints; clips only pairs whose circumcircles meet
    (and, if asked, whose classes agree), which in a driving scene is a small fraction of all
    pairs; the rest are reported as 0."""
    intersection = np.zeros((len(det), len(gt)))
    if len(det) == 0 or len(gt) == 0:
        return intersection
    radius_det = np.hypot(det.sizes[:, 0], det.sizes[:, 1]) / 2.0
    radius_gt = np.hypot(gt.sizes[:, 0], gt.sizes[:, 1]) / 2.0
    centre_gap = np.linalg.norm(det.centers[:, None, :2] - gt.centers[None, :, :2], axis=-1)
    candidates = centre_gap < radius_det[:, None] + radius_gt[None, :]
    if same_class_only:
        candidates &= det.class_ids[:, None] == gt.class_ids[None, :]
    det_index, gt_index = np.nonzero(candidates)
    if len(det_index) == 0:
        return intersection
    corners_det = bev_corners(det.centers[:, :2], det.sizes[:, 0], det.sizes[:, 1], det.yaws)
    corners_gt = bev_corners(gt.centers[:, :2], gt.sizes[:, 0], gt.sizes[:, 1], gt.yaws)
    intersection[det_index, gt_index] = convex_intersection_area(
        corners_det[det_index], corners_gt[gt_index]
    )
    return intersection


def _ratio(intersection: np.ndarray, size_det: np.ndarray, size_gt: np.ndarray) -> np.ndarray:
    union = size_det[:, None] + size_gt[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, intersection / union, 0.0)


def bev_and_3d_iou(det: Boxes3D, gt: Boxes3D,
                   same_class_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rotated BEV IoU and 3D IoU (D, G) of upright boxes from one polygon clipping pass;
    ``same_class_only`` leaves cross-class pairs at 0, which evaluation never looks at.

    The 3D intersection is the BEV intersection times the vertical overlap, which is exact
    because the boxes only rotate about z.
    """
    bev_overlap = bev_intersection(det, gt, same_class_only)
    bev = _ratio(bev_overlap, det.sizes[:, 0] * det.sizes[:, 1], gt.sizes[:, 0] * gt.sizes[:, 1])
    half_det, half_gt = det.sizes[:, 2] / 2.0, gt.sizes[:, 2] / 2.0
    det_z, gt_z = det.centers[:, 2], gt.centers[:, 2]
    top = np.minimum((det_z + half_det)[:, None], (gt_z + half_gt)[None, :])
    bottom = np.maximum((det_z - half_det)[:, None], (gt_z - half_gt)[None, :])
    volume_overlap = bev_overlap * np.clip(top - bottom, 0.0, None)
    iou3d = _ratio(volume_overlap, np.prod(det.sizes, axis=1), np.prod(gt.sizes, axis=1))
    return bev, iou3d


def bev_iou(det: Boxes3D, gt: Boxes3D) -> np.ndarray:
    """Rotated bird's-eye-view IoU (D, G) of upright boxes."""
    return bev_and_3d_iou(det, gt)[0]


def iou_3d(det: Boxes3D, gt: Boxes3D) -> np.ndarray:
    """3D IoU (D, G) of upright boxes."""
    return bev_and_3d_iou(det, gt)[1]


def aligned_iou_3d(sizes_a: np.ndarray, sizes_b: np.ndarray) -> np.ndarray:
    """Row-wise 3D IoU of boxes moved to a common centre and heading, i.e. of their sizes only;
    this is nuScenes' scale-error measure, blind to position and yaw on purpose."""
    sizes_a, sizes_b = np.asarray(sizes_a, np.float64), np.asarray(sizes_b, np.float64)
    intersection = np.prod(np.minimum(sizes_a, sizes_b), axis=-1)
    union = np.prod(sizes_a, axis=-1) + np.prod(sizes_b, axis=-1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, intersection / union, 0.0)

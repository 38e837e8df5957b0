"""Which ground truth a detector is held to, in one place for training and evaluation.

Camera, scored as KITTI's "moderate" difficulty: a box under 25 px tall (visible part, image
pixels), largely occluded (KITTI level >= 2), truncated by more than 30 %, or of a class the
detector does not know is an *ignore* region: a detection on it is neither a hit nor a false
alarm (COCO crowd / KITTI "DontCare" semantics). Training keeps boxes down to 16 px as
targets, so the detector still learns small objects.

Lidar: boxes count when their centre lies inside the detector's range and at least
``MIN_LIDAR_POINTS`` lidar points hit them (nuScenes drops empty boxes likewise).
"""

from __future__ import annotations

import numpy as np

from ad_perception.core.types import Boxes3D, Detections2D

MIN_BOX_HEIGHT_PX = 25.0  # KITTI moderate
TRAIN_MIN_BOX_HEIGHT_PX = 16.0
MAX_OCCLUSION_LEVEL = 1
MAX_TRUNCATION = 0.3
MIN_LIDAR_POINTS = 5


def camera_ignore_mask(gt: Detections2D, occlusion_by_id: dict[str, int],
                       class_names: tuple[str, ...],
                       min_box_height_px: float = MIN_BOX_HEIGHT_PX,
                       truncation_by_id: dict[str, float] | None = None) -> np.ndarray:
    heights = gt.boxes[:, 3] - gt.boxes[:, 1]
    occluded = np.array([occlusion_by_id.get(str(i), 0) > MAX_OCCLUSION_LEVEL for i in gt.ids],
                        dtype=bool)
    truncation_by_id = truncation_by_id or {}
    truncated = np.array([truncation_by_id.get(str(i), 0.0) > MAX_TRUNCATION for i in gt.ids],
                         dtype=bool)
    known = np.isin(gt.class_ids, np.asarray(class_names))
    return (heights < min_box_height_px) | occluded | truncated | ~known


def in_range(xyz: np.ndarray, point_cloud_range: tuple[float, ...]) -> np.ndarray:
    x_min, y_min, z_min, x_max, y_max, z_max = point_cloud_range
    return ((xyz[:, 0] >= x_min) & (xyz[:, 0] < x_max) & (xyz[:, 1] >= y_min)
            & (xyz[:, 1] < y_max) & (xyz[:, 2] >= z_min) & (xyz[:, 2] < z_max))


def lidar_gt_in_scope(gt: Boxes3D, points_by_id: dict[str, int],
                      point_cloud_range: tuple[float, ...], class_names: tuple[str, ...],
                      ) -> tuple[Boxes3D, np.ndarray]:
    """Ground truth inside the detector's range and classes, with its lidar point counts.

    Boxes with fewer than ``MIN_LIDAR_POINTS`` stay in the result and are *ignored* by the
    scorer (``evaluate_3d(min_points=...)``): a detection on them is not a false alarm. Ids
    missing from ``points_by_id`` (bags without a sidecar) count as well observed.
    """
    known = np.isin(gt.class_ids, np.asarray(class_names))
    scoped = gt.select(in_range(gt.centers, point_cloud_range) & known)
    counts = np.array([points_by_id.get(str(i), 10**6) for i in scoped.ids], dtype=np.int64)
    return scoped, counts


def sidecar_by_frame(records: list[dict], key: str, cast: type = int) -> dict[int, dict]:
    """Per frame index, object id -> ``key`` (e.g. "occlusion", "lidar_points")."""
    out: dict[int, dict] = {}
    for record in records:
        if record.get("type") == "scene" or "objects" not in record:
            continue
        out[int(record["index"])] = {str(o["id"]): cast(o.get(key, 0)) for o in record["objects"]}
    return out

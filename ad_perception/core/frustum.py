"""Lift camera-only 2D detections to 3D boxes from the lidar points in their frustum.

A camera box says *what* and *in which direction*; the lidar points behind it say *how far*.
The frustum of a box holds the object's points but also the ground, occluders in front and
background behind, so the range comes from the nearest depth cluster that is dense enough,
not from all points. Size comes from class priors because a camera-only object is, almost
by definition, one the lidar saw too sparsely to fit a box to.

Everything runs in the lidar frame; the caller moves the result to base_link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.geometry import invert_transform
from ad_perception.core.types import CLASS_ID_DTYPE, Boxes3D, Detections2D

# length (along heading), width, height in metres
DEFAULT_SIZE_PRIORS: dict[str, tuple[float, float, float]] = {
    "car": (4.5, 1.8, 1.6),
    "truck": (8.0, 2.5, 3.2),
    "pedestrian": (0.6, 0.6, 1.75),
    "cyclist": (1.8, 0.6, 1.7),
}
# distances to a rectangle edge below this count as on it (lidar range noise)
_CLOSENESS_FLOOR_M = 0.05
# an outline is fitted to at most this many points (a stride subsample of the cluster)
_OUTLINE_MAX_POINTS = 400


@dataclass
class LiftingConfig:
    """How camera-only detections become 3D boxes (see the module docstring for the why)."""

    enabled: bool = True
    min_frustum_points: int = 5
    # each side of the 2D box moves inwards by this fraction of its width / height, so that
    # background and ground points grazing the box edges stay out of the frustum
    frustum_shrink: float = 0.1
    # 1-D single-linkage clustering of depths: a gap wider than this starts a new cluster
    cluster_gap_m: float = 0.8
    # the nearest cluster is taken once it holds this fraction of the largest one, so a
    # few stray points in front (rain, a pole edge) do not win over the object itself;
    # counts compare fairly because a scanning lidar samples uniformly in angle, so the
    # object that fills the box holds most of its points whatever its range
    min_cluster_fraction: float = 0.3
    # the object's near surface is this percentile of the cluster's ranges along the ray
    near_surface_percentile: float = 10.0
    score_factor: float = 0.7
    size_priors: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: dict(DEFAULT_SIZE_PRIORS)
    )
    outline_yaw_classes: tuple[str, ...] = ("car", "truck")
    yaw_search_step_deg: float = 2.0
    # points inside (slightly grown) lidar boxes belong to objects the lidar already has;
    # dropping them keeps a failed association from producing a duplicate object
    exclude_lidar_box_points: bool = True
    lidar_box_margin_m: float = 0.3

    def __post_init__(self) -> None:
        if self.min_frustum_points < 1:
            raise ValueError(f"min_frustum_points must be >= 1, got {self.min_frustum_points}")
        if not 0.0 <= self.frustum_shrink < 0.5:
            raise ValueError(f"frustum_shrink must be in [0, 0.5), got {self.frustum_shrink}")
        if self.cluster_gap_m <= 0.0:
            raise ValueError(f"cluster_gap_m must be positive, got {self.cluster_gap_m}")
        if not 0.0 <= self.min_cluster_fraction <= 1.0:
            raise ValueError(
                f"min_cluster_fraction must be in [0, 1], got {self.min_cluster_fraction}"
            )
        if not 0.0 <= self.near_surface_percentile <= 100.0:
            raise ValueError(
                f"near_surface_percentile must be in [0, 100], got {self.near_surface_percentile}"
            )
        if not 0.0 <= self.score_factor <= 1.0:
            raise ValueError(f"score_factor must be in [0, 1], got {self.score_factor}")
        for name, size in self.size_priors.items():
            if len(size) != 3 or min(size) <= 0:
                raise ValueError(f"size prior of {name!r} must be 3 positive metres, got {size}")


def frustum_membership(uv: np.ndarray, boxes: np.ndarray, shrink: float) -> np.ndarray:
    """(M, P) mask of projected points ``uv`` (P, 2) inside each of ``boxes`` (M, 4) xyxy,
    every box shrunk by ``shrink`` of its size per side. Rows are contiguous per box so the
    per-detection ``flatnonzero`` that follows reads memory in order."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    u_min, u_max = boxes[:, 0] + shrink * width, boxes[:, 2] - shrink * width
    v_min, v_max = boxes[:, 1] + shrink * height, boxes[:, 3] - shrink * height
    u, v = uv[None, :, 0], uv[None, :, 1]
    return (
        (u >= u_min[:, None]) & (u <= u_max[:, None])
        & (v >= v_min[:, None]) & (v <= v_max[:, None])
    )  # fmt: skip


def boxes_cone_mask(points_cam: np.ndarray, boxes: np.ndarray, camera_model: CameraModel,
                    shrink: float, samples_per_edge: int = 9, margin: float = 0.02
                    ) -> np.ndarray:
    """(P,) mask of optical-frame points in front of the camera whose ideal (undistorted)
    direction lies in the bounding rectangle of the ``boxes`` (M, 4 raw pixels, shrunk as in
    :func:`frustum_membership`). A cheap superset of the points that can project into a box:
    each box border is sampled, undistorted and bounded, and the rectangle grown by
    ``margin`` of its size, so the expensive distortion runs on a fraction of the cloud."""
    if len(boxes) == 0 or len(points_cam) == 0:
        return np.zeros(len(points_cam), dtype=bool)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    low, high = boxes[:, :2] + shrink * size, boxes[:, 2:] - shrink * size
    t = np.linspace(0.0, 1.0, samples_per_edge)
    u = low[:, :1] + t * (high[:, :1] - low[:, :1])  # (M, S)
    v = low[:, 1:] + t * (high[:, 1:] - low[:, 1:])
    border = np.concatenate([
        np.stack([u, np.broadcast_to(low[:, 1:], u.shape)], -1),
        np.stack([u, np.broadcast_to(high[:, 1:], u.shape)], -1),
        np.stack([np.broadcast_to(low[:, :1], v.shape), v], -1),
        np.stack([np.broadcast_to(high[:, :1], v.shape), v], -1),
    ]).reshape(-1, 2)  # fmt: skip
    xy = camera_model.undistort_points(border, normalized=True)
    lower, upper = xy.min(axis=0), xy.max(axis=0)
    grow = margin * (upper - lower) + 1e-6
    lower, upper = lower - grow, upper + grow
    z = points_cam[:, 2]
    front = z > 1e-3
    x = np.divide(points_cam[:, 0], z, out=np.zeros_like(z), where=front)
    y = np.divide(points_cam[:, 1], z, out=np.zeros_like(z), where=front)
    return front & (x >= lower[0]) & (x <= upper[0]) & (y >= lower[1]) & (y <= upper[1])


def nearest_dense_cluster(
    depths: np.ndarray, gap_m: float, min_points: int, min_fraction: float
) -> np.ndarray:
    """Indices into ``depths`` of the nearest cluster (split at gaps > ``gap_m``) that has at
    least ``min_points`` and ``min_fraction`` of the largest cluster's points; empty if none.

    Nearest-first because whatever is in front of the background inside a detector's box is
    what the detector boxed; the density test keeps stray returns from taking its place.
    """
    order = np.argsort(depths, kind="stable")
    labels = np.concatenate([[0], np.cumsum(np.diff(depths[order]) > gap_m)])
    counts = np.bincount(labels)
    dense = np.flatnonzero(
        (counts >= min_points) & (counts >= min_fraction * counts.max(initial=0))
    )
    if dense.size == 0:
        return np.zeros(0, dtype=np.intp)
    return order[labels == dense[0]]


def points_outside_boxes(points: np.ndarray, boxes: Boxes3D, margin_m: float) -> np.ndarray:
    """(P,) mask of points in none of ``boxes`` grown by ``margin_m``; a loop over the boxes
    (tens) with each step vectorised over the points, so memory stays O(P)."""
    outside = np.ones(len(points), dtype=bool)
    half = boxes.sizes / 2.0 + margin_m
    cos, sin = np.cos(boxes.yaws), np.sin(boxes.yaws)
    for index in range(len(boxes)):
        offset = points - boxes.centers[index]
        along = offset[:, 0] * cos[index] + offset[:, 1] * sin[index]
        across = -offset[:, 0] * sin[index] + offset[:, 1] * cos[index]
        outside &= ~(
            (np.abs(along) <= half[index, 0])
            & (np.abs(across) <= half[index, 1])
            & (np.abs(offset[:, 2]) <= half[index, 2])
        )
    return outside


def _yaw_from_outline(
    points_xy: np.ndarray, ray_yaw: float, size: tuple[float, float, float], shrink: float,
    step_deg: float,
) -> float | None:
    """Heading of a vehicle from its BEV outline, or None when the points say nothing.

    The rectangle orientation comes from a search over angles for the bounding rectangle
    whose edges the points hug most closely (the closeness criterion of L-shape fitting,
    Zhang et al. 2017), which, unlike PCA or the minimum area, lines up with both faces of
    an L-shaped corner view. Which rectangle axis is the heading follows from
    the visible extents: a side longer than a vehicle's width (after the frustum shrink cut
    its ends) is the length; otherwise the axis closer to the viewing ray wins, since a car
    seen end-on mostly drives along the line of sight. The sign is ambiguous (a point set
    has no front): the heading pointing away from the sensor is returned."""
    if len(points_xy) < 5:
        return None
    points_xy = points_xy[:: -(-len(points_xy) // _OUTLINE_MAX_POINTS)]  # bound the cost
    angles = np.radians(np.arange(0.0, 90.0, step_deg))
    axes = np.stack([np.cos(angles), np.sin(angles)])  # (2, A)
    centred = points_xy - points_xy.mean(axis=0)
    along, across = centred @ axes, centred @ np.stack([-axes[1], axes[0]])  # (n, A) each
    low_along, high_along = np.percentile(along, [2, 98], axis=0)
    low_across, high_across = np.percentile(across, [2, 98], axis=0)
    to_edge = np.minimum(
        np.minimum(along - low_along, high_along - along),
        np.minimum(across - low_across, high_across - across),
    )
    closeness = np.sum(1.0 / np.maximum(to_edge, _CLOSENESS_FLOOR_M), axis=0)
    best = int(np.argmax(closeness))
    extent_along = high_along - low_along
    extent_across = high_across - low_across
    longest = max(extent_along[best], extent_across[best])
    if longest < 0.5:  # a blob, not an outline
        return None
    candidates = angles[best] + np.array([0.0, np.pi / 2.0])
    relative = (candidates - ray_yaw + np.pi / 2.0) % np.pi - np.pi / 2.0  # in [-pi/2, pi/2)
    length_threshold = 0.5 * (size[0] + size[1]) * (1.0 - 2.0 * shrink) * 0.9
    if longest >= length_threshold:
        heading = 0 if extent_along[best] >= extent_across[best] else 1
    else:
        heading = int(np.argmin(np.abs(relative)))
    return float(ray_yaw + relative[heading])


def lift_detections(
    detections: Detections2D,
    points_lidar: np.ndarray,
    camera_model: CameraModel,
    T_camera_from_lidar: np.ndarray,
    config: LiftingConfig,
    lidar_boxes: Boxes3D | None = None,
    frame_id: str = "",
) -> tuple[Boxes3D, np.ndarray]:
    """3D boxes (lidar frame) for the detections that have enough frustum points, and the
    index (K,) of the detection each box came from.

    Centre: the ray through the 2D box centre fixes direction (the camera is precise in
    angle); the near-surface range of the nearest dense depth cluster plus the prior box's
    half-extent along that ray fixes distance, since lidar only sees the facing surface.
    The centre height follows the same ray. Yaw: the BEV outline of the points for
    ``outline_yaw_classes``, otherwise the ray's direction (a car ahead mostly drives along the
    line of sight; for a forward camera this is close to 0).
    """
    empty = (Boxes3D.empty(frame_id), np.zeros(0, dtype=np.intp))
    candidates = np.flatnonzero(np.isin(detections.class_ids, list(config.size_priors)))
    if not config.enabled or candidates.size == 0 or len(points_lidar) == 0:
        return empty
    # The whole cloud is only rotated (in its own precision, float32 from a sensor) and
    # culled to the boxes' cone; projection with distortion and everything after run in
    # float64 on the points that can fall in a box.
    cloud = np.asarray(points_lidar)
    if cloud.dtype not in (np.float32, np.float64):
        cloud = cloud.astype(np.float64)
    rotation, translation = T_camera_from_lidar[:3, :3], T_camera_from_lidar[:3, 3]
    cloud_cam = cloud @ rotation.T.astype(cloud.dtype) + translation.astype(cloud.dtype)
    near_boxes = np.flatnonzero(
        boxes_cone_mask(cloud_cam, detections.boxes[candidates], camera_model,
                        config.frustum_shrink))
    points_lidar = cloud[near_boxes].astype(np.float64)
    uv, _, kept = camera_model.project(points_lidar @ rotation.T + translation)
    on_image = camera_model.in_image(uv)
    uv, kept = uv[on_image], kept[on_image]
    inside = frustum_membership(uv, detections.boxes[candidates], config.frustum_shrink)
    in_any = inside.any(axis=0)
    if config.exclude_lidar_box_points and lidar_boxes is not None and len(lidar_boxes):
        in_any[in_any] = points_outside_boxes(
            points_lidar[kept[in_any]], lidar_boxes, config.lidar_box_margin_m
        )
        inside &= in_any[None, :]

    T_lidar_from_camera = invert_transform(T_camera_from_lidar)
    origin = T_lidar_from_camera[:3, 3]
    box_centres_uv = (detections.boxes[candidates, :2] + detections.boxes[candidates, 2:]) / 2
    rays_cam = np.hstack(
        [camera_model.undistort_points(box_centres_uv, normalized=True),
         np.ones((len(candidates), 1))]
    )  # fmt: skip
    rays = rays_cam @ T_lidar_from_camera[:3, :3].T  # (K, 3) in lidar frame

    rows: list[tuple[np.ndarray, tuple[float, float, float], float]] = []
    sources: list[int] = []
    for row, detection_index in enumerate(candidates):  # tens of detections, each vectorised
        members = points_lidar[kept[np.flatnonzero(inside[row])]]
        if len(members) < config.min_frustum_points:
            continue
        ray_xy_norm = float(np.hypot(rays[row, 0], rays[row, 1]))
        if ray_xy_norm < 1e-6:  # looking straight up or down: no horizontal range
            continue
        direction = rays[row, :2] / ray_xy_norm
        ranges = (members[:, :2] - origin[:2]) @ direction
        cluster = nearest_dense_cluster(
            ranges, config.cluster_gap_m, config.min_frustum_points, config.min_cluster_fraction
        )
        if cluster.size == 0:
            continue
        class_id = str(detections.class_ids[detection_index])
        size = config.size_priors[class_id]
        ray_yaw = float(np.arctan2(direction[1], direction[0]))
        yaw = None
        if class_id in config.outline_yaw_classes:
            yaw = _yaw_from_outline(
                members[cluster, :2], ray_yaw, size, config.frustum_shrink,
                config.yaw_search_step_deg,
            )
        yaw = ray_yaw if yaw is None else yaw
        relative = yaw - ray_yaw
        half_depth = 0.5 * (size[0] * abs(np.cos(relative)) + size[1] * abs(np.sin(relative)))
        centre_range = np.percentile(ranges[cluster], config.near_surface_percentile)
        centre_range += half_depth
        centre = origin + rays[row] * (centre_range / ray_xy_norm)
        rows.append((centre, size, yaw))
        sources.append(int(detection_index))
    if not rows:
        return empty
    source_index = np.asarray(sources, dtype=np.intp)
    lifted = Boxes3D(
        np.array([centre for centre, _, _ in rows]),
        np.array([size for _, size, _ in rows]),
        np.array([yaw for _, _, yaw in rows]),
        detections.scores[source_index] * config.score_factor,
        detections.class_ids[source_index].astype(CLASS_ID_DTYPE),
        detections.ids[source_index],
        frame_id=frame_id,
    )
    return lifted, source_index

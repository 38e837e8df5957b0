"""Late camera–lidar fusion: lidar boxes give geometry, camera boxes sharpen the class.

The lidar detector localises well but confuses classes of similar shape (a van-sized truck
labelled car); the camera detector is the reverse. So each lidar box is projected into the
image, matched one-to-one with the camera boxes (Hungarian on 1 − IoU plus a normalised
centre distance, gated), and a matched pair keeps the lidar geometry with a class chosen
from both sensors' scores. Camera boxes that nothing matched are lifted to 3D from the
lidar points in their frustum (ad_perception.core.frustum). A sensor that is missing
degrades the output instead of stopping it, and the result says which sensor was missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ad_perception import CLASSES
from ad_perception.core.assignment import associate
from ad_perception.core.camera_model import CameraModel
from ad_perception.core.frustum import LiftingConfig, lift_detections
from ad_perception.core.tracking import OUT_OF_ORDER, RESET, ClassTracker, TrackingConfig
from ad_perception.core.types import CLASS_ID_DTYPE, Boxes3D, Detections2D, PointCloud

FUSED, LIDAR_ONLY, CAMERA_ONLY = "fused", "lidar_only", "camera_only"
PROVENANCE_DTYPE = np.dtype("<U11")
SCORE_FUSION_MODES = ("linear", "geometric")
# the 12 edges of a Boxes3D.corners() cuboid: bottom ring, top ring, verticals
_BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
     [0, 4], [1, 5], [2, 6], [3, 7]]
)  # fmt: skip


@dataclass
class FusionConfig:
    """Association gate, score fusion and output settings of :class:`FusionPipeline`."""

    classes: tuple[str, ...] = CLASSES
    iou_weight: float = 1.0
    center_weight: float = 0.5
    max_association_cost: float = 0.7  # cost is normalised to [0, 1] by the weight sum
    min_iou: float = 0.1
    # near plane of the optical frame at which lidar boxes reaching behind the camera are cut
    near_plane_m: float = 0.2
    min_projected_size_px: float = 1.0
    # Chosen on the validation bags with scripts/tune_fusion.py (docs/benchmarks.md): on the
    # embedded world the lidar's classes are right 99.6% of the time and the camera's are
    # weaker, so the camera only tips decisions the lidar is unsure of.
    score_fusion: str = "geometric"
    # share of the camera in the class decision (the lidar gets 1 − this), optionally per class
    camera_class_weight: float = 0.1
    camera_class_weight_per_class: dict[str, float] = field(default_factory=dict)
    lifting: LiftingConfig = field(default_factory=LiftingConfig)
    # class votes over time (core.tracking), applied by FusionPipeline.track
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output_frame: str = "base_link"
    score_threshold: float = 0.1

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be at least 2 distinct names, got {self.classes}")
        if self.iou_weight < 0 or self.center_weight < 0 or (
            self.iou_weight + self.center_weight <= 0
        ):
            raise ValueError(
                "iou_weight and center_weight must be >= 0 and not both 0, got "
                f"{self.iou_weight}, {self.center_weight}"
            )
        if not 0.0 <= self.max_association_cost <= 1.0:
            raise ValueError(
                f"max_association_cost must be in [0, 1], got {self.max_association_cost}"
            )
        if self.near_plane_m <= 0:
            raise ValueError(f"near_plane_m must be positive, got {self.near_plane_m}")
        if self.score_fusion not in SCORE_FUSION_MODES:
            raise ValueError(
                f"score_fusion must be one of {SCORE_FUSION_MODES}, got {self.score_fusion!r}"
            )
        weights = {None: self.camera_class_weight, **self.camera_class_weight_per_class}
        for name, weight in weights.items():
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"camera class weight ({name or 'default'}) must be in "
                                 f"[0, 1], got {weight}")
        unknown = set(self.camera_class_weight_per_class) - set(self.classes)
        if unknown:
            raise ValueError(f"camera_class_weight_per_class names unknown classes {unknown}; "
                             f"known: {self.classes}")

    def camera_weights(self) -> np.ndarray:
        """Camera weight per class (K,), in ``classes`` order."""
        return np.array([self.camera_class_weight_per_class.get(name, self.camera_class_weight)
                         for name in self.classes])


@dataclass
class FusionStatus:
    """What the frame was missing; the node turns these into /diagnostics levels."""

    camera_missing: bool = False
    lidar_missing: bool = False
    no_calibration: bool = False
    no_base_transform: bool = False  # output left in the lidar frame
    points_missing: bool = False  # camera-only objects could not be lifted
    points_frame_mismatch: bool = False  # cloud not in the lidar boxes' frame: not lifted
    untracked: bool = False  # older than the newest tracked frame: classes not voted on
    tracks_reset: bool = False  # time went backwards (a replay restarted): tracks dropped

    @property
    def ok(self) -> bool:
        return not any(self.flags())

    def flags(self) -> list[str]:
        return [name for name, value in vars(self).items() if value]


@dataclass
class FusionResult:
    """Fused objects and, per object, where it came from: ``provenance`` is fused /
    lidar_only / camera_only, ``lidar_index`` and ``camera_index`` point into the inputs
    (-1 where that sensor contributed nothing)."""

    objects: Boxes3D
    provenance: np.ndarray
    lidar_index: np.ndarray
    camera_index: np.ndarray
    status: FusionStatus


def box_iou_xyxy(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU (A, B) of xyxy pixel boxes, continuous coordinates (no +1 pixel)."""
    a, b = boxes_a[:, None, :], boxes_b[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def normalised_center_distance(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Centre distance (A, B) over the diagonal of the box enclosing both (as in DIoU): in
    [0, 1), scale-free, and still informative when the boxes do not overlap."""
    a, b = boxes_a[:, None, :], boxes_b[None, :, :]
    centre_a, centre_b = (a[..., :2] + a[..., 2:]) / 2, (b[..., :2] + b[..., 2:]) / 2
    distance = np.linalg.norm(centre_a - centre_b, axis=-1)
    enclosing = np.maximum(a[..., 2:], b[..., 2:]) - np.minimum(a[..., :2], b[..., :2])
    diagonal = np.linalg.norm(enclosing, axis=-1)
    return np.divide(distance, diagonal, out=np.zeros_like(distance), where=diagonal > 0)


def _normalised_image_bounds(camera_model: CameraModel) -> np.ndarray:
    """(x_min, y_min, x_max, y_max) of the image border in normalised coordinates, 10 %
    wider. Points are clamped to it before distortion, whose polynomial folds back far
    outside the calibrated field of view and would mirror near-plane points into view."""
    u = np.linspace(-0.5, camera_model.width - 0.5, 17)
    v = np.linspace(-0.5, camera_model.height - 0.5, 17)
    border = np.concatenate([
        np.stack([u, np.full_like(u, v[0])], 1), np.stack([u, np.full_like(u, v[-1])], 1),
        np.stack([np.full_like(v, u[0]), v], 1), np.stack([np.full_like(v, u[-1]), v], 1),
    ])  # fmt: skip
    xy = camera_model.undistort_points(border, normalized=True)
    low, high = xy.min(axis=0), xy.max(axis=0)
    margin = 0.1 * (high - low)
    return np.concatenate([low - margin, high + margin])


def project_boxes_to_image(
    boxes: Boxes3D,
    T_camera_from_lidar: np.ndarray,
    camera_model: CameraModel,
    near_plane_m: float = 0.2,
    min_size_px: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Image boxes (N, 4) xyxy of lidar boxes, and which of them are visible (N,).

    A box reaching behind the camera is cut at the near plane: its 2D box spans the
    corners in front plus the points where the 12 cuboid edges cross the plane, which is
    the exact extent of the visible part for a pinhole camera (projecting only the corners
    in front would shrink it; projecting all would mirror the ones behind). The result is
    clipped to the image; a box with nothing in front, or clipped to less than
    ``min_size_px`` in either direction, is not visible and must not be associated.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    rotation, translation = T_camera_from_lidar[:3, :3], T_camera_from_lidar[:3, 3]
    corners = boxes.corners() @ rotation.T + translation  # (N, 8, 3) optical frame
    start, end = corners[:, _BOX_EDGES[:, 0]], corners[:, _BOX_EDGES[:, 1]]  # (N, 12, 3)
    start_in_front, end_in_front = start[..., 2] > near_plane_m, end[..., 2] > near_plane_m
    crossing = start_in_front != end_in_front
    step = np.divide(near_plane_m - start[..., 2], end[..., 2] - start[..., 2],
                     out=np.zeros(crossing.shape), where=crossing)
    cuts = start + step[..., None] * (end - start)
    cuts[..., 2] = near_plane_m
    candidates = np.concatenate([corners, cuts], axis=1)  # (N, 20, 3)
    valid = np.concatenate([corners[..., 2] > near_plane_m, crossing], axis=1)
    in_front = candidates[valid]
    bounds = _normalised_image_bounds(camera_model)
    normalised = np.clip(in_front[:, :2] / in_front[:, 2:], bounds[:2], bounds[2:])
    uv_valid, _, kept = camera_model.project(
        np.hstack([normalised, np.ones((len(normalised), 1))])
    )
    uv = np.zeros((*valid.shape, 2))
    projected = np.zeros(valid.shape, dtype=bool)
    flat = np.flatnonzero(valid)[kept]
    uv.reshape(-1, 2)[flat] = uv_valid
    projected.reshape(-1)[flat] = True
    low = np.where(projected[..., None], uv, np.inf).min(axis=1)
    high = np.where(projected[..., None], uv, -np.inf).max(axis=1)
    image_max = np.array([camera_model.width - 0.5, camera_model.height - 0.5])
    low, high = np.clip(low, -0.5, image_max), np.clip(high, -0.5, image_max)
    visible = projected.any(axis=1) & np.all(high - low >= min_size_px, axis=1)
    image_boxes = np.where(visible[:, None], np.hstack([low, high]), 0.0)
    return image_boxes, visible


def association_cost(
    lidar_boxes_2d: np.ndarray, camera_boxes: np.ndarray, config: FusionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Cost (N, M) in [0, 1] of matching projected lidar boxes to camera boxes, and the
    (N, M) mask of pairs that pass the gate (cost and minimum IoU)."""
    iou = box_iou_xyxy(lidar_boxes_2d, camera_boxes)
    centre = normalised_center_distance(lidar_boxes_2d, camera_boxes)
    total_weight = config.iou_weight + config.center_weight
    cost = (config.iou_weight * (1.0 - iou) + config.center_weight * centre) / total_weight
    return cost, (cost <= config.max_association_cost) & (iou >= config.min_iou)


def class_distributions(
    class_ids: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]
) -> np.ndarray:
    """(N, K) class distributions from one (class, score) per detection.

    The score is a *detection* confidence, not a class posterior: a 0.2 car is an unsure
    object, not an object that is more likely a truck. So the named class gets
    ``1/K + (1 - 1/K) * score`` (uniform at score 0, certain at 1) and the rest share the
    remainder: a sensor's own class is always its most likely one, and at camera weight 0
    the fusion keeps every lidar class (the old mapping, score on the class, flipped lidar
    boxes under 1/K to "car"). An unknown class gives the uniform distribution (no opinion).
    """
    k = len(classes)
    confidence = 1.0 / k + (1.0 - 1.0 / k) * np.clip(scores, 0.0, 1.0)
    column = np.array([classes.index(c) if c in classes else -1 for c in class_ids], dtype=int)
    distributions = np.repeat(((1.0 - confidence) / (k - 1))[:, None], k, axis=1)
    known = column >= 0
    distributions[np.flatnonzero(known), column[known]] = confidence[known]
    distributions[~known] = 1.0 / k
    return distributions


def fuse_class_scores(
    camera: np.ndarray, lidar: np.ndarray, camera_weights: np.ndarray, mode: str = "linear"
) -> tuple[np.ndarray, np.ndarray]:
    """Fused class index (N,) and class probability (N,) from camera and lidar
    distributions (N, K); ties go to the lidar's class.

    ``linear`` is a weighted average: robust when one sensor is confidently wrong.
    ``geometric`` is a weighted product of experts: agreement raises confidence, as for
    independent sensors, but one near-zero probability vetoes a class.
    """
    if mode == "linear":
        fused = camera_weights * camera + (1.0 - camera_weights) * lidar
    elif mode == "geometric":
        tiny = np.finfo(np.float64).tiny
        fused = np.exp(camera_weights * np.log(np.maximum(camera, tiny))
                       + (1.0 - camera_weights) * np.log(np.maximum(lidar, tiny)))
    else:
        raise ValueError(f"score fusion mode must be one of {SCORE_FUSION_MODES}, got {mode!r}")
    fused /= fused.sum(axis=1, keepdims=True)
    # argmax takes the first of equal values: break ties towards the lidar's choice instead
    best = (fused + 1e-12 * (lidar == lidar.max(axis=1, keepdims=True))).argmax(axis=1)
    return best, fused[np.arange(len(fused)), best]


def fuse_detection_scores(camera: np.ndarray, lidar: np.ndarray, camera_weight: float,
                          mode: str = "linear") -> np.ndarray:
    """Existence confidence of a matched pair, combined by the same rule as the classes, so
    camera weight 0 leaves the lidar's score (and its AP ranking) unchanged."""
    camera, lidar = np.clip(camera, 0.0, 1.0), np.clip(lidar, 0.0, 1.0)
    if mode == "geometric":
        return camera ** camera_weight * lidar ** (1.0 - camera_weight)
    return camera_weight * camera + (1.0 - camera_weight) * lidar


class FusionPipeline:
    """Late fusion of one frame (``__call__``, stateless), then the class vote over time
    (``track``, the one stateful step: frames must come in stamp order, one bag or drive at a
    time, ``reset_tracks`` between them)."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()
        self.tracker = ClassTracker(self.config.classes)

    def reset_tracks(self) -> None:
        self.tracker.reset()

    def track(self, result: FusionResult, stamp_ns: int) -> FusionResult:
        """The result with each object's class from its track's votes and the track id in
        ``ids``; unchanged when tracking is disabled."""
        if not self.config.tracking.enabled:
            return result
        objects, event = self.tracker.update(result.objects, stamp_ns, self.config.tracking)
        status = replace(result.status, untracked=event == OUT_OF_ORDER,
                         tracks_reset=event == RESET)
        return replace(result, objects=objects, status=status)

    def __call__(
        self,
        camera: Detections2D | None,
        lidar: Boxes3D | None,
        camera_model: CameraModel | None,
        T_camera_from_lidar: np.ndarray | None,
        T_base_from_lidar: np.ndarray | None,
        points: PointCloud | None = None,
    ) -> FusionResult:
        """Fuse one frame. ``lidar`` boxes and ``points`` are in the lidar frame, the source
        of both transforms; the objects come out in ``config.output_frame``."""
        config = self.config
        for name, transform in (("T_camera_from_lidar", T_camera_from_lidar),
                                ("T_base_from_lidar", T_base_from_lidar)):
            if transform is not None and np.shape(transform) != (4, 4):
                raise ValueError(f"{name} must be 4x4, got shape {np.shape(transform)}")
        status = FusionStatus(
            camera_missing=camera is None,
            lidar_missing=lidar is None,
            no_calibration=camera_model is None or T_camera_from_lidar is None,
            no_base_transform=T_base_from_lidar is None,
        )
        source_frame = (lidar.frame_id if lidar is not None and lidar.frame_id
                        else points.frame_id if points is not None else "")
        lidar = lidar if lidar is not None else Boxes3D.empty(source_frame)
        use_camera = camera is not None and len(camera) > 0 and not status.no_calibration

        pairs = np.zeros((0, 2), dtype=np.intp)
        if use_camera and len(lidar):
            lidar_boxes_2d, visible = project_boxes_to_image(
                lidar, T_camera_from_lidar, camera_model, config.near_plane_m,
                config.min_projected_size_px,
            )
            cost, allowed = association_cost(lidar_boxes_2d, camera.boxes, config)
            allowed &= visible[:, None]
            pairs = associate(cost, allowed, config.max_association_cost)

        class_ids = lidar.class_ids.copy()
        scores = lidar.scores.copy()
        if len(pairs):
            camera_scores, lidar_scores = camera.scores[pairs[:, 1]], lidar.scores[pairs[:, 0]]
            weights = config.camera_weights()
            best, _ = fuse_class_scores(
                class_distributions(camera.class_ids[pairs[:, 1]], camera_scores, config.classes),
                class_distributions(lidar.class_ids[pairs[:, 0]], lidar_scores, config.classes),
                weights, config.score_fusion,
            )
            class_ids[pairs[:, 0]] = np.asarray(config.classes, dtype=CLASS_ID_DTYPE)[best]
            scores[pairs[:, 0]] = fuse_detection_scores(
                camera_scores, lidar_scores, weights[best], config.score_fusion)
        objects = Boxes3D(lidar.centers, lidar.sizes, lidar.yaws, scores, class_ids,
                          lidar.ids, frame_id=source_frame)
        provenance = np.full(len(lidar), LIDAR_ONLY, dtype=PROVENANCE_DTYPE)
        provenance[pairs[:, 0]] = FUSED
        lidar_index = np.arange(len(lidar))
        camera_index = np.full(len(lidar), -1, dtype=np.intp)
        camera_index[pairs[:, 0]] = pairs[:, 1]

        if use_camera and config.lifting.enabled:
            unmatched = np.setdiff1d(np.arange(len(camera)), pairs[:, 1])
            status.points_missing = points is None
            status.points_frame_mismatch = (
                points is not None and bool(points.frame_id) and bool(lidar.frame_id)
                and points.frame_id != lidar.frame_id
            )
            if points is not None and not status.points_frame_mismatch and len(unmatched):
                lifted, source = lift_detections(
                    camera.select(unmatched), points.xyz, camera_model, T_camera_from_lidar,
                    config.lifting, lidar_boxes=lidar, frame_id=source_frame,
                )
                objects = _concatenate(objects, lifted)
                provenance = np.concatenate(
                    [provenance, np.full(len(lifted), CAMERA_ONLY, dtype=PROVENANCE_DTYPE)])
                lidar_index = np.concatenate([lidar_index, np.full(len(lifted), -1)])
                camera_index = np.concatenate([camera_index, unmatched[source]])

        keep = objects.scores >= config.score_threshold
        objects = objects.select(keep)
        if T_base_from_lidar is not None:
            objects = objects.transformed(np.asarray(T_base_from_lidar, dtype=np.float64),
                                          config.output_frame)
        return FusionResult(objects, provenance[keep], lidar_index[keep].astype(np.intp),
                            camera_index[keep].astype(np.intp), status)


def _concatenate(first: Boxes3D, second: Boxes3D) -> Boxes3D:
    return Boxes3D(
        np.concatenate([first.centers, second.centers]),
        np.concatenate([first.sizes, second.sizes]),
        np.concatenate([first.yaws, second.yaws]),
        np.concatenate([first.scores, second.scores]),
        np.concatenate([first.class_ids, second.class_ids]),
        np.concatenate([first.ids, second.ids]),
        frame_id=first.frame_id,
    )

"""Detection accuracy (2D COCO AP, 3D/BEV AP, centre-distance AP, TP errors) and latency stats.

One greedy matcher (``eval.ranking``) serves every metric: detections in descending score
order each take the best still-free ground truth above a threshold, as COCO, KITTI-R40-style
and nuScenes evaluation all do, every threshold and range bin of a frame in one pass. Each
scorer is split into ``match_frames_*`` (per frame) and ``evaluate_matched_*`` (ranking over
any selection of matched frames).

Ignored ground truth (COCO crowd, KITTI difficulty, too few lidar points, outside a range bin)
is neither a hit nor a miss, and a detection matched to it is dropped instead of counted false.
Classes with no counted ground truth get AP = nan and are left out of the means, as COCO does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ad_perception import CLASSES
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.eval.iou import aligned_iou_3d, bev_and_3d_iou, box_iou_2d
from ad_perception.eval.ranking import (
    Tally,
    match,
    nuscenes_ap,
    sampled_precision,
)

# COCO's grids, built with the same expressions so float values match its recall search.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
COCO_RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
COCO_MAX_DETECTIONS = 100
COCO_AREA_RANGE_ALL = (0.0, 1e5**2)
# KITTI R40 (since 2019): 40 recall points 1/40..1, skipping recall 0 which R11 over-rewarded.
KITTI_RECALL_POINTS = np.linspace(1.0 / 40.0, 1.0, 40)
KITTI_IOU_THRESHOLDS: dict[str, float] = {
    "car": 0.7, "truck": 0.7, "pedestrian": 0.5, "cyclist": 0.5,
}
DISTANCE_THRESHOLDS_M: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
TP_ERROR_DISTANCE_M = 2.0
RANGE_BINS_M: dict[str, tuple[float, float]] = {
    "0-30": (0.0, 30.0), "30-50": (30.0, 50.0), "50+": (50.0, math.inf),
}


@dataclass(frozen=True)
class Difficulty:
    """KITTI difficulty: ground truth failing any limit is ignored, not missed."""

    min_height_px: float
    max_occlusion: int
    max_truncation: float


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(40.0, 0, 0.15),
    "moderate": Difficulty(25.0, 1, 0.30),
    "hard": Difficulty(25.0, 2, 0.50),
}


def _nanmean(values: Sequence[float] | np.ndarray) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.mean()) if len(finite) else math.nan


def _jsonable(value: object) -> object:
    """Plain JSON types with NaN as None, because JSON has no NaN."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


# ------------------------------------------------------------------------------ 2D (COCO)
@dataclass
class PRCurve:
    """Interpolated precision (T, R) at COCO's recall points for each IoU threshold."""

    recall: np.ndarray
    precision: np.ndarray
    iou_thresholds: np.ndarray

    def at(self, iou_threshold: float) -> np.ndarray:
        """The precision row of one IoU threshold (e.g. 0.5 for the usual plot)."""
        return self.precision[int(np.argmin(np.abs(self.iou_thresholds - iou_threshold)))]


@dataclass
class Eval2DResult:
    """COCO AP per class at IoU 0.5, 0.75 and averaged over 0.5:0.95 (nan: no ground truth);
    the means skip nan classes, which is exactly COCO's mean over its precision array."""

    ap50: dict[str, float]
    ap75: dict[str, float]
    ap: dict[str, float]
    map50: float
    map75: float
    map: float
    pr_curves: dict[str, PRCurve]

    def to_dict(self) -> dict:
        return _jsonable({
            "ap50": self.ap50, "ap75": self.ap75, "ap": self.ap,
            "map50": self.map50, "map75": self.map75, "map": self.map,
        })


Frame2D = tuple[Detections2D, Detections2D] | tuple[Detections2D, Detections2D, np.ndarray]


# per class: (scores, true_positive (T, D), counted (T, D), n_gt (T,)) of one frame
Matched2D = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def match_frames_2d(frames: Sequence[Frame2D], classes: Sequence[str] = CLASSES,
                    max_detections: int = COCO_MAX_DETECTIONS) -> list[Matched2D]:
    """Each frame's predictions matched to its ground truth at every COCO IoU threshold.

    COCO matches within an image, so this is the expensive, frame-local half of
    ``evaluate_2d``; ``evaluate_matched_2d`` ranks any selection of matched frames (a
    bootstrap resample, say) without matching again.
    """
    thresholds = np.minimum(COCO_IOU_THRESHOLDS, 1 - 1e-10)
    n_rows = len(thresholds)
    low, high = COCO_AREA_RANGE_ALL
    matched = []
    for frame_index, frame in enumerate(frames):
        if len(frame) not in (2, 3):
            raise ValueError(f"frame {frame_index}: expected (gt, predictions[, gt_is_crowd])")
        gt, predictions = frame[0], frame[1]
        crowd = np.zeros(len(gt), bool) if len(frame) == 2 else np.asarray(frame[2], bool)
        if crowd.shape != (len(gt),):
            raise ValueError(f"frame {frame_index}: gt_is_crowd must have {len(gt)} entries")
        per_class: Matched2D = {}
        for name in classes:
            gt_rows = gt.class_ids == name
            gt_boxes, gt_crowd = gt.boxes[gt_rows], crowd[gt_rows]
            gt_area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
            gt_ignored = gt_crowd | (gt_area < low) | (gt_area > high)
            det_index = np.flatnonzero(predictions.class_ids == name)
            order = det_index[np.argsort(-predictions.scores[det_index], kind="stable")]
            order = order[:max_detections]
            det_boxes = predictions.boxes[order]
            det_area = (det_boxes[:, 2] - det_boxes[:, 0]) * (det_boxes[:, 3] - det_boxes[:, 1])
            similarity = np.broadcast_to(
                box_iou_2d(det_boxes, gt_boxes, gt_crowd), (n_rows, len(order), len(gt_boxes))
            )
            true_positive, counted, _ = match(
                similarity, thresholds, np.zeros(n_rows, bool),
                np.broadcast_to(gt_ignored, (n_rows, len(gt_boxes))), gt_crowd,
                np.broadcast_to((det_area < low) | (det_area > high), (n_rows, len(order))),
            )
            n_gt = np.full(n_rows, np.count_nonzero(~gt_ignored))
            per_class[name] = (predictions.scores[order], true_positive, counted, n_gt)
        matched.append(per_class)
    return matched


def evaluate_matched_2d(matched: Sequence[Matched2D], classes: Sequence[str] = CLASSES
                        ) -> Eval2DResult:
    """COCO AP over frames already matched by ``match_frames_2d`` (in this order)."""
    n_rows = len(COCO_IOU_THRESHOLDS)
    tallies = {name: Tally(n_rows) for name in classes}
    for frame in matched:
        for name in classes:
            tallies[name].add(*frame[name])
    curves = {}
    for name, tally in tallies.items():
        true_positive, counted, n_gt = tally.ranked()
        precision = np.stack([
            sampled_precision(true_positive[row], counted[row], n_gt[row], COCO_RECALL_POINTS)
            for row in range(n_rows)
        ])
        curves[name] = PRCurve(COCO_RECALL_POINTS.copy(), precision, COCO_IOU_THRESHOLDS.copy())
    ap50 = {name: float(np.mean(curve.at(0.5))) for name, curve in curves.items()}
    ap75 = {name: float(np.mean(curve.at(0.75))) for name, curve in curves.items()}
    ap = {name: float(np.mean(curve.precision)) for name, curve in curves.items()}
    return Eval2DResult(ap50, ap75, ap, _nanmean(list(ap50.values())),
                        _nanmean(list(ap75.values())), _nanmean(list(ap.values())), curves)


def evaluate_2d(frames: Sequence[Frame2D], classes: Sequence[str] = CLASSES,
                max_detections: int = COCO_MAX_DETECTIONS) -> Eval2DResult:
    """COCO bbox AP (area "all") over frames of (ground truth, predictions[, gt_is_crowd]).

    The optional third item marks ground truth as COCO crowd / ignore regions. Other class
    names are skipped. Matches faster_coco_eval / pycocotools to float precision.
    """
    return evaluate_matched_2d(match_frames_2d(frames, classes, max_detections), classes)


# --------------------------------------------------------------------- 3D, BEV, distance
@dataclass
class Frame3D:
    """One frame's 3D ground truth and predictions in the sensor frame (ranges are measured
    from its origin), with optional per-ground-truth KITTI attributes and lidar point counts."""

    gt: Boxes3D
    predictions: Boxes3D
    occlusion: np.ndarray | None = None
    truncation: np.ndarray | None = None
    height_px: np.ndarray | None = None
    num_points: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("occlusion", "truncation", "height_px", "num_points"):
            column = getattr(self, name)
            if column is not None:
                column = np.asarray(column, dtype=np.float64).reshape(-1)
                if len(column) != len(self.gt):
                    raise ValueError(f"{name} has {len(column)} rows, gt has {len(self.gt)}")
                setattr(self, name, column)

    def gt_ignored(self, difficulty: Difficulty | None, min_points: int) -> np.ndarray:
        """Ground truth that neither counts as found nor as missed; a missing attribute
        filters nothing, so partially annotated data still evaluates."""
        ignored = np.zeros(len(self.gt), dtype=bool)
        if difficulty is not None:
            if self.height_px is not None:
                ignored |= self.height_px < difficulty.min_height_px
            if self.occlusion is not None:
                ignored |= self.occlusion > difficulty.max_occlusion
            if self.truncation is not None:
                ignored |= self.truncation > difficulty.max_truncation
        if min_points > 0:
            if self.num_points is None:
                raise ValueError("min_points needs Frame3D.num_points for every frame")
            ignored |= self.num_points < min_points
        return ignored


@dataclass
class Eval3DResult:
    """AP per class (nan: no counted ground truth) and the means over classes that have some.

    ``tp_errors[class]`` holds mean translation error (m), scale error (1 - aligned IoU) and
    orientation error (rad, period 2 pi) over true positives at 2 m, with their count.
    """

    bev_ap: dict[str, float]
    ap_3d: dict[str, float]
    map_bev: float
    map_3d: float
    dist_ap: dict[str, float]
    dist_ap_by_threshold: dict[float, dict[str, float]]
    map_dist: float
    dist_ap_by_range: dict[str, dict[str, float]]
    tp_errors: dict[str, dict[str, float]]
    iou_thresholds: dict[str, float]
    difficulty: str | None

    def to_dict(self) -> dict:
        return _jsonable(self.__dict__)


def _sensor_range(boxes: Boxes3D) -> np.ndarray:
    return np.hypot(boxes.centers[:, 0], boxes.centers[:, 1])


# per class: (scores, true_positive (R, D), counted (R, D), n_gt (R,), TP errors (M, 3))
Matched3D = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def match_frames_3d(
    frames: Sequence[Frame3D],
    classes: Sequence[str] = CLASSES,
    iou_thresholds: Mapping[str, float] = KITTI_IOU_THRESHOLDS,
    distance_thresholds_m: Sequence[float] = DISTANCE_THRESHOLDS_M,
    range_bins_m: Mapping[str, tuple[float, float]] = RANGE_BINS_M,
    difficulty: str | None = None,
    min_points: int = 0,
) -> list[Matched3D]:
    """Each frame's predictions matched to its ground truth (every BEV/3D/distance row), the
    frame-local half of ``evaluate_3d``; ``evaluate_matched_3d`` ranks any selection of them
    (a bootstrap resample) without matching again."""
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)} or None")
    missing = [name for name in classes if name not in iou_thresholds]
    if missing:
        raise ValueError(f"iou_thresholds has no entry for {missing}")
    limits = DIFFICULTIES[difficulty] if difficulty else None
    distances = np.asarray(distance_thresholds_m, dtype=np.float64)
    n_dist, bins = len(distances), list(range_bins_m.items())
    # Rows: BEV IoU, 3D IoU, distances overall, distances per range bin, the TP-error distance.
    n_rows = 2 + n_dist * (1 + len(bins)) + 1
    strict = np.ones(n_rows, dtype=bool)  # nuScenes matches on distance < threshold
    strict[:2] = False
    matched_frames = []
    for frame in frames:
        ignored_all = frame.gt_ignored(limits, min_points)
        # Score order once per frame; the per-class subsets below inherit it.
        ranked = frame.predictions.select(np.argsort(-frame.predictions.scores, kind="stable"))
        bev_all, iou3d_all = bev_and_3d_iou(ranked, frame.gt, same_class_only=True)
        per_class: Matched3D = {}
        for name in classes:
            gt_rows = frame.gt.class_ids == name
            gt, gt_ignored = frame.gt.select(gt_rows), ignored_all[gt_rows]
            det_rows = ranked.class_ids == name
            det = ranked.select(det_rows)
            bev, iou3d = bev_all[det_rows][:, gt_rows], iou3d_all[det_rows][:, gt_rows]
            distance = np.linalg.norm(det.centers[:, None, :2] - gt.centers[None, :, :2], axis=-1)
            gt_range, det_range = _sensor_range(gt), _sensor_range(det)
            ignored_rows = [gt_ignored] * (2 + n_dist)
            outside_rows = [np.zeros(len(det), bool)] * (2 + n_dist)
            for _, (near, far) in bins:
                ignored_rows += [gt_ignored | (gt_range < near) | (gt_range >= far)] * n_dist
                outside_rows += [(det_range < near) | (det_range >= far)] * n_dist
            ignored_rows.append(gt_ignored)
            outside_rows.append(np.zeros(len(det), bool))
            similarity = np.stack([bev, iou3d] + [-distance] * (n_rows - 2))
            thresholds = np.concatenate([
                [iou_thresholds[name]] * 2, np.tile(-distances, 1 + len(bins)),
                [-TP_ERROR_DISTANCE_M],
            ])
            true_positive, counted, matched = match(
                similarity, thresholds, strict, np.stack(ignored_rows).reshape(n_rows, len(gt)),
                np.zeros(len(gt), bool), np.stack(outside_rows).reshape(n_rows, len(det)),
            )
            n_gt = np.array([np.count_nonzero(~rows) for rows in ignored_rows])
            hits = np.flatnonzero(true_positive[-1])
            per_class[name] = (det.scores, true_positive, counted, n_gt,
                               _tp_errors(det.select(hits), gt.select(matched[-1, hits])))
        matched_frames.append(per_class)
    return matched_frames


def evaluate_matched_3d(
    matched: Sequence[Matched3D],
    classes: Sequence[str] = CLASSES,
    iou_thresholds: Mapping[str, float] = KITTI_IOU_THRESHOLDS,
    distance_thresholds_m: Sequence[float] = DISTANCE_THRESHOLDS_M,
    range_bins_m: Mapping[str, tuple[float, float]] = RANGE_BINS_M,
    difficulty: str | None = None,
) -> Eval3DResult:
    """``evaluate_3d`` over frames already matched by ``match_frames_3d`` with the same
    settings (in this order)."""
    distances = np.asarray(distance_thresholds_m, dtype=np.float64)
    bins = list(range_bins_m.items())
    n_rows = 2 + len(distances) * (1 + len(bins)) + 1
    tallies = {name: Tally(n_rows) for name in classes}
    errors: dict[str, list[np.ndarray]] = {name: [] for name in classes}
    for frame in matched:
        for name in classes:
            scores, true_positive, counted, n_gt, pairs = frame[name]
            tallies[name].add(scores, true_positive, counted, n_gt)
            errors[name].append(pairs)
    return _summarise_3d(tallies, errors, classes, iou_thresholds, distances, bins, difficulty)


def evaluate_3d(
    frames: Sequence[Frame3D],
    classes: Sequence[str] = CLASSES,
    iou_thresholds: Mapping[str, float] = KITTI_IOU_THRESHOLDS,
    distance_thresholds_m: Sequence[float] = DISTANCE_THRESHOLDS_M,
    range_bins_m: Mapping[str, tuple[float, float]] = RANGE_BINS_M,
    difficulty: str | None = None,
    min_points: int = 0,
) -> Eval3DResult:
    """BEV and 3D AP (KITTI thresholds, R40), centre-distance AP (nuScenes) overall and per
    range bin, and TP errors at 2 m.

    Matching is score-greedy (COCO/nuScenes style) rather than the KITTI devkit's per-threshold
    scan, so BEV/3D values are KITTI-like, not devkit-identical. A range bin ignores ground truth
    outside it and drops unmatched predictions outside it, as COCO does for area ranges.
    """
    matched = match_frames_3d(frames, classes, iou_thresholds, distance_thresholds_m,
                              range_bins_m, difficulty, min_points)
    return evaluate_matched_3d(matched, classes, iou_thresholds, distance_thresholds_m,
                               range_bins_m, difficulty)


def _tp_errors(det: Boxes3D, gt: Boxes3D) -> np.ndarray:
    """(N, 3) translation (m, BEV), scale (1 - aligned IoU) and orientation (rad) errors of
    matched pairs; the yaw gap is taken over a full turn, so a reversed heading costs pi."""
    yaw_gap = np.abs((det.yaws - gt.yaws + np.pi) % (2 * np.pi) - np.pi)
    translation = np.linalg.norm(det.centers[:, :2] - gt.centers[:, :2], axis=1)
    scale = 1.0 - aligned_iou_3d(det.sizes, gt.sizes)
    return np.stack([translation, scale, yaw_gap], axis=1)


def _summarise_3d(tallies: dict[str, Tally], errors: dict[str, list[np.ndarray]],
                  classes: Sequence[str], iou_thresholds: Mapping[str, float],
                  distances: np.ndarray, bins: list, difficulty: str | None) -> Eval3DResult:
    n_dist = len(distances)
    bev_ap, ap_3d, dist_ap, tp_errors = {}, {}, {}, {}
    by_threshold: dict[float, dict[str, float]] = {float(d): {} for d in distances}
    by_range: dict[str, dict[str, float]] = {label: {} for label, _ in bins}
    for name in classes:
        true_positive, counted, n_gt = tallies[name].ranked()
        bev_ap[name], ap_3d[name] = (
            float(np.mean(sampled_precision(
                true_positive[row], counted[row], n_gt[row], KITTI_RECALL_POINTS
            ))) for row in (0, 1)
        )
        distance_rows = range(2, 2 + n_dist * (1 + len(bins)))
        distance_ap = np.array([
            nuscenes_ap(true_positive[row], counted[row], n_gt[row]) for row in distance_rows
        ]).reshape(1 + len(bins), n_dist)
        dist_ap[name] = float(np.mean(distance_ap[0]))
        for threshold, value in zip(distances, distance_ap[0], strict=True):
            by_threshold[float(threshold)][name] = float(value)
        for index, (label, _) in enumerate(bins):
            by_range[label][name] = float(np.mean(distance_ap[1 + index]))
        pairs = np.concatenate(errors[name]) if errors[name] else np.zeros((0, 3))
        mean = pairs.mean(axis=0) if len(pairs) else np.full(3, math.nan)
        tp_errors[name] = {
            "trans_err": float(mean[0]), "scale_err": float(mean[1]),
            "orient_err": float(mean[2]), "count": len(pairs),
        }
    return Eval3DResult(
        bev_ap, ap_3d, _nanmean(list(bev_ap.values())), _nanmean(list(ap_3d.values())),
        dist_ap, by_threshold, _nanmean(list(dist_ap.values())), by_range, tp_errors,
        {name: float(iou_thresholds[name]) for name in classes}, difficulty,
    )


# ---------------------------------------------------------------------------------- latency
def latency_summary(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/max/mean of latencies (ms) and ``jitter``: the standard deviation of the
    latency itself, since these samples carry no arrival times; inter-arrival jitter needs the
    stamps and belongs to the latency monitor. Empty input gives count 0 and nan elsewhere."""
    samples = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(samples)):
        raise ValueError("latency samples must be finite; drop lost messages before summarising")
    if len(samples) == 0:
        return {key: math.nan for key in ("p50", "p90", "p99", "max", "mean", "jitter")} | {
            "count": 0
        }
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    return {
        "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(samples.max()),
        "mean": float(samples.mean()), "jitter": float(samples.std()), "count": len(samples),
    }

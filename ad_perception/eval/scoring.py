"""The one scorer: outputs keyed by input header stamp, set against a bag's ground truth.

Offline runs (pipelines called directly), live replays (outputs recorded from the launched
graph) and bags that already carry recorded outputs all reduce to ``Outputs``: per output, a
dict from the input frame's stamp to what was published for it. ``build_predictions`` pairs
those with the ground truth the same way for all three, so an output equal to the ground
truth scores AP = 1 whichever way it was produced, and a frame without output (a drop) is
scored as a frame where nothing was detected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.eval import gt_filters
from ad_perception.eval.ground_truth import BagGroundTruth
from ad_perception.eval.metrics import (
    Frame3D,
    _jsonable,
    evaluate_2d,
    evaluate_3d,
    latency_summary,
)

CLASS_MATCH_DISTANCE_M = 2.0
OUTPUT_INPUTS = {"camera": "image", "lidar": "points", "fused": "points"}


@dataclass
class Outputs:
    """What one variant published for one bag; None for an output it never produced."""

    camera: dict[int, Detections2D] | None = None
    lidar: dict[int, Boxes3D] | None = None
    fused: dict[int, Boxes3D] | None = None
    latency_ms: list[float] = field(default_factory=list)  # the headline latency samples
    latency_by_output: dict[str, list[float]] = field(default_factory=dict)
    latency_kind: str = "compute"  # "compute" (offline) or "end_to_end" (live, recorded)
    notes: list[str] = field(default_factory=list)


@dataclass
class FramePredictions:
    """Everything one variant produced on one bag, paired with its ground truth."""

    camera: list[tuple[Detections2D, Detections2D, np.ndarray]] = field(default_factory=list)
    lidar: list[Frame3D] = field(default_factory=list)
    fused: list[Frame3D] = field(default_factory=list)
    fused_class_pairs: list[tuple[str, str]] = field(default_factory=list)
    lidar_class_pairs: list[tuple[str, str]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    latency_by_output: dict[str, list[float]] = field(default_factory=dict)
    latency_kind: str = "compute"
    frames_in: dict[str, int] = field(default_factory=dict)  # input frames per output
    frames_out: dict[str, int] = field(default_factory=dict)  # of those, with an output
    notes: list[str] = field(default_factory=list)
    bag: str = ""


def matched_class_pairs(gt: Boxes3D, predictions: Boxes3D) -> list[tuple[str, str]]:
    """(gt class, predicted class) for ground truth matched to a prediction of any class
    within ``CLASS_MATCH_DISTANCE_M`` in BEV, greedily by descending score."""
    if not len(gt) or not len(predictions):
        return []
    order = np.argsort(-predictions.scores, kind="stable")
    distance = np.linalg.norm(predictions.centers[order, None, :2] - gt.centers[None, :, :2],
                              axis=2)
    taken = np.zeros(len(gt), dtype=bool)
    pairs = []
    for row, index in enumerate(order):
        candidates = np.where(~taken & (distance[row] <= CLASS_MATCH_DISTANCE_M))[0]
        if len(candidates):
            best = candidates[np.argmin(distance[row, candidates])]
            taken[best] = True
            pairs.append((str(gt.class_ids[best]), str(predictions.class_ids[index])))
    return pairs


def build_predictions(truth: BagGroundTruth, outputs: Outputs,
                      point_cloud_range: tuple[float, ...], class_names: tuple[str, ...],
                      operating_threshold: float = 0.3) -> FramePredictions:
    """Pair each ground-truth frame with the output published for its input stamp."""
    out = FramePredictions(latency_ms=list(outputs.latency_ms),
                           latency_by_output={k: list(v) for k, v in
                                              outputs.latency_by_output.items()},
                           latency_kind=outputs.latency_kind,
                           notes=list(truth.notes) + list(outputs.notes), bag=str(truth.bag))
    image_stamps = {f.stamp_ns for f in truth.image_frames}
    cloud_stamps = {f.stamp_ns for f in truth.cloud_frames}
    for name, produced in (("camera", outputs.camera), ("lidar", outputs.lidar),
                           ("fused", outputs.fused)):
        stamps = image_stamps if OUTPUT_INPUTS[name] == "image" else cloud_stamps
        if not stamps:
            continue
        out.frames_in[name] = len(stamps)
        out.frames_out[name] = len(stamps & set(produced or {}))
        if produced is None:
            out.notes.append(f"{name} not scored: no {name} output at all "
                             f"({len(stamps)} input frames)")
    if truth.scores_camera and outputs.camera is not None:
        for frame in truth.image_frames:
            gt = truth.boxes_2d.get(frame.stamp_ns)
            if gt is None:
                continue
            predicted = outputs.camera.get(frame.stamp_ns, Detections2D.empty())
            ignore = gt_filters.camera_ignore_mask(
                gt, truth.occlusion.get(frame.stamp_ns, {}), class_names,
                truncation_by_id=truth.truncation.get(frame.stamp_ns, {}))
            out.camera.append((gt, predicted, ignore))
    if truth.scores_lidar:
        _pair_3d(truth, outputs, out, point_cloud_range, class_names, operating_threshold)
    return out


def _pair_3d(truth: BagGroundTruth, outputs: Outputs, out: FramePredictions,
             point_cloud_range: tuple[float, ...], class_names: tuple[str, ...],
             operating_threshold: float) -> None:
    unreachable: set[str] = set()
    for frame in truth.cloud_frames:
        gt_boxes = truth.objects_3d.get(frame.stamp_ns)
        if gt_boxes is None:
            continue
        gt, num_points = gt_filters.lidar_gt_in_scope(
            gt_boxes, truth.lidar_points.get(frame.stamp_ns, {}), point_cloud_range,
            class_names)
        observed = gt.select(num_points >= gt_filters.MIN_LIDAR_POINTS)
        for name, produced, frames, pairs in (
                ("lidar", outputs.lidar, out.lidar, out.lidar_class_pairs),
                ("fused", outputs.fused, out.fused, out.fused_class_pairs)):
            if produced is None:
                continue
            boxes = produced.get(frame.stamp_ns, Boxes3D.empty(gt.frame_id))
            in_gt_frame = truth.to_lidar_frame(boxes)
            if in_gt_frame is None:
                unreachable.add(f"{name} boxes in {boxes.frame_id!r}")
                in_gt_frame = Boxes3D.empty(gt.frame_id)
            in_gt_frame = in_gt_frame.select(
                gt_filters.in_range(in_gt_frame.centers, point_cloud_range))
            frames.append(Frame3D(gt, in_gt_frame, num_points=num_points))
            pairs += matched_class_pairs(
                observed, in_gt_frame.select(in_gt_frame.scores >= operating_threshold))
    for what in sorted(unreachable):
        out.notes.append(f"{what} scored as empty: no transform to the ground-truth frame "
                         f"{truth.lidar_frame!r}")


# ---------------------------------------------------------------------------- summarising
@dataclass
class VariantScore:
    """A variant's results.json entry, plus the arrays reports plot (not in the JSON)."""

    entry: dict[str, Any]
    camera_pr: dict[str, np.ndarray]  # class -> precision at COCO's 101 recall points, IoU 0.5
    latency_samples_ms: list[float]
    latency_by_output: dict[str, list[float]]


def _accuracy(pairs: list[tuple[str, str]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def evaluate_predictions(predictions: list[FramePredictions]) -> VariantScore:
    """Score one variant over all its bags (frames pooled, as KITTI and COCO pool images)."""
    camera = evaluate_2d([frame for p in predictions for frame in p.camera])
    min_points = gt_filters.MIN_LIDAR_POINTS
    lidar = evaluate_3d([frame for p in predictions for frame in p.lidar], min_points=min_points)
    fused = evaluate_3d([frame for p in predictions for frame in p.fused], min_points=min_points)
    samples = [ms for p in predictions for ms in p.latency_ms]
    latency = latency_summary(samples)
    by_output: dict[str, list[float]] = {}
    frames_in: dict[str, int] = {}
    frames_out: dict[str, int] = {}
    for p in predictions:
        for name, values in p.latency_by_output.items():
            by_output.setdefault(name, []).extend(values)
        for name, count in p.frames_in.items():
            frames_in[name] = frames_in.get(name, 0) + count
            frames_out[name] = frames_out.get(name, 0) + p.frames_out.get(name, 0)
    lidar_pairs = [pair for p in predictions for pair in p.lidar_class_pairs]
    fused_pairs = [pair for p in predictions for pair in p.fused_class_pairs]
    kinds = {p.latency_kind for p in predictions}
    entry = {
        "camera": {"ap50": camera.ap50, "map50": camera.map50, "map": camera.map,
                   "ap75": camera.ap75, "frames": sum(len(p.camera) for p in predictions)},
        "lidar": {"bev_ap": lidar.bev_ap, "map_bev": lidar.map_bev, "ap_3d": lidar.ap_3d,
                  "map_3d": lidar.map_3d, "class_accuracy": _accuracy(lidar_pairs),
                  "matched": len(lidar_pairs), "dist_ap": lidar.dist_ap,
                  "map_dist": lidar.map_dist, "dist_ap_by_range": lidar.dist_ap_by_range,
                  "tp_errors": lidar.tp_errors},
        "fused": {"bev_ap": fused.bev_ap, "map_bev": fused.map_bev, "ap_3d": fused.ap_3d,
                  "map_3d": fused.map_3d, "class_accuracy": _accuracy(fused_pairs),
                  "matched": len(fused_pairs), "dist_ap": fused.dist_ap,
                  "map_dist": fused.map_dist, "dist_ap_by_range": fused.dist_ap_by_range,
                  "tp_errors": fused.tp_errors},
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max", "mean", "count")},
        "latency_kind": kinds.pop() if len(kinds) == 1 else "mixed",
        "latency_by_output_ms": {
            name: {k: v for k, v in latency_summary(values).items()
                   if k in ("p50", "p90", "p99", "max", "count")}
            for name, values in sorted(by_output.items())},
        "drops": {name: {"frames_in": frames_in[name], "frames_out": frames_out[name],
                         "dropped": frames_in[name] - frames_out[name]}
                  for name in sorted(frames_in)},
        "frames": sum(len(p.lidar) or len(p.fused) for p in predictions),
        "notes": sorted({f"{p.bag}: {note}" for p in predictions for note in p.notes}),
    }
    camera_pr = {name: curve.at(0.5) for name, curve in camera.pr_curves.items()}
    return VariantScore(_jsonable(entry), camera_pr, samples, by_output)


def score(predictions: list[FramePredictions]) -> dict[str, Any]:
    """The results.json entry of one variant over all its bags (shape fixed by the
    baseline-models issue; later keys are additions)."""
    return evaluate_predictions(predictions).entry

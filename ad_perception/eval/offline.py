"""Offline scoring of a bag: run the camera, lidar and fusion pipelines directly on its
messages (deterministic, as fast as the CPU allows) and score them against its ground truth.

Scored: camera AP@0.5 per class against the 2D ground truth (ignore regions from
``gt_filters``); lidar BEV AP in the lidar frame against the 3D ground truth the lidar can
see; fused objects' BEV AP and class accuracy against the same ground truth (compared in
the lidar frame, where the ground truth is published); and the per-frame compute latency of
camera + lidar + fusion together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.fusion import FusionPipeline
from ad_perception.core.geometry import invert_transform
from ad_perception.core.sensor_codecs import image_to_array, pointcloud_to_core
from ad_perception.core.transforms import TransformBuffer
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.data import bag_io
from ad_perception.data.datasets import GT_BOXES_TOPIC, GT_OBJECTS_TOPIC
from ad_perception.eval import gt_filters
from ad_perception.eval.metrics import Frame3D, evaluate_2d, evaluate_3d, latency_summary

AP_SCORE_THRESHOLD = 0.05  # rank everything above noise for AP
FUSION_CAMERA_THRESHOLD = 0.3  # operating point of the camera detections fusion sees
CLASS_MATCH_DISTANCE_M = 2.0
SYNC_TOLERANCE_NS = 50_000_000


class EvalError(RuntimeError):
    """A bag that cannot be scored, with what is missing."""


@dataclass
class BagTopics:
    image: str
    camera_info: str
    points: str
    gt_boxes: str = GT_BOXES_TOPIC
    gt_objects: str = GT_OBJECTS_TOPIC


@dataclass
class FramePredictions:
    """Everything one variant produced on one bag, kept for scoring and for reports."""

    camera: list[tuple[Detections2D, Detections2D, np.ndarray]] = field(default_factory=list)
    lidar: list[Frame3D] = field(default_factory=list)
    fused: list[Frame3D] = field(default_factory=list)
    fused_class_pairs: list[tuple[str, str]] = field(default_factory=list)
    lidar_class_pairs: list[tuple[str, str]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)


def find_topics(bag: Path) -> BagTopics:
    types = bag_io.topic_types(bag)

    def one(msgtype: str, purpose: str) -> str:
        found = sorted(t for t, m in types.items() if m == msgtype and not t.startswith("/ground"))
        if not found:
            raise EvalError(f"{bag}: no {msgtype} topic ({purpose}); topics: {sorted(types)}")
        return found[0]

    topics = BagTopics(one("sensor_msgs/msg/Image", "camera"),
                       one("sensor_msgs/msg/CameraInfo", "camera intrinsics"),
                       one("sensor_msgs/msg/PointCloud2", "lidar"))
    missing = [t for t in (topics.gt_boxes, topics.gt_objects) if t not in types]
    if missing:
        raise EvalError(f"{bag}: no ground truth on {missing}; nothing to score against")
    return topics


def _transforms(bag: Path) -> TransformBuffer:
    from ad_perception.core.transforms import read_tf_message

    buffer = TransformBuffer()
    for _, _, msg in bag_io.read_messages(bag, ["/tf_static"]):
        for (parent, child), transform in read_tf_message(msg).items():
            buffer.set_transform(transform, parent, child)
    return buffer


def _matched_class_pairs(gt: Boxes3D, predictions: Boxes3D) -> list[tuple[str, str]]:
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


def run_bag(bag: Path, camera: Callable[[np.ndarray], Detections2D],
            lidar: Callable, fusion: FusionPipeline, lidar_config: Any,
            class_names: tuple[str, ...], operating_threshold: float = 0.3,
            progress: bool = True) -> FramePredictions:
    """Run the pipelines over every lidar frame of ``bag`` (paired with the camera frame of
    the same stamp) and collect predictions next to the ground truth they are scored on."""
    bag = Path(bag)
    topics = find_topics(bag)
    transforms = _transforms(bag)
    sidecar = bag_io.read_sidecar(bag)
    occlusion = gt_filters.sidecar_by_frame(sidecar, "occlusion")
    truncation = gt_filters.sidecar_by_frame(sidecar, "truncation", float)
    lidar_points = gt_filters.sidecar_by_frame(sidecar, "lidar_points")
    camera_model = None
    for _, _, msg in bag_io.read_messages(bag, [topics.camera_info]):
        camera_model = CameraModel.from_camera_info(msg)
        break
    gt_2d = {bag_io.stamp_ns(m): m for _, _, m in bag_io.read_messages(bag, [topics.gt_boxes])}
    gt_3d = {bag_io.stamp_ns(m): m for _, _, m in bag_io.read_messages(bag, [topics.gt_objects])}
    out = FramePredictions()

    camera_by_stamp: dict[int, tuple[Detections2D, float]] = {}
    images = bag_io.read_messages(bag, [topics.image])
    for index, (_, _, msg) in enumerate(tqdm(images, desc=f"camera {bag.name}",
                                             disable=not progress, leave=False)):
        stamp = bag_io.stamp_ns(msg)
        detections = camera(image_to_array(msg, desired_encoding="rgb8"))
        camera_by_stamp[stamp] = (detections, camera.last_times.total_ms)
        if stamp in gt_2d:
            gt = bag_io.detections2d_from_msg(gt_2d[stamp])
            ignore = gt_filters.camera_ignore_mask(gt, occlusion.get(index, {}), class_names,
                                                   truncation_by_id=truncation.get(index, {}))
            out.camera.append((gt, detections, ignore))

    camera_stamps = np.array(sorted(camera_by_stamp), dtype=np.int64)
    clouds = bag_io.read_messages(bag, [topics.points])
    for index, (_, _, msg) in enumerate(tqdm(clouds, desc=f"lidar {bag.name}",
                                             disable=not progress, leave=False)):
        stamp = bag_io.stamp_ns(msg)
        cloud = pointcloud_to_core(msg)
        boxes = lidar(cloud)
        lidar_ms = lidar.last_times.total_ms
        camera_detections, camera_ms = None, 0.0
        if len(camera_stamps):
            nearest = camera_stamps[np.argmin(np.abs(camera_stamps - stamp))]
            if abs(int(nearest) - stamp) <= SYNC_TOLERANCE_NS:
                camera_detections, camera_ms = camera_by_stamp[int(nearest)]
        lidar_frame = cloud.frame_id or msg.header.frame_id
        T_camera_from_lidar = T_base_from_lidar = None
        if camera_model is not None and transforms.can_transform(camera_model.frame_id,
                                                                 lidar_frame):
            T_camera_from_lidar = transforms.lookup(camera_model.frame_id, lidar_frame)
        if transforms.can_transform("base_link", lidar_frame):
            T_base_from_lidar = transforms.lookup("base_link", lidar_frame)
        fusion_input = None
        if camera_detections is not None:
            fusion_input = camera_detections.select(
                camera_detections.scores >= FUSION_CAMERA_THRESHOLD)
        started = time.perf_counter()
        fused = fusion(fusion_input, boxes, camera_model, T_camera_from_lidar,
                       T_base_from_lidar, cloud)
        fusion_ms = (time.perf_counter() - started) * 1e3
        out.latency_ms.append(camera_ms + lidar_ms + fusion_ms)
        if stamp not in gt_3d:
            continue
        gt, num_points = gt_filters.lidar_gt_in_scope(
            bag_io.boxes3d_from_msg(gt_3d[stamp]), lidar_points.get(index, {}),
            lidar_config.point_cloud_range, class_names)
        lidar_boxes = boxes.select(gt_filters.in_range(boxes.centers,
                                                       lidar_config.point_cloud_range))
        fused_objects = fused.objects
        if fused_objects.frame_id == "base_link" and T_base_from_lidar is not None:
            fused_objects = fused_objects.transformed(invert_transform(T_base_from_lidar),
                                                      lidar_frame)
        fused_objects = fused_objects.select(
            gt_filters.in_range(fused_objects.centers, lidar_config.point_cloud_range))
        out.lidar.append(Frame3D(gt, lidar_boxes, num_points=num_points))
        out.fused.append(Frame3D(gt, fused_objects, num_points=num_points))
        observed = gt.select(num_points >= gt_filters.MIN_LIDAR_POINTS)
        out.lidar_class_pairs += _matched_class_pairs(
            observed, lidar_boxes.select(lidar_boxes.scores >= operating_threshold))
        out.fused_class_pairs += _matched_class_pairs(
            observed, fused_objects.select(fused_objects.scores >= operating_threshold))
    if not out.lidar:
        raise EvalError(f"{bag}: no lidar frame had ground truth with the same stamp")
    return out


def _accuracy(pairs: list[tuple[str, str]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def _clean(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v is None or np.isnan(v) else float(v)) for k, v in values.items()}


def score(predictions: list[FramePredictions]) -> dict[str, Any]:
    """The results.json entry of one variant over all its bags (shape fixed by the
    baseline-models issue; later keys are additions)."""
    camera = evaluate_2d([frame for p in predictions for frame in p.camera])
    min_points = gt_filters.MIN_LIDAR_POINTS
    lidar = evaluate_3d([frame for p in predictions for frame in p.lidar], min_points=min_points)
    fused = evaluate_3d([frame for p in predictions for frame in p.fused], min_points=min_points)
    latency = latency_summary([ms for p in predictions for ms in p.latency_ms])
    lidar_pairs = [pair for p in predictions for pair in p.lidar_class_pairs]
    fused_pairs = [pair for p in predictions for pair in p.fused_class_pairs]
    return {
        "camera": {"ap50": _clean(camera.ap50), "map50": camera.map50, "map": camera.map},
        "lidar": {"bev_ap": _clean(lidar.bev_ap), "map_bev": lidar.map_bev,
                  "ap_3d": _clean(lidar.ap_3d), "class_accuracy": _accuracy(lidar_pairs),
                  "matched": len(lidar_pairs)},
        "fused": {"bev_ap": _clean(fused.bev_ap), "map_bev": fused.map_bev,
                  "class_accuracy": _accuracy(fused_pairs), "matched": len(fused_pairs)},
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max", "mean")},
        "frames": sum(len(p.lidar) for p in predictions),
    }

"""Accuracy of a whole pipeline (any backend) on held-out bags, scored as the offline
evaluation scores them: camera AP@0.5 per class and mean with the KITTI-moderate ignore
regions (``eval.gt_filters``), lidar BEV AP per class on the ground truth the lidar can see.
Frames are streamed from the bags, so no variant holds hundreds of 1280x720 images.

Values are in points (0-100), the unit of the compression budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ad_perception.core.sensor_codecs import image_to_array, pointcloud_to_core
from ad_perception.data import bag_io
from ad_perception.eval import gt_filters


def _points(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else 100.0 * float(value)


def camera_frames(bags: Sequence[Path], class_names: Sequence[str], max_frames: int = 0
                  ) -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
    """(image, ground truth, ignore mask) for every camera frame with ground truth."""
    from ad_perception.eval.offline import find_topics

    produced = 0
    for bag in bags:
        topics = find_topics(Path(bag))
        sidecar = bag_io.read_sidecar(bag)
        occlusion = gt_filters.sidecar_by_frame(sidecar, "occlusion")
        truncation = gt_filters.sidecar_by_frame(sidecar, "truncation", float)
        gt_2d = {bag_io.stamp_ns(m): m for _, _, m in bag_io.read_messages(bag,
                                                                           [topics.gt_boxes])}
        for index, (_, _, msg) in enumerate(bag_io.read_messages(bag, [topics.image])):
            stamp = bag_io.stamp_ns(msg)
            if stamp not in gt_2d:
                continue
            gt = bag_io.detections2d_from_msg(gt_2d[stamp])
            ignore = gt_filters.camera_ignore_mask(gt, occlusion.get(index, {}), class_names,
                                                   truncation_by_id=truncation.get(index, {}))
            yield image_to_array(msg, desired_encoding="rgb8"), gt, ignore
            produced += 1
            if max_frames and produced >= max_frames:
                return


def lidar_frames(bags: Sequence[Path], config: Any, max_frames: int = 0
                 ) -> Iterator[tuple[Any, Any, np.ndarray]]:
    """(cloud, ground truth in range, lidar points per box) for every lidar frame."""
    from ad_perception.eval.offline import find_topics

    produced = 0
    for bag in bags:
        topics = find_topics(Path(bag))
        counts = gt_filters.sidecar_by_frame(bag_io.read_sidecar(bag), "lidar_points")
        gt_3d = {bag_io.stamp_ns(m): m for _, _, m in bag_io.read_messages(bag,
                                                                           [topics.gt_objects])}
        for index, (_, _, msg) in enumerate(bag_io.read_messages(bag, [topics.points])):
            stamp = bag_io.stamp_ns(msg)
            if stamp not in gt_3d:
                continue
            gt, num_points = gt_filters.lidar_gt_in_scope(
                bag_io.boxes3d_from_msg(gt_3d[stamp]), counts.get(index, {}),
                config.point_cloud_range, config.class_names)
            yield pointcloud_to_core(msg), gt, num_points
            produced += 1
            if max_frames and produced >= max_frames:
                return


def camera_scored(pipeline: Callable, bags: Sequence[Path], max_frames: int = 0) -> list:
    """(ground truth, detections, ignore mask) per held-out camera frame."""
    return [(gt, pipeline(image), ignore)
            for image, gt, ignore in camera_frames(bags, pipeline.config.class_names,
                                                   max_frames)]


def camera_metrics(scored: Sequence, class_names: Sequence[str]) -> dict[str, Any]:
    from ad_perception.eval.metrics import evaluate_2d

    result = evaluate_2d(list(scored), classes=class_names)
    return {"ap50_mean": _points(result.map50),
            "ap50": {k: _points(v) for k, v in result.ap50.items()}, "frames": len(scored)}


def lidar_scored(pipeline: Callable, bags: Sequence[Path], max_frames: int = 0) -> list:
    """One ``Frame3D`` (ground truth, in-range detections, points per box) per lidar frame."""
    from ad_perception.eval.metrics import Frame3D

    config = pipeline.config
    frames = []
    for cloud, gt, num_points in lidar_frames(bags, config, max_frames):
        boxes = pipeline(cloud)
        boxes = boxes.select(gt_filters.in_range(boxes.centers, config.point_cloud_range))
        frames.append(Frame3D(gt, boxes, num_points=num_points))
    return frames


def lidar_metrics(frames: Sequence, class_names: Sequence[str]) -> dict[str, Any]:
    from ad_perception.eval.metrics import evaluate_3d

    result = evaluate_3d(list(frames), classes=class_names,
                         min_points=gt_filters.MIN_LIDAR_POINTS)
    per_class = {k: _points(v) for k, v in result.bev_ap.items()}
    return {"ap50_mean": _points(result.map_bev), "bev_ap": per_class,
            "car_bev_ap": per_class.get("car"), "frames": len(frames)}


def scored_frames(kind: str, pipeline: Callable, bags: Sequence[Path], max_frames: int = 0
                  ) -> list:
    """Per-frame results of one variant, the input of ``metrics`` and ``drop_interval``."""
    return (camera_scored if kind == "camera" else lidar_scored)(pipeline, bags, max_frames)


def metrics(kind: str, frames: Sequence, class_names: Sequence[str]) -> dict[str, Any]:
    """The report's accuracy block from ``scored_frames`` (``ap50_mean`` is the headline:
    camera mean AP@0.5, lidar mean BEV AP; lidar also reports ``car_bev_ap``)."""
    return (camera_metrics if kind == "camera" else lidar_metrics)(frames, class_names)


def resample_scorer(kind: str, frames: Sequence, class_names: Sequence[str], key: str
               ) -> Callable[[np.ndarray], float | None]:
    """frame indices -> ``key`` of those frames. Frames are matched once (both scorers match
    within a frame) and only re-ranked per resample: 200 rounds take seconds, not minutes."""
    from ad_perception.eval import metrics as scorer

    if kind == "camera":
        matched = scorer.match_frames_2d(list(frames), class_names)

        def score(index: np.ndarray) -> dict[str, Any]:
            result = scorer.evaluate_matched_2d([matched[i] for i in index], class_names)
            return {"ap50_mean": _points(result.map50)}
    else:
        matched3d = scorer.match_frames_3d(list(frames), class_names,
                                           min_points=gt_filters.MIN_LIDAR_POINTS)

        def score(index: np.ndarray) -> dict[str, Any]:
            result = scorer.evaluate_matched_3d([matched3d[i] for i in index], class_names)
            return {"ap50_mean": _points(result.map_bev),
                    "car_bev_ap": _points(result.bev_ap.get("car"))}
    return lambda index: score(index).get(key)


def drop_interval(kind: str, reference: Sequence, variant: Sequence,
                  class_names: Sequence[str], rounds: int = 200, seed: int = 0,
                  level: float = 0.95, key: str = "ap50_mean") -> dict[str, Any]:
    """Paired bootstrap of the accuracy drop (reference - variant, points) over frames.

    A held-out split of 150 frames moves mean AP by about a point between samples, the size
    of the budgets judged against it; resampling the same frames for both models shows how
    much of a measured drop that is. ``reference`` and ``variant`` are ``scored_frames`` of
    the same bags, in the same order.
    """
    if len(reference) != len(variant):
        raise ValueError(f"paired bootstrap needs the same frames: {len(reference)} reference "
                         f"vs {len(variant)} variant frames")
    score_reference = resample_scorer(kind, reference, class_names, key)
    score_variant = resample_scorer(kind, variant, class_names, key)
    rng = np.random.default_rng(seed)
    drops = []
    for _ in range(rounds):
        index = rng.integers(0, len(reference), len(reference))
        base, other = score_reference(index), score_variant(index)
        if base is not None and other is not None:
            drops.append(base - other)
    if not drops:
        return {"low": None, "high": None, "rounds": 0, "level": level}
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(drops, [tail, 100.0 - tail])
    return {"low": float(low), "high": float(high), "rounds": len(drops), "level": level}


def accuracy(kind: str, pipeline: Callable, bags: Sequence[Path], max_frames: int = 0
             ) -> dict[str, Any]:
    """The report's accuracy block for one variant (``ap50_mean`` is the headline number:
    camera mean AP@0.5, lidar mean BEV AP; lidar also reports ``car_bev_ap``)."""
    return metrics(kind, scored_frames(kind, pipeline, bags, max_frames),
                   pipeline.config.class_names)

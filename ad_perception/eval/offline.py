"""Offline evaluation of a bag: run the camera, lidar and fusion pipelines directly on its
messages (deterministic, as fast as the CPU allows) and hand the outputs to the one scorer.

Scored (see ``scoring``): camera AP@0.5 per class against the 2D ground truth (ignore
regions from ``gt_filters``); lidar BEV AP in the ground truth's frame; fused objects' BEV
AP and class accuracy against the same ground truth; and the per-frame compute latency of
camera + lidar + fusion together. A frame that cannot be decoded is counted, noted and
scored as a frame without output; it never stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ad_perception.core.fusion import FusionPipeline
from ad_perception.core.types import Detections2D
from ad_perception.eval import decode
from ad_perception.eval.errors import EvalError, read_messages
from ad_perception.eval.ground_truth import BagGroundTruth, load_ground_truth
from ad_perception.eval.scoring import (
    FramePredictions,
    Outputs,
    build_predictions,
    evaluate_predictions,
    score,
)
from ad_perception.eval.topic_map import ResolvedTopics, TopicMap

__all__ = ["EvalError", "FramePredictions", "evaluate_predictions", "find_topics", "run_bag",
           "run_pipelines", "score"]

AP_SCORE_THRESHOLD = 0.05  # rank everything above noise for AP
FUSION_CAMERA_THRESHOLD = 0.3  # operating point of the camera detections fusion sees
SYNC_TOLERANCE_NS = 50_000_000


def find_topics(bag: Path, topic_map: TopicMap | None = None) -> ResolvedTopics:
    """The bag's topic per role; EvalError when it has no ground truth or no sensor."""
    return load_ground_truth(bag, topic_map).topics


def run_pipelines(truth: BagGroundTruth, camera: Callable[[np.ndarray], Detections2D] | None,
                  lidar: Callable | None, fusion: FusionPipeline,
                  progress: bool = True) -> Outputs:
    """Call the pipelines on every camera and lidar frame of the bag, keyed by stamp."""
    bag, topics, topic_map = truth.bag, truth.topics, truth.topic_map
    outputs = Outputs(latency_kind="compute")
    rejected: dict[str, list[str]] = {"image": [], "points": []}
    camera_by_stamp: dict[int, tuple[Detections2D, float]] = {}
    if camera is not None and topics.image is not None:
        outputs.camera = {}
        images = read_messages(bag, [topics.image])
        for _, _, msg in tqdm(images, desc=f"camera {bag.name}", total=len(truth.image_frames),
                              disable=not progress, leave=False):
            stamp = decode.stamp_ns(msg)
            try:
                pixels = decode.image_rgb(msg, topic_map)
            except decode.ConversionError as err:
                rejected["image"].append(f"{stamp}: {err}")
                continue
            detections = camera(pixels)
            camera_by_stamp[stamp] = (detections, camera.last_times.total_ms)
            outputs.camera[stamp] = detections
            outputs.latency_by_output.setdefault("camera", []).append(
                camera.last_times.total_ms)
    if lidar is not None and topics.points is not None:
        outputs.lidar, outputs.fused = {}, {}
        _run_lidar_and_fusion(truth, lidar, fusion, camera_by_stamp, outputs, rejected, progress)
    for kind, problems in rejected.items():
        if problems:
            outputs.notes.append(f"{len(problems)} {kind} message(s) could not be decoded and "
                                 f"were scored as frames without output; first: {problems[0]}")
    return outputs


def _run_lidar_and_fusion(truth: BagGroundTruth, lidar: Callable, fusion: FusionPipeline,
                          camera_by_stamp: dict[int, tuple[Detections2D, float]],
                          outputs: Outputs, rejected: dict[str, list[str]],
                          progress: bool) -> None:
    camera_stamps = np.array(sorted(camera_by_stamp), dtype=np.int64)
    camera_model, transforms = truth.camera_model, truth.transforms
    clouds = read_messages(truth.bag, [truth.topics.points])
    fusion.reset_tracks()  # one drive: tracks never carry over from another bag
    for _, _, msg in tqdm(clouds, desc=f"lidar {truth.bag.name}", total=len(truth.cloud_frames),
                          disable=not progress, leave=False):
        stamp = decode.stamp_ns(msg)
        try:
            cloud = decode.point_cloud(msg, truth.topic_map)
        except (decode.ConversionError, ValueError) as err:
            rejected["points"].append(f"{stamp}: {err}")
            continue
        boxes = lidar(cloud)
        lidar_ms = lidar.last_times.total_ms
        camera_detections, camera_ms = None, 0.0
        if len(camera_stamps):
            nearest = int(camera_stamps[np.argmin(np.abs(camera_stamps - stamp))])
            if abs(nearest - stamp) <= SYNC_TOLERANCE_NS:
                camera_detections, camera_ms = camera_by_stamp[nearest]
        lidar_frame = cloud.frame_id
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
        fused = fusion.track(fusion(fusion_input, boxes, camera_model, T_camera_from_lidar,
                                    T_base_from_lidar, cloud), stamp)
        fusion_ms = (time.perf_counter() - started) * 1e3
        outputs.latency_ms.append(camera_ms + lidar_ms + fusion_ms)
        outputs.latency_by_output.setdefault("lidar", []).append(lidar_ms)
        outputs.latency_by_output.setdefault("fused", []).append(camera_ms + lidar_ms + fusion_ms)
        outputs.lidar[stamp] = boxes
        outputs.fused[stamp] = fused.objects


def run_bag(bag: Path, camera: Callable[[np.ndarray], Detections2D],
            lidar: Callable, fusion: FusionPipeline, lidar_config: Any,
            class_names: tuple[str, ...], operating_threshold: float = 0.3,
            progress: bool = True, topic_map: TopicMap | None = None) -> FramePredictions:
    """Run the pipelines over every frame of ``bag`` and pair their outputs with the ground
    truth they are scored on."""
    truth = load_ground_truth(Path(bag), topic_map)
    outputs = run_pipelines(truth, camera, lidar, fusion, progress)
    predictions = build_predictions(truth, outputs, tuple(lidar_config.point_cloud_range),
                                    tuple(class_names), operating_threshold)
    if truth.scores_lidar and not predictions.lidar:
        raise EvalError(f"{bag}: no lidar frame had ground truth with the same stamp")
    return predictions

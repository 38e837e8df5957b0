"""Frames as the exported core sees them: inputs built on demand and a scorer for its outputs.

Calibration, the sensitivity search, QAT and the per-step accuracy in the card all need the
same two things for a set of labelled frames: the core's input for frame i (a normalised
letterboxed image, or the BEV pseudo-image the torch pillar encoder makes from a cloud) and
the accuracy of the core's raw outputs on some of the frames (decoded exactly as the
pipelines decode them). Building inputs on demand keeps lidar calibration from holding
hundreds of 6 MB BEV tensors in memory.

Accuracy is in points (0-100): camera mean AP@0.5 over classes, lidar car BEV AP (the
detector's budget metric) falling back to mean BEV AP where no car is in the frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

CoreFn = Callable[[np.ndarray], Sequence[Any]]


class CameraFrames:
    metric_name = "ap50_mean"

    def __init__(self, samples: Any, config: Any) -> None:
        self.samples, self.config = samples, config

    def __len__(self) -> int:
        return len(self.samples)

    def core_input(self, index: int) -> np.ndarray:
        from ad_perception.models.train_camera import normalise

        return normalise(torch.from_numpy(self.samples.images[index:index + 1])).numpy()

    def decode(self, outputs: Sequence[Any]) -> Any:
        from ad_perception.models.camera_postprocess import decode_camera_outputs
        from ad_perception.models.letterbox import letterbox_transform

        config = dataclasses.replace(self.config, score_threshold=0.05)
        transform = letterbox_transform(self.samples.image_size, config.input_size)
        return decode_camera_outputs(outputs, transform, config)

    def score_detections(self, detections: Sequence[Any], indices: Sequence[int]
                         ) -> dict[str, Any]:
        from ad_perception.eval.metrics import evaluate_2d

        frames = [(self.samples.gt[i], d, self.samples.ignore[i])
                  for i, d in zip(indices, detections, strict=True)]
        result = evaluate_2d(frames, classes=self.config.class_names)
        per_class = {k: (None if np.isnan(v) else 100.0 * v) for k, v in result.ap50.items()}
        return {"value": _points(result.map50), "per_class": per_class}


class LidarFrames:
    metric_name = "car_bev_ap"

    def __init__(self, samples: Any, config: Any, pillar_encoder: torch.nn.Module) -> None:
        self.samples, self.config, self.pillar_encoder = samples, config, pillar_encoder.eval()

    def __len__(self) -> int:
        return len(self.samples)

    def core_input(self, index: int) -> np.ndarray:
        from ad_perception.models.voxelize import pillarize

        pillars = pillarize(self.samples.points[index], self.config.grid)
        with torch.inference_mode():
            bev = self.pillar_encoder(pillars.features, pillars.num_points, pillars.coords, 1)
        return bev.numpy()

    def decode(self, outputs: Sequence[Any]) -> Any:
        from ad_perception.eval import gt_filters
        from ad_perception.models.lidar_postprocess import decode_lidar_outputs

        boxes = decode_lidar_outputs(outputs, self.config, score_threshold=0.05)
        return boxes.select(gt_filters.in_range(boxes.centers, self.config.point_cloud_range))

    def score_detections(self, detections: Sequence[Any], indices: Sequence[int]
                         ) -> dict[str, Any]:
        from ad_perception.eval import gt_filters
        from ad_perception.eval.metrics import Frame3D, evaluate_3d

        frames = [Frame3D(self.samples.gt[i], d, num_points=self.samples.num_points[i])
                  for i, d in zip(indices, detections, strict=True)]
        result = evaluate_3d(frames, classes=self.config.class_names,
                             min_points=gt_filters.MIN_LIDAR_POINTS)
        per_class = {k: (None if v is None or np.isnan(v) else 100.0 * v)
                     for k, v in result.bev_ap.items()}
        car = per_class.get("car")
        value = car if car is not None else _points(result.map_bev)
        return {"value": value, "per_class": per_class}


def _points(value: float | None) -> float:
    return float("nan") if value is None or np.isnan(value) else 100.0 * float(value)


def run_core(frames: CameraFrames | LidarFrames, core: CoreFn,
             indices: Sequence[int] | None = None) -> list[list[np.ndarray]]:
    """Raw outputs of ``core`` (numpy in, anything array-like out) for each frame."""
    indices = range(len(frames)) if indices is None else indices
    outputs = []
    for index in indices:
        result = core(frames.core_input(index))
        outputs.append([np.asarray(o.detach() if isinstance(o, torch.Tensor) else o)
                        for o in result])
    return outputs


def evaluate_core(frames: CameraFrames | LidarFrames, core: CoreFn,
                  indices: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy of ``core`` on ``frames``: {"value": points, "per_class": {...}}."""
    indices = list(range(len(frames)) if indices is None else indices)
    detections = [frames.decode(o) for o in run_core(frames, core, indices)]
    return frames.score_detections(detections, indices)


def torch_core_fn(module: torch.nn.Module) -> CoreFn:
    """A numpy-in core function around an exportable torch core, for ``evaluate_core``."""
    module = module.eval()

    def call(array: np.ndarray) -> Sequence[Any]:
        with torch.inference_mode():
            return [o.float() for o in module(torch.from_numpy(array))]

    return call

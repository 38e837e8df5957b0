"""The per-frame detection pipelines every consumer shares: nodes, offline evaluation,
benchmarks. Pre-processing, the network core and post-processing are timed separately,
because latency budgets and the compression report are about where time goes.

The network core is any callable from input tensors to raw output tensors: an eager or
compiled torch module today, an ONNX Runtime / OpenVINO / TensorRT session behind the same
call from the runtime package. Letterboxing, pillarisation, decoding and NMS stay here,
outside the exported graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ad_perception.core.types import Boxes3D, Detections2D, PointCloud

Core = Callable[..., Sequence[Any]]


@dataclass
class StageTimes:
    """Milliseconds spent per stage of the last frame."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


def input_layout(core: Any) -> str:
    """The image layout a camera core takes (OpenVINO cores: channels last)."""
    return getattr(core, "input_layout", "NCHW")


def as_core_input(images_nchw: torch.Tensor, core: Any) -> torch.Tensor:
    """A planar (B, 3, H, W) batch in the layout ``core`` takes (for tools and tests that
    build core inputs themselves; the pipeline letterboxes straight into it)."""
    if input_layout(core) == "NHWC":
        return images_nchw.permute(0, 2, 3, 1).contiguous()
    return images_nchw


@dataclass
class CameraPipeline:
    """RGB uint8 image (H, W, 3) -> Detections2D in image pixels."""

    core: Core
    config: Any  # CameraDetectorConfig
    score_threshold: float | None = None
    last_times: StageTimes = field(default_factory=StageTimes)

    def __call__(self, image_rgb: np.ndarray) -> Detections2D:
        import dataclasses

        from ad_perception.models.camera_postprocess import decode_camera_outputs
        from ad_perception.models.letterbox import letterbox

        started = time.perf_counter()
        tensor, transform = letterbox(image_rgb, self.config.input_size, input_layout(self.core))
        prepared = time.perf_counter()
        with torch.inference_mode():
            outputs = self.core(tensor)
        inferred = time.perf_counter()
        config = self.config
        if self.score_threshold is not None:
            config = dataclasses.replace(config, score_threshold=self.score_threshold)
        detections = decode_camera_outputs(outputs, transform, config)
        done = time.perf_counter()
        self.last_times = StageTimes((prepared - started) * 1e3, (inferred - prepared) * 1e3,
                                     (done - inferred) * 1e3)
        return detections


@dataclass
class LidarPipeline:
    """PointCloud (sensor frame) -> Boxes3D in the same frame."""

    core: Core
    config: Any  # LidarDetectorConfig
    score_threshold: float | None = None
    last_times: StageTimes = field(default_factory=StageTimes)

    def __call__(self, cloud: PointCloud) -> Boxes3D:
        from ad_perception.models.lidar_postprocess import decode_lidar_outputs
        from ad_perception.models.voxelize import pillarize

        started = time.perf_counter()
        pillars = pillarize(cloud.xyzi(), self.config.grid)
        prepared = time.perf_counter()
        with torch.inference_mode():
            outputs = self.core(pillars.features, pillars.num_points, pillars.coords, 1)
        inferred = time.perf_counter()
        boxes = decode_lidar_outputs(outputs, self.config, score_threshold=self.score_threshold,
                                     frame_id=cloud.frame_id)
        done = time.perf_counter()
        self.last_times = StageTimes((prepared - started) * 1e3, (inferred - prepared) * 1e3,
                                     (done - inferred) * 1e3)
        return boxes


def load_torch_pipeline(checkpoint: str | Path, threads: int = 0,
                        score_threshold: float | None = None):
    """A Camera- or LidarPipeline from a checkpoint with card (hash verified)."""
    from ad_perception.models.checkpoint import load_checkpoint

    if threads:
        torch.set_num_threads(threads)
    model, card = load_checkpoint(checkpoint)
    model.eval()
    if card.model == "camera":
        from ad_perception.models.camera_detector import CameraDetectorConfig

        return CameraPipeline(model, CameraDetectorConfig.from_dict(card.config),
                              score_threshold)
    from ad_perception.models.lidar_detector import LidarDetectorConfig

    return LidarPipeline(model, LidarDetectorConfig.from_dict(card.config), score_threshold)

"""Late fusion in a running graph, where calibration, extrinsics and points arrive on their
own topics and any of them may be missing.

:class:`FusionPipeline` fuses one complete frame; this wraps it with what the fusion node
learns over time (the camera model from CameraInfo, the static transforms from /tf_static,
the newest point cloud) and with the frame sets the stamp matcher releases, and says for
each frame what was missing, so the node only unpacks messages and publishes. ROS-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.fusion import FusionConfig, FusionPipeline, FusionResult
from ad_perception.core.stamp_sync import FrameSet
from ad_perception.core.transforms import TransformBuffer
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud


@dataclass
class CameraFrame:
    """Camera detections as the matcher holds them, with when and how fast they arrived."""

    detections: Detections2D
    frame_id: str  # the camera optical frame the boxes are in
    arrival_ns: int = 0
    decode_ms: float = 0.0


@dataclass
class LidarFrame:
    boxes: Boxes3D  # in the lidar frame (boxes.frame_id)
    arrival_ns: int = 0
    decode_ms: float = 0.0


@dataclass
class FusedFrame:
    """One fused frame: the result, its stamp and frame, and what it had to do without."""

    result: FusionResult
    stamp_ns: int
    kind: str  # fused / lidar_only / camera_only (which detections came in)
    missing: list[str] = field(default_factory=list)

    @property
    def frame_id(self) -> str:
        return self.result.objects.frame_id


class LiveFusion:
    """``fuse(frame_set)`` with whatever calibration and points are known at that moment."""

    def __init__(self, config: FusionConfig | None = None, points_tolerance_ns: int = 50_000_000
                 ) -> None:
        self.pipeline = FusionPipeline(config)
        self.tf = TransformBuffer()
        self.camera_model: CameraModel | None = None
        self.points_tolerance_ns = int(points_tolerance_ns)
        self.lidar_frame = ""  # learned from lidar detections or points, for camera-only sets
        self._points: tuple[int, Callable[[], PointCloud | None]] | None = None
        self._decoded: tuple[int, PointCloud | None] | None = None

    @property
    def config(self) -> FusionConfig:
        return self.pipeline.config

    def set_points(self, stamp_ns: int, frame_id: str,
                   decode: Callable[[], PointCloud | None]) -> None:
        """The newest cloud; decoded only if a frame needs it (lifting camera-only boxes).
        ``decode`` returns None for a cloud that cannot be read (counted by the caller)."""
        self._points = (int(stamp_ns), decode)
        if frame_id:
            self.lidar_frame = frame_id

    def _points_near(self, stamp_ns: int) -> PointCloud | None:
        if self._points is None or abs(self._points[0] - stamp_ns) > self.points_tolerance_ns:
            return None
        if self._decoded is None or self._decoded[0] != self._points[0]:
            self._decoded = (self._points[0], self._points[1]())
        return self._decoded[1]

    def _lookup(self, target: str, source: str, missing: list[str]) -> np.ndarray | None:
        if target and source and self.tf.can_transform(target, source):
            return self.tf.lookup(target, source)
        missing.append(f"tf {source or '?'} -> {target or '?'}")
        return None

    def fuse(self, frames: FrameSet) -> FusedFrame:
        """Fuse a matched (or single-sensor) set. Raises ValueError only for inputs that
        contradict each other (e.g. a cloud in another frame than the boxes)."""
        lidar: Boxes3D | None = frames.lidar.boxes if frames.lidar is not None else None
        camera: CameraFrame | None = frames.camera
        missing: list[str] = []
        if lidar is not None and lidar.frame_id:
            self.lidar_frame = lidar.frame_id
        source = lidar.frame_id if lidar is not None and lidar.frame_id else self.lidar_frame
        if camera is not None and self.camera_model is None:
            missing.append("camera_info")
        T_camera_from_lidar = None
        if camera is not None:
            T_camera_from_lidar = self._lookup(camera.frame_id, source, missing)
        T_base_from_lidar = self._lookup(self.config.output_frame, source, missing)
        camera_detections = camera.detections if camera is not None else None
        camera_model = self.camera_model if camera is not None else None

        def run(points: PointCloud | None) -> FusionResult:
            return self.pipeline(camera_detections, lidar, camera_model, T_camera_from_lidar,
                                 T_base_from_lidar, points)

        # Points only matter for camera boxes no lidar box explains: fuse without them first
        # (cheap) and decode the cloud only when such boxes are left over.
        result = run(None)
        if self._needs_lifting(result, camera_detections):
            points = self._points_near(frames.stamp_ns)
            if points is None:
                missing.append("points")
            else:
                result = run(points)
        return FusedFrame(self.pipeline.track(result, frames.stamp_ns), frames.stamp_ns,
                          frames.kind, missing)

    @staticmethod
    def _needs_lifting(result: FusionResult, camera: Detections2D | None) -> bool:
        if camera is None or not len(camera) or not result.status.points_missing:
            return False
        used = result.camera_index[result.camera_index >= 0]
        return len(np.setdiff1d(np.arange(len(camera)), used)) > 0

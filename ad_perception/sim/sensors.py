"""The sensor rig and the topic layouts (presets) a generated bag can follow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ad_perception.core.geometry import R_BODY_FROM_OPTICAL, make_transform

EPOCH_NS = 1_700_000_000 * 10**9  # fixed start of every generated drive, never wall clock
GT_OBJECTS_TOPIC = "/ground_truth/objects"
GT_BOXES_TOPIC = "/ground_truth/camera/front/boxes"
SIDECAR_NAME = "ground_truth_extra.jsonl"


@dataclass(frozen=True)
class Preset:
    name: str
    image_topic: str
    camera_info_topic: str
    lidar_topic: str
    camera_frame: str
    lidar_frame: str
    image_encoding: str  # rgb8 or bgra8
    lidar_ring: bool  # whether the cloud carries a uint16 ring field


PRESETS = {
    "default": Preset(
        "default",
        "/sensing/camera/front/image_raw",
        "/sensing/camera/front/camera_info",
        "/sensing/lidar/top/points",
        "camera_front_optical",
        "lidar_top",
        "rgb8",
        True,
    ),
    "carla": Preset(
        "carla",
        "/carla/ego_vehicle/rgb_front/image",
        "/carla/ego_vehicle/rgb_front/camera_info",
        "/carla/ego_vehicle/lidar",
        "ego_vehicle/rgb_front",
        "ego_vehicle/lidar",
        "bgra8",
        False,
    ),
}


@dataclass(frozen=True)
class CameraSpec:
    width: int = 1280
    height: int = 720
    horizontal_fov_deg: float = 90.0

    @property
    def K(self) -> np.ndarray:
        """Pinhole intrinsics, OpenCV convention (pixel centres at integer coordinates)."""
        fx = self.width / 2.0 / np.tan(np.radians(self.horizontal_fov_deg) / 2.0)
        return np.array(
            [
                [fx, 0.0, (self.width - 1) / 2.0],
                [0.0, fx, (self.height - 1) / 2.0],
                [0.0, 0.0, 1.0],
            ]
        )


@dataclass(frozen=True)
class LidarSpec:
    beams: int = 64
    azimuth_steps: int = 1800
    vertical_min_deg: float = -25.0
    vertical_max_deg: float = 3.0
    min_range: float = 0.8
    max_range: float = 100.0
    range_noise_std: float = 0.02
    dropout: float = 0.04

    def ray_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit directions (azimuth-major, as a spinning head fires) and the ring of each;
        ring 0 is the lowest beam."""
        elevation = np.radians(
            np.linspace(self.vertical_min_deg, self.vertical_max_deg, self.beams)
        )
        azimuth = np.linspace(-np.pi, np.pi, self.azimuth_steps, endpoint=False)
        az, el = np.meshgrid(azimuth, elevation, indexing="ij")
        directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
        rings = np.broadcast_to(np.arange(self.beams, dtype=np.uint16), az.shape)
        return directions.reshape(-1, 3), rings.reshape(-1).copy()


# Extrinsics of the rig in base_link (on the ground below the rear axle, REP-103).
T_BASE_FROM_LIDAR = make_transform(np.eye(3), (1.0, 0.0, 1.85))
T_BASE_FROM_CAMERA = make_transform(R_BODY_FROM_OPTICAL, (1.6, 0.0, 1.45))

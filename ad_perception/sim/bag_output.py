"""Writes a drive of the embedded world as a rosbag2 folder plus the ground-truth sidecar.

Stamps are the fixed epoch plus the frame index, so the same seed gives the same bytes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ad_perception.core.types import PointCloud
from ad_perception.data import msg_build
from ad_perception.data.bag_writer import BagWriter, write_sidecar
from ad_perception.sim.scenario import FRAME_PERIOD_S
from ad_perception.sim.sensors import (
    EPOCH_NS,
    GT_BOXES_TOPIC,
    GT_OBJECTS_TOPIC,
    PRESETS,
    SIDECAR_NAME,
    T_BASE_FROM_CAMERA,
    T_BASE_FROM_LIDAR,
)
from ad_perception.sim.simulator import SimFrame, Simulator

IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
CLOUD, TF = "sensor_msgs/msg/PointCloud2", "tf2_msgs/msg/TFMessage"
DET3D, DET2D = "vision_msgs/msg/Detection3DArray", "vision_msgs/msg/Detection2DArray"


def frame_stamp_ns(index: int) -> int:
    return EPOCH_NS + int(round(index * FRAME_PERIOD_S * 1e9))


def _write_frame(writer: BagWriter, sim: Simulator, frame: SimFrame, preset) -> None:
    stamp = frame_stamp_ns(frame.index)
    pixels = frame.rgb
    if preset.image_encoding == "bgra8":
        alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
        pixels = np.concatenate([pixels[:, :, ::-1], alpha], axis=2)
    cam = sim.camera
    writer.write(
        preset.image_topic,
        IMAGE,
        stamp,
        msg_build.image_msg(pixels, preset.image_encoding, stamp, preset.camera_frame),
    )
    writer.write(
        preset.camera_info_topic,
        INFO,
        stamp,
        msg_build.camera_info_msg(sim.K, cam.width, cam.height, stamp, preset.camera_frame),
    )
    scan = frame.scan
    cloud = PointCloud(scan.xyz, scan.intensity, scan.ring)
    writer.write(
        preset.lidar_topic,
        CLOUD,
        stamp,
        msg_build.pointcloud2_msg(cloud, stamp, preset.lidar_frame, preset.lidar_ring),
    )
    writer.write(
        GT_OBJECTS_TOPIC,
        DET3D,
        stamp,
        msg_build.detection3d_array_msg(frame.boxes_lidar, stamp, preset.lidar_frame),
    )
    writer.write(
        GT_BOXES_TOPIC,
        DET2D,
        stamp,
        msg_build.detection2d_array_msg(frame.boxes_2d, stamp, preset.camera_frame),
    )


def generate_bag(
    out: Path | str,
    frames: int,
    seed: int,
    storage: str = "mcap",
    preset_name: str = "default",
    progress: bool = True,
    stage_seconds: dict[str, float] | None = None,
) -> Path:
    """Simulate ``frames`` frames and write them; ``stage_seconds`` (if given) accumulates
    time per stage for the benchmark."""
    if preset_name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset_name!r}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    preset = PRESETS[preset_name]
    stages = stage_seconds if stage_seconds is not None else defaultdict(float)
    t0 = time.perf_counter()
    sim = Simulator(seed, frames)
    stages["setup"] = stages.get("setup", 0.0) + time.perf_counter() - t0
    out = Path(out)
    records = [
        {
            "type": "scene",
            "preset": preset_name,
            "storage": storage,
            "camera_frame": preset.camera_frame,
            "lidar_frame": preset.lidar_frame,
            **sim.metadata(),
        }
    ]
    iterator = range(frames)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"sim seed {seed}", unit="frame")
    try:
        with BagWriter(out, storage) as writer:
            writer.write(
                "/tf_static",
                TF,
                EPOCH_NS,
                msg_build.tf_message(
                    [
                        ("base_link", preset.lidar_frame, T_BASE_FROM_LIDAR),
                        ("base_link", preset.camera_frame, T_BASE_FROM_CAMERA),
                    ],
                    EPOCH_NS,
                ),
            )
            for index in iterator:
                frame = sim.frame(index, stages=stages)
                t = time.perf_counter()
                _write_frame(writer, sim, frame, preset)
                stages["bag_write"] = stages.get("bag_write", 0.0) + time.perf_counter() - t
                records.append(
                    {
                        "type": "frame",
                        "index": index,
                        "stamp_ns": frame_stamp_ns(index),
                        "objects": frame.extras,
                    }
                )
        write_sidecar(out, SIDECAR_NAME, records)
    finally:
        sim.close()
    return out

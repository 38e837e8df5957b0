"""Reading bags: messages by topic, and rosbags message objects -> numpy / core containers.

Decoding uses numpy structured dtypes built from the PointField list, so any cloud layout
(ours, carla-ros-bridge's, KITTI-converted) reads the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from ad_perception.core import detection_codecs, sensor_codecs
from ad_perception.core.transforms import TransformBuffer, read_tf_message
from ad_perception.core.types import PointCloud
from ad_perception.data.bag_types import typestore

# A message that cannot be turned into arrays (bad encoding, truncated data).
DecodeError = sensor_codecs.ConversionError


def read_messages(
    bag: Path | str, topics: Iterable[str] | None = None, raw: bool = False
) -> Iterator[tuple[str, int, object]]:
    """(topic, log time ns, message) in log-time order; ``raw`` yields CDR bytes."""
    store = typestore()
    with Reader(bag) as reader:
        wanted = set(topics) if topics is not None else None
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection, timestamp, data in reader.messages(connections=connections):
            payload = data if raw else store.deserialize_cdr(data, connection.msgtype)
            yield connection.topic, timestamp, payload


def topic_types(bag: Path | str) -> dict[str, str]:
    with Reader(bag) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def image_to_array(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any colour or mono8 encoding the codecs know."""
    return sensor_codecs.image_to_array(msg, desired_encoding="rgb8")


def pointcloud2_to_cloud(msg) -> PointCloud:
    """Any PointField layout -> PointCloud (non-finite rows kept, as recorded)."""
    return sensor_codecs.pointcloud_to_core(msg, keep_non_finite=True)


def camera_matrix(msg) -> np.ndarray:
    return np.asarray(msg.k, dtype=np.float64).reshape(3, 3)


detections2d_from_msg = detection_codecs.msg_to_detections_2d
boxes3d_from_msg = detection_codecs.msg_to_boxes_3d


def read_tf_static(bag: Path | str) -> dict[tuple[str, str], np.ndarray]:
    """(parent, child) -> T_parent_from_child from every /tf_static message."""
    transforms: dict[tuple[str, str], np.ndarray] = {}
    for _, _, msg in read_messages(bag, ["/tf_static"]):
        transforms.update(read_tf_message(msg))
    return transforms


def transform_between(
    transforms: dict[tuple[str, str], np.ndarray], target: str, source: str
) -> np.ndarray:
    """T_target_from_source through the static tree (any path, inverse edges included)."""
    buffer = TransformBuffer()
    for (parent, child), transform in transforms.items():
        buffer.set_transform(transform, parent, child)
    try:
        return buffer.lookup(target, source)
    except LookupError as err:
        raise KeyError(str(err)) from err


def read_sidecar(bag: Path | str, name: str = "ground_truth_extra.jsonl") -> list[dict]:
    path = Path(bag) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

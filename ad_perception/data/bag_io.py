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

from ad_perception.core.geometry import make_transform, quaternion_to_yaw
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud
from ad_perception.data.bag_types import typestore

_POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}


class DecodeError(ValueError):
    """A message that cannot be turned into arrays (bad encoding, truncated data)."""


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
    """(H, W, 3) uint8 RGB from rgb8 / bgr8 / bgra8 / rgba8 / mono8."""
    channels = {"rgb8": 3, "bgr8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise DecodeError(f"unsupported image encoding {msg.encoding!r}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if len(data) < msg.step * msg.height:
        raise DecodeError(f"image data has {len(data)} bytes, expected {msg.step * msg.height}")
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding in ("bgr8", "bgra8"):
        pixels = pixels[:, :, 2::-1]
    elif msg.encoding == "rgba8":
        pixels = pixels[:, :, :3]
    elif channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels)


def pointcloud2_to_cloud(msg) -> PointCloud:
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _POINTFIELD_DTYPES:
            raise DecodeError(f"unsupported PointField datatype {f.datatype} for {f.name}")
        names.append(f.name)
        formats.append(
            _POINTFIELD_DTYPES[f.datatype].replace("<", ">" if msg.is_bigendian else "<")
        )
        offsets.append(f.offset)
    if not {"x", "y", "z"} <= set(names):
        raise DecodeError(f"cloud lacks x/y/z fields: {names}")
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step}
    )
    count = msg.width * msg.height
    data = np.asarray(msg.data, dtype=np.uint8)
    if len(data) < count * msg.point_step:
        raise DecodeError(f"cloud data has {len(data)} bytes for {count} points")
    points = data[: count * msg.point_step].view(dtype)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float32)
    intensity = points["intensity"].astype(np.float32) if "intensity" in names else None
    ring = points["ring"].astype(np.uint16) if "ring" in names else None
    return PointCloud(xyz, intensity, ring, frame_id=msg.header.frame_id)


def camera_matrix(msg) -> np.ndarray:
    return np.asarray(msg.k, dtype=np.float64).reshape(3, 3)


def detections2d_from_msg(msg) -> Detections2D:
    if not msg.detections:
        return Detections2D.empty()
    boxes, scores, classes, ids = [], [], [], []
    for det in msg.detections:
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        hyp = det.results[0].hypothesis if det.results else None
        scores.append(hyp.score if hyp else 0.0)
        classes.append(hyp.class_id if hyp else "")
        ids.append(det.id)
    return Detections2D(np.array(boxes), np.array(scores), classes, ids)


def boxes3d_from_msg(msg) -> Boxes3D:
    frame = msg.header.frame_id
    if not msg.detections:
        return Boxes3D.empty(frame)
    centers, sizes, yaws, scores, classes, ids = [], [], [], [], [], []
    for det in msg.detections:
        p, q, s = det.bbox.center.position, det.bbox.center.orientation, det.bbox.size
        centers.append([p.x, p.y, p.z])
        sizes.append([s.x, s.y, s.z])
        yaws.append(float(quaternion_to_yaw(np.array([q.x, q.y, q.z, q.w]))))
        hyp = det.results[0].hypothesis if det.results else None
        scores.append(hyp.score if hyp else 0.0)
        classes.append(hyp.class_id if hyp else "")
        ids.append(det.id)
    return Boxes3D(
        np.array(centers),
        np.array(sizes),
        np.array(yaws),
        np.array(scores),
        classes,
        ids,
        frame_id=frame,
    )


def read_tf_static(bag: Path | str) -> dict[tuple[str, str], np.ndarray]:
    """(parent, child) -> T_parent_from_child from every /tf_static message."""
    transforms = {}
    for _, _, msg in read_messages(bag, ["/tf_static"]):
        for t in msg.transforms:
            r, v = t.transform.rotation, t.transform.translation
            transforms[(t.header.frame_id, t.child_frame_id)] = make_transform(
                np.array([r.x, r.y, r.z, r.w]), (v.x, v.y, v.z)
            )
    return transforms


def transform_between(
    transforms: dict[tuple[str, str], np.ndarray], target: str, source: str
) -> np.ndarray:
    """T_target_from_source for two children of one common parent (a sensor rig tree)."""
    parents = {child: (parent, T) for (parent, child), T in transforms.items()}
    if target not in parents or source not in parents:
        raise KeyError(f"no /tf_static path between {target!r} and {source!r}")
    (p_t, T_pt), (p_s, T_ps) = parents[target], parents[source]
    if p_t != p_s:
        raise KeyError(f"{target!r} and {source!r} hang from different parents")
    return np.linalg.inv(T_pt) @ T_ps


def read_sidecar(bag: Path | str, name: str = "ground_truth_extra.jsonl") -> list[dict]:
    path = Path(bag) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

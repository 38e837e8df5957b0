"""Sensor and detection messages of any source -> core containers, with a TopicMap applied.

Colour order (rgb8, bgr8, bgra8, rgba8, mono8), padding and byte order are handled by the
core codecs; the mapping adds what codecs cannot guess: a field called ``i`` that is our
``intensity``, an intensity in another scale, an encoding string a bridge wrote wrongly,
class names of another label set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ad_perception.core import detection_codecs, sensor_codecs
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud
from ad_perception.eval.topic_map import TopicMap

ConversionError = sensor_codecs.ConversionError


def image_rgb(msg: Any, topic_map: TopicMap) -> np.ndarray:
    """(H, W, 3) uint8 RGB, whatever colour encoding the bag used."""
    if topic_map.image_encoding and msg.encoding != topic_map.image_encoding:
        msg = dataclasses.replace(msg, encoding=topic_map.image_encoding)
    return sensor_codecs.image_to_array(msg, desired_encoding="rgb8")


def point_cloud(msg: Any, topic_map: TopicMap) -> PointCloud:
    """A PointCloud from any field layout: renamed fields per the mapping, non-finite points
    dropped (the detector needs finite coordinates), intensity rescaled."""
    if not topic_map.point_fields and topic_map.intensity_scale == 1.0:
        return sensor_codecs.pointcloud_to_core(msg)
    columns = sensor_codecs.pointcloud_to_columns(msg)
    for ours, theirs in topic_map.point_fields.items():
        if theirs not in columns:
            raise ConversionError(f"point field {theirs!r} (mapped to {ours!r}) is not in the "
                                  f"cloud; its fields: {sorted(columns)}")
        columns[ours] = columns[theirs]
    columns = sensor_codecs.drop_non_finite(columns)
    xyz = np.stack([columns["x"], columns["y"], columns["z"]], axis=1).astype(np.float32)
    intensity = columns.get("intensity")
    if intensity is not None:
        intensity = intensity.astype(np.float32) * np.float32(topic_map.intensity_scale)
    ring = columns.get("ring")
    return PointCloud(xyz, intensity, None if ring is None else ring.astype(np.uint16),
                      frame_id=str(msg.header.frame_id))


def _mapped(class_ids: np.ndarray, class_map: dict[str, str]) -> np.ndarray:
    return np.array([class_map.get(str(c), str(c)) for c in class_ids], dtype=str)


def detections_2d(msg: Any, topic_map: TopicMap) -> Detections2D:
    detections = detection_codecs.msg_to_detections_2d(msg)
    if topic_map.class_map and len(detections):
        detections = Detections2D(detections.boxes, detections.scores,
                                  _mapped(detections.class_ids, topic_map.class_map),
                                  detections.ids)
    return detections


def boxes_3d(msg: Any, topic_map: TopicMap) -> Boxes3D:
    boxes = detection_codecs.msg_to_boxes_3d(msg)
    if topic_map.class_map and len(boxes):
        boxes = Boxes3D(boxes.centers, boxes.sizes, boxes.yaws, boxes.scores,
                        _mapped(boxes.class_ids, topic_map.class_map), boxes.ids,
                        frame_id=boxes.frame_id)
    return boxes


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)

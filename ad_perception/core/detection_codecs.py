"""ROS-free readers of vision_msgs detection arrays into core containers.

They read by attribute only, so the same functions decode rclpy messages in nodes and
rosbags-deserialised messages in bag evaluation and training (where rclpy may be absent).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ad_perception.core.geometry import quaternion_to_yaw
from ad_perception.core.types import Boxes3D, Detections2D


def best_hypothesis(results: Any) -> tuple[str, float]:
    """The highest-scoring (class_id, score); ("", 0.0) for a detection without results."""
    best = ("", 0.0)
    for index, result in enumerate(results):
        candidate = (str(result.hypothesis.class_id), float(result.hypothesis.score))
        if index == 0 or candidate[1] > best[1]:
            best = candidate
    return best


def msg_to_detections_2d(msg: Any) -> Detections2D:
    """Detections2D of a Detection2DArray (rclpy or rosbags); the best hypothesis wins."""
    boxes, scores, class_ids, ids = [], [], [], []
    for detection in msg.detections:
        bbox = detection.bbox
        cx, cy = bbox.center.position.x, bbox.center.position.y
        half_x, half_y = bbox.size_x / 2.0, bbox.size_y / 2.0
        boxes.append((cx - half_x, cy - half_y, cx + half_x, cy + half_y))
        class_id, score = best_hypothesis(detection.results)
        class_ids.append(class_id)
        scores.append(score)
        ids.append(str(detection.id))
    if not boxes:
        return Detections2D.empty()
    return Detections2D(np.array(boxes), np.array(scores), np.array(class_ids), np.array(ids))


def msg_to_boxes_3d(msg: Any) -> Boxes3D:
    """Boxes3D of a Detection3DArray (rclpy or rosbags) in the array's frame_id; the yaw is
    the heading of the orientation (exact for upright boxes)."""
    frame_id = str(msg.header.frame_id)
    centers, sizes, quaternions, scores, class_ids, ids = [], [], [], [], [], []
    for detection in msg.detections:
        position, orientation = detection.bbox.center.position, detection.bbox.center.orientation
        size = detection.bbox.size
        centers.append((position.x, position.y, position.z))
        quaternions.append((orientation.x, orientation.y, orientation.z, orientation.w))
        sizes.append((size.x, size.y, size.z))
        class_id, score = best_hypothesis(detection.results)
        class_ids.append(class_id)
        scores.append(score)
        ids.append(str(detection.id))
    if not centers:
        return Boxes3D.empty(frame_id=frame_id)
    return Boxes3D(
        np.array(centers), np.array(sizes), quaternion_to_yaw(np.array(quaternions)),
        np.array(scores), np.array(class_ids), np.array(ids), frame_id=frame_id,
    )  # fmt: skip

"""The CDR codec agrees with rclpy: rclpy reads our bytes as the message the rclpy path builds,
and we read rclpy's bytes as the message readers do (rclpy leaves padding bytes unset, so
bytes are compared through the messages)."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray

from ad_perception.core import cdr
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.ros.conversions import (
    boxes_3d_to_msg,
    detections_2d_to_msg,
    msg_to_boxes_3d,
    msg_to_detections_2d,
)


@pytest.mark.parametrize("n", [0, 1, 4, 30])
def test_rclpy_reads_our_bytes_and_we_read_rclpys(n):
    rng = np.random.default_rng(n)
    stamp = cdr.Stamp(1_700_000_000, 123_456_789, "base_link")
    header = Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id=stamp.frame_id)
    boxes = Boxes3D(rng.normal(0, 10, (n, 3)), rng.uniform(1, 5, (n, 3)),
                    rng.uniform(-3, 3, n), rng.uniform(0, 1, n),
                    rng.choice(["car", "cyclist"], n), np.array([f"t{i}" for i in range(n)]))
    message = boxes_3d_to_msg(boxes, header)
    assert deserialize_message(cdr.encode_boxes_3d(boxes, stamp), Detection3DArray) == message
    read_stamp, read = cdr.decode_boxes_3d(serialize_message(message))
    expected = msg_to_boxes_3d(message)
    assert read_stamp == stamp
    np.testing.assert_allclose(read.centers.reshape(-1, 3), expected.centers.reshape(-1, 3))
    np.testing.assert_allclose(read.yaws, expected.yaws)
    assert list(read.class_ids) == list(expected.class_ids)

    xy = rng.uniform(0, 1000, (n, 2))
    detections = Detections2D(np.concatenate([xy, xy + 20.0], axis=1), rng.uniform(0, 1, n),
                              rng.choice(["truck", "pedestrian"], n),
                              np.array([str(i) for i in range(n)]))
    message_2d = detections_2d_to_msg(detections, header)
    assert deserialize_message(cdr.encode_detections_2d(detections, stamp),
                               Detection2DArray) == message_2d
    _, read_2d = cdr.decode_detections_2d(serialize_message(message_2d))
    np.testing.assert_allclose(read_2d.boxes.reshape(-1, 4),
                               msg_to_detections_2d(message_2d).boxes.reshape(-1, 4))


def test_raw_sensor_readers_match_rclpys_messages():
    from sensor_msgs.msg import Image, PointCloud2

    from ad_perception.ros.conversions import array_to_image, columns_to_pointcloud

    rng = np.random.default_rng(7)
    header = Header(stamp=Time(sec=12, nanosec=34), frame_id="camera_front_optical")
    image = array_to_image(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8), "bgr8", header)
    raw = serialize_message(image)
    read = cdr.read_image(raw)
    message = deserialize_message(raw, Image)
    for name in ("height", "width", "encoding", "is_bigendian", "step"):
        assert getattr(read, name) == getattr(message, name)
    assert read.header == cdr.Stamp(12, 34, "camera_front_optical")
    assert bytes(read.data) == bytes(message.data)
    assert np.shares_memory(read.data, np.frombuffer(raw, np.uint8))  # a view, not a copy

    columns = {"x": rng.normal(size=50).astype(np.float32),
               "y": rng.normal(size=50).astype(np.float32),
               "z": rng.normal(size=50).astype(np.float32),
               "intensity": rng.uniform(size=50).astype(np.float32),
               "ring": rng.integers(0, 64, 50).astype(np.uint16)}
    cloud = columns_to_pointcloud(columns, Header(stamp=Time(sec=5), frame_id="lidar_top"))
    raw = serialize_message(cloud)
    read = cdr.read_pointcloud2(raw)
    message = deserialize_message(raw, PointCloud2)
    assert [(f.name, f.offset, f.datatype, f.count) for f in read.fields] == [
        (f.name, f.offset, f.datatype, f.count) for f in message.fields]
    for name in ("height", "width", "is_bigendian", "point_step", "row_step", "is_dense"):
        assert getattr(read, name) == getattr(message, name)
    assert bytes(read.data) == bytes(message.data)
    for cut in (3, 20, len(raw) // 2, len(raw) - 8):
        with pytest.raises(cdr.ConversionError, match="PointCloud2"):
            cdr.read_pointcloud2(raw[:cut])

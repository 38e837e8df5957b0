"""The detection CDR codec against rosbags' serialiser (rclpy: test/ros/test_cdr_rclpy.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ad_perception.core import cdr
from ad_perception.core.detection_codecs import msg_to_boxes_3d, msg_to_detections_2d
from ad_perception.core.geometry import yaw_to_quaternion
from ad_perception.core.sensor_codecs import ConversionError
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.data.bag_types import typestore

STORE = typestore()
T = STORE.types
CLASSES = np.array(["car", "truck", "pedestrian", "cyclist", ""])


def _random_boxes(rng: np.random.Generator, n: int) -> Boxes3D:
    return Boxes3D(rng.normal(0, 20, (n, 3)), rng.uniform(0.5, 12, (n, 3)),
                   rng.uniform(-np.pi, np.pi, n), rng.uniform(0, 1, n),
                   rng.choice(CLASSES, n),
                   np.array(["id" * int(k) for k in rng.integers(0, 5, n)]))


def _random_2d(rng: np.random.Generator, n: int) -> Detections2D:
    xy = rng.uniform(0, 1200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 200, (n, 2))], axis=1)
    return Detections2D(boxes, rng.uniform(0, 1, n), rng.choice(CLASSES, n),
                        np.array([str(k) for k in rng.integers(0, 10**6, n)]))


def _header(stamp: cdr.Stamp):
    return T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](stamp.sec, stamp.nanosec),
                                    stamp.frame_id)


def _hypothesis(class_id: str, score: float, pose=None):
    geometry = T["geometry_msgs/msg/Pose"](
        T["geometry_msgs/msg/Point"](*(pose[:3] if pose is not None else (0.0, 0.0, 0.0))),
        T["geometry_msgs/msg/Quaternion"](*(pose[3:] if pose is not None else (0, 0, 0, 1.0))))
    return T["vision_msgs/msg/ObjectHypothesisWithPose"](
        T["vision_msgs/msg/ObjectHypothesis"](class_id, score),
        T["geometry_msgs/msg/PoseWithCovariance"](geometry, np.zeros(36)))


def _message_3d(boxes: Boxes3D, stamp: cdr.Stamp):
    detections = []
    quaternions = yaw_to_quaternion(boxes.yaws).reshape(-1, 4)
    for i in range(len(boxes)):
        pose = np.concatenate([boxes.centers[i], quaternions[i]])
        center = T["geometry_msgs/msg/Pose"](T["geometry_msgs/msg/Point"](*pose[:3]),
                                             T["geometry_msgs/msg/Quaternion"](*pose[3:]))
        bbox = T["vision_msgs/msg/BoundingBox3D"](center, T["geometry_msgs/msg/Vector3"](
            *boxes.sizes[i]))
        detections.append(T["vision_msgs/msg/Detection3D"](
            _header(stamp), [_hypothesis(str(boxes.class_ids[i]), float(boxes.scores[i]), pose)],
            bbox, str(boxes.ids[i])))
    return T["vision_msgs/msg/Detection3DArray"](_header(stamp), detections)


def _message_2d(detections: Detections2D, stamp: cdr.Stamp):
    out = []
    for box, score, class_id, ident in zip(detections.boxes, detections.scores,
                                           detections.class_ids, detections.ids, strict=True):
        center = T["vision_msgs/msg/Pose2D"](
            T["vision_msgs/msg/Point2D"]((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.0)
        bbox = T["vision_msgs/msg/BoundingBox2D"](center, box[2] - box[0], box[3] - box[1])
        out.append(T["vision_msgs/msg/Detection2D"](
            _header(stamp), [_hypothesis(str(class_id), float(score))], bbox, str(ident)))
    return T["vision_msgs/msg/Detection2DArray"](_header(stamp), out)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40])
def test_3d_bytes_equal_the_reference_serialiser_and_read_back(n):
    rng = np.random.default_rng(n)
    boxes = _random_boxes(rng, n)
    stamp = cdr.Stamp(int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9)), "f" * (n % 5))
    reference = bytes(STORE.serialize_cdr(_message_3d(boxes, stamp),
                                          "vision_msgs/msg/Detection3DArray"))
    assert cdr.encode_boxes_3d(boxes, stamp) == reference
    read_stamp, read = cdr.decode_boxes_3d(reference)
    assert read_stamp == stamp and read.frame_id == stamp.frame_id
    expected = msg_to_boxes_3d(STORE.deserialize_cdr(reference,
                                                     "vision_msgs/msg/Detection3DArray"))
    for name in ("centers", "sizes", "yaws", "scores"):
        np.testing.assert_allclose(getattr(read, name), getattr(expected, name), atol=1e-12)
    assert list(read.class_ids) == list(expected.class_ids)
    assert list(read.ids) == list(expected.ids)
    assert cdr.read_header(reference) == stamp


@pytest.mark.parametrize("n", [0, 1, 3, 25])
def test_2d_bytes_equal_the_reference_serialiser_and_read_back(n):
    rng = np.random.default_rng(100 + n)
    detections = _random_2d(rng, n)
    stamp = cdr.Stamp(5, 999_999_999, "camera_front_optical")
    reference = bytes(STORE.serialize_cdr(_message_2d(detections, stamp),
                                          "vision_msgs/msg/Detection2DArray"))
    assert cdr.encode_detections_2d(detections, stamp) == reference
    read_stamp, read = cdr.decode_detections_2d(reference)
    expected = msg_to_detections_2d(STORE.deserialize_cdr(reference,
                                                          "vision_msgs/msg/Detection2DArray"))
    assert read_stamp == stamp
    np.testing.assert_allclose(read.boxes, expected.boxes, atol=1e-9)
    np.testing.assert_allclose(read.scores, expected.scores)
    assert list(read.class_ids) == list(expected.class_ids)
    assert list(read.ids) == list(expected.ids)


def test_the_best_of_several_hypotheses_wins_as_the_message_reader_decides():
    stamp = cdr.Stamp(1, 2, "lidar")
    message = _message_3d(_random_boxes(np.random.default_rng(3), 2), stamp)
    message.detections[1].results = [_hypothesis("car", 0.2), _hypothesis("cyclist", 0.9),
                                     _hypothesis("truck", 0.9)]
    message.detections[0].results = []
    raw = bytes(STORE.serialize_cdr(message, "vision_msgs/msg/Detection3DArray"))
    _, read = cdr.decode_boxes_3d(raw)
    expected = msg_to_boxes_3d(message)
    assert list(read.class_ids) == list(expected.class_ids) == ["", "cyclist"]
    np.testing.assert_allclose(read.scores, expected.scores)


def test_big_endian_bytes_read_the_same():
    boxes = _random_boxes(np.random.default_rng(4), 3)
    stamp = cdr.Stamp(7, 8, "base_link")
    big = bytes(STORE.serialize_cdr(_message_3d(boxes, stamp), "vision_msgs/msg/Detection3DArray",
                                    little_endian=False))
    assert big[:2] == cdr.CDR_BE
    _, read = cdr.decode_boxes_3d(big)
    np.testing.assert_allclose(read.centers, boxes.centers)


def test_every_truncation_and_corruption_is_a_named_error():
    rng = np.random.default_rng(5)
    raw = cdr.encode_boxes_3d(_random_boxes(rng, 3), cdr.Stamp(1, 2, "base_link"))
    for cut in range(len(raw) - 4):  # the last <= 3 bytes can be end padding
        with pytest.raises(ConversionError, match="Detection3DArray"):
            cdr.decode_boxes_3d(raw[:cut])
    with pytest.raises(ConversionError, match="encapsulation"):
        cdr.decode_boxes_3d(b"\x00\x07\x00\x00" + raw[4:])
    huge = bytearray(raw)
    offset = 4 + 8 + 4 + len(b"base_link\x00")  # the detections count after the header
    offset += -(offset - 4) % 4
    huge[offset:offset + 4] = (2**31).to_bytes(4, "little")
    with pytest.raises(ConversionError, match="cannot fit"):
        cdr.decode_boxes_3d(bytes(huge))
    # a 2D array is not a 3D one: the layouts disagree and the reader says so
    two_d = cdr.encode_detections_2d(_random_2d(rng, 4), cdr.Stamp(1, 2, "cam"))
    with pytest.raises(ConversionError):
        cdr.decode_boxes_3d(two_d)
    bad_text = bytearray(cdr.encode_detections_2d(Detections2D.empty(), cdr.Stamp(1, 2, "ab")))
    bad_text[16] = 0xFF  # inside frame_id
    with pytest.raises(ConversionError, match="UTF-8"):
        cdr.read_header(bytes(bad_text))

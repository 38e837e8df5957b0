"""Conversions on real rclpy messages, rosbags-deserialised messages and over real DDS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vision_msgs.msg")
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.geometry import R_BODY_FROM_OPTICAL, make_transform
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud
from ad_perception.ros import conversions
from ad_perception.ros.conversions import ConversionError

pytestmark = pytest.mark.ros
REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = Header(stamp=Time(sec=1_700_000_123, nanosec=456_789_012), frame_id="camera_front")


def assert_same_header(copied: Header, original: Header = HEADER) -> None:
    assert copied.stamp.sec == original.stamp.sec
    assert copied.stamp.nanosec == original.stamp.nanosec
    assert copied.frame_id == original.frame_id


@pytest.mark.parametrize(
    ("encoding", "shape", "dtype"),
    [
        ("rgb8", (5, 7, 3), np.uint8), ("bgr8", (5, 7, 3), np.uint8),
        ("rgba8", (5, 7, 4), np.uint8), ("bgra8", (5, 7, 4), np.uint8),
        ("mono8", (5, 7), np.uint8), ("mono16", (5, 7), np.uint16),
        ("16UC1", (5, 7), np.uint16), ("32FC1", (5, 7), np.float32),
    ],
)  # fmt: skip
def test_image_round_trip_through_a_real_message(encoding, shape, dtype):
    pixels = (np.arange(np.prod(shape)) * 37 % 65521).astype(dtype).reshape(shape)
    msg = conversions.array_to_image(pixels, encoding, HEADER)
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert_same_header(msg.header)
    decoded = conversions.image_to_array(msg)
    np.testing.assert_array_equal(decoded, pixels)
    assert np.shares_memory(decoded, np.frombuffer(msg.data, np.uint8))


def test_padded_real_image_message():
    msg = Image(height=2, width=3, encoding="mono16", is_bigendian=0, step=8)
    msg.data = bytes([1, 0, 2, 0, 3, 0, 99, 99, 4, 0, 5, 0, 6, 0, 99, 99])
    np.testing.assert_array_equal(conversions.image_to_array(msg), [[1, 2, 3], [4, 5, 6]])
    msg.data = bytes(15)
    with pytest.raises(ConversionError, match="data has 15 bytes"):
        conversions.image_to_array(msg)


def test_pointcloud_round_trip_through_a_real_message():
    rng = np.random.default_rng(3)
    columns = {
        "x": rng.normal(size=64).astype(np.float32),
        "y": rng.normal(size=64).astype(np.float32),
        "z": rng.normal(size=64).astype(np.float32),
        "intensity": rng.integers(0, 255, 64).astype(np.uint8),
        "ring": rng.integers(0, 32, 64).astype(np.uint16),
        "normal": rng.normal(size=(64, 3)),
    }
    for big in (False, True):
        msg = conversions.columns_to_pointcloud(columns, HEADER, height=4, is_bigendian=big)
        assert isinstance(msg, PointCloud2) and (msg.height, msg.width) == (4, 16)
        assert [f.name for f in msg.fields] == list(columns)
        assert_same_header(msg.header)
        decoded = conversions.pointcloud_to_columns(msg)
        for name, values in columns.items():
            np.testing.assert_array_equal(decoded[name], values)
        cloud = conversions.pointcloud_to_core(msg)
        assert cloud.frame_id == "camera_front"
        np.testing.assert_array_equal(cloud.intensity, columns["intensity"].astype(np.float32))


def test_core_cloud_to_message_and_back():
    cloud = PointCloud(np.arange(30, dtype=np.float32).reshape(10, 3), np.ones(10), np.arange(10))
    decoded = conversions.pointcloud_to_core(conversions.core_to_pointcloud(cloud, HEADER))
    np.testing.assert_array_equal(decoded.xyz, cloud.xyz)
    np.testing.assert_array_equal(decoded.ring, cloud.ring)


def test_camera_info_to_model_and_back():
    model = CameraModel(K=[[600, 0, 320], [0, 610, 240], [0, 0, 1]], width=640, height=480,
                        D=[-0.2, 0.05, 0.001, 0.0, 0.0], frame_id="camera_front")  # fmt: skip
    msg = conversions.camera_model_to_info(model, HEADER)
    assert isinstance(msg, CameraInfo)
    restored = conversions.camera_info_to_model(msg)
    np.testing.assert_array_equal(restored.K, model.K)
    np.testing.assert_array_equal(restored.D, model.D)
    np.testing.assert_array_equal(restored.P, model.P)
    assert restored.frame_id == "camera_front" and restored.distortion_model == "plumb_bob"
    with pytest.raises(ConversionError, match="focal lengths") as info:
        conversions.camera_info_to_model(CameraInfo(width=640, height=480))
    assert isinstance(info.value.__cause__, ValueError)


def test_tf_message_round_trip_and_buffer():
    T_base_from_lidar = make_transform([0, 0, np.sin(0.2), np.cos(0.2)], [1.2, 0.0, 1.9])
    T_base_from_optical = make_transform(R_BODY_FROM_OPTICAL, [1.5, 0.1, 1.4])
    transforms = {
        ("base_link", "lidar_top"): T_base_from_lidar,
        ("base_link", "camera_front_optical"): T_base_from_optical,
    }
    msg = conversions.transforms_to_tf_message(transforms, HEADER.stamp)
    decoded = conversions.tf_message_to_transforms(msg)
    assert set(decoded) == set(transforms)
    for edge, transform in transforms.items():
        np.testing.assert_allclose(decoded[edge], transform, atol=1e-12)
    buffer = conversions.TransformBuffer()
    buffer.add_tf_message(msg)
    np.testing.assert_allclose(
        buffer.lookup("camera_front_optical", "lidar_top"),
        np.linalg.inv(T_base_from_optical) @ T_base_from_lidar,
        atol=1e-12,
    )


def sample_detections() -> Detections2D:
    return Detections2D(
        boxes=[[10.0, 20.0, 50.0, 80.0], [0.5, 1.5, 2.5, 3.5]],
        scores=[0.9, 0.25],
        class_ids=["car", "pedestrian"],
        ids=["7", ""],
    )


def sample_boxes() -> Boxes3D:
    return Boxes3D(
        centers=[[10.0, -2.0, 0.8], [25.0, 3.5, 0.9]],
        sizes=[[4.5, 1.9, 1.6], [0.8, 0.7, 1.8]],
        yaws=[0.3, -2.9],
        scores=[0.8, 0.6],
        class_ids=["car", "pedestrian"],
        ids=["1", "2"],
        frame_id="base_link",
    )


def assert_same_detections(decoded: Detections2D, original: Detections2D) -> None:
    np.testing.assert_allclose(decoded.boxes, original.boxes)
    np.testing.assert_allclose(decoded.scores, original.scores)
    np.testing.assert_array_equal(decoded.class_ids, original.class_ids)
    np.testing.assert_array_equal(decoded.ids, original.ids)


def assert_same_boxes(decoded: Boxes3D, original: Boxes3D) -> None:
    np.testing.assert_allclose(decoded.centers, original.centers)
    np.testing.assert_allclose(decoded.sizes, original.sizes)
    np.testing.assert_allclose(decoded.yaws, original.yaws, atol=1e-12)
    np.testing.assert_allclose(decoded.scores, original.scores)
    np.testing.assert_array_equal(decoded.class_ids, original.class_ids)
    np.testing.assert_array_equal(decoded.ids, original.ids)
    assert decoded.frame_id == original.frame_id


def test_detections_2d_round_trip_copies_the_header_unchanged():
    msg = conversions.detections_2d_to_msg(sample_detections(), HEADER)
    assert_same_header(msg.header)
    assert msg.header is not HEADER
    for detection in msg.detections:
        assert_same_header(detection.header)
    first = msg.detections[0]
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30.0, 50.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (40.0, 60.0)
    assert first.results[0].hypothesis.class_id == "car" and first.id == "7"
    assert_same_detections(conversions.msg_to_detections_2d(msg), sample_detections())
    empty = conversions.detections_2d_to_msg(Detections2D.empty(), HEADER)
    assert len(conversions.msg_to_detections_2d(empty)) == 0


def test_boxes_3d_round_trip_copies_the_header_unchanged():
    header = Header(stamp=HEADER.stamp, frame_id="base_link")
    msg = conversions.boxes_3d_to_msg(sample_boxes(), header)
    assert_same_header(msg.header, header)
    first = msg.detections[0]
    assert (first.bbox.size.x, first.bbox.size.y, first.bbox.size.z) == (4.5, 1.9, 1.6)
    assert first.bbox.center.orientation.z == pytest.approx(np.sin(0.15))
    assert_same_boxes(conversions.msg_to_boxes_3d(msg), sample_boxes())
    empty = conversions.boxes_3d_to_msg(Boxes3D.empty(), header)
    assert len(conversions.msg_to_boxes_3d(empty)) == 0


def test_best_hypothesis_wins_when_several_are_present():
    msg = conversions.detections_2d_to_msg(sample_detections(), HEADER)
    extra = conversions.detections_2d_to_msg(
        Detections2D([[0, 0, 1, 1]], [0.95], ["truck"]), HEADER
    ).detections[0].results[0]
    msg.detections[0].results.append(extra)
    assert conversions.msg_to_detections_2d(msg).class_ids[0] == "truck"


@pytest.fixture(scope="module")
def rosbags_typestore():
    """A rosbags typestore that knows vision_msgs (registered from interfaces/ .msg text)."""
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = {}
    for path in sorted((REPO_ROOT / "interfaces/vision_msgs/msg").glob("*.msg")):
        types.update(typesys.get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def test_readers_accept_rosbags_deserialised_messages(rosbags_typestore):
    def through_rosbags(msg, typename):
        return rosbags_typestore.deserialize_cdr(serialize_message(msg), typename)

    detections = through_rosbags(
        conversions.detections_2d_to_msg(sample_detections(), HEADER),
        "vision_msgs/msg/Detection2DArray",
    )
    assert_same_detections(conversions.msg_to_detections_2d(detections), sample_detections())
    header = Header(stamp=HEADER.stamp, frame_id="base_link")
    boxes = through_rosbags(
        conversions.boxes_3d_to_msg(sample_boxes(), header), "vision_msgs/msg/Detection3DArray"
    )
    assert_same_boxes(conversions.msg_to_boxes_3d(boxes), sample_boxes())
    pixels = np.arange(60, dtype=np.uint16).reshape(4, 5, 3)
    image = through_rosbags(conversions.array_to_image(pixels, "rgb16"), "sensor_msgs/msg/Image")
    assert isinstance(image.data, np.ndarray)
    np.testing.assert_array_equal(conversions.image_to_array(image), pixels)
    columns = {axis: np.arange(5, dtype=np.float32) * i for i, axis in enumerate("xyz")}
    columns["intensity"] = np.arange(5, dtype=np.uint16)
    big_endian_cloud = conversions.columns_to_pointcloud(columns, is_bigendian=True)
    cloud = through_rosbags(big_endian_cloud, "sensor_msgs/msg/PointCloud2")
    decoded = conversions.pointcloud_to_columns(cloud)
    for name, values in columns.items():
        np.testing.assert_array_equal(decoded[name], values)
    model = CameraModel.from_intrinsics(500, 500, 320, 240, 640, 480)
    info = through_rosbags(conversions.camera_model_to_info(model), "sensor_msgs/msg/CameraInfo")
    assert conversions.camera_info_to_model(info).fx == 500.0
    tf = through_rosbags(
        conversions.transforms_to_tf_message({("base_link", "lidar_top"): np.eye(4)}),
        "tf2_msgs/msg/TFMessage",
    )
    transforms = conversions.tf_message_to_transforms(tf)
    np.testing.assert_allclose(transforms[("base_link", "lidar_top")], np.eye(4))


def test_image_and_pointcloud_survive_a_dds_round_trip(ros_context, spin_until):
    import rclpy

    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    columns = {axis: rng.normal(size=50_000).astype(np.float32) for axis in "xyz"}
    columns["intensity"] = rng.random(50_000).astype(np.float32)
    columns["x"][::97] = np.nan  # a non-dense cloud
    sender = rclpy.create_node("conversion_sender", context=ros_context)
    receiver = rclpy.create_node("conversion_receiver", context=ros_context)
    received: dict[str, object] = {}
    try:
        receiver.create_subscription(Image, "test_image", lambda m: received.update(image=m), qos)
        receiver.create_subscription(
            PointCloud2, "test_points", lambda m: received.update(points=m), qos
        )
        sender.create_publisher(Image, "test_image", qos).publish(
            conversions.array_to_image(pixels, "rgb8", HEADER)
        )
        sender.create_publisher(PointCloud2, "test_points", qos).publish(
            conversions.columns_to_pointcloud(columns, HEADER)
        )
        assert spin_until([sender, receiver], lambda: len(received) == 2, timeout=15.0)
        assert_same_header(received["image"].header)
        np.testing.assert_array_equal(conversions.image_to_array(received["image"]), pixels)
        decoded = conversions.pointcloud_to_columns(received["points"])
        for name, values in columns.items():
            np.testing.assert_array_equal(decoded[name], values)
        assert not received["points"].is_dense
        cloud = conversions.pointcloud_to_core(received["points"])
        assert len(cloud) == 50_000 - len(range(0, 50_000, 97))
    finally:
        sender.destroy_node()
        receiver.destroy_node()

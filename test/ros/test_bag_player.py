"""The bag player publishes recorded CDR onto live DDS topics with the recorded pacing."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage

from ad_perception.ros.bag_player import BagPlayer

STORE = get_typestore(Stores.ROS2_KILTED)
T0 = 1_700_000_000 * 10**9


def _write_bag(path, frames=6):
    types = STORE.types
    Header, Time = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]
    RosImage = types["sensor_msgs/msg/Image"]
    tf = types["geometry_msgs/msg/TransformStamped"]
    Transform, Vector3 = types["geometry_msgs/msg/Transform"], types["geometry_msgs/msg/Vector3"]
    Quaternion = types["geometry_msgs/msg/Quaternion"]
    with Writer(path, version=9) as writer:
        static = writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=STORE)
        images = writer.add_connection("/cam", RosImage.__msgtype__, typestore=STORE)
        transform = tf(Header(Time(0, 0), "base_link"), "camera",
                       Transform(Vector3(1.0, 0.0, 1.5), Quaternion(0.0, 0.0, 0.0, 1.0)))
        message = types["tf2_msgs/msg/TFMessage"]([transform])
        writer.write(static, T0, STORE.serialize_cdr(message, "tf2_msgs/msg/TFMessage"))
        for i in range(frames):
            stamp = T0 + i * 100_000_000
            data = np.full(8 * 6 * 3, i, dtype=np.uint8)
            image = RosImage(Header(Time(*divmod(stamp, 10**9)), "cam"), 6, 8, "rgb8", 0, 24, data)
            writer.write(images, stamp, STORE.serialize_cdr(image, RosImage.__msgtype__))


def test_player_replays_in_order_with_restamped_headers(tmp_path, ros_context, spin_until):
    _write_bag(tmp_path / "bag")
    listener = rclpy.create_node("listener", context=ros_context)
    player_node = rclpy.create_node("player", context=ros_context)
    received: list[tuple[int, int, int]] = []
    listener.create_subscription(
        Image, "/camera/image",
        lambda m: received.append((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                                   m.data[0], time.time_ns())),
        10,
    )
    player = BagPlayer(player_node, tmp_path / "bag", remap={"/cam": "/camera/image"},
                       restamp=True)
    assert player.wait_for_subscribers(["/cam"], timeout=10.0)
    assert spin_until([listener], lambda: False, timeout=0.3) is False  # let discovery settle
    started, started_ns = time.monotonic(), time.time_ns()
    summary = player.play()
    elapsed = time.monotonic() - started
    assert spin_until([listener], lambda: len(received) == 6, timeout=10.0)
    assert summary.published == {"/tf_static": 1, "/cam": 6}
    # one lateness figure per published message, never "early" (publish waits for the due time)
    assert {t: len(v) for t, v in summary.lateness_ms.items()} == summary.published
    assert min(summary.lateness_ms["/cam"]) >= -0.5
    assert summary.lateness_p50_ms("/cam") <= summary.max_lateness_ms
    assert 0.45 <= elapsed < 2.0  # 6 frames 100 ms apart: recorded pacing is kept
    assert [value for _, value, _ in received] == list(range(6))
    stamps = [stamp for stamp, _, _ in received]
    assert stamps == [T0 + i * 100_000_000 + summary.stamp_offset_ns for i in range(6)]
    # restamped: the first stamp reads as the wall time replay started (later ones keep pace)
    assert abs(stamps[0] - started_ns) < 0.2e9

    late = rclpy.create_node("late_joiner", context=ros_context)
    transforms = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    late.create_subscription(TFMessage, "/tf_static", transforms.append, qos)
    assert spin_until([late, player_node], lambda: bool(transforms), timeout=10.0)
    assert transforms[0].transforms[0].child_frame_id == "camera"
    player.close()
    for node in (listener, player_node, late):
        node.destroy_node()

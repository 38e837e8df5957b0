"""fusion and latency_monitor over real DDS: paired stamps fuse into base_link, a missing
sensor degrades the output with a diagnostic, a missing transform is counted while the node
keeps publishing, markers follow the objects, and the monitor reports end-to-end latency."""

from __future__ import annotations

import contextlib
import json
import time

import numpy as np
import pytest

pytest.importorskip("vision_msgs.msg")
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.geometry import R_BODY_FROM_OPTICAL, invert_transform, make_transform
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.ros import conversions
from ad_perception.ros.fusion_node import FusionNode
from ad_perception.ros.latency_monitor_node import LatencyMonitorNode
from ad_perception.ros.qos import reliable_qos, tf_static_qos

pytestmark = pytest.mark.ros
CAMERA = CameraModel.from_intrinsics(640.0, 640.0, 640.0, 360.0, 1280, 720)
T_LIDAR_FROM_CAMERA = make_transform(R_BODY_FROM_OPTICAL, [0.4, 0.0, -0.3])
T_BASE_FROM_LIDAR = make_transform(np.eye(3), [1.2, 0.0, 1.8])
BOXES = Boxes3D([[14.0, 2.0, -1.0]], [[4.5, 1.8, 1.6]], [0.0], [0.8], ["truck"], ["t0"],
                frame_id="lidar_top")


def _camera_box() -> Detections2D:
    T_camera_from_lidar = invert_transform(T_LIDAR_FROM_CAMERA)
    corners = BOXES.corners()[0] @ T_camera_from_lidar[:3, :3].T + T_camera_from_lidar[:3, 3]
    uv = corners[:, :2] / corners[:, 2:] * 640.0 + [640.0, 360.0]
    return Detections2D([np.concatenate([uv.min(axis=0), uv.max(axis=0)])], [0.9], ["car"])


def _header(ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)


class Graph:
    """Publishes what the detectors, the camera driver and /tf_static would; records the
    fused objects, markers and diagnostics."""

    def __init__(self, context) -> None:
        import rclpy

        self.node = rclpy.create_node("fusion_probe", context=context)
        self.objects: list = []
        self.markers: list = []
        self.diagnostics: list = []
        self.node.create_subscription(Detection3DArray, "objects", self.objects.append, 10)
        self.node.create_subscription(MarkerArray, "objects/markers", self.markers.append, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append,
                                      10)
        self.camera = self.node.create_publisher(Detection2DArray, "camera/detections",
                                                 reliable_qos(10))
        self.lidar = self.node.create_publisher(Detection3DArray, "lidar/detections",
                                                reliable_qos(10))
        self.info = self.node.create_publisher(CameraInfo, "camera_info", reliable_qos(1))
        self.tf = self.node.create_publisher(TFMessage, "/tf_static", tf_static_qos())

    def publish_calibration(self, with_tf: bool = True) -> None:
        self.info.publish(conversions.camera_model_to_info(CAMERA, _header(0, "camera")))
        if with_tf:
            self.tf.publish(conversions.transforms_to_tf_message({
                ("base_link", "lidar_top"): T_BASE_FROM_LIDAR,
                ("lidar_top", "camera_front_optical"): T_LIDAR_FROM_CAMERA}))

    def calibrate(self, fusion: FusionNode, spin_until) -> bool:
        """Publish CameraInfo and /tf_static and wait until ``fusion`` can use both."""
        self.publish_calibration()
        return spin_until([fusion, self.node], lambda: fusion.fusion.camera_model is not None
                          and fusion.fusion.tf.can_transform("base_link", "lidar_top"))

    def publish_frame(self, stamp_ns: int, camera: bool = True, lidar: bool = True) -> None:
        if camera:
            self.camera.publish(conversions.detections_2d_to_msg(
                _camera_box(), _header(stamp_ns, "camera_front_optical")))
        if lidar:
            self.lidar.publish(conversions.boxes_3d_to_msg(BOXES, _header(stamp_ns,
                                                                          "lidar_top")))

    def fusion_status(self) -> dict | None:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name == "/fusion":
                    return {"message": status.message, "level": status.level[0]} | {
                        kv.key: kv.value for kv in status.values}
        return None


def _stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_fused_then_lidar_only_when_the_camera_stops(ros_context, spin_until):
    node = FusionNode(context=ros_context, parameter_overrides=[
        Parameter("diagnostics_period_s", value=0.1), Parameter("sync_timeout_ms", value=80.0),
        Parameter("use_points", value=False), Parameter("tracking", value=False),
        Parameter("camera_class_weight", value=0.7)])  # the camera is trusted on class here
    graph = Graph(ros_context)
    nodes = [node, graph.node]
    try:
        assert graph.calibrate(node, spin_until)
        now = time.time_ns()
        graph.publish_frame(now)
        assert spin_until(nodes, lambda: graph.objects and graph.markers)
        (fused,) = graph.objects
        assert _stamp_of(fused) == now and fused.header.frame_id == "base_link"
        (detection,) = fused.detections
        assert detection.results[0].hypothesis.class_id == "car"  # the camera's class won
        assert detection.bbox.center.position.x == pytest.approx(15.2)
        kinds = [m.action for m in graph.markers[0].markers]
        assert kinds[0] == Marker.DELETEALL and kinds.count(Marker.ADD) == 2

        # the camera stops: lidar-only output after the timeout, with a diagnostic
        lidar_only = now + 100_000_000
        graph.publish_frame(lidar_only, camera=False)
        assert spin_until(nodes, lambda: len(graph.objects) == 2)
        assert _stamp_of(graph.objects[-1]) == lidar_only
        assert graph.objects[-1].detections[0].results[0].hypothesis.class_id == "truck"
        assert spin_until(nodes, lambda: "lidar-only" in (graph.fusion_status() or {}).get(
            "message", ""))
        assert node.matcher.stats.lidar_only == 1 and node.matcher.stats.matched == 1
        # the sync tolerance changes at run time
        assert node.set_parameters([Parameter("sync_timeout_ms", value=500.0)])[0].successful
        assert node.matcher.config.timeout_ns == 500_000_000
    finally:
        node.shutdown()
        node.destroy_node()
        graph.node.destroy_node()


def test_missing_tf_is_counted_and_output_continues(ros_context, spin_until):
    node = FusionNode(context=ros_context, parameter_overrides=[
        Parameter("diagnostics_period_s", value=0.1)])
    graph = Graph(ros_context)
    nodes = [node, graph.node]
    try:
        graph.publish_calibration(with_tf=False)
        assert spin_until(nodes, lambda: node.fusion.camera_model is not None)
        start = time.time_ns()
        for index in range(3):
            graph.publish_frame(start + index * 100_000_000)
            assert spin_until(nodes, lambda i=index: len(graph.objects) == i + 1)
        assert all(o.header.frame_id == "lidar_top" for o in graph.objects)  # not base_link
        assert [_stamp_of(o) for o in graph.objects] == [start + i * 100_000_000
                                                         for i in range(3)]

        def reported() -> bool:
            status = graph.fusion_status()
            return status is not None and status.get("sync.missing_inputs_total") == "3"

        assert spin_until(nodes, reported)
        assert "waiting for tf lidar_top -> base_link" in graph.fusion_status()["message"]
    finally:
        node.shutdown()
        node.destroy_node()
        graph.node.destroy_node()


@contextlib.contextmanager
def _calibrated_fusion(ros_context, spin_until, *params: Parameter):
    """A FusionNode with ``params`` and a calibrated Graph; torn down on exit."""
    node = FusionNode(context=ros_context, parameter_overrides=list(params))
    graph = Graph(ros_context)
    try:
        assert graph.calibrate(node, spin_until)
        yield node, graph, [node, graph.node]
    finally:
        node.shutdown()
        node.destroy_node()
        graph.node.destroy_node()


def test_corrupt_detection_bytes_are_counted_and_fusion_goes_on(ros_context, spin_until):
    """The fusion reads its inputs from raw CDR: bytes that are not a detection array (a
    misbehaving publisher, a mismatched type) are rejected with a counter, not a crash."""
    with _calibrated_fusion(ros_context, spin_until, Parameter("diagnostics_period_s", value=0.1),
                            Parameter("use_points", value=False)) as (node, graph, nodes):
        rng = np.random.default_rng(11)
        good = conversions.boxes_3d_to_msg(BOXES, _header(time.time_ns(), "lidar_top"))
        from rclpy.serialization import serialize_message

        truncated = serialize_message(good)[:-40]
        graph.lidar.publish(truncated)  # raw bytes: rclpy publishes them as they are
        graph.camera.publish(b"\x00\x01\x00\x00" + rng.bytes(64))
        assert spin_until(nodes, lambda: node.health.input_errors.total >= 2)
        graph.publish_frame(time.time_ns())
        assert spin_until(nodes, lambda: len(graph.objects) == 1)
        assert graph.objects[0].detections[0].bbox.center.position.x == pytest.approx(15.2)


def test_tracks_keep_class_and_id_across_frames_and_can_be_switched_off(ros_context,
                                                                        spin_until):
    """The lidar calls the object a truck; one frame, with the camera trusted, calls it a car.
    With tracking the object keeps one id and the class it had most votes for; without, every
    frame stands alone and no id is published."""
    with _calibrated_fusion(ros_context, spin_until, Parameter("diagnostics_period_s", value=0.1),
                            Parameter("use_points", value=False),
                            Parameter("sync_timeout_ms", value=50.0)) as (node, graph, nodes):
        start = time.time_ns()
        for i in range(3):  # lidar-only frames: truck
            graph.publish_frame(start + i * 100_000_000, camera=False)
            assert spin_until(nodes, lambda n=i: len(graph.objects) == n + 1)
        assert node.set_parameters([Parameter("camera_class_weight", value=0.9)])[0].successful
        graph.publish_frame(start + 300_000_000)  # the camera says car, and is trusted
        assert spin_until(nodes, lambda: len(graph.objects) == 4)
        detections = [msg.detections[0] for msg in graph.objects]
        assert {d.id for d in detections} == {detections[0].id} and detections[0].id != ""
        assert [d.results[0].hypothesis.class_id for d in detections] == ["truck"] * 4
        assert spin_until(nodes, lambda: len(graph.markers) == 4)
        labels = [m.text for m in graph.markers[-1].markers if m.type == Marker.TEXT_VIEW_FACING]
        assert labels == [f"truck #{detections[0].id} 0.89 (fused)"]  # score fused w/ camera
        assert spin_until(nodes, lambda: (graph.fusion_status() or {}).get(
            "sync.tracking_reclassified") == "1")
        assert node.summary()["tracking"]["tracks_started"] == 1

        assert node.set_parameters([Parameter("tracking", value=False)])[0].successful
        graph.publish_frame(start + 400_000_000)
        assert spin_until(nodes, lambda: len(graph.objects) == 5)
        last = graph.objects[-1].detections[0]
        assert last.results[0].hypothesis.class_id == "car" and last.id == "t0"


def test_camera_only_frames_before_any_lidar_frame_are_skipped_not_frameless(ros_context,
                                                                             spin_until):
    with _calibrated_fusion(ros_context, spin_until, Parameter("sync_timeout_ms", value=50.0),
                            Parameter("use_points", value=False)) as (node, graph, nodes):
        graph.publish_frame(time.time_ns(), lidar=False)
        assert spin_until(nodes, lambda: node.matcher.stats.camera_only == 1)
        assert spin_until(nodes, lambda: False, timeout=0.3) is False
        assert graph.objects == [] and node.summary()["frames"]["skipped"] == 1
        graph.publish_frame(time.time_ns())  # the lidar names its frame: output resumes
        assert spin_until(nodes, lambda: len(graph.objects) == 1)
        assert graph.objects[0].header.frame_id == "base_link"


def test_latency_monitor_reports_per_topic_and_writes_summary(ros_context, spin_until,
                                                              tmp_path):
    summary = tmp_path / "latency.json"
    node = LatencyMonitorNode(context=ros_context, parameter_overrides=[
        Parameter("topics", value=["/perception/objects", "/perception/silent"]),
        Parameter("diagnostics_period_s", value=0.1),
        Parameter("summary_path", value=str(summary))])
    import rclpy

    source = rclpy.create_node("source", context=ros_context)
    publisher = source.create_publisher(Detection3DArray, "/perception/objects", reliable_qos(1))
    nodes = [node, source]
    try:
        assert spin_until(nodes, lambda: "/perception/objects" in node._watched)
        for _ in range(15):
            stamp = time.time_ns() - 40_000_000  # sensor time 40 ms ago
            publisher.publish(Detection3DArray(header=_header(stamp, "base_link")))
            spin_until(nodes, lambda: False, timeout=0.05)
        statuses = {s.name: s for s in node.report.statuses(node.now_ns(), prefix="m")}
        objects = statuses["m: /perception/objects"]
        assert 40.0 <= float(objects.values["p50_ms"]) < 140.0
        assert statuses["m: /perception/silent"].message == "no messages received"
    finally:
        node.shutdown()
        node.destroy_node()
        source.destroy_node()
    report = json.loads(summary.read_text())
    totals = report["topics"]["/perception/objects"]["totals"]
    assert totals["count"] == 15 and totals["p99_ms"] >= 40.0
    assert report["topics"]["/perception/objects"]["type"] == "vision_msgs/msg/Detection3DArray"

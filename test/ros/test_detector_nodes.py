"""camera_detector and lidar_detector over real DDS with tiny real models: outputs carry the
input stamp, debug topics publish per stage, bad input is counted and skipped, stale frames
are never processed, thresholds change at run time, and bad config fails fast."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("vision_msgs.msg")
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float64, Header
from vision_msgs.msg import Detection2DArray, Detection3DArray

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.node_params import ConfigError
from ad_perception.models.camera_detector import (
    CameraDetectorConfig,
    build_camera_detector,
)
from ad_perception.models.checkpoint import save_checkpoint
from ad_perception.models.lidar_detector import (
    LidarDetectorConfig,
    build_lidar_detector,
)
from ad_perception.ros import conversions
from ad_perception.ros.camera_detector_node import CameraDetectorNode
from ad_perception.ros.lidar_detector_node import LidarDetectorNode
from ad_perception.ros.qos import reliable_qos, sensor_qos
from ad_perception.ros_env import ros_environment

pytestmark = pytest.mark.ros
CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
BASE_SEC = 1_700_000_000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    produced_by = {"command": "pytest", "seed": 0, "data": "none"}
    save_checkpoint(build_camera_detector(CAMERA), folder / "camera.pt", CAMERA, produced_by)
    save_checkpoint(build_lidar_detector(LIDAR), folder / "lidar.pt", LIDAR, produced_by)
    return folder


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def header(index: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=BASE_SEC + index, nanosec=1000 + index), frame_id=frame_id)


def image(index: int, rng: np.random.Generator, encoding: str = "rgb8") -> Image:
    pixels = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    return conversions.array_to_image(pixels, encoding, header(index, "camera_front_optical"))


def cloud(index: int, rng: np.random.Generator) -> PointCloud2:
    xyz = rng.uniform([0, -12, -2], [25, 12, 1], (4000, 3)).astype(np.float32)
    columns = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
               "intensity": rng.uniform(0, 1, 4000).astype(np.float32)}
    return conversions.columns_to_pointcloud(columns, header(index, "lidar_top"))


class Probe:
    """A test node: publishes inputs, records outputs, debug values and diagnostics."""

    def __init__(self, context, outputs: dict[str, type], inputs: dict[str, type]) -> None:
        import rclpy

        self.node = rclpy.create_node("probe", context=context)
        self.received: dict[str, list] = {topic: [] for topic in outputs}
        for topic, cls in outputs.items():
            self.node.create_subscription(cls, topic, self.received[topic].append, 10)
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append,
                                      10)
        self.pub = {topic: self.node.create_publisher(cls, topic, reliable_qos(10))
                    for topic, cls in inputs.items()}

    def status_of(self, node_name: str) -> dict | None:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name == node_name:
                    values = {kv.key: kv.value for kv in status.values}
                    return {"level": status.level[0], "message": status.message} | values
        return None


def _overrides(**values) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


def _stamps(messages) -> list[tuple[int, int]]:
    return [(m.header.stamp.sec, m.header.stamp.nanosec) for m in messages]


def test_camera_detector_stamps_debug_topics_and_bad_images(ros_context, spin_until, models):
    rng = np.random.default_rng(0)
    node = CameraDetectorNode(context=ros_context, parameter_overrides=_overrides(
        model_path=str(models / "camera.pt"), score_threshold=0.05, diagnostics_period_s=0.2))
    debug = {name: f"/camera_detector/debug/{name}" for name in (
        "processing_time_ms", "pipeline_latency_ms", "inference_time_ms", "conversion_time_ms")}
    probe = Probe(ros_context, {"detections": Detection2DArray} | {t: Float64 for t in
                                                                   debug.values()},
                  {"image": Image, "camera_info": CameraInfo})
    try:
        model = CameraModel.from_intrinsics(320.0, 320.0, 320.0, 180.0, 640, 360)
        info = conversions.camera_model_to_info(model, header(0, "camera_front_optical"))
        probe.pub["camera_info"].publish(info)
        assert spin_until([node, probe.node], lambda: node._subscription.get_publisher_count())
        detections = probe.received["detections"]
        probe.pub["image"].publish(image(1, rng))
        assert spin_until([node, probe.node], lambda: len(detections) == 1, timeout=20)
        assert _stamps(detections) == [(BASE_SEC + 1, 1001)]
        assert detections[0].header.frame_id == "camera_front_optical"
        assert all(d.header.stamp == detections[0].header.stamp
                   for d in detections[0].detections)
        # malformed: unknown encoding, then truncated data; then a good bgr8 frame
        bad = image(2, rng)
        bad.encoding = "yuv9"
        probe.pub["image"].publish(bad)
        short = image(3, rng)
        short.data = bytes(short.data)[:1000]
        assert spin_until([node, probe.node], lambda: node.health.input_errors.total >= 1)
        probe.pub["image"].publish(short)
        assert spin_until([node, probe.node], lambda: node.health.input_errors.total >= 2)
        probe.pub["image"].publish(image(4, rng, "bgr8"))
        assert spin_until([node, probe.node], lambda: len(detections) == 2, timeout=20)
        assert _stamps(detections)[-1] == (BASE_SEC + 4, 1004)

        def reported() -> bool:
            status = probe.status_of("/camera_detector")
            return status is not None and status["rejected_total"] == "2" and all(
                probe.received[t] for t in debug.values())

        assert spin_until([node, probe.node], reported, timeout=10)
        status = probe.status_of("/camera_detector")
        assert "bad inputs skipped" in status["message"] and "data has" in status["message"]
        assert float(status["pipeline_latency_p99_ms"]) > 0
        assert probe.received[debug["inference_time_ms"]][-1].data > 0
        # the annotated image, switched on at run time, only while someone listens
        annotated: list[Image] = []
        probe.node.create_subscription(Image, "/camera_detector/debug/image", annotated.append,
                                       sensor_qos(1))
        assert node.set_parameters([Parameter("publish_debug_image", value=True)])[0].successful
        assert spin_until([node, probe.node],
                          lambda: node._debug_image.get_subscription_count() == 1)
        probe.pub["image"].publish(image(5, rng))
        assert spin_until([node, probe.node], lambda: annotated, timeout=20)
        assert _stamps(annotated) == [(BASE_SEC + 5, 1005)]
        assert (annotated[0].width, annotated[0].height, annotated[0].encoding) == (
            640, 360, "rgb8")
    finally:
        node.shutdown()
        node.destroy_node()
        probe.node.destroy_node()


def test_lidar_detector_never_processes_stale_frames(ros_context, spin_until, models):
    """A burst of clouds faster than inference: outputs are strictly newer each time, the
    newest cloud is always processed, and the ones replaced in the gate count as drops."""
    rng = np.random.default_rng(1)
    node = LidarDetectorNode(context=ros_context, parameter_overrides=_overrides(
        model_path=str(models / "lidar.pt"), diagnostics_period_s=0.2))
    probe = Probe(ros_context, {"detections": Detection3DArray}, {"points": PointCloud2})
    try:
        assert spin_until([node, probe.node], lambda: node._subscription.get_publisher_count())
        clouds = [cloud(i, rng) for i in range(12)]
        for index, message in enumerate(clouds):  # each reaches the gate while it is busy
            probe.pub["points"].publish(message)
            assert spin_until([node, probe.node],
                              lambda i=index: node._gate.stats().offered == i + 1, timeout=5)
        out = probe.received["detections"]
        assert spin_until([node, probe.node], lambda: _stamps(out)[-1:] == [
            (BASE_SEC + 11, 1011)], timeout=30)
        stamps = _stamps(out)
        assert stamps == sorted(set(stamps)) and len(stamps) < 12
        assert out[-1].header.frame_id == "lidar_top"
        node.before_diagnostics()
        assert node.health.drops.total == node._gate.stats().dropped > 0
        # malformed: no z field; the node carries on with the next good cloud
        bad = cloud(20, rng)
        bad.fields = [f for f in bad.fields if f.name != "z"]
        probe.pub["points"].publish(bad)
        assert spin_until([node, probe.node], lambda: node.health.input_errors.total == 1)
        probe.pub["points"].publish(cloud(21, rng))
        assert spin_until([node, probe.node], lambda: _stamps(out)[-1] == (BASE_SEC + 21, 1021),
                          timeout=20)
        assert "z" in node.health.input_errors.last_text
    finally:
        node.shutdown()
        node.destroy_node()
        probe.node.destroy_node()


def test_thresholds_change_at_run_time_and_the_rest_is_refused(ros_context, models):
    node = LidarDetectorNode(context=ros_context, parameter_overrides=_overrides(
        model_path=str(models / "lidar.pt")))
    try:
        (result,) = node.set_parameters([Parameter("score_threshold", value=0.8)])
        assert result.successful and node.pipeline.score_threshold == 0.8
        (result,) = node.set_parameters([Parameter("score_threshold", value=1.7)])
        assert not result.successful and "must be <= 1" in result.reason
        assert node.pipeline.score_threshold == 0.8
        (result,) = node.set_parameters([Parameter("backend", value="openvino")])
        assert not result.successful and "cannot change while running" in result.reason
        (result,) = node.set_parameters([Parameter("latency_warn_ms", value=500.0)])
        assert not result.successful and "warning must come first" in result.reason
        (result,) = node.set_parameters([Parameter("latency_error_ms", value=90)])
        assert not result.successful  # 90 < warn 120
        node.set_parameters([Parameter("latency_warn_ms", value=60.0)])
        assert node.health.config.latency_warn_ms == 60.0
    finally:
        node.shutdown()
        node.destroy_node()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_cuda_without_gpu_runs_on_cpu_and_says_so(ros_context, models):
    node = CameraDetectorNode(context=ros_context, parameter_overrides=_overrides(
        model_path=str(models / "camera.pt"), device="cuda"))
    try:
        assert node.device == "cpu"
        status = node.health.status(node.now_ns())
        assert status.values["cpu_fallback"] == "true" and "CPU fallback" in status.message
    finally:
        node.shutdown()
        node.destroy_node()


def test_bad_configuration_fails_fast_with_what_to_fix(ros_context, models, tmp_path):
    with pytest.raises(ConfigError, match="'backend' = 'tflite': must be one of"):
        CameraDetectorNode(context=ros_context, parameter_overrides=_overrides(
            model_path=str(models / "camera.pt"), backend="tflite"))
    result = subprocess.run(
        [sys.executable, "-m", "ad_perception.ros.lidar_detector_node", "--ros-args",
         "-p", f"model_path:={tmp_path / 'missing.pt'}", "-p", "threads:=2"],
        env=ros_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "model_path" in result.stderr and "does not exist" in result.stderr

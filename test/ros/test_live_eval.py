"""Live mode end to end on a short bag, over real DDS: a launch file starts a graph, the bag
is played onto its topics, every output is recorded to mcap and scored.

The graph here is an oracle node (written by the test) that answers each camera and lidar
message with the bag's own ground truth for that stamp, header copied from the input, after
a fixed processing delay, so the numbers are known: AP = 1, latency >= the delay, no drops.
A ``shift_m`` launch argument makes it move every 3D box, which must lower BEV AP. The real
perception graph is exercised by the demo's e2e test."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from ad_perception.cli import main

pytestmark = pytest.mark.ros

ORACLE = textwrap.dedent('''
    """Oracle perception graph: publishes the bag's ground truth for each input stamp."""
    import sys
    import time

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2
    from vision_msgs.msg import Detection2DArray, Detection3DArray

    from ad_perception.data import bag_io
    from ad_perception.data.bag_types import typestore
    from ad_perception.eval.replay import read_stamp_ns, shift_stamp

    bag, shift_m, delay_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    store = typestore()
    truth = {}
    for topic, _, raw in bag_io.read_messages(bag, ["/ground_truth/objects",
                                                   "/ground_truth/camera/front/boxes"],
                                              raw=True):
        raw = bytes(raw)
        if topic == "/ground_truth/objects" and shift_m:
            kind = "vision_msgs/msg/Detection3DArray"
            msg = store.deserialize_cdr(raw, kind)
            for detection in msg.detections:
                detection.bbox.center.position.x += shift_m
            raw = bytes(store.serialize_cdr(msg, kind))
        truth[(topic, read_stamp_ns(raw))] = raw
    first = min(stamp for _, stamp in truth)

    class Oracle(Node):
        def __init__(self):
            super().__init__("oracle")
            out = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.offset = None
            self.camera = self.create_publisher(Detection2DArray,
                                                "/perception/camera/front/detections", out)
            self.lidar = self.create_publisher(Detection3DArray, "/perception/lidar/detections",
                                               out)
            self.objects = self.create_publisher(Detection3DArray, "/perception/objects", out)
            self.create_subscription(Image, "/sensing/camera/front/image_raw", self.on_image,
                                     qos_profile_sensor_data, raw=True)
            self.create_subscription(PointCloud2, "/sensing/lidar/top/points", self.on_points,
                                     qos_profile_sensor_data, raw=True)

        def answer(self, raw, topic, publishers):
            stamp = read_stamp_ns(raw)
            if self.offset is None or (topic, stamp - self.offset) not in truth:
                self.offset = stamp - first  # a new replay (or the warm-up) began
            time.sleep(delay_s)
            bag_stamp = stamp - self.offset
            if (topic, bag_stamp) in truth:
                reply = shift_stamp(truth[(topic, bag_stamp)], self.offset)
                for publisher in publishers:
                    publisher.publish(reply)

        def on_image(self, raw):
            self.answer(raw, "/ground_truth/camera/front/boxes", [self.camera])

        def on_points(self, raw):
            self.answer(raw, "/ground_truth/objects", [self.lidar, self.objects])

    rclpy.init()
    node = Oracle()
    print("oracle ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
''')

LAUNCH = textwrap.dedent('''
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, ExecuteProcess
    from launch.substitutions import LaunchConfiguration

    def generate_launch_description():
        return LaunchDescription([
            DeclareLaunchArgument("variant", default_value="baseline", description="label"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="clock"),
            DeclareLaunchArgument("shift_m", default_value="0.0", description="box shift"),
            ExecuteProcess(cmd=[{python!r}, {oracle!r}, {bag!r},
                                LaunchConfiguration("shift_m"), "0.02"],
                           name="oracle", output="screen"),
        ])
''')


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    from ad_perception.sim.bag_output import generate_bag

    folder = tmp_path_factory.mktemp("live")
    bag = generate_bag(folder / "drive", 5, 13, "mcap", "default", progress=False)
    (folder / "oracle.py").write_text(ORACLE)
    launch = folder / "oracle.launch.py"
    launch.write_text(LAUNCH.format(python=sys.executable, oracle=str(folder / "oracle.py"),
                                    bag=str(bag)))
    models = folder / "models"
    models.mkdir()
    for name in ("camera.pt", "lidar.pt"):  # placeholders the oracle graph never loads
        (models / name).write_bytes(b"")
    return bag, launch, models


def _live(bag, launch, models, out, *extra):
    code = main(["eval", str(bag), "--mode", "live", "--variants", "baseline",
                 "--launch", str(launch), "--out", str(out), "--no-progress",
                 "--camera-checkpoint", str(models / "camera.pt"),
                 "--lidar-checkpoint", str(models / "lidar.pt"), *extra])
    return code, json.loads((out / "results.json").read_text())


def test_live_replay_records_and_scores_outputs(graph, tmp_path, capsys):
    bag, launch, models = graph
    code, results = _live(bag, launch, models, tmp_path / "out")
    assert code == 0, capsys.readouterr().err
    entry = results["variants"]["baseline"]
    assert entry["camera"]["map50"] == pytest.approx(1.0)
    assert entry["lidar"]["map_bev"] == pytest.approx(1.0)
    assert entry["fused"]["map_bev"] == pytest.approx(1.0)
    assert entry["drops"]["fused"] == {"frames_in": 5, "frames_out": 5, "dropped": 0}
    assert entry["drops"]["camera"]["dropped"] == 0
    latency = entry["latency_ms"]
    assert latency["count"] == 5
    assert 20.0 <= latency["p50"] <= latency["p99"] <= latency["max"] < 2000.0
    assert entry["latency_kind"] == "end_to_end (fused output)"
    (recording,) = (tmp_path / "out" / "recordings" / "baseline").iterdir()
    assert (recording / "outputs" / "metadata.yaml").exists()
    assert json.loads((recording / "outputs" / "replay.json").read_text())["stamp_offset_ns"] > 0
    assert "oracle ready" in (recording / "launch.log").read_text()
    assert (tmp_path / "out" / "latency_cdf.png").exists()


@pytest.mark.slow
def test_live_replay_at_double_rate_with_clock_and_perturbed_graph(graph, tmp_path):
    bag, launch, models = graph
    code, results = _live(bag, launch, models, tmp_path / "out", "--rate", "2", "--clock",
                          "--launch-arg", "shift_m:=1.0")
    entry = results["variants"]["baseline"]
    assert code == 0
    assert entry["camera"]["map50"] == pytest.approx(1.0)
    assert entry["fused"]["map_bev"] < 0.5
    assert entry["fused"]["class_accuracy"] == 1.0  # 1 m is within the 2 m class match
    assert results["replay"] == {"rate": 2.0, "clock": True}
    assert 20.0 <= entry["latency_ms"]["p50"] < 2000.0


def test_a_graph_that_dies_is_reported_with_its_last_words(graph, tmp_path):
    bag, _, models = graph
    launch = tmp_path / "dying.launch.py"
    launch.write_text(textwrap.dedent(f'''
        from launch import LaunchDescription
        from launch.actions import ExecuteProcess

        def generate_launch_description():
            return LaunchDescription([ExecuteProcess(
                cmd=[{sys.executable!r}, "-c", "print('model file is corrupt'); raise "
                     "SystemExit(3)"], name="detector", output="screen")])
    '''))
    code, results = _live(bag, launch, models, tmp_path / "out")
    assert code == 1
    (failure,) = results["failed"]
    assert "live replay failed" in failure["error"]
    assert "model file is corrupt" in failure["error"]

"""Slow end-to-end runs of the other entry points: the CARLA preset on a carla-layout drive
(bgra8 images, float32-intensity clouds, /clock), bag_eval.launch.py from start to summary,
and the pipeline benchmark's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("vision_msgs.msg")
from test_perception_launch import (
    OUTPUTS,
    TINY_CAMERA,
    TINY_LIDAR,
    Listener,
    _stamp,
)

from ad_perception.data.bag_io import read_messages, stamp_ns
from ad_perception.models.camera_detector import build_camera_detector
from ad_perception.models.checkpoint import save_checkpoint
from ad_perception.models.lidar_detector import build_lidar_detector
from ad_perception.ros.bag_player import BagPlayer
from ad_perception.ros.launch_runner import LaunchRunner
from ad_perception.ros.replay_when_ready import graph_ready
from ad_perception.ros_env import ros_environment
from ad_perception.sim.bag_output import generate_bag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    produced_by = {"command": "pytest", "seed": 0, "data": "none"}
    save_checkpoint(build_camera_detector(TINY_CAMERA), folder / "camera.pt", TINY_CAMERA,
                    produced_by)
    save_checkpoint(build_lidar_detector(TINY_LIDAR), folder / "lidar.pt", TINY_LIDAR,
                    produced_by)
    return {"camera_model": str(folder / "camera.pt"), "lidar_model": str(folder / "lidar.pt")}


def test_carla_preset_with_sim_time(models, tmp_path):
    bag = generate_bag(tmp_path / "carla", 5, seed=4, preset_name="carla", progress=False,
                       workers=1)
    image, points = "/carla/ego_vehicle/rgb_front/image", "/carla/ego_vehicle/lidar"
    handle = LaunchRunner(ROOT / "launch" / "carla_perception.launch.py",
                          models | {"base_frame": "base_link", "summary_dir": str(tmp_path)},
                          output=lambda *line: None).start()
    listener = Listener()
    try:
        player = BagPlayer(listener.node, bag, restamp=True, publish_clock=True, topics=[
            image, "/carla/ego_vehicle/rgb_front/camera_info", points, "/tf_static"])
        assert listener.spin_until(lambda: graph_ready(
            listener.node, list(OUTPUTS)[:3], {image: 1, points: 2}), timeout=90)
        listener.spin_until(lambda: False, timeout=0.5)
        summary = player.play()
        player.close()
        sent = {stamp_ns(m) + summary.stamp_offset_ns for _, _, m in read_messages(bag, [image])}
        assert listener.spin_until(lambda: all(listener.received.values()), timeout=30)
        objects = listener.received["/perception/objects"]
        assert {_stamp(m) for m in objects} <= sent
        assert {m.header.frame_id for m in objects} == {"base_link"}
        assert listener.received["/perception/camera/front/detections"][0].header.frame_id == \
            "ego_vehicle/rgb_front"
        status = listener.status("/camera_detector")
        assert status is not None and status["rejected_total"] == "0"  # bgra8 decoded
    finally:
        listener.close()
        assert handle.stop(30) == 0, handle.lines


def test_bag_eval_launch_replays_and_writes_summaries(models, tmp_path):
    bag = generate_bag(tmp_path / "drive", 5, seed=8, progress=False, workers=1)
    out = tmp_path / "eval"
    handle = LaunchRunner(ROOT / "launch" / "bag_eval.launch.py",
                          models | {"bag": str(bag), "summary_dir": str(out)},
                          output=lambda *line: None).start()
    try:
        deadline = time.monotonic() + 120
        while not (out / "player.json").exists():
            assert time.monotonic() < deadline and not handle.failed, list(handle.lines)[-30:]
            time.sleep(0.2)
        time.sleep(1.5)  # the last frame through the graph
    finally:
        assert handle.stop(30) == 0, list(handle.lines)[-30:]
    player = json.loads((out / "player.json").read_text())
    assert player["published"]["/sensing/lidar/top/points"] == 5
    monitor = json.loads((out / "latency_monitor.json").read_text())
    assert monitor["topics"]["/perception/objects"]["totals"]["count"] >= 3
    for node in ("camera_detector", "lidar_detector", "fusion"):
        assert json.loads((out / f"{node}.json").read_text())["published"] >= 3


def test_bench_pipeline_json_shape(models, tmp_path):
    bag = generate_bag(tmp_path / "drive", 10, seed=9, progress=False, workers=1)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_pipeline.py"), "--json",
         str(tmp_path / "bench.json"), "--bag", str(bag), "--variants",
         "baseline,no_such_variant", "--modes", "composed", "--warmup-s", "0", "--camera-model",
         models["camera_model"], "--lidar-model", models["lidar_model"]],
        env=ros_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "bench.json").read_text())["variants"]
    ok, missing = rows
    assert missing["status"] == "missing" and "unknown variant" in missing["reason"]
    for key in ("name", "mode", "e2e_ms_p50", "e2e_ms_p99", "frames_in", "frames_out",
                "dropped", "ros_overhead_share", "cpu_percent", "warmup_frames"):
        assert key in ok
    assert ok["mode"] == "composed" and ok["frames_in"] == 10 and ok["warmup_frames"] == 0
    assert 0 < ok["frames_out"] <= 10 and 0 < ok["e2e_ms_p50"] <= ok["e2e_ms_p99"]
    assert 0.0 < ok["ros_overhead_share"] < 1.0 and ok["cpu_percent"] > 0
    assert "baseline" in result.stdout and "e2e p99" in result.stdout

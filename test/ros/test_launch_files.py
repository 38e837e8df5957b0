"""launch/*.launch.py evaluated by the launch runner (nothing started): the nodes, their
parameters files, remappings and overrides for each mode and preset. The launched behaviour
itself is covered by test/e2e/test_perception_launch.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ad_perception.ros.launch_runner import LaunchArgumentError, LaunchError, LaunchRunner

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
NODES = ["camera_detector", "lidar_detector", "fusion", "latency_monitor"]


def _plan(name: str, **arguments: str):
    plan = LaunchRunner(LAUNCH / name, arguments, output=lambda *line: None).plan()
    try:
        return {spec.name: (spec.cmd, {Path(p).name: yaml.safe_load(t)
                                       for p, t in spec.params_files.items()})
                for spec in plan.processes}
    finally:
        plan.close()


def _remaps(cmd: list[str]) -> dict[str, str]:
    pairs = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-r"]
    return dict(pair.split(":=", 1) for pair in pairs if not pair.startswith("__"))


def _params_files(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--params-file"]


def _generated(files: dict) -> dict:
    (content,) = files.values()
    (section,) = content.values()
    return section["ros__parameters"]


def test_one_process_per_node_on_design_topics():
    plan = _plan("perception.launch.py", camera_model="/models/cam", summary_dir="/tmp/out",
                 composed="false")
    assert list(plan) == NODES
    camera_cmd, camera_files = plan["camera_detector"]
    assert Path(camera_cmd[0]).name == "camera_detector"
    # before --ros-args, every node
    assert camera_cmd[1:5] == ["--executor", "events", "--rt-priority", "0"]
    single = _plan("perception.launch.py", executor="single", rt_priority="20",
                   composed="false")
    assert all(cmd[1:5] == ["--executor", "single", "--rt-priority", "20"]
               for cmd, _ in single.values())
    assert _remaps(camera_cmd) == {"image": "/sensing/camera/front/image_raw",
                                   "camera_info": "/sensing/camera/front/camera_info",
                                   "detections": "/perception/camera/front/detections"}
    assert [Path(p).name for p in _params_files(camera_cmd)[:4]] == [f"{n}.yaml" for n in NODES]
    assert all(Path(p).is_file() for p in _params_files(camera_cmd)[:4])
    params = _generated(camera_files)
    assert params["model_path"] == "/models/cam" and params["threads"] == 1
    assert params["summary_path"] == "/tmp/out/camera_detector.json"
    assert "model_path" not in _generated(plan["lidar_detector"][1])  # from the variant
    default = _plan("perception.launch.py", composed="false")
    assert "summary_path" not in _generated(default["fusion"][1])
    assert _generated(default["latency_monitor"][1])["summary_path"].endswith(
        "ad_perception/latency_summary.json")  # the monitor always reports
    fusion_remaps = _remaps(plan["fusion"][0])
    assert fusion_remaps["objects"] == "/perception/objects"
    assert fusion_remaps["objects/markers"] == "/perception/objects/markers"
    assert _generated(plan["latency_monitor"][1])["topics"] == [
        "/perception/camera/front/detections", "/perception/lidar/detections",
        "/perception/objects"]


def test_composed_mode_is_one_process_with_node_scoped_remaps():
    plan = _plan("perception.launch.py", composed="true", lidar_model="/models/lidar",
                 namespace="vehicle", device="cuda:1", with_monitor="false")
    (name,) = plan
    cmd, files = plan[name]
    assert Path(cmd[0]).name == "perception_composed"
    assert cmd[1:9] == ["--nodes", "camera_detector,lidar_detector,fusion",
                        "--executor", "events", "--rt-priority", "0",
                        "--lidar-model", "/models/lidar"]
    assert cmd[9] == "--monitor-summary" and cmd[10].endswith("ad_perception/latency_summary.json")
    assert "__ns:=/vehicle" in cmd
    remaps = _remaps(cmd)
    assert remaps["camera_detector:image"] == "/sensing/camera/front/image_raw"
    assert remaps["fusion:lidar/detections"] == "/perception/lidar/detections"
    assert _generated(files)["device"] == "cuda:1"


def test_a_node_list_shares_one_process_and_the_rest_run_alone():
    # the default layout: the lidar detector and the fusion share one process
    plan = _plan("perception.launch.py", lidar_model="/models/lidar", camera_model="/models/cam")
    assert sorted(plan) == ["camera_detector", "latency_monitor", "perception_composed"]
    cmd, _ = plan["perception_composed"]
    assert cmd[1:9] == ["--nodes", "lidar_detector,fusion", "--executor", "events",
                        "--rt-priority", "0", "--lidar-model", "/models/lidar"]
    remaps = _remaps(cmd)
    assert remaps["lidar_detector:points"] == "/sensing/lidar/top/points"
    assert remaps["fusion:objects"] == "/perception/objects"
    assert not any(key.startswith("camera_detector:") for key in remaps)
    camera_cmd, camera_files = plan["camera_detector"]
    assert _generated(camera_files)["model_path"] == "/models/cam"
    assert _remaps(camera_cmd)["image"] == "/sensing/camera/front/image_raw"
    with pytest.raises(LaunchError, match=r"composed: unknown node\(s\) \['fuson'\]; give"):
        _plan("perception.launch.py", composed="lidar_detector,fuson")


def test_carla_preset_remaps_bridge_topics_and_adds_its_overrides():
    plan = _plan("carla_perception.launch.py", role_name="hero")
    camera_cmd, files = plan["camera_detector"]
    assert _remaps(camera_cmd)["image"] == "/carla/hero/rgb_front/image"
    assert _remaps(plan["lidar_detector"][0])["points"] == "/carla/hero/lidar"
    assert Path(_params_files(camera_cmd)[4]).name == "carla.yaml"
    params = _generated(plan["fusion"][1])
    assert params["base_frame"] == "hero" and params["use_sim_time"] is True
    assert camera_cmd[1:5] == ["--executor", "events", "--rt-priority", "0"]
    forwarded = _plan("carla_perception.launch.py", rt_priority="15")["fusion"][0]
    assert forwarded[3:5] == ["--rt-priority", "15"]


def test_bag_eval_needs_a_bag_and_replays_when_the_graph_is_ready(tmp_path):
    with pytest.raises(LaunchArgumentError, match="'bag'"):
        _plan("bag_eval.launch.py")
    plan = _plan("bag_eval.launch.py", bag=str(tmp_path / "drive"), summary_dir=str(tmp_path))
    assert list(plan) == [*NODES, "bag_player"]
    player = plan["bag_player"][0]
    assert player[1:4] == ["-m", "ad_perception.ros.replay_when_ready", str(tmp_path / "drive")]
    assert "/perception/objects" in player and str(tmp_path / "player.json") in player
    # the player also waits for the latency monitor's subscriptions (it subscribes to an
    # output only once discovery shows it, and a short bag could pass before that)
    consumers = player[player.index("--consumers") + 1:player.index("--summary-json")]
    assert consumers == ["/perception/camera/front/detections", "/perception/lidar/detections",
                         "/perception/objects"]
    assert _generated(plan["fusion"][1])["summary_path"] == str(tmp_path / "fusion.json")


def test_misconfigured_graph_stops_with_the_reason(tmp_path):
    """A detector refusing its parameters exits 2; the launch stops the others, fails."""
    handle = LaunchRunner(LAUNCH / "perception.launch.py",
                          {"backend": "tflite", "camera_model": str(tmp_path / "none.pt"),
                           "summary_dir": str(tmp_path)},
                          output=lambda *line: None).start()
    try:
        assert handle.wait(60) == 1
    finally:
        handle.stop(10)
    assert handle.failed in ("camera_detector", "lidar_detector")
    errors = "\n".join(handle.output_of("camera_detector"))
    assert "configuration error" in errors and "'backend' = 'tflite'" in errors

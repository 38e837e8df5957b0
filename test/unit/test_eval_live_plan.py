"""Planning a live replay (no ROS): launch arguments only where the launch file declares
them, the player remapping bag topics where it does not, templated --launch-arg values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ad_perception.eval.live_plan import LivePlanError, default_launch_file, plan_live
from ad_perception.eval.runner import VariantModels
from ad_perception.eval.topic_map import ResolvedTopics, TopicMap

PERCEPTION_ARGS = {"variant", "camera_model", "lidar_model", "use_sim_time", "image_topic",
                   "camera_info_topic", "points_topic", "camera_detections_topic",
                   "lidar_detections_topic", "objects_topic", "summary_dir"}
VARIANT = VariantModels("int8", Path("/m/camera_int8"), Path("/m/lidar_int8"))
CARLA = ResolvedTopics(image="/carla/ego_vehicle/rgb_front/image",
                       camera_info="/carla/ego_vehicle/rgb_front/camera_info",
                       points="/carla/ego_vehicle/lidar", tf_static="/tf")
LAUNCH = Path("perception.launch.py")


def test_full_launch_file_gets_models_topics_and_clock():
    plan = plan_live(PERCEPTION_ARGS, LAUNCH, VARIANT, CARLA, TopicMap(), clock=True,
                     user_arguments=[], summary_dir=Path("/tmp/s"))
    assert plan.arguments["camera_model"] == "/m/camera_int8"
    assert plan.arguments["variant"] == "int8" and plan.arguments["use_sim_time"] == "true"
    assert plan.arguments["points_topic"] == "/carla/ego_vehicle/lidar"
    assert plan.remap == {"/tf": "/tf_static"}  # extrinsics always go to /tf_static
    assert plan.inputs == ["/carla/ego_vehicle/rgb_front/image", "/carla/ego_vehicle/lidar"]
    assert set(plan.outputs) == {"/perception/camera/front/detections",
                                 "/perception/lidar/detections", "/perception/objects"}
    assert plan.notes == []


def test_minimal_launch_file_gets_remapped_inputs_and_notes():
    plan = plan_live(set(), LAUNCH, VARIANT, CARLA, TopicMap(), clock=True, user_arguments=[])
    assert plan.arguments == {}
    assert plan.remap["/carla/ego_vehicle/lidar"] == "/sensing/lidar/top/points"
    assert plan.inputs == ["/sensing/camera/front/image_raw", "/sensing/lidar/top/points"]
    assert any("no camera_model argument" in n for n in plan.notes)
    assert any("use_sim_time" in n for n in plan.notes)


def test_output_topics_follow_the_mapping():
    mapping = TopicMap.from_dict({"topics": {"objects": "/stack/objects"}})
    plan = plan_live(PERCEPTION_ARGS, LAUNCH, VARIANT, CARLA, mapping, False, [])
    assert plan.arguments["objects_topic"] == "/stack/objects"
    assert "/stack/objects" in plan.outputs


def test_user_arguments_are_templated_and_checked():
    plan = plan_live(PERCEPTION_ARGS, LAUNCH, VARIANT, CARLA, TopicMap(), False,
                     ["extra_params:=/p/{variant}.yaml", "device:=cpu"])
    assert plan.arguments["extra_params"] == "/p/int8.yaml"
    with pytest.raises(LivePlanError, match="NAME:=VALUE"):
        plan_live(set(), LAUNCH, VARIANT, CARLA, TopicMap(), False, ["device=cpu"])
    with pytest.raises(LivePlanError, match="placeholder"):
        plan_live(set(), LAUNCH, VARIANT, CARLA, TopicMap(), False, ["x:={model}"])


def test_default_launch_file(tmp_path):
    with pytest.raises(LivePlanError, match="--launch FILE"):
        default_launch_file(tmp_path)
    (tmp_path / "bag_eval.launch.py").write_text("")  # plays the bag itself: not for us
    with pytest.raises(LivePlanError):
        default_launch_file(tmp_path)
    (tmp_path / "perception.launch.py").write_text("")
    assert default_launch_file(tmp_path).name == "perception.launch.py"

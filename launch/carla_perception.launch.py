"""The perception graph on carla-ros-bridge topics.

    ros2 launch ad_perception carla_perception.launch.py role_name:=ego_vehicle

The bridge publishes ``/carla/<role>/<camera>/image`` (bgra8, converted by the camera node),
``.../camera_info`` and ``/carla/<role>/<lidar>`` (x, y, z, intensity, all float32), runs in
synchronous 0.05 s steps with /clock (hence use_sim_time true), and names the vehicle frame
after the role. config/carla.yaml adds /tf as an extrinsics source and a half-step sync
tolerance. Everything else is perception.launch.py.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

HERE = os.path.dirname(os.path.abspath(__file__))
CARLA_PARAMS = os.path.join(HERE, "..", "config", "carla.yaml")
FORWARDED = ("variant", "camera_model", "lidar_model", "backend", "device", "precision",
             "threads", "namespace", "composed", "executor", "rt_priority", "with_monitor",
             "summary_dir",
             "log_level")


def generate_launch_description():
    role = LaunchConfiguration("role_name")
    camera = LaunchConfiguration("camera_name")
    lidar = LaunchConfiguration("lidar_name")
    arguments = [
        DeclareLaunchArgument("role_name", default_value="ego_vehicle",
                              description="carla-ros-bridge role name of the ego vehicle"),
        DeclareLaunchArgument("camera_name", default_value="rgb_front",
                              description="camera sensor id in the bridge's objects file"),
        DeclareLaunchArgument("lidar_name", default_value="lidar",
                              description="lidar sensor id in the bridge's objects file"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="the bridge publishes /clock in synchronous mode"),
        DeclareLaunchArgument("base_frame", default_value=role,
                              description="frame of the fused objects (the bridge's vehicle "
                              "frame is named after the role)"),
    ]
    forwarded = {name: LaunchConfiguration(name) for name in FORWARDED}
    defaults = {"variant": "baseline", "backend": "auto", "device": "cpu", "precision": "auto",
                "threads": "1", "composed": "false", "executor": "events", "rt_priority": "0",
                "with_monitor": "true",
                "log_level": "info"}
    arguments += [DeclareLaunchArgument(name, default_value=defaults.get(name, ""),
                                        description=f"passed to perception.launch.py ({name})")
                  for name in FORWARDED]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(HERE, "perception.launch.py")),
        launch_arguments=(forwarded | {
            "image_topic": ["/carla/", role, "/", camera, "/image"],
            "camera_info_topic": ["/carla/", role, "/", camera, "/camera_info"],
            "points_topic": ["/carla/", role, "/", lidar],
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "base_frame": LaunchConfiguration("base_frame"),
            "extra_params": CARLA_PARAMS,
        }).items(),
    )
    return LaunchDescription([*arguments, include])

"""Replay a rosbag2 through the perception graph and record what came out, how late.

    ros2 launch ad_perception bag_eval.launch.py bag:=data/drive variant:=baseline

Starts perception.launch.py and a player that waits until the detectors have loaded their
models and the latency monitor has subscribed to their outputs, then replays the sensor
topics restamped to wall time (so end-to-end latency is real). Each node writes its JSON
summary to ``summary_dir`` when the launch is stopped
(Ctrl-C once the player has finished); ``player.json`` there holds the stamp offset that
maps outputs back onto the bag's ground truth.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution

HERE = os.path.dirname(os.path.abspath(__file__))
FORWARDED = {"variant": "baseline", "camera_model": "", "lidar_model": "", "backend": "auto",
             "device": "cpu", "precision": "auto", "threads": "1", "composed": "false",
             "image_topic": "/sensing/camera/front/image_raw",
             "camera_info_topic": "/sensing/camera/front/camera_info",
             "points_topic": "/sensing/lidar/top/points", "base_frame": "base_link",
             "extra_params": "", "log_level": "info"}
OUTPUTS = ("/perception/camera/front/detections", "/perception/lidar/detections",
           "/perception/objects")


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("bag", description="rosbag2 folder to replay (mcap or sqlite3)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed"),
        DeclareLaunchArgument("summary_dir", default_value="bag_eval_out",
                              description="where the nodes and the player write JSON"),
    ] + [DeclareLaunchArgument(name, default_value=default,
                               description=f"passed to perception.launch.py ({name})")
         for name, default in FORWARDED.items()]
    summary_dir = LaunchConfiguration("summary_dir")
    graph = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(HERE, "perception.launch.py")),
        launch_arguments=[(name, LaunchConfiguration(name)) for name in FORWARDED]
        + [("summary_dir", summary_dir)],
    )
    player = ExecuteProcess(
        cmd=[sys.executable, "-m", "ad_perception.ros.replay_when_ready",
             LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate"),
             "--topics", LaunchConfiguration("image_topic"),
             LaunchConfiguration("camera_info_topic"), LaunchConfiguration("points_topic"),
             "/tf_static", "--outputs", *OUTPUTS, "--consumers", *OUTPUTS,
             "--summary-json", PathJoinSubstitution([summary_dir, "player.json"])],
        name="bag_player", output="screen")
    return LaunchDescription([*arguments, graph, player])

"""The perception graph: camera_detector, lidar_detector, fusion and latency_monitor.

    ros2 launch ad_perception perception.launch.py variant:=baseline device:=cpu
    ad-perception launch perception.launch.py composed:=true     # (pip ROS, no launch_ros)

By default the lidar detector and the fusion share one process and the camera detector and
the latency monitor run alone (``composed:=lidar_detector,fusion``: one process receives the
2 MB cloud both need, and the camera keeps its own GIL); ``composed:=false`` runs one process
per node, ``composed:=true`` all of them in one; rclpy's
EventsExecutor in every process by default (``executor:=single`` or ``multi`` for the
classic ones). Per-node settings live in config/<node>.yaml; the arguments below override
the model settings, topics and frames. Topic arguments remap the nodes' relative names
(image, camera_info, points, detections, objects), so the graph can sit on any sensor
layout, e.g. carla-ros-bridge (carla_perception.launch.py).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODES = ("camera_detector", "lidar_detector", "fusion", "latency_monitor")

ARGUMENTS = [
    # (name, default, description)
    ("variant", "baseline", "model variant (ad_perception.eval.variants): baseline, or a "
     "compressed one"),
    ("camera_model", "", "camera model file or variant directory (overrides variant)"),
    ("lidar_model", "", "lidar model file or variant directory (overrides variant)"),
    ("backend", "auto", "auto | torch | onnxruntime | openvino | tensorrt"),
    ("device", "cpu", "cpu | cuda | cuda:N | auto (cuda without a GPU falls back to cpu)"),
    ("precision", "auto", "auto | fp32 | fp16 | bf16 | int8"),
    ("threads", "1", "inference threads per detector"),
    ("namespace", "", "namespace of the perception nodes"),
    ("use_sim_time", "false", "use /clock (bag replay with --clock, CARLA)"),
    ("composed", "lidar_detector,fusion", "process layout: a comma-separated list of nodes "
     "sharing one process, the others one process each (default: the lidar detector and the "
     "fusion, the lowest ROS overhead measured on 2 cores), false (one process per node) or "
     "true (all nodes in one process)"),
    ("executor", "events", "executor of every node process (and of the composed one): events "
     "(rclpy's EventsExecutor), single (SingleThreadedExecutor) or multi "
     "(MultiThreadedExecutor); the detectors infer in worker threads either way"),
    ("rt_priority", "0", "SCHED_FIFO priority of each process's executor and DDS receive "
     "threads, above inference (0: off; needs CAP_SYS_NICE or ulimit -r)"),
    ("with_monitor", "true", "start the latency_monitor"),
    ("image_topic", "/sensing/camera/front/image_raw", "camera image (sensor_msgs/Image)"),
    ("camera_info_topic", "/sensing/camera/front/camera_info", "sensor_msgs/CameraInfo"),
    ("points_topic", "/sensing/lidar/top/points", "lidar cloud (sensor_msgs/PointCloud2)"),
    ("camera_detections_topic", "/perception/camera/front/detections",
     "camera detector output (vision_msgs/Detection2DArray)"),
    ("lidar_detections_topic", "/perception/lidar/detections",
     "lidar detector output (vision_msgs/Detection3DArray)"),
    ("objects_topic", "/perception/objects", "fused objects for planning (Detection3DArray)"),
    ("base_frame", "base_link", "frame of the fused objects"),
    ("config_dir", "", "folder with <node>.yaml (default: the package's config/)"),
    ("extra_params", "", "a parameters YAML loaded after the per-node files"),
    ("summary_dir", "", "write each node's JSON summary here at shutdown ('' = only the "
     "latency monitor's, to $ROS_HOME/ad_perception/latency_summary.json)"),
    ("log_level", "info", "ROS log level of the nodes"),
]


def _remaps(topics: dict) -> dict:
    """Relative topic name of each node -> the topic argument's value."""
    return {
        "camera_detector": [("image", topics["image"]), ("camera_info", topics["info"]),
                            ("detections", topics["camera"])],
        "lidar_detector": [("points", topics["points"]), ("detections", topics["lidar"])],
        "fusion": [("camera/detections", topics["camera"]),
                   ("lidar/detections", topics["lidar"]), ("camera_info", topics["info"]),
                   ("points", topics["points"]), ("objects", topics["objects"]),
                   ("objects/markers", topics["objects"] + "/markers")],
        "latency_monitor": [],
    }


def _composed_nodes(value: str, names: list) -> list:
    """The nodes the ``composed`` argument puts into one process, in graph order."""
    text = value.strip()
    if text.lower() in ("false", ""):
        return []
    if text.lower() == "true":
        return list(names)
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(NODES))
    if unknown:
        raise ValueError(f"composed: unknown node(s) {unknown}; give true, false or a "
                         f"comma-separated list of {', '.join(NODES)}")
    return [n for n in names if n in chosen]


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    config_dir = arg("config_dir") or os.path.join(
        FindPackageShare("ad_perception").perform(context), "config")
    topics = {"image": arg("image_topic"), "info": arg("camera_info_topic"),
              "points": arg("points_topic"), "camera": arg("camera_detections_topic"),
              "lidar": arg("lidar_detections_topic"), "objects": arg("objects_topic")}
    files = [os.path.join(config_dir, f"{name}.yaml") for name in NODES]
    if arg("extra_params"):
        files.append(arg("extra_params"))
    common = {"use_sim_time": arg("use_sim_time").lower() == "true",
              "variant": arg("variant"), "backend": arg("backend"), "device": arg("device"),
              "precision": arg("precision"), "threads": int(arg("threads")),
              "base_frame": arg("base_frame"),
              "topics": [topics["camera"], topics["lidar"], topics["objects"]]}
    models = {"camera_detector": arg("camera_model"), "lidar_detector": arg("lidar_model")}
    summary_dir = arg("summary_dir")
    ros_home = context.environment.get("ROS_HOME") or os.path.expanduser("~/.ros")
    default_summary = os.path.join(ros_home, "ad_perception", "latency_summary.json")
    names = [n for n in NODES if n != "latency_monitor" or arg("with_monitor") == "true"]
    namespace = arg("namespace")
    ros_arguments = ["--log-level", arg("log_level")]

    nodes = []
    together = _composed_nodes(arg("composed"), names)
    if together:
        cli = ["--nodes", ",".join(together), "--executor", arg("executor"),
               "--rt-priority", arg("rt_priority")]
        for name, path in models.items():
            if path and name in together:
                cli += [f"--{name.split('_')[0]}-model", path]
        cli += (["--summary-dir", summary_dir] if summary_dir
                else ["--monitor-summary", default_summary])
        remappings = [(f"{name}:{source}", target)
                      for name, pairs in _remaps(topics).items() if name in together
                      for source, target in pairs]
        nodes.append(Node(package="ad_perception", executable="perception_composed",
                          namespace=namespace, arguments=cli, parameters=[*files, common],
                          remappings=remappings, ros_arguments=ros_arguments,
                          output="screen"))
    for name in (n for n in names if n not in together):
        own = dict(common)
        if models.get(name):
            own["model_path"] = models[name]
        if summary_dir:
            own["summary_path"] = os.path.join(summary_dir, f"{name}.json")
        elif name == "latency_monitor":
            own["summary_path"] = default_summary
        nodes.append(Node(package="ad_perception", executable=name, name=name,
                          namespace=namespace,
                          arguments=["--executor", arg("executor"),
                                     "--rt-priority", arg("rt_priority")],
                          parameters=[*files, own],
                          remappings=_remaps(topics)[name], ros_arguments=ros_arguments,
                          output="screen"))
    return nodes


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])

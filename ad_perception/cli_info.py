"""``ad-perception info``: what this installation can run, for bug reports and CI logs."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform

from ad_perception import __version__
from ad_perception.ros_env import fastdds_profile_path

OPTIONAL_MODULES = (
    "numpy", "torch", "torchvision", "onnxruntime", "openvino", "nncf", "torch_pruning",
    "rosbags", "cv2", "moderngl", "trimesh", "rclpy", "vision_msgs", "tf2_msgs",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _version_of(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None
    return str(getattr(module, "__version__", "present"))


def run(args: argparse.Namespace) -> int:
    info = {
        "ad_perception": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "modules": {name: _version_of(name) for name in OPTIONAL_MODULES},
        "fastdds_profile": str(fastdds_profile_path()),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            for name, version in value.items():
                print(f"  {name:14s} {version or 'missing'}")
        else:
            print(f"{key}: {value}")
    return 0

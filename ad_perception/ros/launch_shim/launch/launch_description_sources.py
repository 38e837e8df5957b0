"""Shim of ``launch.launch_description_sources`` (Python launch files only)."""

from ad_perception.ros.launch_shim._actions import (
    AnyLaunchDescriptionSource as AnyLaunchDescriptionSource,
)
from ad_perception.ros.launch_shim._actions import (
    PythonLaunchDescriptionSource as PythonLaunchDescriptionSource,
)

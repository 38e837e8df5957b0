"""Shim of ``launch_ros.substitutions``."""

from ad_perception.ros.launch_shim._ros import FindPackageShare as FindPackageShare

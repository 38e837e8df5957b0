"""Shim of ``launch.conditions``."""

from ad_perception.ros.launch_shim._base import IfCondition as IfCondition
from ad_perception.ros.launch_shim._base import UnlessCondition as UnlessCondition

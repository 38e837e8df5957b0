"""Shim of ROS 2 ``launch`` (top-level names); installed as ``launch`` only by the runner."""

from ad_perception.ros.launch_shim._actions import ProcessSpec as ProcessSpec
from ad_perception.ros.launch_shim._base import Action as Action
from ad_perception.ros.launch_shim._base import Condition as Condition
from ad_perception.ros.launch_shim._base import LaunchContext as LaunchContext
from ad_perception.ros.launch_shim._base import LaunchDescription as LaunchDescription
from ad_perception.ros.launch_shim._base import (
    LaunchDescriptionEntity as LaunchDescriptionEntity,
)
from ad_perception.ros.launch_shim._base import Substitution as Substitution

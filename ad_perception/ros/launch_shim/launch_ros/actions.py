"""Shim of ``launch_ros.actions``: Node and namespace pushing."""

from ad_perception.ros.launch_shim._ros import Node as Node
from ad_perception.ros.launch_shim._ros import PushROSNamespace as PushROSNamespace
from ad_perception.ros.launch_shim._ros import PushRosNamespace as PushRosNamespace

"""Shim of ``launch_ros.parameter_descriptions``."""

from ad_perception.ros.launch_shim._ros import ParameterFile as ParameterFile
from ad_perception.ros.launch_shim._ros import ParameterValue as ParameterValue

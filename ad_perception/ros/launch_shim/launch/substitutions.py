"""Shim of ``launch.substitutions``: the supported subset."""

from ad_perception.ros.launch_shim._base import EnvironmentVariable as EnvironmentVariable
from ad_perception.ros.launch_shim._base import FindExecutable as FindExecutable
from ad_perception.ros.launch_shim._base import LaunchConfiguration as LaunchConfiguration
from ad_perception.ros.launch_shim._base import PathJoinSubstitution as PathJoinSubstitution
from ad_perception.ros.launch_shim._base import PythonExpression as PythonExpression
from ad_perception.ros.launch_shim._base import TextSubstitution as TextSubstitution

"""Shim of ``launch.actions``: the supported subset (see launch_runner.py)."""

from ad_perception.ros.launch_shim._actions import DeclareLaunchArgument as DeclareLaunchArgument
from ad_perception.ros.launch_shim._actions import ExecuteProcess as ExecuteProcess
from ad_perception.ros.launch_shim._actions import GroupAction as GroupAction
from ad_perception.ros.launch_shim._actions import (
    IncludeLaunchDescription as IncludeLaunchDescription,
)
from ad_perception.ros.launch_shim._actions import LogInfo as LogInfo
from ad_perception.ros.launch_shim._actions import OpaqueFunction as OpaqueFunction
from ad_perception.ros.launch_shim._actions import (
    PopLaunchConfigurations as PopLaunchConfigurations,
)
from ad_perception.ros.launch_shim._actions import (
    PushLaunchConfigurations as PushLaunchConfigurations,
)
from ad_perception.ros.launch_shim._actions import (
    SetEnvironmentVariable as SetEnvironmentVariable,
)
from ad_perception.ros.launch_shim._actions import (
    SetLaunchConfiguration as SetLaunchConfiguration,
)
from ad_perception.ros.launch_shim._actions import (
    UnsetEnvironmentVariable as UnsetEnvironmentVariable,
)

"""Shim of ``launch.utilities`` (the helpers OpaqueFunction code tends to call)."""

from ad_perception.ros.launch_shim._base import (
    normalize_to_list_of_substitutions as normalize_to_list_of_substitutions,
)
from ad_perception.ros.launch_shim._base import perform_substitutions as perform_substitutions

"""Process environment for anything that starts DDS participants (nodes, tests, demo).

Kept outside ``ros/`` because it imports no ROS module: launchers and the CLI set it before
rclpy is imported, and child processes inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def fastdds_profile_path() -> Path | None:
    """The project Fast DDS profile: source tree first, then an installed share/ copy."""
    candidates = [PACKAGE_ROOT.parent / "config" / "fastdds.xml"]
    try:  # installed with colcon / ament: share/ad_perception/config
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("ad_perception"))
        candidates.append(share / "config" / "fastdds.xml")
    except Exception:  # noqa: BLE001 - ament index absent or package not installed there
        pass
    return next((path for path in candidates if path.is_file()), None)


def ros_environment(base: dict[str, str] | None = None, profile: bool = True) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) with DDS confined to loopback.

    Discovery range LOCALHOST is forced, not defaulted: any other value would let DDS
    multicast on external interfaces. The project Fast DDS profile is applied unless the
    caller set its own or passes ``profile=False`` (e.g. to measure the defaults).
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if profile:
        path = fastdds_profile_path()
        if path is not None:
            env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(path))
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def apply_ros_environment(profile: bool = True) -> None:
    """Set the loopback DDS environment on this process (call before importing rclpy)."""
    os.environ.update(ros_environment(profile=profile))

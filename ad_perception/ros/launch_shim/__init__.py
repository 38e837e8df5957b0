"""A small re-implementation of the ROS 2 ``launch`` / ``launch_ros`` Python API.

The PyPI ROS wheels have no launch system, yet ``launch/*.launch.py`` must stay real
``ros2 launch`` files. :func:`installed` maps the names ``launch`` and ``launch_ros`` to
the facade packages here, only for as long as the runner evaluates a launch file, so
nothing else in the process (or an unrelated PyPI ``launch``, or the repository's own
``launch/`` folder seen as a namespace package) is affected.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

FACADES = (
    "launch", "launch.actions", "launch.conditions", "launch.launch_description_sources",
    "launch.substitutions", "launch.utilities",
    "launch_ros", "launch_ros.actions", "launch_ros.parameter_descriptions",
    "launch_ros.substitutions",
)


def real_launch_ros_available() -> bool:
    """True on a full ROS install, where ``ros2 launch`` is the reference implementation."""
    if "launch_ros" in sys.modules and not getattr(sys.modules["launch_ros"], "_ad_shim", False):
        return True
    try:
        return importlib.util.find_spec("launch_ros") is not None
    except (ImportError, ValueError):
        return False


@contextmanager
def installed() -> Iterator[None]:
    """Make ``import launch`` / ``import launch_ros`` resolve to the shim, then restore."""
    saved = {name: module for name, module in sys.modules.items()
             if name.split(".")[0] in ("launch", "launch_ros")}
    for name in saved:
        del sys.modules[name]
    try:
        for name in FACADES:
            module = importlib.import_module(f"{__name__}.{name}")
            module._ad_shim = True
            sys.modules[name] = module
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in ("launch", "launch_ros")]:
            del sys.modules[name]
        sys.modules.update(saved)

"""Shim of ROS 2 ``launch_ros``; installed as ``launch_ros`` only by the runner."""

"""Test-wide setup: DDS stays on loopback, each run gets its own ROS domain."""

import os
import random

from ad_perception.ros_env import apply_ros_environment

apply_ros_environment()
# A per-run domain keeps concurrent test runs on the same machine from seeing each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))

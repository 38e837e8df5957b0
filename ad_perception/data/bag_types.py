"""The one typestore every bag reader and writer in the project shares.

The ROS distro store from `rosbags` lacks vision_msgs, and tf2_msgs must match upstream byte
for byte, so both are registered from the .msg text kept in ``interfaces/``: the RIHS01 hashes
written into bag metadata then equal the ones a real ROS 2 install computes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACES_DIR = Path(__file__).resolve().parents[2] / "interfaces"
REGISTERED_PACKAGES = ("vision_msgs", "tf2_msgs")
ROS_STORE = Stores.ROS2_KILTED


def _message_definitions(interfaces_dir: Path) -> dict:
    types: dict = {}
    for package in REGISTERED_PACKAGES:
        msg_dir = interfaces_dir / package / "msg"
        files = sorted(msg_dir.glob("*.msg"))
        if not files:
            raise FileNotFoundError(
                f"no .msg files in {msg_dir}: the interfaces/ folder of the ad_perception "
                "source tree is needed to register vision_msgs and tf2_msgs"
            )
        for path in files:
            name = f"{package}/msg/{path.stem}"
            types.update(get_types_from_msg(path.read_text(), name))
    return types


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The ROS 2 Kilted store plus vision_msgs and tf2_msgs from ``interfaces/``."""
    store = get_typestore(ROS_STORE)
    store.register(_message_definitions(INTERFACES_DIR))
    return store

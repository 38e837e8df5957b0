"""ROS-free planning of a rosbag2 replay: what to publish when, and with which stamps.

``ros2 bag play`` is not available in a pip ROS environment, and evaluation needs more than it
offers anyway: latency measured against the wall clock needs the sensor stamps moved to "now"
by one constant offset (relative timing, and matching with ground truth, stay exact once the
offset is subtracted again). Messages are forwarded as raw CDR, so the offset is written into
the serialized header in place instead of deserialising multi-megabyte images.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Types whose first field is std_msgs/Header; used when the bag carries no definitions.
HEADER_FIRST_TYPES = frozenset(
    {
        "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo",
        "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Imu", "sensor_msgs/msg/LaserScan",
        "sensor_msgs/msg/NavSatFix", "nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped",
        "geometry_msgs/msg/TwistStamped", "geometry_msgs/msg/TransformStamped",
        "vision_msgs/msg/Detection2DArray", "vision_msgs/msg/Detection3DArray",
        "vision_msgs/msg/Detection2D", "vision_msgs/msg/Detection3D",
        "vision_msgs/msg/BoundingBox2DArray", "vision_msgs/msg/BoundingBox3DArray",
        "visualization_msgs/msg/Marker", "diagnostic_msgs/msg/DiagnosticArray",
        "autoware_perception_msgs/msg/DetectedObjects",
    }
)
_CDR_LE, _CDR_BE = b"\x00\x01", b"\x00\x00"
NS_PER_S = 1_000_000_000


class ReplayError(RuntimeError):
    """A bag that cannot be replayed (missing, unreadable, nothing to publish)."""


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str
    count: int
    header_first: bool


@dataclass(frozen=True)
class ScheduledMessage:
    """One message to publish ``due_s`` seconds after replay start (already rate-scaled)."""

    due_s: float
    topic: str
    raw: bytes
    bag_time_ns: int


def header_is_first_field(msgtype: str, msgdef: str | None) -> bool:
    """Whether the serialized message starts with a std_msgs/Header (so its stamp sits at
    bytes 4..12 of the CDR payload). Reads the bag's own definition when it has one."""
    if msgdef:
        for line in msgdef.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or "=" in line.split()[-1]:
                continue
            if line.startswith("MSG:") or line.startswith("==="):
                break
            return line.split()[0] in ("std_msgs/Header", "std_msgs/msg/Header", "Header")
    return msgtype in HEADER_FIRST_TYPES


def read_stamp_ns(raw: bytes | memoryview) -> int:
    """Header stamp of a header-first CDR message, in nanoseconds."""
    kind = bytes(raw[:2])
    if kind not in (_CDR_LE, _CDR_BE) or len(raw) < 12:
        raise ReplayError(f"not a CDR message with a header (encapsulation {kind!r})")
    sec, nanosec = struct.unpack_from("<iI" if kind == _CDR_LE else ">iI", raw, 4)
    return sec * NS_PER_S + nanosec


def shift_stamp(raw: bytes | memoryview, offset_ns: int) -> bytes:
    """A copy of a header-first CDR message with its header stamp moved by ``offset_ns``."""
    stamp = read_stamp_ns(raw) + offset_ns
    if stamp < 0:
        raise ReplayError("shifted stamp would be negative")
    patched = bytearray(raw)
    order = "<iI" if bytes(raw[:2]) == _CDR_LE else ">iI"
    struct.pack_into(order, patched, 4, *divmod(stamp, NS_PER_S))
    return bytes(patched)


def open_bag(path: str | Path):
    """A rosbags Reader over a rosbag2 folder, with errors that say what is wrong."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise ReplayError(f"bag not found: {path}")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises several unrelated types for bad bags
        raise ReplayError(f"cannot open bag {path}: {err}") from err
    return reader


def bag_topics(reader) -> list[BagTopic]:
    topics = []
    for connection in reader.connections:
        msgdef = getattr(getattr(connection, "msgdef", None), "data", None)
        topics.append(
            BagTopic(
                connection.topic,
                connection.msgtype,
                connection.msgcount,
                header_is_first_field(connection.msgtype, msgdef),
            )
        )
    return topics


def schedule(
    reader,
    topics: Iterable[str] | None = None,
    rate: float = 1.0,
    stamp_offset_ns: int = 0,
    start_ns: int | None = None,
) -> Iterator[ScheduledMessage]:
    """Messages of the chosen topics in bag-time order, each with its publish time relative
    to the first message divided by ``rate``, stamps shifted by ``stamp_offset_ns``."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    wanted = None if topics is None else set(topics)
    header_first = {t.name: t.header_first for t in bag_topics(reader)}
    connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
    if not connections:
        raise ReplayError(f"none of the topics {sorted(wanted or [])} is in the bag")
    first = start_ns
    for connection, bag_time_ns, raw in reader.messages(connections=connections):
        if first is None:
            first = bag_time_ns
        payload = bytes(raw)
        if stamp_offset_ns and header_first.get(connection.topic):
            payload = shift_stamp(payload, stamp_offset_ns)
        yield ScheduledMessage(
            (bag_time_ns - first) / NS_PER_S / rate, connection.topic, payload, bag_time_ns
        )

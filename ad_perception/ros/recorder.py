"""Record output topics to an mcap bag with their receive times (``ros2 bag record`` is
missing from the pip ROS).

Subscriptions take the raw CDR (``raw=True``): nothing is deserialised on the measurement
path, and the bytes written are exactly what the graph published. The receive time, taken
first thing in the callback, becomes the message's log time, which the scorer turns into
end-to-end latency. Messages are held in memory and written when recording stops, so disk
writes never delay a callback while the pipeline is being measured (outputs are small:
detection arrays).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ad_perception.ros.bag_player import message_class

# Outputs are published reliable, keep-last 1 (DESIGN.md); a reliable reader with a deep
# queue receives every one of them even when the callback runs late.
RECORDER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)


class OutputRecorder:
    """Subscribes to ``topics`` (name -> ``pkg/msg/Type``) on ``node``; ``start()`` begins
    keeping messages, ``save(path)`` writes what was kept as an mcap rosbag2."""

    def __init__(self, node: Node, topics: dict[str, str]) -> None:
        self._types = dict(topics)
        self._lock = threading.Lock()
        self._recording = False
        self._kept: list[tuple[str, int, bytes]] = []
        self.received: dict[str, int] = dict.fromkeys(topics, 0)  # also before start()
        self.last_receive_ns: int = 0
        self._subscriptions = [
            node.create_subscription(message_class(msgtype), topic, self._callback(topic),
                                     RECORDER_QOS, raw=True)
            for topic, msgtype in topics.items()]

    def _callback(self, topic: str):
        def on_message(raw: bytes) -> None:
            receive_ns = time.time_ns()
            with self._lock:
                self.received[topic] += 1
                self.last_receive_ns = receive_ns
                if self._recording:
                    self._kept.append((topic, receive_ns, bytes(raw)))

        return on_message

    def start(self) -> None:
        with self._lock:
            self._recording = True

    def stop(self) -> None:
        with self._lock:
            self._recording = False

    @property
    def kept(self) -> int:
        with self._lock:
            return len(self._kept)

    def save(self, path: Path) -> dict[str, int]:
        """Write the kept messages (log time = receive time); returns counts per topic."""
        from ad_perception.data.bag_writer import BagWriter

        self.stop()
        with self._lock:
            kept = sorted(self._kept, key=lambda item: item[1])
        counts = dict.fromkeys(self._types, 0)
        with BagWriter(path, storage="mcap") as writer:
            for topic, receive_ns, raw in kept:
                writer.write_raw(topic, self._types[topic], receive_ns, raw)
                counts[topic] += 1
        return counts

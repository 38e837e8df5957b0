"""Replay a rosbag2 onto live topics (``ros2 bag play`` is missing from the pip ROS).

Messages go out as the raw CDR recorded in the bag, at the recorded pace or ×rate. With
``restamp`` every header stamp is moved by one constant offset so that stamps read as "now":
latency measured downstream (now minus stamp) is then real, and the offset, written to the
summary, maps outputs back onto the bag's ground truth.
"""

from __future__ import annotations

import importlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ad_perception.eval.replay import NS_PER_S, ReplayError, bag_topics, open_bag, schedule

STATIC_TOPICS = ("/tf_static",)


def message_class(msgtype: str):
    """The generated Python class of ``pkg/msg/Name`` (fails with the package to install)."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as err:
        raise ReplayError(f"message type {msgtype} is not installed here ({err})") from err


def player_qos(topic: str) -> QoSProfile:
    if topic in STATIC_TOPICS:  # late joiners must still get the extrinsics
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100,
            reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class PlaySummary:
    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    stamp_offset_ns: int = 0
    wall_seconds: float = 0.0
    max_lateness_ms: float = 0.0
    # per topic: publish() start minus the message's due time, one value per message; the
    # part of a consumer's "now minus stamp" that the player, not the transport, spent
    lateness_ms: dict[str, list[float]] = field(default_factory=dict)

    def lateness_p50_ms(self, topic: str) -> float:
        values = sorted(self.lateness_ms.get(topic, []))
        return values[len(values) // 2] if values else 0.0


class BagPlayer:
    """Publishes a bag from an existing node; ``play()`` blocks until the bag is done."""

    def __init__(
        self,
        node: Node,
        bag: str | Path,
        rate: float = 1.0,
        topics: list[str] | None = None,
        remap: dict[str, str] | None = None,
        restamp: bool = False,
        publish_clock: bool = False,
    ) -> None:
        self._node = node
        self._reader = open_bag(bag)
        self._rate = rate
        self._remap = remap or {}
        self._restamp = restamp
        self.summary = PlaySummary()
        self._publishers = {}
        for topic in bag_topics(self._reader):
            if topics is not None and topic.name not in topics:
                continue
            try:
                cls = message_class(topic.msgtype)
            except ReplayError as err:
                self.summary.skipped_topics[topic.name] = str(err)
                node.get_logger().warning(f"not replaying {topic.name}: {err}")
                continue
            out_topic = self._remap.get(topic.name, topic.name)
            self._publishers[topic.name] = node.create_publisher(
                cls, out_topic, player_qos(out_topic)
            )
            self.summary.published[topic.name] = 0
        if not self._publishers:
            raise ReplayError(f"nothing to replay from {bag}")
        self._clock_pub = None
        if publish_clock:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", 10)

    def wait_for_subscribers(self, topics: list[str], timeout: float) -> bool:
        """Block until every named input topic has a subscriber (or the timeout passes), so
        the first frames are not published into the void."""
        deadline = time.monotonic() + timeout
        pubs = [self._publishers[t] for t in topics if t in self._publishers]
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in pubs):
                return True
            time.sleep(0.05)
        return False

    def play(self) -> PlaySummary:
        """Publish every message at its due time.

        Messages that share a due time (a camera frame and a lidar sweep of one instant) are
        read, copied and restamped *before* that time, so a sensor driver's lateness is not
        inflated by bag reading; they then go out back to back, as one thread must send them.
        """
        first_ns = self._reader.start_time
        offset = (time.time_ns() - first_ns) if self._restamp else 0
        self.summary.stamp_offset_ns = offset
        messages = schedule(
            self._reader, topics=list(self._publishers), rate=self._rate,
            stamp_offset_ns=offset, start_ns=first_ns,
        )
        start = time.monotonic()
        for _, group in itertools.groupby(messages, key=lambda item: item.due_s):
            batch = list(group)
            delay = start + batch[0].due_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for item in batch:
                late_ms = (time.monotonic() - start - item.due_s) * 1e3
                self.summary.max_lateness_ms = max(self.summary.max_lateness_ms, late_ms)
                self.summary.lateness_ms.setdefault(item.topic, []).append(late_ms)
                if self._clock_pub is not None:
                    self._publish_clock(item.bag_time_ns + offset)
                self._publishers[item.topic].publish(item.raw)
                self.summary.published[item.topic] += 1
        self.summary.wall_seconds = time.monotonic() - start
        return self.summary

    def _publish_clock(self, stamp_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(stamp_ns, NS_PER_S)
        self._clock_pub.publish(clock)

    def close(self) -> None:
        self._reader.close()


"""latency_monitor: end-to-end latency, rate, jitter and drops of the perception outputs.

Subscribes to every topic in ``topics`` (message types are looked up in the graph, so any
stamped output works) and measures receive time minus header stamp: the nodes copy the
sensor stamp unchanged, so this is the whole pipeline, sensor to consumer. Subscriptions are
raw: only the header is read from the CDR bytes, so watching a topic costs microseconds, not
a full deserialisation, and types without a leading std_msgs/Header are refused. Publishes one
/diagnostics status per topic (budget, rate, drops; STALE when silent), the latency of the
last topic in the list on ``~/debug/pipeline_latency_ms``, and writes ``summary_path`` (JSON:
p50/p90/p99/max, rate, jitter, drops per topic) at shutdown.
"""

from __future__ import annotations

import time
from typing import Any

from rclpy.clock import Clock, ClockType

from ad_perception.core import cdr
from ad_perception.core.node_params import NODE_PARAMS
from ad_perception.monitoring.latency_report import LatencyReport
from ad_perception.ros import qos
from ad_perception.ros.bag_player import message_class
from ad_perception.ros.node_base import PerceptionNode, diagnostics_config, run_node


class LatencyMonitorNode(PerceptionNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("latency_monitor", NODE_PARAMS["latency_monitor"], **kwargs)
        self.report = LatencyReport(self.params["topics"], diagnostics_config(self.params),
                                    self.params["expected_rate_hz"] or None,
                                    self.params["window_s"], self.params["warmup_s"])
        self._watched: dict[str, Any] = {}
        self._headline = self.report.topics[-1]
        self._discover()
        self.create_timer(0.5, self._discover, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _discover(self) -> None:
        """Subscribe to watched topics as soon as the graph tells their type."""
        waiting = [t for t in self.report.topics if t not in self._watched]
        if not waiting:
            return
        known = dict(self.get_topic_names_and_types())
        for topic in waiting:
            types = known.get(topic)
            if not types:
                continue
            try:
                cls = message_class(types[0])
            except Exception as err:  # noqa: BLE001 - ReplayError or a broken package
                self.warn_throttled(topic, f"cannot watch {topic}: {err}")
                continue
            first_field = next(iter(cls.get_fields_and_field_types().items()), ("", ""))
            if first_field[1] != "std_msgs/Header":
                self.warn_throttled(topic, f"cannot watch {topic}: {types[0]} does not start "
                                    "with a std_msgs/Header, so it has no sensor stamp")
                continue
            self.report.types[topic] = types[0]
            self._watched[topic] = self.create_subscription(
                cls, topic, lambda raw, t=topic: self._on_message(t, raw),
                qos.from_params(self.params, "input"), raw=True)
            self.get_logger().info(f"watching {topic} ({types[0]})")
        for topic in self.report.topics:
            self.health.set_missing(f"topic {topic}", topic not in self._watched)

    def _on_message(self, topic: str, raw: bytes) -> None:
        receive_ns = self.now_ns()
        started = time.perf_counter()
        try:
            stamp = cdr.read_header(raw, topic).ns
        except cdr.ConversionError as err:
            self.health.rejected(f"{topic}: unreadable header ({err})", receive_ns)
            return
        latency_ms = self.report.observe(topic, stamp, receive_ns)
        if topic == self._headline:
            self.debug("pipeline_latency_ms", latency_ms)
        self.debug("processing_time_ms", (time.perf_counter() - started) * 1e3)

    def on_params_changed(self, changed: dict) -> None:
        self.report.update(diagnostics_config(self.params),
                           self.params["expected_rate_hz"] or None)

    def statuses(self, now_ns: int) -> list:
        own = self.health.status(now_ns)
        return [own, *self.report.statuses(now_ns, prefix=self.get_fully_qualified_name())]

    def summary(self) -> dict:
        now = self.now_ns()
        health = self.health.summary(now)
        return self.report.report(now) | {"node": health["node"],
                                          "rejected": health["rejected"]}


def main(args: list[str] | None = None) -> int:
    return run_node(LatencyMonitorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

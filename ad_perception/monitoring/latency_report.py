"""The latency monitor's bookkeeping: one tracker per watched output topic, ROS-free.

End-to-end latency is receive time minus the header stamp, which the nodes copy unchanged
from the sensor message, so one subscriber at the end of the graph sees the whole pipeline.
``statuses`` feeds /diagnostics while running; ``report`` is the JSON written at shutdown.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ad_perception.monitoring.diagnostics import (
    STALE,
    DiagnosticsConfig,
    Status,
    check_topic,
)
from ad_perception.monitoring.latency import TopicLatencyTracker
from ad_perception.monitoring.node_health import STAMPS_KEPT, by_stamp_json


class LatencyReport:
    """Trackers for ``topics``; thread-safe (subscriptions may run on several threads)."""

    def __init__(self, topics: Iterable[str], config: DiagnosticsConfig | None = None,
                 expected_rate_hz: float | None = None, window_s: float = 10.0,
                 warmup_s: float = 0.0) -> None:
        self.topics = list(dict.fromkeys(topics))
        if not self.topics:
            raise ValueError("at least one topic to watch is needed")
        self.config = config or DiagnosticsConfig()
        self.expected_rate_hz = expected_rate_hz or None
        self._lock = threading.Lock()
        self._trackers = {
            topic: TopicLatencyTracker(window_s, self.expected_rate_hz,
                                       stale_threshold_ms=self.config.latency_error_ms,
                                       warmup_s=warmup_s, keep_stamps=STAMPS_KEPT)
            for topic in self.topics}
        self.types: dict[str, str] = {}

    def update(self, config: DiagnosticsConfig, expected_rate_hz: float | None) -> None:
        """New thresholds from a run-time parameter change (windows are kept)."""
        with self._lock:
            self.config, self.expected_rate_hz = config, expected_rate_hz or None

    def observe(self, topic: str, stamp_ns: int, receive_ns: int) -> float:
        """One message on ``topic``; returns its end-to-end latency in ms."""
        with self._lock:
            self._trackers[topic].observe(stamp_ns, receive_ns)
        return (receive_ns - stamp_ns) / 1e6

    def statuses(self, now_ns: int, prefix: str = "latency_monitor") -> list[Status]:
        """One status per topic: latency budget, rate and drops, or STALE if never seen."""
        out = []
        with self._lock:
            for topic in self.topics:
                summary = self._trackers[topic].summary(now_ns)
                name = f"{prefix}: {topic}"
                if summary["count"] == 0 and self._trackers[topic].totals()["count"] == 0:
                    out.append(Status(STALE, name, "no messages received",
                                      {"type": self.types.get(topic, "unknown")}))
                    continue
                status = check_topic(name, summary, self.config, self.expected_rate_hz)
                status.values.update({key: _text(summary[key]) for key in (
                    "p50_ms", "p90_ms", "p99_ms", "max_ms", "rate_hz", "jitter_ms", "count")})
                out.append(status)
        return out

    def report(self, now_ns: int) -> dict:
        """Per topic: the whole run (exact counts, sampled percentiles) and the last window."""
        with self._lock:
            topics = {}
            for topic, tracker in self._trackers.items():
                topics[topic] = {"type": self.types.get(topic),
                                 "totals": _clean(tracker.totals()),
                                 "window": _clean(tracker.summary(now_ns)),
                                 "by_stamp": by_stamp_json(tracker)}
        return {"topics": topics, "budget_ms": {"warn": self.config.latency_warn_ms,
                                                "error": self.config.latency_error_ms}}


def write_json(path: str | os.PathLike[str], data: dict) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _text(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.2f}"


def _clean(values: dict) -> dict:
    return {key: (None if isinstance(v, float) and math.isnan(v) else v)
            for key, v in values.items()}

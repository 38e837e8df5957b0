"""What one perception node knows about its own health, ROS-free.

The node reports events here (an input arrived, a bad message was skipped, a frame was
published with these stage times, the gate dropped frames) from whichever thread sees them;
``status()`` turns the current window into one combined diagnostics :class:`Status` and
``summary()`` into the JSON a node writes at shutdown. Keeping it here lets every threshold
and counter be unit-tested with synthetic clocks, and keeps the node files thin.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping

from ad_perception.monitoring.diagnostics import (
    OK,
    WARN,
    DiagnosticsConfig,
    Status,
    WindowedCounter,
    check_device,
    check_drops,
    check_input_errors,
    check_input_rate,
    check_latency,
    check_missing_inputs,
    check_model,
    check_processing_time,
    combine,
)
from ad_perception.monitoring.latency import TopicLatencyTracker
from ad_perception.monitoring.stages import TOTAL, StageStats

NS_PER_MS = 1_000_000
_RUN_WINDOW_S = 24 * 3600.0  # the shutdown summary covers the whole run
STAMPS_KEPT = 2048  # frames whose per-frame timings the shutdown summary lists (~3 min)
FRAME_STAGES = ("input_delay", "output_delay")  # ms after the sensor stamp


class NodeHealth:
    """Counters, stage timings and latency of one node; thread-safe."""

    def __init__(self, name: str, config: DiagnosticsConfig | None = None,
                 expected_rate_hz: float | None = None, window_s: float = 10.0,
                 hardware_id: str = "") -> None:
        self.name, self.hardware_id = name, hardware_id
        self.config = config or DiagnosticsConfig()
        self.expected_rate_hz = expected_rate_hz or None
        self.window_s = window_s
        self._lock = threading.Lock()
        self.input_errors = WindowedCounter(window_s)
        self.drops = WindowedCounter(window_s)
        self.over_budget = WindowedCounter(window_s)
        self.failures = WindowedCounter(window_s)
        self.published = WindowedCounter(window_s)
        self._inputs: dict[str, TopicLatencyTracker] = {}
        # per frame: when it arrived and when its output was handed to publish() (ms after
        # the sensor stamp), for per-frame hops in the pipeline benchmark (monitoring/
        # pipeline_report.py); the last STAMPS_KEPT frames
        self._frames: OrderedDict[int, dict[str, float]] = OrderedDict()
        self._output = TopicLatencyTracker(window_s, self.expected_rate_hz)
        self._stages = StageStats(window_s)
        self._stages_run = StageStats(_RUN_WINDOW_S, max_frames=200_000)
        self._missing: dict[str, bool] = {}
        self._extra: dict[str, Status] = {}
        self.device_fallback: tuple[bool, str] = (False, "")
        self.model_error: str | None = None

    # ----------------------------------------------------------------------- settings
    def update(self, config: DiagnosticsConfig, expected_rate_hz: float | None) -> None:
        """New thresholds (a run-time parameter change); counters and windows are kept."""
        with self._lock:
            self.config = config
            self.expected_rate_hz = expected_rate_hz or None

    # ------------------------------------------------------------------------- events
    def input(self, topic: str, stamp_ns: int, receive_ns: int) -> None:
        """A message arrived (before any processing): input rate and transport latency."""
        with self._lock:
            tracker = self._inputs.get(topic)
            if tracker is None:
                tracker = self._inputs[topic] = TopicLatencyTracker(self.window_s,
                                                                    keep_stamps=STAMPS_KEPT)
            tracker.observe(stamp_ns, receive_ns)

    def rejected(self, reason: str, now_ns: int) -> None:
        """A malformed or unusable message was skipped."""
        with self._lock:
            self.input_errors.add(now_ns, 1, reason)

    def failed(self, reason: str, now_ns: int) -> None:
        """Processing a well-formed frame raised (a model or backend problem)."""
        with self._lock:
            self.failures.add(now_ns, 1, reason)

    def sync_drops(self, total: int, now_ns: int) -> None:
        """Follow an all-time drop count kept elsewhere (FrameGate, the stamp matcher)."""
        with self._lock:
            self.drops.sync(total, now_ns)

    def frame_done(self, stamp_ns: int, publish_ns: int, stages_ms: Mapping[str, float]) -> float:
        """A frame was published; returns its pipeline latency (publish minus sensor stamp)."""
        latency_ms = (publish_ns - stamp_ns) / NS_PER_MS
        with self._lock:
            self._output.observe(stamp_ns, publish_ns)
            self._stages.add(stages_ms, publish_ns)
            self._stages_run.add(stages_ms, publish_ns)
            self.published.add(publish_ns)
            kept = {k: stages_ms[k] for k in FRAME_STAGES if k in stages_ms}
            if kept and stamp_ns not in self._frames:
                self._frames[stamp_ns] = kept
                if len(self._frames) > STAMPS_KEPT:
                    self._frames.popitem(last=False)
            if latency_ms > self.config.latency_error_ms:
                self.over_budget.add(publish_ns, 1, f"{latency_ms:.1f} ms")
        return latency_ms

    def set_missing(self, what: str, missing: bool) -> None:
        with self._lock:
            self._missing[what] = missing

    def set_status(self, status: Status) -> None:
        """A node-specific check (e.g. fusion's degraded output), shown beside the rest."""
        with self._lock:
            self._extra[status.name] = status

    # ---------------------------------------------------------------------- reporting
    def status(self, now_ns: int) -> Status:
        with self._lock:
            config = self.config
            statuses = [check_model(self.model_error), check_device(*self.device_fallback)]
            for topic, tracker in sorted(self._inputs.items()):
                summary = tracker.summary(now_ns)
                statuses.append(check_input_rate(summary["rate_hz"], summary["age_s"], config,
                                                 self.expected_rate_hz, name=f"input {topic}"))
            statuses.append(check_processing_time(self._stages.p99_ms(now_ns), config))
            output = self._output.summary(now_ns)
            statuses.append(check_latency(output["p99_ms"], config, name="pipeline_latency"))
            published = self.published.in_window(now_ns)
            statuses.append(check_drops(self.drops.in_window(now_ns), published, config))
            statuses.append(self._counter_status("over_budget", self.over_budget, now_ns,
                                                 "frames over the latency budget"))
            statuses.append(self._counter_status("processing_errors", self.failures, now_ns,
                                                 "frames failed in processing"))
            statuses.append(check_input_errors(self.input_errors, now_ns))
            statuses.append(check_missing_inputs(
                [name for name, missing in sorted(self._missing.items()) if missing]))
            statuses.extend(self._extra.values())
            combined = combine(self.name, statuses, self.hardware_id)
            combined.values.update({
                "published_total": str(self.published.total),
                "dropped_total": str(self.drops.total),
                "rejected_total": str(self.input_errors.total),
                "over_budget_total": str(self.over_budget.total),
                "cpu_fallback": str(self.device_fallback[0]).lower(),
                "pipeline_latency_p50_ms": _fmt(output["p50_ms"]),
                "pipeline_latency_p99_ms": _fmt(output["p99_ms"]),
            })
            return combined

    @staticmethod
    def _counter_status(name: str, counter: WindowedCounter, now_ns: int, what: str) -> Status:
        recent = counter.in_window(now_ns)
        values = {"in_window": str(recent), "total": str(counter.total),
                  "last": counter.last_text}
        if recent:
            return Status(WARN, name, f"{recent} {what} (last: {counter.last_text})", values)
        return Status(OK, name, f"no {what}", values)

    def summary(self, now_ns: int) -> dict:
        """Whole-run figures for the shutdown JSON (stage times over every frame)."""
        with self._lock:
            stages = self._stages_run.summary(now_ns)
            return {
                "node": self.name,
                "published": self.published.total,
                "dropped": self.drops.total,
                "rejected": self.input_errors.total,
                "processing_errors": self.failures.total,
                "over_budget": self.over_budget.total,
                "cpu_fallback": self.device_fallback[0],
                "stages_ms": {name: _clean(values) for name, values in stages.items()},
                "pipeline_latency_ms": _clean(self._output.totals()),
                "inputs": {topic: _clean(tracker.totals())
                           for topic, tracker in self._inputs.items()},
                "frames_by_stamp": {str(stamp): values for stamp, values in self._frames.items()},
                "inputs_by_stamp": {topic: by_stamp_json(tracker)
                                    for topic, tracker in self._inputs.items()},
            }

    def processing_p99_ms(self, now_ns: int) -> float:
        with self._lock:
            return self._stages.p99_ms(now_ns, TOTAL)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2f}"


def by_stamp_json(tracker: TopicLatencyTracker) -> dict[str, float]:
    """JSON form of a tracker's per-stamp latencies (stamps as strings, ns)."""
    return {str(stamp): ms for stamp, ms in tracker.latency_by_stamp().items()}


def _clean(values: Mapping[str, float]) -> dict:
    """JSON-safe numbers (nan -> None)."""
    return {key: (None if isinstance(v, float) and math.isnan(v) else v)
            for key, v in values.items()}


"""The data path both detector nodes share: newest frame in, detections out, every stage timed.

The subscription is raw (serialised CDR): the callback only reads the header stamp from the
bytes and drops them into a :class:`FrameGate`; a :class:`FrameWorker` thread parses them
(``core.cdr``: the payload stays a view of the received bytes), decodes, runs the pipeline and
publishes CDR bytes.
While inference runs, a newer frame replaces the waiting one (counted as a drop), so a slow
model never makes the node work through a backlog of stale frames. Output headers are the
input header, unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from ad_perception.core import cdr
from ad_perception.core.node_params import load_detector
from ad_perception.monitoring.frame_worker import FrameWorker
from ad_perception.monitoring.gate import FrameGate
from ad_perception.monitoring.stages import StageTimer
from ad_perception.ros import qos
from ad_perception.ros.conversions import ConversionError
from ad_perception.ros.node_base import PerceptionNode

# (pipeline, device it runs on, fell back to CPU) from the validated parameters
PipelineFactory = Callable[[dict], tuple[Any, str, bool]]
STAGES = ("conversion", "preprocess", "inference", "postprocess", "pack", "publish")


class DetectorNode(PerceptionNode):
    """Subclasses set ``KIND``, ``INPUT_TOPIC`` and implement ``decode`` and ``pack``."""

    KIND = ""
    INPUT_TOPIC = ""
    DEBUG_TOPICS = (*PerceptionNode.DEBUG_TOPICS, "input_delay_ms", "queue_ms",
                    *(f"{stage}_time_ms" for stage in STAGES))

    def __init__(self, name: str, specs: list, input_type: type, output_type: type,
                 pipeline_factory: PipelineFactory | None = None, **kwargs: Any) -> None:
        super().__init__(name, specs, **kwargs)
        factory = pipeline_factory or functools.partial(load_detector, self.KIND)
        self.pipeline, self.device, fell_back = factory(self.params)
        if fell_back:
            reason = f"device {self.params['device']!r} has no GPU here"
            self.health.device_fallback = (True, reason)
            self.get_logger().warning(f"{reason}: running on the CPU")
        self._gate: FrameGate[tuple[bytes, int, int]] = FrameGate()
        self._worker = FrameWorker(self._gate, self._process, self._on_error,
                                   name=f"{name}-worker")
        self._publisher = self.create_publisher(output_type, "detections",
                                                qos.from_params(self.params, "output"))
        self._subscription = self.create_subscription(
            input_type, self.INPUT_TOPIC, self._on_input, qos.from_params(self.params, "input"),
            raw=True)
        self._worker.start()
        self.get_logger().info(
            f"{self.KIND} detector ready on {self.device}: {type(self.pipeline.core).__name__}, "
            f"input {self._subscription.topic_name}, output {self._publisher.topic_name}")

    # ---------------------------------------------------------------------- data path
    def _on_input(self, raw: bytes) -> None:
        receive_ns = self.now_ns()
        try:
            stamp = cdr.read_header(raw, self.INPUT_TOPIC).ns
        except ConversionError as err:
            self._reject(f"unreadable header: {err}", receive_ns)
            return
        self.health.input(self._subscription.topic_name, stamp, receive_ns)
        if not self._gate.offer((raw, receive_ns, stamp), stamp):
            self._reject("stamp not newer than the last frame (duplicate or out of order)",
                         receive_ns)

    def _process(self, item: tuple[bytes, int, int]) -> None:
        raw, receive_ns, stamp = item
        started_ns = self.now_ns()
        timer = StageTimer()
        try:
            with timer.stage("conversion"):
                msg = self.parse(raw)
                data = self.decode(msg)
        except ConversionError as err:
            self._reject(str(err), started_ns)
            return
        result = self.pipeline(data)
        timer.merge(self.pipeline.last_times)
        with timer.stage("pack"):
            out = self.pack(result, msg)
        sent_ns = self.now_ns()
        with timer.stage("publish"):
            self._publisher.publish(out)
        publish_ns = self.now_ns()
        stages = timer.finish()
        # before the node: transport in, then waiting in the gate (not processing time)
        stages["input_delay"] = (receive_ns - stamp) / 1e6
        stages["queue"] = (started_ns - receive_ns) / 1e6
        # sensor stamp to the publish() call: a reader's receipt minus this is the hop
        # (publish() may return later, after a reader woken on this core has run)
        stages["output_delay"] = (sent_ns - stamp) / 1e6
        latency_ms = self.health.frame_done(stamp, publish_ns, stages)
        self.debug("processing_time_ms", stages["total"])
        self.debug("pipeline_latency_ms", latency_ms)
        self.debug("input_delay_ms", stages["input_delay"])
        self.debug("queue_ms", stages["queue"])
        for stage in STAGES:
            self.debug(f"{stage}_time_ms", stages.get(stage, 0.0))
        self.after_publish(result, msg)

    def _reject(self, reason: str, now_ns: int) -> None:
        self.health.rejected(reason, now_ns)
        self.warn_throttled("rejected", f"skipped a bad input message: {reason}")

    def _on_error(self, item: tuple[Any, int], err: Exception) -> None:
        text = f"{type(err).__name__}: {err}"
        self.health.failed(text, self.now_ns())
        self.warn_throttled("failed", f"frame processing failed: {text}")

    # ------------------------------------------------------------------------- hooks
    def parse(self, raw: bytes) -> Any:
        """The input message's fields from its CDR bytes (``core.cdr.read_*``)."""
        raise NotImplementedError

    def decode(self, msg: Any) -> Any:
        raise NotImplementedError

    def pack(self, result: Any, msg: Any) -> bytes:
        """The output as serialised CDR (``ad_perception.core.cdr``): publishing bytes skips
        rclpy's per-field message objects, the largest ROS cost on the output side."""
        raise NotImplementedError

    def after_publish(self, result: Any, msg: Any) -> None:
        """Optional extra output (the camera's debug image)."""

    # ----------------------------------------------------------------- base overrides
    def on_params_changed(self, changed: dict) -> None:
        if "score_threshold" in changed:
            self.pipeline.score_threshold = float(changed["score_threshold"])

    def before_diagnostics(self) -> None:
        self.health.sync_drops(self._gate.stats().dropped, self.now_ns())

    def summary(self) -> dict:
        return super().summary() | {"gate": dataclasses.asdict(self._gate.stats()),
                                    "device": self.device}

    def shutdown(self) -> None:
        self._worker.stop()
        super().shutdown()

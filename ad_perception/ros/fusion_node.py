"""fusion: camera + lidar detections -> fused Detection3DArray in base_link, plus markers.

Topics (relative, remap them): ``camera/detections`` (Detection2DArray), ``lidar/detections``
(Detection3DArray), ``camera_info``, ``points`` (optional, for lifting camera-only objects)
and ``/tf_static`` in; ``objects`` (Detection3DArray, header = the lidar sensor stamp, or the
camera's for camera-only output) and ``objects/markers`` out. Frames are paired by stamp with
an offset, a tolerance and a timeout (core.stamp_sync); a frame whose partner does not come
goes out degraded (lidar-only / camera-only) and /diagnostics says so. A missing transform
or CameraInfo is counted and reported, and the node keeps publishing what it can.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from ad_perception.core import cdr
from ad_perception.core.frustum import LiftingConfig
from ad_perception.core.fusion import FusionConfig
from ad_perception.core.live_fusion import CameraFrame, LidarFrame, LiveFusion
from ad_perception.core.node_params import NODE_PARAMS
from ad_perception.core.stamp_sync import CAMERA, LIDAR, FrameSet, StampMatcher, SyncConfig
from ad_perception.core.tracking import TrackingConfig
from ad_perception.monitoring.diagnostics import OK, WARN, Status, WindowedCounter
from ad_perception.monitoring.stages import StageTimer
from ad_perception.ros import conversions, qos
from ad_perception.ros.markers import boxes_to_markers
from ad_perception.ros.node_base import NS_PER_S, PerceptionNode, run_node

NS_PER_MS = 1_000_000
KINDS = ("fused", "lidar_only", "camera_only")


class FusionNode(PerceptionNode):
    DEBUG_TOPICS = (*PerceptionNode.DEBUG_TOPICS, "sync_wait_ms", "conversion_time_ms",
                    "fusion_time_ms", "pack_time_ms", "publish_time_ms")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("fusion", NODE_PARAMS["fusion"], **kwargs)
        params = self.params
        self.fusion = LiveFusion(self._fusion_config(), self._sync_config().tolerance_ns)
        self.matcher = StampMatcher(self._sync_config())
        self._kinds = {kind: WindowedCounter(10.0) for kind in (*KINDS, "skipped")}
        self._missing_counter = WindowedCounter(10.0)
        self._missing_now: set[str] = set()
        self._camera_info_key: tuple | None = None
        # All callbacks stay in the node's default (mutually exclusive) group: the matcher
        # and counters are not thread-safe, and composed mode may use a multi-threaded executor.
        sensor_qos = qos.from_params(params, "input")
        detections_qos = qos.profile("reliable", 2)
        # raw: detections are read straight from CDR (ad_perception.core.cdr), no rclpy objects
        self.create_subscription(Detection2DArray, "camera/detections",
                                 functools.partial(self._on_detections, CAMERA), detections_qos,
                                 raw=True)
        self.create_subscription(Detection3DArray, "lidar/detections",
                                 functools.partial(self._on_detections, LIDAR), detections_qos,
                                 raw=True)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, sensor_qos)
        for topic in params["tf_topics"]:
            tf_qos = qos.tf_static_qos() if topic.endswith("tf_static") else qos.profile(
                "reliable", 100)
            self.create_subscription(TFMessage, topic, self._on_tf, tf_qos)
        if params["use_points"]:
            self.create_subscription(PointCloud2, "points", self._on_points, sensor_qos,
                                     raw=True)
        output_qos = qos.from_params(params, "output")
        self._objects = self.create_publisher(Detection3DArray, "objects", output_qos)
        self._markers = self.create_publisher(MarkerArray, "objects/markers", output_qos)
        self.create_timer(min(0.02, self._sync_config().timeout_ns / 4 / NS_PER_S),
                          self._on_timer)

    def _fusion_config(self) -> FusionConfig:
        return FusionConfig(output_frame=self.params["base_frame"],
                            score_threshold=self.params["score_threshold"],
                            max_association_cost=self.params["max_association_cost"],
                            camera_class_weight=self.params["camera_class_weight"],
                            score_fusion=self.params["score_fusion"],
                            lifting=LiftingConfig(enabled=self.params["use_points"]),
                            tracking=TrackingConfig(
                                enabled=self.params["tracking"],
                                class_half_life_s=self.params["class_half_life_s"],
                                gate_m=self.params["track_gate_m"],
                                max_age_s=self.params["track_max_age_s"]))

    def _sync_config(self) -> SyncConfig:
        p = self.params
        return SyncConfig(camera_offset_ns=int(p["camera_offset_ms"] * NS_PER_MS),
                          tolerance_ns=int(p["sync_tolerance_ms"] * NS_PER_MS),
                          timeout_ns=int(p["sync_timeout_ms"] * NS_PER_MS))

    # ------------------------------------------------------------------------ inputs
    def _reject(self, what: str, err: Exception, now_ns: int) -> None:
        self.health.rejected(f"{what}: {err}", now_ns)
        self.warn_throttled(what, f"skipped a bad {what} message: {err}")

    def _on_detections(self, sensor: str, raw: bytes) -> None:
        now = self.now_ns()
        started = time.perf_counter()
        try:
            if sensor == CAMERA:
                stamp, detections = cdr.decode_detections_2d(raw)
                frame = CameraFrame(detections, stamp.frame_id, now)
            else:
                stamp, boxes = cdr.decode_boxes_3d(raw)
                frame = LidarFrame(boxes, now)
        except conversions.ConversionError as err:
            self._reject(f"{sensor} detections", err, now)
            return
        frame.decode_ms = (time.perf_counter() - started) * 1e3
        self._add(sensor, stamp.ns, frame, now)

    def _add(self, sensor: str, stamp: int, frame: Any, now: int) -> None:
        self.health.input(f"{sensor}/detections", stamp, now)
        out_of_order = self.matcher.stats.out_of_order
        sets = self.matcher.add(sensor, stamp, frame, now)
        if self.matcher.stats.out_of_order > out_of_order:
            self.health.rejected(f"{sensor} detections: stamp not newer than the last", now)
        for frames in sets:
            self._process(frames)

    def _on_timer(self) -> None:
        for frames in self.matcher.poll(self.now_ns()):
            self._process(frames)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d),
               tuple(msg.p))
        if key == self._camera_info_key:
            return
        try:
            self.fusion.camera_model = conversions.camera_info_to_model(msg)
            self._camera_info_key = key
        except conversions.ConversionError as err:
            self._reject("camera_info", err, self.now_ns())

    def _on_tf(self, msg: TFMessage) -> None:
        try:
            self.fusion.tf.add_tf_message(msg)
        except (ValueError, TypeError, AttributeError) as err:
            self._reject("tf_static", err, self.now_ns())

    def _on_points(self, raw: bytes) -> None:
        now = self.now_ns()
        try:
            header = cdr.read_header(raw, "PointCloud2")
        except conversions.ConversionError as err:
            self._reject("points", err, now)
            return
        self.health.input("points", header.ns, now)

        def decode() -> Any:  # only when a camera-only object needs lifting
            try:
                return conversions.pointcloud_to_core(cdr.read_pointcloud2(raw))
            except conversions.ConversionError as err:
                self._reject("points", err, self.now_ns())
                return None

        self.fusion.set_points(header.ns, header.frame_id, decode)

    # -------------------------------------------------------------------------- output
    def _process(self, frames: FrameSet) -> None:
        now = self.now_ns()
        if frames.kind == "camera_only" and not self.params["publish_camera_only"]:
            self._kinds["skipped"].add(now)
            return
        timer = StageTimer()
        inputs = [f for f in (frames.camera, frames.lidar) if f is not None]
        timer.add("conversion", sum(f.decode_ms for f in inputs))
        try:
            with timer.stage("fusion"):
                fused = self.fusion.fuse(frames)
        except ValueError as err:
            self.health.failed(str(err), now)
            self.warn_throttled("fusion", f"fusion failed for a frame: {err}")
            return
        if not fused.frame_id:
            # a camera-only set before any lidar box or cloud named the lidar frame: there is
            # no frame to state the objects in, and planning must not get a frameless array
            self._kinds["skipped"].add(now)
            self.warn_throttled("frame", "camera-only frame skipped: the lidar frame is not "
                                "known yet (no lidar detections or points received)")
            return
        self._kinds[frames.kind].add(now)
        self._track_missing(fused.missing, now)
        if fused.result.status.untracked or fused.result.status.tracks_reset:
            self.warn_throttled("tracking", "objects published untracked: frame older than the "
                                "newest one" if fused.result.status.untracked else
                                "time went backwards: all tracks dropped")
        seconds, nanoseconds = divmod(fused.stamp_ns, NS_PER_S)
        # markers only for someone looking at them: building them costs more than the fusion
        markers = None
        with timer.stage("pack"):
            objects = cdr.encode_boxes_3d(fused.result.objects,
                                          cdr.Stamp(seconds, nanoseconds, fused.frame_id))
            if self._markers.get_subscription_count():
                header = Header(stamp=Time(sec=seconds, nanosec=nanoseconds),
                                frame_id=fused.frame_id)
                markers = boxes_to_markers(fused.result.objects, header,
                                           fused.result.provenance,
                                           self.params["marker_lifetime_s"])
        sent_ns = self.now_ns()
        with timer.stage("publish"):
            self._objects.publish(objects)
            if markers is not None:
                self._markers.publish(markers)
        publish_ns = self.now_ns()
        stages = timer.finish()
        stages["output_delay"] = (sent_ns - fused.stamp_ns) / 1e6  # stamp to publish() call
        stages["sync_wait"] = (now - min(f.arrival_ns for f in inputs)) / 1e6  # not processing
        for sensor, frame in ((CAMERA, frames.camera), (LIDAR, frames.lidar)):
            if frame is not None:  # per input (in "conversion" already): only the later
                stages[f"conversion_{sensor}"] = frame.decode_ms  # one delays the output
        latency_ms = self.health.frame_done(fused.stamp_ns, publish_ns, stages)
        self.debug("processing_time_ms", stages["total"])
        self.debug("pipeline_latency_ms", latency_ms)
        self.debug("sync_wait_ms", stages["sync_wait"])
        for stage in ("conversion", "fusion", "pack", "publish"):
            self.debug(f"{stage}_time_ms", stages[stage])

    def _track_missing(self, missing: list[str], now: int) -> None:
        if missing:
            self._missing_counter.add(now, 1, ", ".join(missing))
            self.warn_throttled("missing", "fusing without " + ", ".join(missing))
        for name in self._missing_now - set(missing):
            self.health.set_missing(name, False)
        for name in missing:
            self.health.set_missing(name, True)
        self._missing_now = set(missing)

    # ----------------------------------------------------------------- base overrides
    def on_params_changed(self, changed: dict) -> None:
        if changed.keys() & {"camera_offset_ms", "sync_tolerance_ms", "sync_timeout_ms"}:
            self.matcher.config = self._sync_config()
            self.fusion.points_tolerance_ns = self.matcher.config.tolerance_ns
        if changed.keys() & {"score_threshold", "max_association_cost", "camera_class_weight",
                             "score_fusion", "tracking", "class_half_life_s", "track_gate_m",
                             "track_max_age_s"}:
            self.fusion.pipeline.config = self._fusion_config()

    def before_diagnostics(self) -> None:
        now = self.now_ns()
        self.health.sync_drops(self.matcher.stats.late, now)
        counts = {kind: counter.in_window(now) for kind, counter in self._kinds.items()}
        values = {f"{kind}_in_window": str(n) for kind, n in counts.items()}
        values |= {f"{kind}_total": str(c.total) for kind, c in self._kinds.items()}
        values |= {"missing_inputs_total": str(self._missing_counter.total),
                   "missing_inputs_last": self._missing_counter.last_text,
                   "late_total": str(self.matcher.stats.late),
                   "lidar_lag_ms": f"{self.matcher.lag_ns / NS_PER_MS:.1f}"}
        values |= {f"tracking_{name}": str(value) for name, value in self._tracking().items()}
        degraded = counts["lidar_only"] + counts["camera_only"]
        if degraded:
            message = (f"degraded output: {counts['lidar_only']} lidar-only, "
                       f"{counts['camera_only']} camera-only frames (the other sensor's "
                       "detections missing or late)")
            self.health.set_status(Status(WARN, "sync", message, values))
        else:
            self.health.set_status(Status(OK, "sync", f"{counts['fused']} fused frames",
                                          values))

    def summary(self) -> dict:
        stats = self.matcher.stats
        return super().summary() | {
            "frames": {kind: counter.total for kind, counter in self._kinds.items()},
            "sync": {"matched": stats.matched, "lidar_only": stats.lidar_only,
                     "camera_only": stats.camera_only, "late": stats.late,
                     "out_of_order": stats.out_of_order, "by_reason": dict(stats.by_reason),
                     "lidar_lag_ms": self.matcher.lag_ns / NS_PER_MS},
            "missing_inputs_total": self._missing_counter.total,
            "tracking": self._tracking()}

    def _tracking(self) -> dict[str, int]:
        tracker = self.fusion.pipeline.tracker
        return {"tracks": len(tracker), **vars(tracker.stats)}


def main(args: list[str] | None = None) -> int:
    return run_node(FusionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

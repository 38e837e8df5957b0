"""A node's own health bookkeeping, the latency monitor's report and the frame worker, on
synthetic clocks: every counter /diagnostics shows, and the worker's newest-frame rule."""

import json
import threading
import time

import pytest

from ad_perception.monitoring.diagnostics import ERROR, OK, STALE, WARN, DiagnosticsConfig
from ad_perception.monitoring.frame_worker import FrameWorker
from ad_perception.monitoring.gate import FrameGate
from ad_perception.monitoring.latency_report import LatencyReport, write_json
from ad_perception.monitoring.node_health import NodeHealth

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S
STAGES = {"conversion": 1.0, "inference": 20.0, "total": 21.0}


def _feed(health: NodeHealth, frames: int, latency_ms: float, start: int = T0) -> int:
    now = start
    for index in range(frames):
        stamp = start + index * 100 * MS
        now = stamp + int(latency_ms * MS)
        health.input("image", stamp, stamp + 2 * MS)
        health.frame_done(stamp, now, STAGES)
    return now


def test_healthy_node_is_ok_and_reports_latency():
    health = NodeHealth("/camera_detector", expected_rate_hz=10.0)
    now = _feed(health, 30, latency_ms=40.0)
    status = health.status(now)
    assert status.level == OK, status.message
    assert status.values["published_total"] == "30"
    assert status.values["pipeline_latency_p99_ms"] == "40.00"
    assert status.values["processing_time.p99_ms"] == "21.00"


def test_budget_exceeded_frames_are_counted_and_raise_the_level():
    health = NodeHealth("/lidar_detector", DiagnosticsConfig(), expected_rate_hz=10.0)
    now = _feed(health, 30, latency_ms=160.0)
    status = health.status(now)
    assert status.level == ERROR and "latency p99 160.0 ms > 150 ms" in status.message
    assert status.values["over_budget_total"] == "30"
    assert status.values["over_budget.in_window"] == "30"


def test_rejected_inputs_drops_fallback_and_missing_inputs_are_reported():
    health = NodeHealth("/fusion", expected_rate_hz=10.0)
    now = _feed(health, 20, latency_ms=30.0)
    health.rejected("unknown image encoding 'yuv9'", now)
    health.sync_drops(5, now)
    health.device_fallback = (True, "device 'cuda' has no GPU here")
    health.set_missing("camera_info", True)
    status = health.status(now)
    assert status.level == ERROR  # 5 of 25 frames dropped > 10 %
    for text in ("5 of 25 frames dropped", "1 bad inputs skipped: unknown image encoding",
                 "CPU fallback", "waiting for camera_info"):
        assert text in status.message
    assert status.values["rejected_total"] == "1" and status.values["dropped_total"] == "5"
    assert status.values["cpu_fallback"] == "true"
    health.set_missing("camera_info", False)
    later = now + 11 * S
    assert "camera_info" not in health.status(later).message
    assert health.status(later).level == STALE  # and the input stopped


def test_threshold_update_applies_to_the_next_status():
    health = NodeHealth("/camera_detector", expected_rate_hz=10.0)
    now = _feed(health, 20, latency_ms=100.0)
    assert health.status(now).level == OK
    health.update(DiagnosticsConfig(latency_warn_ms=50.0, latency_error_ms=200.0), 10.0)
    assert health.status(now).level == WARN


def test_summary_covers_the_whole_run_and_is_json():
    health = NodeHealth("/camera_detector", expected_rate_hz=10.0, window_s=1.0)
    now = _feed(health, 50, latency_ms=40.0)  # 5 s: far beyond the 1 s window
    summary = health.summary(now)
    assert summary["published"] == 50
    assert summary["stages_ms"]["inference"]["count"] == 50
    assert summary["pipeline_latency_ms"]["p50_ms"] == pytest.approx(40.0)
    json.dumps(summary)  # nan became None


def test_latency_report_per_topic_statuses_and_report(tmp_path):
    report = LatencyReport(["/a", "/b"], expected_rate_hz=10.0)
    for index in range(40):
        stamp = T0 + index * 100 * MS
        report.observe("/a", stamp, stamp + 60 * MS)
    now = T0 + 4 * S
    by_name = {s.name.split(": ")[1]: s for s in report.statuses(now, prefix="/mon")}
    assert by_name["/a"].level == OK and by_name["/a"].values["p99_ms"] == "60.00"
    assert by_name["/a"].values["rate_hz"] == "10.00"
    assert by_name["/b"].level == STALE
    data = report.report(now)
    assert data["topics"]["/a"]["totals"]["count"] == 40
    assert data["topics"]["/b"]["totals"]["p99_ms"] is None
    path = write_json(tmp_path / "out" / "summary.json", data)
    assert json.loads(path.read_text())["budget_ms"] == {"warn": 120.0, "error": 150.0}
    with pytest.raises(ValueError, match="at least one topic"):
        LatencyReport([])


def test_frame_worker_processes_only_the_newest_frame_and_survives_errors():
    gate: FrameGate[int] = FrameGate()
    processed, errors = [], []
    release = threading.Event()

    def process(item: int) -> None:
        if item == 0:
            release.wait(5.0)  # busy on the first frame while more arrive
        if item == 7:
            raise RuntimeError("bad frame")
        processed.append(item)

    worker = FrameWorker(gate, process, lambda item, err: errors.append((item, str(err))),
                         poll_s=0.01)
    worker.start()
    gate.offer(0, 0)
    _wait_until(lambda: gate.stats().taken == 1)
    for stamp in range(1, 6):
        gate.offer(stamp, stamp)
    release.set()
    _wait_until(lambda: processed[-1:] == [5])
    gate.offer(7, 7)
    _wait_until(lambda: errors)
    gate.offer(8, 8)
    _wait_until(lambda: processed[-1:] == [8])
    assert worker.stop() and not worker.alive
    assert processed == [0, 5, 8]  # 1..4 were replaced while the worker was busy
    assert gate.stats().dropped == 4
    assert errors == [(7, "bad frame")] and worker.failed == 1 and worker.processed == 3


def _wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_summary_lists_each_frames_timings_by_stamp():
    health = NodeHealth("n")
    health.input("points", 1_000, 3_001_000)
    health.frame_done(1_000, 40_001_000, {"input_delay": 3.0, "output_delay": 39.5,
                                         "total": 30.0})
    summary = health.summary(50_000_000)
    assert summary["frames_by_stamp"] == {"1000": {"input_delay": 3.0, "output_delay": 39.5}}
    assert summary["inputs_by_stamp"] == {"points": {"1000": 3.0}}
    json.dumps(summary)  # JSON-safe

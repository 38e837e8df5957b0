"""Diagnostics status logic: every condition, its threshold boundaries, and config checks."""

import math

import pytest

from ad_perception.monitoring.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    DiagnosticsConfig,
    Status,
    Throttle,
    WindowedCounter,
    check_device,
    check_drops,
    check_input_errors,
    check_input_rate,
    check_latency,
    check_missing_inputs,
    check_model,
    check_processing_time,
    check_topic,
    combine,
)
from ad_perception.monitoring.latency import TopicLatencyTracker

MS = 1_000_000
S = 1_000_000_000
CONFIG = DiagnosticsConfig()  # latency 120/150, processing 80/100, rate 0.8/0.5, drops .02/.1


@pytest.mark.parametrize(("p99_ms", "level"), [(math.nan, OK), (50.0, OK), (120.0, OK),
                                               (120.01, WARN), (150.0, WARN),
                                               (150.01, ERROR)])
def test_latency_budget_boundaries(p99_ms, level):
    status = check_latency(p99_ms, CONFIG)
    assert status.level == level
    assert status.values["warn_ms"] == "120.00" and status.values["error_ms"] == "150.00"


@pytest.mark.parametrize(("p99_ms", "level"), [(80.0, OK), (80.5, WARN), (100.0, WARN),
                                               (100.5, ERROR)])
def test_processing_time_boundaries(p99_ms, level):
    assert check_processing_time(p99_ms, CONFIG).level == level


@pytest.mark.parametrize(("rate_hz", "age_s", "expected_hz", "level"), [
    (10.0, 0.1, 10.0, OK),
    (8.0, 0.1, 10.0, OK),      # exactly 0.8 x expected
    (7.99, 0.1, 10.0, WARN),
    (5.0, 0.1, 10.0, WARN),    # exactly 0.5 x expected
    (4.99, 0.1, 10.0, ERROR),
    (1.0, 0.1, None, OK),      # no expected rate: only staleness is judged
    (10.0, 1.0, 10.0, OK),     # exactly stale_after_s
    (10.0, 1.01, 10.0, STALE),
    (math.nan, math.nan, 10.0, STALE),
    (math.nan, 0.1, 10.0, OK),  # one message so far: rate not measurable yet
])
def test_input_rate_levels(rate_hz, age_s, expected_hz, level):
    assert check_input_rate(rate_hz, age_s, CONFIG, expected_hz).level == level


@pytest.mark.parametrize(("dropped", "processed", "level"), [
    (0, 0, OK), (2, 98, OK), (3, 97, WARN), (10, 90, WARN), (11, 89, ERROR), (5, 0, ERROR),
])
def test_drop_fraction_boundaries(dropped, processed, level):
    status = check_drops(dropped, processed, CONFIG)
    assert status.level == level
    assert status.values["dropped"] == str(dropped)


def test_cpu_fallback_missing_inputs_and_model():
    fallback = check_device(True, "CUDA not available")
    assert fallback.level == WARN and "CUDA not available" in fallback.message
    assert check_device(False).level == OK
    missing = check_missing_inputs(["CameraInfo", "TF base_link->lidar_top"])
    assert missing.level == WARN and "CameraInfo, TF base_link->lidar_top" in missing.message
    assert check_missing_inputs([]).level == OK
    broken = check_model("sha256 mismatch for camera.pt")
    assert broken.level == ERROR and "sha256 mismatch" in broken.message
    assert check_model(None).level == OK


def test_input_errors_warn_within_the_window_only():
    errors = WindowedCounter(window_s=10.0)
    assert check_input_errors(errors, 0).level == OK
    errors.add(1 * S, text="unsupported encoding 'yuv422'")
    errors.add(2 * S, text="PointCloud2 without field 'intensity'")
    status = check_input_errors(errors, 5 * S)
    assert status.level == WARN
    assert "2 bad inputs" in status.message and "intensity" in status.message
    assert status.values["last_error"] == "PointCloud2 without field 'intensity'"
    later = check_input_errors(errors, 12 * S)
    assert later.level == OK and later.values["total"] == "2"


def test_windowed_counter_follows_a_total_in_bounded_memory():
    counter = WindowedCounter(window_s=1.0)
    for step in range(100_000):
        counter.add(step * 10_000)  # 100 000 events in 1 s
    assert counter.in_window(999_990_000) == 100_000
    assert len(counter._buckets) <= 101
    counter.sync(100_007, 1_500_000_000)
    assert counter.total == 100_007
    assert counter.in_window(1_500_000_000) < 100_007  # the first half second left the window
    with pytest.raises(ValueError):
        counter.add(0, count=-1)


def test_combine_worst_wins_and_lists_reasons():
    statuses = [
        Status(OK, "latency", "latency p99 40.0 ms", {"p99_ms": "40.00"}),
        Status(WARN, "device", "running on CPU fallback"),
        Status(STALE, "input_rate", "no message for 3.0 s"),
        Status(ERROR, "model", "model failed to load: missing file"),
    ]
    combined = combine("camera_detector", statuses, hardware_id="front")
    assert combined.level == ERROR  # a known fault outranks STALE although 3 > 2
    assert combined.message == ("model failed to load: missing file; no message for 3.0 s; "
                                "running on CPU fallback")
    assert combined.values == {"latency.p99_ms": "40.00"}
    assert combined.hardware_id == "front"
    assert combine("x", statuses[:3]).level == STALE
    assert combine("x", statuses[:1]).message == "OK"
    assert combine("x", []).level == OK


def test_check_topic_from_a_tracker_summary():
    tracker = TopicLatencyTracker(expected_rate_hz=10.0)
    for index in range(100):
        if index % 10 == 5:  # 10% dropped
            continue
        tracker.observe(index * 100 * MS, index * 100 * MS + 40 * MS)
    status = check_topic("/perception/objects", tracker.summary(99 * 100 * MS), CONFIG, 10.0)
    assert status.level == WARN
    assert "10 of 100 frames dropped" in status.message
    assert status.values["drops.dropped"] == "10"
    assert status.values["input_rate.expected_hz"] == "10.00"


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"latency_warn_ms": 200.0}, "latency_warn_ms .* <= latency_error_ms"),
    ({"processing_warn_ms": 120.0}, "processing_warn_ms"),
    ({"rate_error_fraction": 0.9}, "rate_error_fraction .* <= rate_warn_fraction"),
    ({"drop_warn_fraction": 0.5}, "drop_warn_fraction"),
    ({"latency_error_ms": -1.0}, "latency_error_ms must be a finite number >= 0"),
    ({"latency_warn_ms": math.nan}, "latency_warn_ms must be a finite"),
    ({"stale_after_s": True}, "stale_after_s must be a number"),
    ({"stale_after_s": "1"}, "stale_after_s must be a number"),
    ({"drop_error_fraction": 1.5}, "fraction in"),
    ({"rate_warn_fraction": 1.2}, "fraction in"),
    ({"stale_after_s": 0.0}, "stale_after_s must be > 0"),
])
def test_config_rejects_nonsense_with_what_to_fix(settings, complaint):
    with pytest.raises(ValueError, match=complaint):
        DiagnosticsConfig(**settings)


def test_config_from_mapping():
    config = DiagnosticsConfig.from_mapping({"latency_warn_ms": 90.0, "stale_after_s": 2})
    assert config.latency_warn_ms == 90.0 and config.stale_after_s == 2
    with pytest.raises(ValueError, match="unknown diagnostics settings \\['latency_warn'\\]"):
        DiagnosticsConfig.from_mapping({"latency_warn": 90.0})


def test_throttle_lets_one_through_per_period_and_counts_the_rest():
    throttle = Throttle(1.0)
    assert throttle.ready(100.0)
    assert not throttle.ready(100.5)
    assert not throttle.ready(100.99)
    assert throttle.ready(101.0)
    assert throttle.suppressed == 2
    assert throttle.ready(105.0) and throttle.suppressed == 0
    assert Throttle(0.0).ready(1.0) and Throttle(0.0).ready(1.0)
    with pytest.raises(ValueError):
        Throttle(-1.0)

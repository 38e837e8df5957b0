"""Camera/lidar stamp matching: pairs within tolerance, degrades instead of dropping, never
waits for a partner whose stream has moved on, and honours the offset and timeout."""

import random

import pytest

from ad_perception.core.stamp_sync import (
    CAMERA,
    LIDAR,
    MATCHED,
    PASSED,
    TIMEOUT,
    StampMatcher,
    SyncConfig,
)

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def test_same_stamp_pairs_immediately_in_either_order():
    matcher = StampMatcher()
    assert matcher.add(LIDAR, T0, "L0", now_ns=T0 + 30 * MS) == []
    (pair,) = matcher.add(CAMERA, T0, "C0", now_ns=T0 + 60 * MS)
    assert (pair.lidar, pair.camera, pair.kind, pair.reason) == ("L0", "C0", "fused", MATCHED)
    assert pair.stamp_ns == T0
    matcher = StampMatcher()
    matcher.add(CAMERA, T0, "C0", T0)
    (pair,) = matcher.add(LIDAR, T0 + 10 * MS, "L0", T0 + 20 * MS)
    assert pair.kind == "fused" and pair.stamp_ns == T0 + 10 * MS  # the lidar's stamp


def test_missing_camera_gives_lidar_only_after_the_timeout_not_before():
    matcher = StampMatcher(SyncConfig(timeout_ns=100 * MS))
    matcher.add(LIDAR, T0, "L0", now_ns=T0 + 20 * MS)
    assert matcher.poll(T0 + 119 * MS) == []
    (alone,) = matcher.poll(T0 + 120 * MS)
    assert (alone.kind, alone.reason, alone.lidar, alone.camera) == ("lidar_only", TIMEOUT,
                                                                      "L0", None)
    assert matcher.stats.lidar_only == 1 and matcher.pending(LIDAR) == 0


def test_partner_stream_moving_past_releases_without_waiting():
    """A camera frame 100 ms newer proves the camera for the older lidar frame is lost."""
    matcher = StampMatcher(SyncConfig(tolerance_ns=20 * MS, timeout_ns=10_000 * MS))
    matcher.add(LIDAR, T0, "L0", T0)
    out = matcher.add(CAMERA, T0 + 100 * MS, "C1", T0 + 101 * MS)
    assert [(s.kind, s.reason) for s in out] == [("lidar_only", PASSED)]
    assert matcher.pending(CAMERA) == 1  # C1 waits for L1
    (pair,) = matcher.add(LIDAR, T0 + 100 * MS, "L1", T0 + 102 * MS)
    assert (pair.lidar, pair.camera) == ("L1", "C1")


def test_offset_is_removed_before_comparing():
    config = SyncConfig(camera_offset_ns=40 * MS, tolerance_ns=10 * MS)
    matcher = StampMatcher(config)
    matcher.add(LIDAR, T0, "L0", T0)
    (pair,) = matcher.add(CAMERA, T0 + 45 * MS, "C0", T0 + 50 * MS)
    assert pair.kind == "fused"
    unshifted = StampMatcher(SyncConfig(tolerance_ns=10 * MS))
    unshifted.add(LIDAR, T0, "L0", T0)
    assert [s.kind for s in unshifted.add(CAMERA, T0 + 45 * MS, "C0", T0)] == ["lidar_only"]


def test_late_partner_after_degraded_output_is_counted_not_paired():
    matcher = StampMatcher(SyncConfig(timeout_ns=50 * MS))
    matcher.add(CAMERA, T0, "C0", T0)
    (alone,) = matcher.poll(T0 + 60 * MS)
    assert alone.kind == "camera_only" and alone.stamp_ns == T0
    assert matcher.add(LIDAR, T0, "L0", T0 + 70 * MS) == []
    assert matcher.stats.late == 1 and matcher.pending(LIDAR) == 0


def test_out_of_order_and_duplicates_are_refused():
    matcher = StampMatcher()
    matcher.add(LIDAR, T0 + 100 * MS, "L1", T0)
    assert matcher.add(LIDAR, T0 + 100 * MS, "dup", T0) == []
    assert matcher.add(LIDAR, T0, "old", T0) == []
    assert matcher.stats.out_of_order == 2 and matcher.pending(LIDAR) == 1


def test_max_pending_evicts_the_oldest():
    matcher = StampMatcher(SyncConfig(timeout_ns=10_000 * MS, max_pending=2))
    out = [s for i in range(3) for s in matcher.add(LIDAR, T0 + i * 100 * MS, f"L{i}", T0)]
    assert [(s.lidar, s.reason) for s in out] == [("L0", "evicted")]


def test_config_is_validated():
    with pytest.raises(ValueError, match="tolerance_ns"):
        SyncConfig(tolerance_ns=0)
    with pytest.raises(ValueError, match="max_pending"):
        SyncConfig(max_pending=0)
    with pytest.raises(ValueError, match="sensor"):
        StampMatcher().add("radar", T0, "x", T0)


def test_random_streams_every_frame_accounted_for_exactly_once():
    """10 Hz camera and lidar with jitter, random losses and random arrival delays: every
    frame ends in exactly one output set or the late counter,
    and every surviving pair is within tolerance."""
    rng = random.Random(7)
    config = SyncConfig(tolerance_ns=30 * MS, timeout_ns=80 * MS)
    matcher = StampMatcher(config)
    events = []
    for index in range(300):
        base = T0 + index * 100 * MS
        for sensor, latency in ((LIDAR, 60), (CAMERA, 40)):
            if rng.random() < 0.15:
                continue  # lost
            stamp = base + rng.randint(-5, 5) * MS
            arrival = stamp + (latency + rng.randint(0, 90)) * MS
            events.append((arrival, sensor, stamp))
    events.sort()
    outputs = []
    for arrival, sensor, stamp in events:
        outputs += matcher.add(sensor, stamp, (sensor, stamp), arrival)
    outputs += matcher.poll(events[-1][0] + 10_000 * MS)
    seen = [item for s in outputs for item in (s.lidar, s.camera) if item is not None]
    assert len(seen) == len(set(seen))
    assert len(seen) + matcher.stats.late == len(events)
    for frame_set in outputs:
        if frame_set.kind == "fused":
            assert abs(frame_set.lidar[1] - frame_set.camera[1]) <= config.tolerance_ns
    assert matcher.stats.matched > 150  # most survive as pairs despite the delays


def test_learns_the_arrival_lag_of_the_slower_sensor():
    """The lidar path is 150 ms slower than the camera's, beyond the 100 ms timeout: the
    first frame degrades, then the camera frames wait for the learned lag and all fuse."""
    matcher = StampMatcher(SyncConfig(timeout_ns=100 * MS))
    outputs = []
    for index in range(10):
        stamp = T0 + index * 100 * MS
        camera_arrival, lidar_arrival = stamp + 40 * MS, stamp + 190 * MS
        outputs += matcher.poll(camera_arrival)
        outputs += matcher.add(CAMERA, stamp, f"C{index}", camera_arrival)
        outputs += matcher.poll(lidar_arrival)
        outputs += matcher.add(LIDAR, stamp, f"L{index}", lidar_arrival)
    kinds = [s.kind for s in outputs]
    assert kinds[0] == "camera_only" and matcher.stats.late == 1
    assert kinds[1:] == ["fused"] * 9
    assert matcher.lag_ns == 150 * MS
    # the lidar dies: camera frames now go alone after lag + timeout, not never
    stamp = T0 + 1000 * MS
    matcher.add(CAMERA, stamp, "C10", stamp + 40 * MS)
    assert matcher.poll(stamp + 289 * MS) == []
    (alone,) = matcher.poll(stamp + 290 * MS)
    assert alone.kind == "camera_only"

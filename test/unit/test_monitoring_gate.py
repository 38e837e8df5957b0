"""FrameGate (latest-only hand-off) and StageTimer/StageStats."""

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from ad_perception.monitoring.gate import FrameGate, FrameGateStats
from ad_perception.monitoring.stages import StageStats, StageTimer

MS = 1_000_000
S = 1_000_000_000


# ------------------------------------------------------------------------------ FrameGate
def test_slow_consumer_gets_only_the_newest_frame():
    gate = FrameGate()
    for stamp in range(1, 11):
        assert gate.offer(f"frame{stamp}", stamp)
    assert gate.take() == "frame10"
    assert gate.take() is None
    assert gate.stats() == FrameGateStats(offered=10, taken=1, dropped=9)


def test_stale_and_duplicate_frames_are_refused_and_counted():
    gate = FrameGate()
    gate.offer("a", 50)
    assert gate.take() == "a"
    assert not gate.offer("older", 40)
    assert not gate.offer("same", 50)
    assert gate.offer("newer", 60)
    assert not gate.offer("older than waiting", 55)  # a newer frame is already waiting
    assert gate.take() == "newer"
    assert gate.last_taken_stamp_ns == 60
    assert gate.stats() == FrameGateStats(offered=5, taken=2, out_of_order=2, duplicates=1)


def test_consumer_busy_with_one_frame_then_takes_the_newest():
    gate = FrameGate()
    busy, release, taken = threading.Event(), threading.Event(), []

    def worker():
        taken.append(gate.take(timeout_s=5.0))
        busy.set()
        release.wait(5.0)
        taken.append(gate.take(timeout_s=5.0))

    thread = threading.Thread(target=worker)
    thread.start()
    gate.offer(1, 1)
    assert busy.wait(5.0)
    for stamp in range(2, 11):
        gate.offer(stamp, stamp)
    release.set()
    thread.join(5.0)
    assert taken == [1, 10]
    assert gate.stats().dropped == 8


def test_producer_and_consumer_threads_keep_the_counts_consistent():
    gate = FrameGate()
    n_frames = 3000
    taken: list[int] = []
    done = threading.Event()

    def producer():
        for stamp in range(1, n_frames + 1):
            gate.offer(stamp, stamp)
            if stamp % 100 == 0:
                time.sleep(0.001)
        done.set()

    def consumer():
        while True:
            item = gate.take(timeout_s=0.01)
            if item is not None:
                taken.append(item)
                time.sleep(0.0005)  # slower than the producer
            elif done.is_set() and gate.stats().pending == 0:
                return

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    stats = gate.stats()
    assert taken == sorted(set(taken))  # never an older or repeated frame
    assert taken[-1] == n_frames  # the newest frame is always processed in the end
    assert stats.offered == n_frames
    assert stats.taken == len(taken)
    assert stats.taken + stats.dropped == n_frames
    assert stats.dropped > 0 and stats.out_of_order == stats.duplicates == 0


def test_take_waits_and_close_wakes_the_worker():
    gate = FrameGate()
    assert gate.take(timeout_s=0.01) is None
    result = []
    thread = threading.Thread(target=lambda: result.append(gate.take(timeout_s=None)))
    thread.start()
    time.sleep(0.02)
    gate.close()
    thread.join(2.0)
    assert not thread.is_alive() and result == [None]
    assert gate.closed and not gate.offer("late", 1)


def test_none_items_are_refused():
    with pytest.raises(ValueError, match="None"):
        FrameGate().offer(None, 1)


# ----------------------------------------------------------------------------- StageTimer
class FakeClock:
    def __init__(self, steps_ms):
        self._times = iter(np.cumsum([0, *steps_ms]) * MS)

    def __call__(self) -> int:
        return int(next(self._times))


@dataclass
class PipelineTimes:  # the shape of core.pipelines.StageTimes, without importing torch
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


def test_stage_timer_times_accumulates_and_resets():
    # enter/exit pairs: conversion 2 ms, (gap 1), conversion 3 ms, (gap 4), publish 5 ms
    timer = StageTimer(clock_ns=FakeClock([2, 1, 3, 4, 5]))
    with timer.stage("conversion"):
        pass
    with timer.stage("conversion"):
        pass
    with timer.stage("publish"):
        pass
    timer.merge(PipelineTimes(1.0, 7.5, 0.5))
    frame = timer.finish()
    assert frame == pytest.approx({"conversion": 5.0, "publish": 5.0, "preprocess": 1.0,
                                   "inference": 7.5, "postprocess": 0.5, "total": 19.0})
    assert timer.finish() == {"total": 0.0}


def test_stage_that_raises_is_still_timed():
    timer = StageTimer(clock_ns=FakeClock([4]))
    with pytest.raises(RuntimeError), timer.stage("inference"):
        raise RuntimeError("cuda out of memory")
    assert timer.finish()["inference"] == pytest.approx(4.0)


def test_stage_timer_rejects_bad_input():
    timer = StageTimer()
    with pytest.raises(ValueError), timer.stage("total"):
        pass
    with pytest.raises(ValueError):
        timer.add("inference", -1.0)
    with pytest.raises(TypeError):
        timer.merge({"inference_ms": 1.0})


def test_stage_stats_window_matches_numpy():
    rng = np.random.default_rng(5)
    stats = StageStats(window_s=10.0)
    inference = rng.uniform(5.0, 40.0, 200)
    for index, inference_ms in enumerate(inference):
        stats.add({"inference": inference_ms, "total": inference_ms + 2.0}, index * 100 * MS)
    now = 199 * 100 * MS
    kept = inference[-100:]  # frames within the last 10 s
    summary = stats.summary(now)
    assert summary["inference"]["count"] == 100
    assert summary["inference"]["p99"] == pytest.approx(np.percentile(kept, 99))
    assert stats.p99_ms(now) == pytest.approx(np.percentile(kept + 2.0, 99))
    assert np.isnan(stats.p99_ms(now, "publish"))
    assert stats.summary(now + 20 * S) == {}


def test_stage_stats_memory_is_bounded():
    stats = StageStats(window_s=1000.0, max_frames=10)
    for index in range(100):
        stats.add({"total": 1.0}, index)
    assert len(stats) == 10

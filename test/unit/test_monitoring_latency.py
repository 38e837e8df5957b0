"""TopicLatencyTracker on synthetic streams whose latency, rate, jitter and drops are known."""

import math

import numpy as np
import pytest

from ad_perception.monitoring.latency import TopicLatencyTracker, missed_between

MS = 1_000_000
S = 1_000_000_000
PERIOD = 100 * MS  # 10 Hz


def feed(tracker: TopicLatencyTracker, stamps_ns, latencies_ms) -> np.ndarray:
    """Observe each stamp received after its latency; returns the receive times (ns)."""
    receive = np.asarray(stamps_ns, dtype=np.int64) + np.round(
        np.asarray(latencies_ms) * MS).astype(np.int64)
    for stamp, received in zip(stamps_ns, receive, strict=True):
        tracker.observe(int(stamp), int(received))
    return receive


def test_window_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(math.log(30.0), 0.6, 500)
    stamps = np.arange(500) * PERIOD
    tracker = TopicLatencyTracker(window_s=1000.0, expected_rate_hz=10.0)
    receive = feed(tracker, stamps, latencies)
    exact = (receive - stamps) / MS
    summary = tracker.summary(int(receive.max()))
    p50, p90, p99 = np.percentile(exact, [50, 90, 99])
    assert summary["count"] == 500
    assert summary["p50_ms"] == pytest.approx(p50, abs=1e-9)
    assert summary["p90_ms"] == pytest.approx(p90, abs=1e-9)
    assert summary["p99_ms"] == pytest.approx(p99, abs=1e-9)
    assert summary["max_ms"] == pytest.approx(exact.max())
    assert summary["mean_ms"] == pytest.approx(exact.mean())
    assert summary["stale"] == int(np.sum(exact > 150.0))
    assert summary["drops"] == summary["duplicates"] == summary["out_of_order"] == 0


def test_totals_reservoir_tracks_a_drifting_distribution():
    """Latency grows over the run, so a reservoir that kept only early samples would fail."""
    rng = np.random.default_rng(1)
    n = 20_000
    latencies = np.linspace(10.0, 90.0, n) + rng.normal(0.0, 3.0, n)
    stamps = np.arange(n) * PERIOD
    tracker = TopicLatencyTracker(window_s=5.0, reservoir_size=4096, max_samples=100)
    receive = feed(tracker, stamps, latencies)
    exact = (receive - stamps) / MS
    totals = tracker.totals()
    assert totals["count"] == n
    assert totals["max_ms"] == pytest.approx(exact.max())
    assert totals["mean_ms"] == pytest.approx(exact.mean())
    for key, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
        assert totals[key] == pytest.approx(np.percentile(exact, q), rel=0.03), key
    assert abs(len(tracker) - 50) <= 2  # the window holds only the last 5 s


@pytest.mark.parametrize("expected_rate_hz", [10.0, None])
def test_three_missing_stamps_are_three_drops(expected_rate_hz):
    rng = np.random.default_rng(2)
    index = np.delete(np.arange(60), [7, 30, 31])  # one single gap and one double gap
    stamps = index * PERIOD + rng.integers(-20 * MS, 20 * MS, len(index))  # +-0.2 period
    tracker = TopicLatencyTracker(window_s=100.0, expected_rate_hz=expected_rate_hz)
    receive = feed(tracker, stamps, rng.uniform(5.0, 60.0, len(index)))
    summary = tracker.summary(int(receive.max()))
    assert summary["drops"] == 3
    assert summary["drop_fraction"] == pytest.approx(3 / 60)
    assert summary["period_ms"] == pytest.approx(100.0, abs=10.0)
    assert tracker.totals()["drops"] == 3


def test_jittered_stamps_without_gaps_are_not_drops():
    rng = np.random.default_rng(3)
    stamps = np.arange(1000) * PERIOD + rng.integers(-20 * MS, 20 * MS, 1000)
    tracker = TopicLatencyTracker(window_s=1000.0)
    receive = feed(tracker, stamps, rng.uniform(5.0, 30.0, 1000))
    assert tracker.summary(int(receive.max()))["drops"] == 0
    assert tracker.totals()["drops"] == 0


def test_gaps_before_the_period_is_learned_are_counted_once_known():
    stamps = np.array([0, 2, 3, 4, 5, 6, 7]) * PERIOD  # stamp 1 lost before any period known
    tracker = TopicLatencyTracker(window_s=100.0)
    feed(tracker, stamps, np.full(len(stamps), 10.0))
    assert tracker.totals()["drops"] == 1


def test_duplicates_and_out_of_order_are_counted_separately():
    order = [0, 1, 2, 2, 4, 3, 5, 6, 1, 7]  # 2 repeated, 3 late, 1 repeated much later
    stamps = np.array(order) * PERIOD
    receive = np.arange(len(order)) * PERIOD + 30 * MS
    tracker = TopicLatencyTracker(window_s=100.0, expected_rate_hz=10.0)
    for stamp, received in zip(stamps, receive, strict=True):
        tracker.observe(int(stamp), int(received))
    summary = tracker.summary(int(receive[-1]))
    totals = tracker.totals()
    for counts in (summary, totals):
        assert counts["duplicates"] == 2
        assert counts["out_of_order"] == 1
        assert counts["drops"] == 0  # stamp 3 arrived late: not lost
    assert summary["count"] == totals["count"] == len(order)


def test_late_message_outside_any_gap_takes_no_drop_back():
    tracker = TopicLatencyTracker(window_s=100.0, expected_rate_hz=10.0)
    for index, stamp in enumerate([0, 1, 2, 4, 5, 6]):  # stamp 3 lost
        tracker.observe(stamp * PERIOD, index * PERIOD + 10 * MS)
    tracker.observe(int(1.5 * PERIOD), 7 * PERIOD)  # late, but not where the gap is
    totals = tracker.totals()
    assert (totals["drops"], totals["out_of_order"]) == (1, 1)


def test_rate_and_jitter_on_a_jittered_stream():
    rng = np.random.default_rng(4)
    period = 50 * MS  # 20 Hz
    n = 400
    stamps = np.arange(n) * period
    receive = stamps + 20 * MS + rng.normal(0.0, 5 * MS, n).astype(np.int64)
    tracker = TopicLatencyTracker(window_s=1000.0)
    for stamp, received in zip(stamps, receive, strict=True):
        tracker.observe(int(stamp), int(received))
    summary = tracker.summary(int(receive[-1]))
    assert summary["rate_hz"] == pytest.approx((n - 1) * S / (receive[-1] - receive[0]))
    assert summary["rate_hz"] == pytest.approx(20.0, rel=0.01)
    assert summary["jitter_ms"] == pytest.approx(np.std(np.diff(receive) / MS))
    assert summary["jitter_ms"] == pytest.approx(5.0 * math.sqrt(2.0), rel=0.15)
    assert summary["period_ms"] == pytest.approx(50.0)


def test_window_evicts_old_messages_and_reports_a_stalled_topic():
    tracker = TopicLatencyTracker(window_s=5.0, expected_rate_hz=10.0)
    stamps = np.arange(200) * PERIOD  # 20 s
    latencies = np.where(stamps < 15 * S, 10.0, 50.0)
    receive = feed(tracker, stamps, latencies)
    summary = tracker.summary(int(receive[-1]))
    assert summary["count"] == 50
    assert summary["p50_ms"] == pytest.approx(50.0)
    assert summary["mean_ms"] == pytest.approx(50.0)
    stalled = tracker.summary(int(receive[-1]) + 3 * S)
    assert stalled["age_s"] == pytest.approx(3.0)
    assert stalled["count"] == 20
    gone = tracker.summary(int(receive[-1]) + 60 * S)
    assert gone["count"] == 0
    assert math.isnan(gone["p99_ms"]) and math.isnan(gone["age_s"])
    assert math.isnan(gone["rate_hz"]) and gone["drops"] == 0
    assert tracker.totals()["count"] == 200


def test_window_memory_is_bounded():
    tracker = TopicLatencyTracker(window_s=1000.0, max_samples=100, reservoir_size=64)
    for i in range(10_000):
        tracker.observe(i * MS, i * MS + 5 * MS)
    assert len(tracker) == 100
    assert tracker.summary(10_000 * MS)["count"] == 100
    assert len(tracker._stamps_in_window) == 100  # duplicate lookup shrinks with the window
    assert len(tracker._reservoir) == 64
    assert tracker.totals()["count"] == 10_000


def test_empty_tracker():
    tracker = TopicLatencyTracker()
    summary, totals = tracker.summary(0), tracker.totals()
    assert summary["count"] == totals["count"] == 0
    assert math.isnan(summary["p50_ms"]) and math.isnan(totals["p99_ms"])
    assert math.isnan(totals["max_ms"]) and math.isnan(totals["mean_ms"])


@pytest.mark.parametrize(("gap_periods", "missed"),
                         [(1.0, 0), (1.4, 0), (1.6, 1), (2.0, 1), (4.0, 3), (0.0, 0), (-1.0, 0)])
def test_missed_between_rounds_to_whole_periods(gap_periods, missed):
    assert missed_between(gap_periods * PERIOD, PERIOD) == missed


@pytest.mark.parametrize("kwargs", [{"window_s": 0.0}, {"expected_rate_hz": 0.0},
                                    {"expected_rate_hz": -10.0}, {"stale_threshold_ms": -1.0},
                                    {"max_samples": 1}, {"reservoir_size": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        TopicLatencyTracker(**kwargs)


def test_warmup_messages_stay_out_of_the_totals_but_not_the_sequence():
    """Start-up latencies (first inferences) are counted apart; drops are still judged from
    the last warm-up stamp, so a gap right after warm-up is not lost."""
    from ad_perception.monitoring.latency import TopicLatencyTracker

    tracker = TopicLatencyTracker(expected_rate_hz=10.0, warmup_s=0.5)
    period = 100_000_000
    t0 = 5 * 10**9
    for i in [*range(15), *range(16, 30)]:  # frame 15 lost
        latency = 400_000_000 if i < 5 else 50_000_000  # slow start
        tracker.observe(t0 + i * period, t0 + i * period + latency)
    # the first arrives at 0.4 s, so arrivals before 0.9 s (frames 0-8) are warm-up
    totals = tracker.totals()
    assert totals["warmup"] == 9 and totals["count"] == 20 and totals["drops"] == 1
    assert totals["max_ms"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="warmup_s"):
        TopicLatencyTracker(warmup_s=-1.0)


def test_per_stamp_latencies_skip_the_warm_up_keep_first_arrivals_and_stay_bounded():
    tracker = TopicLatencyTracker(window_s=10.0, warmup_s=0.25, keep_stamps=3)
    ms = 1_000_000
    for i in range(8):  # a frame every 100 ms, 5 ms late; the first three are warm-up
        tracker.observe(i * 100 * ms, i * 100 * ms + 5 * ms)
    tracker.observe(700 * ms, 700 * ms + 9 * ms)  # a duplicate of the last: first one kept
    assert tracker.latency_by_stamp() == {500 * ms: 5.0, 600 * ms: 5.0, 700 * ms: 5.0}
    assert TopicLatencyTracker().latency_by_stamp() == {}  # off by default

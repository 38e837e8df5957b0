"""End-to-end latency, rate, jitter and drops of one topic, without ROS.

Nodes and the latency_monitor feed a :class:`TopicLatencyTracker` one (sensor stamp, receive
time) pair per message and publish its summaries; keeping the arithmetic here lets it be
tested on synthetic streams with known answers instead of through DDS timing.

Two views are kept because they answer different questions. The sliding window (by receive
time) says how the topic behaves *now*, which is what /diagnostics needs; it recomputes drops
from the sorted stamps it holds, so reordering inside the window never miscounts. The all-time
totals are for the shutdown summary and are updated per message in bounded memory.

``StageTimer``, ``StageStats`` and ``FrameGate`` live in their own modules and are re-exported
here so node code can import all latency helpers from one place.
"""

from __future__ import annotations

import math
import random
from collections import Counter, OrderedDict, deque
from typing import NamedTuple

import numpy as np

from ad_perception.eval.metrics import latency_summary
from ad_perception.monitoring.gate import FrameGate, FrameGateStats
from ad_perception.monitoring.stages import StageStats, StageTimer

__all__ = [
    "FrameGate", "FrameGateStats", "StageStats", "StageTimer", "TopicLatencyTracker",
    "missed_between",
]

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
# A learned period needs a few stamp intervals; its median ignores a minority of gaps.
MIN_INTERVALS_FOR_PERIOD = 4
_LEARN_INTERVALS = 64
_OPEN_GAPS = 32

ARRIVED, DUPLICATE, OUT_OF_ORDER = 0, 1, 2


class _Sample(NamedTuple):
    receive_ns: int
    stamp_ns: int
    latency_ms: float
    kind: int


def missed_between(gap_ns: float, period_ns: float) -> int:
    """Stamps expected strictly inside a stamp gap: a gap of k periods hides k-1 messages.

    The gap is rounded to whole periods, so stamp jitter below half a period never reads as a
    drop and a late-but-present message is never counted twice.
    """
    if not period_ns > 0 or gap_ns <= 0:
        return 0
    return max(math.floor(gap_ns / period_ns + 0.5) - 1, 0)


class TopicLatencyTracker:
    """Latency (receive minus sensor stamp), rate, jitter and drops of one topic.

    Memory is bounded: the window holds at most ``max_samples`` messages (if a topic is so fast
    that this fills before ``window_s``, the window is effectively shorter), and the all-time
    latency percentiles come from a seeded reservoir sample of ``reservoir_size`` latencies
    (Vitter's algorithm R). A reservoir rather than a fixed-bin histogram because it needs no
    guess of the latency range and its samples feed ``latency_summary`` unchanged; count, mean
    and max in the totals are exact, the percentiles carry sampling error (about +-0.2
    percentile points at p99 with 4096 samples).

    Drops are counted against the expected period: ``expected_rate_hz`` when given, otherwise
    the median interval between successive new stamps (learned after a few messages; gaps seen
    before then are counted once it is known). A duplicate is a stamp already seen; an
    out-of-order message has a new stamp older than the newest one, and if it fills a gap that
    was counted as drops, the totals take that drop back.
    """

    def __init__(self, window_s: float = 10.0, expected_rate_hz: float | None = None,
                 stale_threshold_ms: float = 150.0, max_samples: int = 10_000,
                 reservoir_size: int = 4096, seed: int = 0, warmup_s: float = 0.0,
                 keep_stamps: int = 0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        if expected_rate_hz is not None and not expected_rate_hz > 0:
            raise ValueError("expected_rate_hz must be > 0, or None to learn the period "
                             f"from the stamps; got {expected_rate_hz}")
        if not stale_threshold_ms > 0:
            raise ValueError(f"stale_threshold_ms must be > 0, got {stale_threshold_ms}")
        if not warmup_s >= 0:
            raise ValueError(f"warmup_s must be >= 0 seconds, got {warmup_s}")
        if max_samples < 2 or reservoir_size < 1:
            raise ValueError("max_samples must be >= 2 and reservoir_size >= 1, got "
                             f"{max_samples} and {reservoir_size}")
        self.window_ns = int(window_s * NS_PER_S)
        self.expected_period_ns = NS_PER_S / expected_rate_hz if expected_rate_hz else None
        self.stale_threshold_ms = float(stale_threshold_ms)
        self.max_samples = int(max_samples)
        self._window: deque[_Sample] = deque()
        self._stamps_in_window: Counter[int] = Counter()
        # Sequence state for the all-time totals.
        self._newest_stamp: int | None = None
        self._intervals: deque[int] = deque(maxlen=_LEARN_INTERVALS)
        self._unjudged_gaps: list[tuple[int, int]] = []
        self._open_gaps: deque[list[int]] = deque(maxlen=_OPEN_GAPS)  # [lo, hi, drops left]
        self._totals = {"count": 0, "drops": 0, "duplicates": 0, "out_of_order": 0, "stale": 0,
                        "warmup": 0}
        # Start-up (first inferences, allocation, discovery) is not steady state: messages in
        # the first ``warmup_s`` after the first one only count as "warmup" in the totals.
        self.warmup_ns = int(warmup_s * NS_PER_S)
        self._first_receive_ns: int | None = None
        self._latency_sum_ms = 0.0
        self._latency_max_ms = -math.inf
        self._reservoir: list[float] = []
        self._reservoir_size = int(reservoir_size)
        self._rng = random.Random(seed)
        # The latency of the last ``keep_stamps`` stamps (first arrival, after the warm-up):
        # a hop between two nodes is then one frame's receipt minus the same frame's publish,
        # not a difference of two medians taken over different frames.
        self._keep_stamps = max(int(keep_stamps), 0)
        self._by_stamp: OrderedDict[int, float] = OrderedDict()

    # ------------------------------------------------------------------------- feeding
    def observe(self, stamp_ns: int, receive_ns: int) -> None:
        """Record one message: its header stamp and when it was received (same clock)."""
        stamp_ns, receive_ns = int(stamp_ns), int(receive_ns)
        if self._first_receive_ns is None:
            self._first_receive_ns = receive_ns
        if receive_ns - self._first_receive_ns < self.warmup_ns:
            self._totals["warmup"] += 1
            self._newest_stamp = max(stamp_ns, self._newest_stamp or stamp_ns)
            return
        self._evict(receive_ns)
        kind = self._classify(stamp_ns)
        latency_ms = (receive_ns - stamp_ns) / NS_PER_MS
        if len(self._window) >= self.max_samples:
            self._forget(self._window.popleft())
        self._window.append(_Sample(receive_ns, stamp_ns, latency_ms, kind))
        self._stamps_in_window[stamp_ns] += 1
        if self._keep_stamps and stamp_ns not in self._by_stamp:
            self._by_stamp[stamp_ns] = latency_ms
            if len(self._by_stamp) > self._keep_stamps:
                self._by_stamp.popitem(last=False)

        totals = self._totals
        totals["count"] += 1
        totals["stale"] += latency_ms > self.stale_threshold_ms
        self._latency_sum_ms += latency_ms
        self._latency_max_ms = max(self._latency_max_ms, latency_ms)
        if len(self._reservoir) < self._reservoir_size:
            self._reservoir.append(latency_ms)
        else:
            slot = self._rng.randrange(totals["count"])
            if slot < self._reservoir_size:
                self._reservoir[slot] = latency_ms

    def _classify(self, stamp_ns: int) -> int:
        newest = self._newest_stamp
        if stamp_ns == newest or self._stamps_in_window[stamp_ns] > 0:
            self._totals["duplicates"] += 1
            return DUPLICATE
        if newest is not None and stamp_ns < newest:
            self._totals["out_of_order"] += 1
            self._take_back_drop(stamp_ns)
            return OUT_OF_ORDER
        if newest is not None:
            self._judge_gap(newest, stamp_ns)
        self._newest_stamp = stamp_ns
        return ARRIVED

    def _judge_gap(self, lo: int, hi: int) -> None:
        self._intervals.append(hi - lo)
        self._unjudged_gaps.append((lo, hi))
        period = self._totals_period_ns()
        if period is None:
            return
        for gap_lo, gap_hi in self._unjudged_gaps:
            missed = missed_between(gap_hi - gap_lo, period)
            if missed:
                self._totals["drops"] += missed
                self._open_gaps.append([gap_lo, gap_hi, missed])
        self._unjudged_gaps.clear()

    def _take_back_drop(self, stamp_ns: int) -> None:
        """A late message inside a gap already counted as drops was not lost after all."""
        for gap in self._open_gaps:
            if gap[0] < stamp_ns < gap[1] and gap[2] > 0:
                gap[2] -= 1
                self._totals["drops"] -= 1
                return

    def _totals_period_ns(self) -> float | None:
        if self.expected_period_ns is not None:
            return self.expected_period_ns
        if len(self._intervals) < MIN_INTERVALS_FOR_PERIOD:
            return None
        return float(np.median(self._intervals))

    def _evict(self, now_ns: int) -> None:
        oldest_kept = now_ns - self.window_ns
        while self._window and self._window[0].receive_ns <= oldest_kept:
            self._forget(self._window.popleft())

    def _forget(self, sample: _Sample) -> None:
        left = self._stamps_in_window[sample.stamp_ns] - 1
        if left > 0:
            self._stamps_in_window[sample.stamp_ns] = left
        else:
            del self._stamps_in_window[sample.stamp_ns]

    # ------------------------------------------------------------------------- reporting
    def __len__(self) -> int:
        """Messages currently held in the window (never more than ``max_samples``)."""
        return len(self._window)

    def summary(self, now_ns: int) -> dict[str, float]:
        """The window ending at ``now_ns``, evicting older messages first.

        Keys: ``count``; latency ``p50_ms p90_ms p99_ms max_ms mean_ms latency_std_ms``;
        ``rate_hz`` (arrivals over their own span, exact for a steady stream); ``jitter_ms``
        (std of inter-arrival intervals); ``age_s`` (since the last message, which is what
        exposes a stalled topic whose last arrivals still fill the window); ``period_ms`` used
        for drops (nan until known); ``drops``, ``drop_fraction`` (of expected messages),
        ``duplicates``, ``out_of_order``, ``stale``. Values are nan where undefined.
        """
        self._evict(int(now_ns))
        samples = self._window
        latency = latency_summary([s.latency_ms for s in samples])
        receive_ns = np.fromiter((s.receive_ns for s in samples), np.int64, len(samples))
        span_ns = int(receive_ns[-1] - receive_ns[0]) if len(samples) >= 2 else 0
        intervals_ms = np.diff(receive_ns) / NS_PER_MS
        stamps = np.array(sorted(self._stamps_in_window), dtype=np.int64)
        stamp_gaps = np.diff(stamps)
        period = self.expected_period_ns
        if period is None and len(stamp_gaps) >= MIN_INTERVALS_FOR_PERIOD:
            period = float(np.median(stamp_gaps))
        drops = sum(missed_between(int(gap), period) for gap in stamp_gaps) if period else 0
        expected = len(stamps) + drops
        return {
            "count": len(samples),
            "p50_ms": latency["p50"], "p90_ms": latency["p90"], "p99_ms": latency["p99"],
            "max_ms": latency["max"], "mean_ms": latency["mean"],
            "latency_std_ms": latency["jitter"],
            "rate_hz": (len(samples) - 1) * NS_PER_S / span_ns if span_ns > 0 else math.nan,
            "jitter_ms": float(intervals_ms.std()) if len(intervals_ms) >= 2 else math.nan,
            "age_s": (now_ns - int(receive_ns[-1])) / NS_PER_S if len(samples) else math.nan,
            "period_ms": period / NS_PER_MS if period else math.nan,
            "drops": drops,
            "drop_fraction": drops / expected if expected else math.nan,
            "duplicates": sum(s.kind == DUPLICATE for s in samples),
            "out_of_order": sum(s.kind == OUT_OF_ORDER for s in samples),
            "stale": sum(s.latency_ms > self.stale_threshold_ms for s in samples),
        }

    def latency_by_stamp(self) -> dict[int, float]:
        """Stamp -> latency (ms) of the last ``keep_stamps`` stamps seen after the warm-up."""
        return dict(self._by_stamp)

    def totals(self) -> dict[str, float]:
        """All-time counts and latency for the shutdown summary.

        ``count drops duplicates out_of_order stale`` are exact (drops as judged per message,
        see the class docstring); ``mean_ms max_ms`` are exact; ``p50_ms p90_ms p99_ms`` come
        from the reservoir sample.
        """
        count = self._totals["count"]
        sampled = latency_summary(self._reservoir)
        return dict(self._totals) | {
            "p50_ms": sampled["p50"], "p90_ms": sampled["p90"], "p99_ms": sampled["p99"],
            "max_ms": self._latency_max_ms if count else math.nan,
            "mean_ms": self._latency_sum_ms / count if count else math.nan,
        }

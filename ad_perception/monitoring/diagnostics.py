"""Status logic behind /diagnostics, as plain dataclasses (no ROS).

Each ``check_*`` turns one measurement into a :class:`Status` whose fields mirror
``diagnostic_msgs/DiagnosticStatus`` (level, name, message, key/value strings), so a node only
copies fields into a message, and every threshold boundary is testable without a graph.
Measurements *at* a threshold pass: the budgets in DESIGN.md are "p99 <= 150 ms", not "< ".
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Level values of diagnostic_msgs/DiagnosticStatus (a byte there: pass bytes([level])).
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
# The message values are not a severity order: a known fault (ERROR) outranks "no data"
# (STALE), which outranks a degraded-but-running WARN.
_SEVERITY = {OK: 0, WARN: 1, STALE: 2, ERROR: 3}
NS_PER_S = 1_000_000_000


@dataclass
class Status:
    """One DiagnosticStatus: ``values`` are already strings, as KeyValue needs."""

    level: int
    name: str
    message: str
    values: dict[str, str] = field(default_factory=dict)
    hardware_id: str = ""

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _status(level: int, name: str, message: str, **values: object) -> Status:
    return Status(level, name, message, {key: _text(v) for key, v in values.items()})


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Thresholds; defaults follow DESIGN.md's budgets (end-to-end p99 <= 150 ms at 10 Hz).

    ``*_fraction`` for rate is of the expected rate (lower is worse); for drops it is of the
    messages expected in the window (higher is worse).
    """

    latency_warn_ms: float = 120.0
    latency_error_ms: float = 150.0
    processing_warn_ms: float = 80.0
    processing_error_ms: float = 100.0  # one 10 Hz period: beyond it frames must be dropped
    rate_warn_fraction: float = 0.8
    rate_error_fraction: float = 0.5
    drop_warn_fraction: float = 0.02
    drop_error_fraction: float = 0.1
    stale_after_s: float = 1.0

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{item.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{item.name} must be a finite number >= 0, got {value}")
        for warn, error in (("latency_warn_ms", "latency_error_ms"),
                            ("processing_warn_ms", "processing_error_ms"),
                            ("drop_warn_fraction", "drop_error_fraction"),
                            ("rate_error_fraction", "rate_warn_fraction")):
            if getattr(self, warn) > getattr(self, error):
                raise ValueError(f"{warn} ({getattr(self, warn)}) must be <= {error} "
                                 f"({getattr(self, error)}): the warning must come first")
        for name in ("rate_warn_fraction", "drop_error_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} is a fraction in [0, 1], got {getattr(self, name)}")
        if self.stale_after_s == 0:
            raise ValueError("stale_after_s must be > 0: every topic would read as stale")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DiagnosticsConfig:
        """Build from ROS parameters or YAML, naming unknown keys instead of a TypeError."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown diagnostics settings {unknown}; valid: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]


class WindowedCounter:
    """Events (bad inputs, dropped frames) in a sliding window, plus the all-time total and
    the last error text. Events are merged into 1/100-window buckets so memory is bounded
    however fast errors arrive."""

    def __init__(self, window_s: float = 10.0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        self.window_ns = int(window_s * NS_PER_S)
        self._bucket_ns = max(self.window_ns // 100, 1)
        self._buckets: deque[list[int]] = deque()  # [bucket start ns, count]
        self.total = 0
        self.last_text = ""

    def add(self, now_ns: int, count: int = 1, text: str | None = None) -> None:
        """Record ``count`` events at ``now_ns`` (and remember ``text`` as the latest)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if text is not None:
            self.last_text = text
        if count == 0:
            return
        now_ns = int(now_ns)
        self.total += count
        if self._buckets and now_ns - self._buckets[-1][0] < self._bucket_ns:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([now_ns, count])
        self._evict(now_ns)

    def sync(self, total: int, now_ns: int, text: str | None = None) -> None:
        """Follow a monotonic all-time counter kept elsewhere (e.g. FrameGate.stats())."""
        self.add(now_ns, max(int(total) - self.total, 0), text)

    def _evict(self, now_ns: int) -> None:
        while self._buckets and self._buckets[0][0] <= now_ns - self.window_ns:
            self._buckets.popleft()

    def in_window(self, now_ns: int) -> int:
        self._evict(int(now_ns))
        return sum(count for _, count in self._buckets)


# ------------------------------------------------------------------------------- checks
def _budget(name: str, what: str, value_ms: float, warn_ms: float, error_ms: float) -> Status:
    values = {"p99_ms": value_ms, "warn_ms": warn_ms, "error_ms": error_ms}
    if math.isnan(value_ms):
        return _status(OK, name, f"no {what} samples yet", **values)
    if value_ms > error_ms:
        return _status(ERROR, name, f"{what} p99 {value_ms:.1f} ms > {error_ms:g} ms",
                       **values)
    if value_ms > warn_ms:
        return _status(WARN, name, f"{what} p99 {value_ms:.1f} ms > {warn_ms:g} ms", **values)
    return _status(OK, name, f"{what} p99 {value_ms:.1f} ms", **values)


def check_latency(p99_ms: float, config: DiagnosticsConfig, name: str = "latency") -> Status:
    """End-to-end (now minus sensor stamp) p99 against the latency budget."""
    return _budget(name, "latency", p99_ms, config.latency_warn_ms, config.latency_error_ms)


def check_processing_time(p99_ms: float, config: DiagnosticsConfig,
                          name: str = "processing_time") -> Status:
    """In-node processing p99: exceeding the frame period means frames pile up or drop."""
    return _budget(name, "processing time", p99_ms, config.processing_warn_ms,
                   config.processing_error_ms)


def check_input_rate(rate_hz: float, age_s: float, config: DiagnosticsConfig,
                     expected_rate_hz: float | None = None, name: str = "input_rate") -> Status:
    """STALE when nothing arrived for ``stale_after_s`` (or ever); otherwise the rate against
    the expected one, if known. ``age_s`` catches a stopped topic that the rate, computed
    over arrivals still in the window, reports late."""
    values = {"rate_hz": rate_hz, "age_s": age_s,
              "expected_hz": math.nan if expected_rate_hz is None else expected_rate_hz}
    if math.isnan(age_s):
        return _status(STALE, name, "no messages received", **values)
    if age_s > config.stale_after_s:
        return _status(STALE, name, f"no message for {age_s:.1f} s", **values)
    if expected_rate_hz is None or math.isnan(rate_hz):
        return _status(OK, name, "receiving", **values)
    for level, fraction in ((ERROR, config.rate_error_fraction),
                            (WARN, config.rate_warn_fraction)):
        if rate_hz < fraction * expected_rate_hz:
            return _status(level, name, f"input rate {rate_hz:.1f} Hz < {fraction:g} x "
                           f"{expected_rate_hz:g} Hz expected", **values)
    return _status(OK, name, f"input rate {rate_hz:.1f} Hz", **values)


def check_drops(dropped: int, processed: int, config: DiagnosticsConfig,
                name: str = "drops") -> Status:
    """Frames lost (or replaced before processing) as a fraction of all frames in the window."""
    expected = dropped + processed
    fraction = dropped / expected if expected else 0.0
    values = {"dropped": dropped, "processed": processed, "drop_fraction": fraction}
    for level, limit in ((ERROR, config.drop_error_fraction), (WARN, config.drop_warn_fraction)):
        if fraction > limit:
            return _status(level, name, f"{dropped} of {expected} frames dropped "
                           f"({fraction:.0%} > {limit:.0%})", **values)
    return _status(OK, name, f"{dropped} frames dropped", **values)


def check_device(cpu_fallback: bool, reason: str = "", name: str = "device") -> Status:
    """WARN while a GPU-configured node runs on CPU: it works, but misses the GPU budget."""
    if cpu_fallback:
        return _status(WARN, name, "running on CPU fallback" + (f": {reason}" if reason else ""),
                       cpu_fallback=True)
    return _status(OK, name, "running on configured device", cpu_fallback=False)


def check_input_errors(errors: WindowedCounter, now_ns: int,
                       name: str = "input_errors") -> Status:
    """WARN while bad inputs (conversion failures, wrong encodings) occur in the window."""
    recent = errors.in_window(now_ns)
    values = {"in_window": recent, "total": errors.total, "last_error": errors.last_text}
    if recent:
        return _status(WARN, name, f"{recent} bad inputs skipped: {errors.last_text}",
                       **values)
    return _status(OK, name, "no bad inputs", **values)


def check_missing_inputs(missing: Iterable[str], name: str = "inputs") -> Status:
    """WARN while something the node needs has not arrived (CameraInfo, a TF transform)."""
    missing = list(missing)
    if missing:
        return _status(WARN, name, "waiting for " + ", ".join(missing),
                       missing=", ".join(missing))
    return _status(OK, name, "all inputs available", missing="")


def check_model(load_error: str | None, name: str = "model") -> Status:
    """ERROR when the model could not be loaded: the node publishes nothing useful."""
    if load_error:
        return _status(ERROR, name, f"model failed to load: {load_error}", error=load_error)
    return _status(OK, name, "model loaded", error="")


def combine(name: str, statuses: Iterable[Status], hardware_id: str = "") -> Status:
    """One status per component: the worst level wins and the message lists every non-OK
    reason, worst first, so the one-line summary in a monitor already says what to fix."""
    statuses = list(statuses)
    worst = max((s.level for s in statuses), key=_SEVERITY.__getitem__, default=OK)
    problems = sorted((s for s in statuses if s.level != OK),
                      key=lambda s: -_SEVERITY[s.level])
    message = "; ".join(s.message for s in problems) if problems else "OK"
    values = {f"{s.name}.{key}": value for s in statuses for key, value in s.values.items()}
    return Status(worst, name, message, values, hardware_id)


def check_topic(name: str, summary: Mapping[str, float], config: DiagnosticsConfig,
                expected_rate_hz: float | None = None) -> Status:
    """Latency, rate and drops of one topic from ``TopicLatencyTracker.summary``."""
    unique = int(summary["count"]) - int(summary["duplicates"])
    return combine(name, [
        check_latency(summary["p99_ms"], config),
        check_input_rate(summary["rate_hz"], summary["age_s"], config, expected_rate_hz),
        check_drops(int(summary["drops"]), unique, config),
    ])


class Throttle:
    """Rate-limits a repeated warning: nodes log bad input at most once per ``period_s`` and
    keep counting the rest (``suppressed`` says how many were skipped before the last one let
    through, for "(N more)" in the log line)."""

    def __init__(self, period_s: float) -> None:
        if not period_s >= 0:
            raise ValueError(f"period_s must be >= 0 seconds, got {period_s}")
        self.period_s = float(period_s)
        self._last_s: float | None = None
        self._skipped = 0
        self.suppressed = 0

    def ready(self, now_s: float | None = None) -> bool:
        """True on the first call and then at most once per period (monotonic clock if
        ``now_s`` is not given)."""
        now_s = time.monotonic() if now_s is None else float(now_s)
        if self._last_s is not None and now_s - self._last_s < self.period_s:
            self._skipped += 1
            return False
        self._last_s = now_s
        self.suppressed, self._skipped = self._skipped, 0
        return True

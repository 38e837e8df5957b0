"""Pairing camera and lidar frames by stamp, with an offset, a tolerance and a timeout.

An approximate-time filter drops the whole set when one input is late or missing, which
would stop the fused output exactly when planning needs it most (a camera that froze, a
detector that restarted). This matcher instead waits a bounded time for the partner of each
frame and then lets the frame go alone, so fusion can publish a degraded lidar-only or
camera-only result and say so. It also lets a frame go early once the partner stream has
moved past it (streams arrive in stamp order), so a missing partner costs no waiting.

Stamps are compared after removing the expected offset (camera stamp minus lidar stamp,
e.g. a camera triggered mid-sweep); arrival times only drive the timeout. The two detectors
rarely take equally long, so the matcher learns the typical arrival lag between partners
(median of recent pairs, including partners that came too late) and lets the frame of the
faster sensor wait that lag plus the timeout; a lidar path 110 ms slower than the camera's
then still fuses instead of degrading every frame. ROS-free and not thread-safe: the fusion
node calls it from one callback group.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

CAMERA, LIDAR = "camera", "lidar"
SENSORS = (CAMERA, LIDAR)
MATCHED, TIMEOUT, PASSED, EVICTED = "matched", "timeout", "partner_passed", "evicted"
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class SyncConfig:
    """``camera_offset_ns``: expected camera stamp minus lidar stamp. ``tolerance_ns``:
    largest deviation from that offset that still pairs. ``timeout_ns``: how long a frame
    waits (from its arrival) for its partner. ``max_pending``: frames kept per sensor."""

    camera_offset_ns: int = 0
    tolerance_ns: int = 50 * NS_PER_MS
    timeout_ns: int = 60 * NS_PER_MS
    max_pending: int = 4
    max_lag_ns: int = 500 * NS_PER_MS  # the learned arrival lag is capped at this

    def __post_init__(self) -> None:
        if self.tolerance_ns <= 0 or self.timeout_ns <= 0:
            raise ValueError(f"tolerance_ns and timeout_ns must be > 0, got "
                             f"{self.tolerance_ns} and {self.timeout_ns}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")
        if self.max_lag_ns < 0:
            raise ValueError(f"max_lag_ns must be >= 0, got {self.max_lag_ns}")


@dataclass
class FrameSet:
    """What fusion processes: both frames, or one whose partner did not come (``reason``)."""

    lidar: Any | None
    camera: Any | None
    lidar_stamp_ns: int | None
    camera_stamp_ns: int | None
    reason: str

    @property
    def stamp_ns(self) -> int:
        """The output stamp: the lidar's when there is one (geometry comes from it)."""
        return self.lidar_stamp_ns if self.lidar_stamp_ns is not None else self.camera_stamp_ns

    @property
    def kind(self) -> str:
        if self.lidar is not None and self.camera is not None:
            return "fused"
        return "lidar_only" if self.lidar is not None else "camera_only"


@dataclass
class _Pending:
    stamp_ns: int
    item: Any
    arrival_ns: int
    deadline_ns: int


@dataclass
class SyncStats:
    matched: int = 0
    lidar_only: int = 0
    camera_only: int = 0
    late: int = 0  # arrived after its partner had already gone alone: not used
    out_of_order: int = 0  # not newer than the last frame of the same sensor
    evicted: int = 0  # pushed out by max_pending before its partner came
    by_reason: dict[str, int] = field(default_factory=dict)


class StampMatcher:
    """``add(sensor, stamp_ns, item, now_ns)`` and ``poll(now_ns)`` return the frame sets
    that are complete or given up on, oldest first."""

    def __init__(self, config: SyncConfig | None = None) -> None:
        self.config = config or SyncConfig()
        self.stats = SyncStats()
        self._pending: dict[str, list[_Pending]] = {CAMERA: [], LIDAR: []}
        self._newest: dict[str, int | None] = {CAMERA: None, LIDAR: None}
        # (stamp in the lidar time base, arrival) of frames that went out alone, to recognise
        # late partners
        self._alone: dict[str, deque[tuple[int, int]]] = {CAMERA: deque(maxlen=16),
                                                          LIDAR: deque(maxlen=16)}
        self._lags: deque[int] = deque(maxlen=16)  # lidar arrival minus camera arrival

    @property
    def lag_ns(self) -> int:
        """Typical lidar-minus-camera arrival difference of partners (0 until seen)."""
        if not self._lags:
            return 0
        lag = sorted(self._lags)[len(self._lags) // 2]
        return max(-self.config.max_lag_ns, min(self.config.max_lag_ns, lag))

    def _observe_lag(self, sensor: str, arrival_ns: int, partner_arrival_ns: int) -> None:
        lag = arrival_ns - partner_arrival_ns
        self._lags.append(lag if sensor == LIDAR else -lag)

    def _deadline(self, sensor: str, now_ns: int) -> int:
        """The faster sensor's frame also waits for the partner's usual lag."""
        lag = self.lag_ns if sensor == CAMERA else -self.lag_ns
        return now_ns + max(lag, 0) + self.config.timeout_ns

    def _aligned(self, sensor: str, stamp_ns: int) -> int:
        return stamp_ns - self.config.camera_offset_ns if sensor == CAMERA else stamp_ns

    def add(self, sensor: str, stamp_ns: int, item: Any, now_ns: int) -> list[FrameSet]:
        if sensor not in SENSORS:
            raise ValueError(f"sensor must be one of {SENSORS}, got {sensor!r}")
        stamp_ns, now_ns = int(stamp_ns), int(now_ns)
        out = self.poll(now_ns)
        newest = self._newest[sensor]
        if newest is not None and stamp_ns <= newest:
            self.stats.out_of_order += 1
            return out
        self._newest[sensor] = stamp_ns
        other = LIDAR if sensor == CAMERA else CAMERA
        aligned = self._aligned(sensor, stamp_ns)
        tolerance = self.config.tolerance_ns
        late = [arrival for alone, arrival in self._alone[other]
                if abs(aligned - alone) <= tolerance]
        if late:
            self.stats.late += 1  # the partner already went out alone with this stamp
            self._observe_lag(sensor, now_ns, late[0])
            return out
        waiting = self._pending[other]
        candidates = [p for p in waiting
                      if abs(self._aligned(other, p.stamp_ns) - aligned) <= tolerance]
        if candidates:
            partner = min(candidates,
                          key=lambda p: abs(self._aligned(other, p.stamp_ns) - aligned))
            waiting.remove(partner)
            self._observe_lag(sensor, now_ns, partner.arrival_ns)
            out += self._release(other, lambda p: p.stamp_ns < partner.stamp_ns, PASSED)
            out.append(self._pair(sensor, stamp_ns, item, partner))
            return sorted(out, key=lambda s: s.stamp_ns)
        # No partner yet. Waiting frames of the other sensor that are older than anything
        # this sensor can still send (its stream is in order) will never be paired.
        out += self._release(
            other, lambda p: self._aligned(other, p.stamp_ns) < aligned - tolerance, PASSED)
        own = self._pending[sensor]
        own.append(_Pending(stamp_ns, item, now_ns, self._deadline(sensor, now_ns)))
        while len(own) > self.config.max_pending:
            oldest = own.pop(0)
            self.stats.evicted += 1
            out.append(self._alone_set(sensor, oldest, EVICTED))
        return sorted(out, key=lambda s: s.stamp_ns)

    def poll(self, now_ns: int) -> list[FrameSet]:
        """Frames whose partner did not arrive within the timeout, as single-sensor sets."""
        out: list[FrameSet] = []
        for sensor in SENSORS:
            out += self._release(sensor, lambda p: p.deadline_ns <= now_ns, TIMEOUT)
        return sorted(out, key=lambda s: s.stamp_ns)

    def pending(self, sensor: str) -> int:
        return len(self._pending[sensor])

    def next_deadline_ns(self) -> int | None:
        deadlines = [p.deadline_ns for sensor in SENSORS for p in self._pending[sensor]]
        return min(deadlines, default=None)

    # ------------------------------------------------------------------------ internals
    def _release(self, sensor: str, condition, reason: str) -> list[FrameSet]:
        keep, gone = [], []
        for pending in self._pending[sensor]:
            (gone if condition(pending) else keep).append(pending)
        self._pending[sensor] = keep
        return [self._alone_set(sensor, pending, reason) for pending in gone]

    def _alone_set(self, sensor: str, pending: _Pending, reason: str) -> FrameSet:
        self._alone[sensor].append((self._aligned(sensor, pending.stamp_ns), pending.arrival_ns))
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        if sensor == LIDAR:
            self.stats.lidar_only += 1
            return FrameSet(pending.item, None, pending.stamp_ns, None, reason)
        self.stats.camera_only += 1
        return FrameSet(None, pending.item, None, pending.stamp_ns, reason)

    def _pair(self, sensor: str, stamp_ns: int, item: Any, partner: _Pending) -> FrameSet:
        self.stats.matched += 1
        self.stats.by_reason[MATCHED] = self.stats.by_reason.get(MATCHED, 0) + 1
        if sensor == LIDAR:
            return FrameSet(item, partner.item, stamp_ns, partner.stamp_ns, MATCHED)
        return FrameSet(partner.item, item, partner.stamp_ns, stamp_ns, MATCHED)

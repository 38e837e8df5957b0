"""Per-frame stage timing (pre-process, inference, post-process, conversion, publish).

Nodes publish ``~/debug/processing_time_ms`` and need to show where a frame's time went, so
that "ROS overhead <= 10% of end-to-end" (DESIGN.md) can be checked from the debug output.
The pipelines already time their own three stages (``StageTimes``); ``StageTimer`` times the
node's stages around them and merges both into one per-frame record.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ad_perception.eval.metrics import latency_summary

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
TOTAL = "total"


class StageTimer:
    """Times named stages of one frame; ``finish()`` returns them (ms) and starts the next.

    Not thread-safe: one timer per worker thread, as each frame is processed by one thread.
    A stage entered twice in a frame accumulates, and a stage that raises is still timed, so
    a slow failure is visible rather than lost.
    """

    def __init__(self, clock_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self._clock_ns = clock_ns
        self._frame_ns: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """``with timer.stage("inference"): ...`` adds the block's duration to that stage."""
        if not name or name == TOTAL:
            raise ValueError(f"stage name must be non-empty and not {TOTAL!r}, got {name!r}")
        started = self._clock_ns()
        try:
            yield
        finally:
            elapsed = self._clock_ns() - started
            self._frame_ns[name] = self._frame_ns.get(name, 0) + elapsed

    def add(self, name: str, elapsed_ms: float) -> None:
        """Add a duration measured elsewhere (e.g. inside a pipeline) to a stage."""
        if not elapsed_ms >= 0:
            raise ValueError(f"stage {name!r}: elapsed_ms must be >= 0, got {elapsed_ms}")
        self._frame_ns[name] = self._frame_ns.get(name, 0) + round(elapsed_ms * NS_PER_MS)

    def merge(self, stage_times: object) -> None:
        """Merge a pipeline's ``StageTimes`` (any dataclass of ``*_ms`` fields), so the
        pipeline's inner stages show beside the node's without timing them twice."""
        if not dataclasses.is_dataclass(stage_times):
            raise TypeError(f"expected a StageTimes-like dataclass, got {type(stage_times)}")
        for field in dataclasses.fields(stage_times):
            if field.name.endswith("_ms"):
                self.add(field.name.removesuffix("_ms"), getattr(stage_times, field.name))

    def finish(self) -> dict[str, float]:
        """This frame's stages in ms plus ``total`` (their sum); resets for the next frame."""
        frame = {name: elapsed / NS_PER_MS for name, elapsed in self._frame_ns.items()}
        frame[TOTAL] = sum(self._frame_ns.values()) / NS_PER_MS
        self._frame_ns = {}
        return frame


class StageStats:
    """Sliding-window statistics per stage, for /diagnostics and the shutdown summary.

    Frames older than ``window_s`` (by the time given to ``add``) or beyond ``max_frames``
    are forgotten, so memory stays bounded whatever the frame rate.
    """

    def __init__(self, window_s: float = 10.0, max_frames: int = 2000) -> None:
        if not window_s > 0 or max_frames < 1:
            raise ValueError("window_s must be > 0 and max_frames >= 1, got "
                             f"{window_s} and {max_frames}")
        self.window_ns = int(window_s * NS_PER_S)
        self._frames: deque[tuple[int, Mapping[str, float]]] = deque(maxlen=int(max_frames))

    def add(self, frame_ms: Mapping[str, float], now_ns: int) -> None:
        """Record one frame's stage times (as returned by ``StageTimer.finish``)."""
        self._evict(int(now_ns))
        self._frames.append((int(now_ns), dict(frame_ms)))

    def _evict(self, now_ns: int) -> None:
        while self._frames and self._frames[0][0] <= now_ns - self.window_ns:
            self._frames.popleft()

    def __len__(self) -> int:
        return len(self._frames)

    def summary(self, now_ns: int) -> dict[str, dict[str, float]]:
        """Per stage: ``latency_summary`` of its times over the frames that ran it."""
        self._evict(int(now_ns))
        by_stage: dict[str, list[float]] = {}
        for _, frame in self._frames:
            for name, elapsed_ms in frame.items():
                by_stage.setdefault(name, []).append(elapsed_ms)
        return {name: latency_summary(values) for name, values in by_stage.items()}

    def p99_ms(self, now_ns: int, stage: str = TOTAL) -> float:
        """The number the processing-time budget is checked against; nan without frames."""
        return self.summary(now_ns).get(stage, {}).get("p99", math.nan)

"""Latest-only hand-off between a subscription callback and a node's worker thread.

DESIGN.md: stale frames are never processed when a newer one has arrived, and drops are
counted. Keep-last-1 QoS covers the transport, but a frame can still wait inside the node
while the worker is busy; this single-slot mailbox replaces it the moment a newer one comes,
so the worker always starts on the newest frame and the replacement is counted as a drop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True)
class FrameGateStats:
    """Counters since construction: every offer accepted or refused while open ends up in
    exactly one of taken, dropped, out_of_order, duplicates, or is still pending."""

    offered: int = 0
    taken: int = 0
    dropped: int = 0  # replaced by a newer frame before the worker took it
    out_of_order: int = 0  # older than the newest frame taken or waiting
    duplicates: int = 0  # same stamp as the newest frame taken or waiting
    pending: int = 0


class FrameGate(Generic[Item]):
    """Thread-safe single-slot mailbox keyed by sensor stamp (ns).

    ``offer`` is called from the subscription callback and never blocks on the worker;
    ``take`` is called from the worker and may wait. ``close`` wakes a waiting worker so the
    node can shut down. ``None`` is not a valid item because ``take`` uses it for "nothing".
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: Item | None = None
        self._pending_stamp_ns: int | None = None
        self._last_taken_stamp_ns: int | None = None
        self._closed = False
        self._counts = {"offered": 0, "taken": 0, "dropped": 0, "out_of_order": 0,
                        "duplicates": 0}

    def offer(self, item: Item, stamp_ns: int) -> bool:
        """Put ``item`` in the slot, replacing (and counting as dropped) an untaken older one.

        Returns False when the item is refused: its stamp is not newer than the frame taken
        last or the one waiting (out-of-order or duplicate), or the gate is closed.
        """
        if item is None:
            raise ValueError("FrameGate items must not be None (take() returns None when empty)")
        stamp_ns = int(stamp_ns)
        with self._condition:
            if self._closed:
                return False
            self._counts["offered"] += 1
            newest = max((s for s in (self._pending_stamp_ns, self._last_taken_stamp_ns)
                          if s is not None), default=None)
            if newest is not None and stamp_ns <= newest:
                self._counts["duplicates" if stamp_ns == newest else "out_of_order"] += 1
                return False
            if self._pending is not None:
                self._counts["dropped"] += 1
            self._pending, self._pending_stamp_ns = item, stamp_ns
            self._condition.notify()
            return True

    def take(self, timeout_s: float | None = 0.0) -> Item | None:
        """The newest waiting item, or None if nothing arrives within ``timeout_s``
        (0: don't wait, None: wait until an item arrives or the gate is closed)."""
        with self._condition:
            if timeout_s != 0.0:
                self._condition.wait_for(lambda: self._pending is not None or self._closed,
                                         timeout=timeout_s)
            if self._pending is None:
                return None
            item, self._pending = self._pending, None
            self._last_taken_stamp_ns, self._pending_stamp_ns = self._pending_stamp_ns, None
            self._counts["taken"] += 1
            return item

    def close(self) -> None:
        """Refuse further offers and wake the worker; an item still waiting can be taken."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed

    @property
    def last_taken_stamp_ns(self) -> int | None:
        """Stamp of the frame the worker took last, for its latency and output header."""
        with self._condition:
            return self._last_taken_stamp_ns

    def stats(self) -> FrameGateStats:
        """A consistent snapshot of the counters (taken under the lock)."""
        with self._condition:
            return FrameGateStats(**self._counts, pending=int(self._pending is not None))

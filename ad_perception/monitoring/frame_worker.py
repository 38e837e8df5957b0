"""The thread that runs a node's pipeline on the newest frame of a :class:`FrameGate`.

Inference runs off the subscription callback so the callback only drops the message into
the gate and returns: while the worker is busy, a newer frame replaces an older one in the
gate (counted as a drop) instead of queueing behind it. A failing frame is reported through
``on_error`` and the worker carries on with the next one; a node never dies of bad data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ad_perception.monitoring.gate import FrameGate

Item = TypeVar("Item")


class FrameWorker(Generic[Item]):
    """``FrameWorker(gate, process, on_error).start()``; ``stop()`` closes the gate and joins."""

    def __init__(self, gate: FrameGate[Item], process: Callable[[Item], None],
                 on_error: Callable[[Item, Exception], None], name: str = "frame-worker",
                 poll_s: float = 0.2) -> None:
        self.gate = gate
        self._process = process
        self._on_error = on_error
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.processed = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Close the gate, let the frame in progress finish; True if the thread ended."""
        self.gate.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self.gate.take(timeout_s=self._poll_s)
            if item is None:
                if self.gate.closed:
                    return
                continue
            try:
                self._process(item)
                self.processed += 1
            except Exception as err:  # noqa: BLE001 - reported, counted; the next frame runs
                self.failed += 1
                self._on_error(item, err)

"""Fixtures for tests that talk over real DDS: each test gets its own rclpy Context."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402


@pytest.fixture
def ros_context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


@pytest.fixture
def spin_until(ros_context: Context) -> Callable:
    """``spin_until(nodes, predicate, timeout)`` spins the nodes until predicate() is true;
    returns whether it became true (bounded wait, never hangs a test)."""

    def _spin_until(nodes, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        executor = SingleThreadedExecutor(context=ros_context)
        for node in nodes:
            executor.add_node(node)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if predicate():
                    return True
                executor.spin_once(timeout_sec=0.05)
            return predicate()
        finally:
            for node in nodes:
                executor.remove_node(node)
            executor.shutdown()

    return _spin_until

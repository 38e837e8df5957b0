"""Shared unit-test fixtures (no ROS here)."""

from __future__ import annotations

import pytest


@pytest.fixture
def torch_single_thread():
    """One torch thread and a fixed seed: model tests stay deterministic and do not fight
    the other test processes for the 2 cores."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)

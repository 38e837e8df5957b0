"""The executors a node process can run (``--executor``): each delivers messages over real
DDS when spun the way ``run_node`` spins it."""

from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy")


@pytest.mark.parametrize("kind", ["events", "single", "multi"])
def test_every_node_executor_delivers_messages_over_dds(ros_context, kind):
    """The executors a node process can be started with (``--executor``, launch argument
    ``executor``) each deliver a published message to a subscription, spun as run_node
    spins them."""
    from std_msgs.msg import String

    from ad_perception.ros.node_base import make_executor

    executor, loop = make_executor(kind, threads=2, context=ros_context)
    assert loop is (kind == "events")  # EventsExecutor.spin() ignores SIGINT: spin_once loop
    node = rclpy.create_node(f"executor_{kind}", context=ros_context)
    received: list[str] = []
    node.create_subscription(String, "executor_probe", lambda m: received.append(m.data), 10)
    publisher = node.create_publisher(String, "executor_probe", 10)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            publisher.publish(String(data=kind))
            executor.spin_once(timeout_sec=0.05)
        assert received and received[0] == kind
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()


def test_an_unknown_executor_is_refused_by_name():
    from ad_perception.ros.node_base import make_executor

    with pytest.raises(ValueError, match="unknown executor 'fast'; choose from events"):
        make_executor("fast")

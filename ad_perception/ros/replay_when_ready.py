"""Replay a bag into the perception graph once the graph can take it.

``ad-perception play --wait-for-subscribers`` starts as soon as each sensor topic has *a*
subscriber, but fusion subscribes to the point cloud within a second while the detectors
are still loading their models, so the first frames would reach fusion and miss the lidar
detector. This waits until every output topic has a publisher (the detectors create theirs
once the model is loaded) and every sensor topic is subscribed, then plays the bag restamped
to wall time. Used by launch/bag_eval.launch.py and scripts/bench_pipeline.py.

    python -m ad_perception.ros.replay_when_ready BAG --outputs /perception/objects ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ad_perception.ros_env import apply_ros_environment


def graph_ready(node, outputs: list[str], inputs: dict[str, int]) -> bool:
    """Every output topic has a publisher and each input at least its count of subscribers."""
    return (all(node.count_publishers(topic) >= 1 for topic in outputs)
            and all(node.count_subscribers(topic) >= n for topic, n in inputs.items()))


def wait_until(predicate: Callable[[], bool], timeout_s: float, spin: Callable[[], None]
               ) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        spin()
    return predicate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bag", type=Path)
    parser.add_argument("--topics", nargs="+", required=True, help="bag topics to replay")
    parser.add_argument("--outputs", nargs="+", default=[], help="wait for these publishers")
    parser.add_argument("--consumers", nargs="+", default=[],
                        help="then wait (up to --consumer-timeout) for a subscriber on each: "
                        "the latency monitor subscribes to outputs only once it sees them")
    parser.add_argument("--consumer-timeout", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    parser.add_argument("--summary-json", type=Path)
    args = parser.parse_args(argv)
    apply_ros_environment()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ad_perception.eval.replay import ReplayError
    from ad_perception.ros.bag_player import BagPlayer

    rclpy.init()
    node = rclpy.create_node("bag_player")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        player = BagPlayer(node, args.bag, topics=args.topics, restamp=True)
        inputs = {t: 1 for t in args.topics if t != "/tf_static"}
        if not wait_until(lambda: graph_ready(node, args.outputs, inputs), args.timeout,
                          lambda: executor.spin_once(timeout_sec=0.1)):
            print(f"replay: graph not ready after {args.timeout:g} s (outputs {args.outputs})",
                  file=sys.stderr)
            return 1
        consumed = {t: 1 for t in args.consumers}
        if not wait_until(lambda: graph_ready(node, [], consumed), args.consumer_timeout,
                          lambda: executor.spin_once(timeout_sec=0.1)):
            missing = [t for t in args.consumers if node.count_subscribers(t) < 1]
            print(f"replay: no subscriber on {missing} after {args.consumer_timeout:g} s; "
                  f"replaying anyway", file=sys.stderr)
        # discovery reports a node's publishers and subscriptions independently: settle
        wait_until(lambda: False, 0.5, lambda: executor.spin_once(timeout_sec=0.1))
        summary = player.play()
        player.close()
    except ReplayError as err:
        print(f"replay: {err}", file=sys.stderr)
        return 1
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    text = json.dumps(asdict(summary), indent=2)
    print(text)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

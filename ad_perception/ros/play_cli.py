"""``ad-perception play BAG``: replay a rosbag2 onto live topics over DDS (loopback only)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ad_perception.ros_env import apply_ros_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 folder (mcap or sqlite3)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--topics", nargs="+", help="only these topics (default: all)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO",
                        help="publish a bag topic under another name")
    parser.add_argument("--restamp", action="store_true",
                        help="shift header stamps by one offset so they read as wall time")
    parser.add_argument("--clock", action="store_true", help="publish /clock (use_sim_time)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SEC",
                        help="wait up to SEC for a subscriber on every replayed topic")
    parser.add_argument("--summary-json", type=Path, help="write counts and stamp offset here")


def run(args: argparse.Namespace) -> int:
    apply_ros_environment()
    import rclpy

    from ad_perception.eval.replay import ReplayError
    from ad_perception.ros.bag_player import BagPlayer

    remap = {}
    for item in args.remap:
        if ":=" not in item:
            print(f"play: --remap needs FROM:=TO, got {item!r}", file=sys.stderr)
            return 2
        source, target = item.split(":=", 1)
        remap[source] = target
    rclpy.init()
    node = rclpy.create_node("bag_player")
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, topics=args.topics, remap=remap,
                           restamp=args.restamp, publish_clock=args.clock)
        if args.wait_for_subscribers > 0:
            topics = [t for t in player.summary.published if t != "/tf_static"]
            if not player.wait_for_subscribers(topics, args.wait_for_subscribers):
                node.get_logger().warning("not every topic has a subscriber; playing anyway")
        summary = player.play()
        player.close()
    except ReplayError as err:
        print(f"play: {err}", file=sys.stderr)
        return 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(asdict(summary), indent=2))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(asdict(summary), indent=2))
    return 0

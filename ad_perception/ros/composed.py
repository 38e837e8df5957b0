"""perception_composed: perception nodes (all, or those given with --nodes) in one process.

The executor is rclpy's EventsExecutor by default (``--executor events``), as for one
process per node; ``single`` and ``multi`` remain. The heavy work runs in each detector's
worker thread, so every callback left is short (raw CDR in, a gate offer, a fusion step):
rclpy's MultiThreadedExecutor adds per-callback futures and GIL hand-offs between its
threads that starved the fusion and monitor callbacks on 2 cores (measured in
docs/benchmarks.md: p99 1.8 s and half the frames lost with it, 85 ms and none without).

One process saves the serialisation and the loopback hop between the nodes' address spaces
(and the per-process interpreter and model memory); the pipeline benchmark compares it with
one process per node. Parameters and remappings reach the nodes as usual: params files keyed
by node name (``/**/camera_detector:``), node-prefixed remappings
(``-r camera_detector:image:=/cam``). The two settings that share a name but differ per node,
the model files, come as options before ``--ros-args``.
"""

from __future__ import annotations

import argparse
import os
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args

from ad_perception.core.node_params import ConfigError
from ad_perception.ros.node_base import (
    PerceptionNode,
    add_executor_option,
    apply_rt_priority,
    make_executor,
    rt_priority_allowed,
    spin_nodes,
)
from ad_perception.ros_env import limit_blas_threads, tune_allocator

NODE_NAMES = ("camera_detector", "lidar_detector", "fusion", "latency_monitor")
# Nodes are created downstream first. Where two nodes of this process subscribe to the same
# topic (the cloud: lidar detector and fusion; detections: fusion and monitor), the one
# created last was handed each message first here (rclpy's EventsExecutor on Fast DDS,
# measured per frame: with the fusion created last it took the 2 MB cloud 0.55 ms before the
# lidar detector in every frame, and the lidar detector's sensor hop grew by as much;
# docs/benchmarks.md). The consumer on the critical path is created last.
CREATION_ORDER = ("latency_monitor", "fusion", "camera_detector", "lidar_detector")


def parse_options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="perception_composed", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--nodes", default=",".join(NODE_NAMES),
                        help="comma-separated nodes to run (default: all)")
    parser.add_argument("--camera-model", default="", help="camera_detector model_path")
    parser.add_argument("--lidar-model", default="", help="lidar_detector model_path")
    parser.add_argument("--summary-dir", default="",
                        help="each node writes <DIR>/<node>.json at shutdown")
    parser.add_argument("--monitor-summary", default="",
                        help="latency_monitor summary path when --summary-dir is not given")
    add_executor_option(parser)
    parser.add_argument("--executor-threads", type=int, default=0,
                        help="MultiThreadedExecutor threads (0: one per node)")
    options = parser.parse_args(argv)
    options.nodes = [n.strip() for n in options.nodes.split(",") if n.strip()]
    unknown = sorted(set(options.nodes) - set(NODE_NAMES))
    if unknown or not options.nodes:
        parser.error(f"--nodes: unknown {unknown}; choose from {list(NODE_NAMES)}")
    return options


def creation_order(names: list[str]) -> list[str]:
    """``names`` in the order their nodes are created (``CREATION_ORDER``)."""
    return sorted(names, key=CREATION_ORDER.index)


def build_nodes(options: argparse.Namespace) -> list[PerceptionNode]:
    from ad_perception.ros.camera_detector_node import CameraDetectorNode
    from ad_perception.ros.fusion_node import FusionNode
    from ad_perception.ros.latency_monitor_node import LatencyMonitorNode
    from ad_perception.ros.lidar_detector_node import LidarDetectorNode

    def overrides(name: str, model_path: str = "") -> list[Parameter]:
        values = {"model_path": model_path} if model_path else {}
        if options.summary_dir:
            values["summary_path"] = os.path.join(options.summary_dir, f"{name}.json")
        elif name == "latency_monitor" and options.monitor_summary:
            values["summary_path"] = options.monitor_summary
        return [Parameter(key, value=value) for key, value in values.items()]

    factories = {
        "camera_detector": lambda: CameraDetectorNode(
            parameter_overrides=overrides("camera_detector", options.camera_model)),
        "lidar_detector": lambda: LidarDetectorNode(
            parameter_overrides=overrides("lidar_detector", options.lidar_model)),
        "fusion": lambda: FusionNode(parameter_overrides=overrides("fusion")),
        "latency_monitor": lambda: LatencyMonitorNode(
            parameter_overrides=overrides("latency_monitor")),
    }
    nodes: list[PerceptionNode] = []
    try:
        for name in creation_order(options.nodes):
            nodes.append(factories[name]())
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else args
    options = parse_options(remove_ros_args(argv)[1:])
    if not rt_priority_allowed(options.rt_priority):
        return 2
    tune_allocator()  # large messages into warm heap pages (ros_env.ALLOCATOR_ENV)
    limit_blas_threads()  # no spinning BLAS workers beside inference (ros_env)
    try:
        with rclpy.init(args=argv):
            try:
                nodes = build_nodes(options)
            except ConfigError as err:
                print(f"configuration error: {err}", file=sys.stderr, flush=True)
                return 2
            apply_rt_priority(nodes, options.rt_priority)
            spin_nodes(nodes, *make_executor(options.executor,
                                             options.executor_threads or len(nodes) + 1))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

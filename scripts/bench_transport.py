#!/usr/bin/env python3
"""DDS transport benchmark: default Fast DDS settings against the project profile, same run.

One process publishes 1280x720 rgb8 images at 20 Hz and 100k-point clouds at 10 Hz, another
subscribes; both run with the environment of the case under test (the profile is read when
the DDS participant starts, so every case needs fresh processes). Latency is receive time
minus the header stamp set just before publish (same host clock). Discovery stays on
loopback in every case.

    .venv/bin/python scripts/bench_transport.py --json transport.json [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ad_perception.ros_env import ALLOCATOR_ENV, ros_environment  # noqa: E402

IMAGE_HZ, CLOUD_HZ = 20.0, 10.0
IMAGE_SHAPE = (720, 1280, 3)
CLOUD_POINTS = 100_000


def _qos(kind: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = kind == "reliable"
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    # depth 5: a subscriber momentarily busy deserialising must not turn into a drop
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)


def run_publisher(args: argparse.Namespace) -> int:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image, PointCloud2, PointField

    rclpy.init()
    node = rclpy.create_node("bench_transport_pub")
    image_pub = node.create_publisher(Image, "bench/image", _qos(args.qos))
    cloud_pub = node.create_publisher(PointCloud2, "bench/cloud", _qos(args.qos))
    rng = np.random.default_rng(0)
    image = Image(height=IMAGE_SHAPE[0], width=IMAGE_SHAPE[1], encoding="rgb8", step=1280 * 3)
    image.data = rng.integers(0, 255, IMAGE_SHAPE, dtype=np.uint8).tobytes()
    cloud = PointCloud2(height=1, width=CLOUD_POINTS, point_step=16, row_step=16 * CLOUD_POINTS)
    cloud.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(("x", "y", "z", "intensity"))
    ]
    cloud.is_dense = True
    cloud.data = rng.standard_normal(CLOUD_POINTS * 4).astype(np.float32).tobytes()

    deadline = time.monotonic() + 20.0  # wait for the subscriber to match both topics
    while time.monotonic() < deadline and (
        image_pub.get_subscription_count() < 1 or cloud_pub.get_subscription_count() < 1
    ):
        rclpy.spin_once(node, timeout_sec=0.05)
    if image_pub.get_subscription_count() < 1:
        print("publisher: no subscriber matched within 20 s", file=sys.stderr)
        return 1
    time.sleep(0.5)

    image_count = int(args.duration * IMAGE_HZ)
    start = time.monotonic()
    sent_images = sent_clouds = 0
    while sent_images < image_count:
        due_image = start + sent_images / IMAGE_HZ
        due_cloud = start + sent_clouds / CLOUD_HZ
        due = min(due_image, due_cloud)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        message, publisher = (image, image_pub) if due_image <= due_cloud else (cloud, cloud_pub)
        stamp = time.time_ns()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        publisher.publish(message)
        if message is image:
            sent_images += 1
        else:
            sent_clouds += 1
    time.sleep(1.0)  # let reliable retransmissions finish before the participant goes away
    print(json.dumps({"image": sent_images, "cloud": sent_clouds}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_subscriber(args: argparse.Namespace) -> int:
    import rclpy
    from sensor_msgs.msg import Image, PointCloud2

    rclpy.init()
    node = rclpy.create_node("bench_transport_sub")
    latencies: dict[str, list[float]] = {"image": [], "cloud": []}

    from ad_perception.eval.replay import read_stamp_ns

    def on_message(topic: str):
        def callback(msg) -> None:
            now = time.time_ns()
            if isinstance(msg, bytes):  # serialized: the stamp sits in the CDR header
                stamp = read_stamp_ns(msg)
            else:
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latencies[topic].append((now - stamp) / 1e6)

        return callback

    for topic, msg_type in (("image", Image), ("cloud", PointCloud2)):
        node.create_subscription(msg_type, f"bench/{topic}", on_message(topic), _qos(args.qos),
                                 raw=args.raw)
    # One long-lived executor: rebuilding it per spin_once costs milliseconds per message.
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    progress = {"count": -1, "changed": time.monotonic()}
    deadline = time.monotonic() + args.duration + 40.0

    def check_done() -> None:
        count = len(latencies["image"]) + len(latencies["cloud"])
        if count != progress["count"]:
            progress.update(count=count, changed=time.monotonic())
        elif (count > 0 and time.monotonic() - progress["changed"] > 3.0) or (
            time.monotonic() > deadline
        ):
            raise SystemExit

    node.create_timer(0.5, check_done)
    try:
        executor.spin()
    except SystemExit:
        pass
    Path(args.result).write_text(json.dumps(latencies))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def run_case(profile: str, qos: str, duration: float, domain: int, raw: bool = False,
             allocator: str = "tuned") -> list[dict]:
    env = ros_environment(profile=(profile == "project"), allocator=allocator == "tuned")
    if allocator != "tuned":  # glibc's own defaults, whatever the calling shell set
        for name in ALLOCATOR_ENV:
            env.pop(name, None)
    env["ROS_DOMAIN_ID"] = str(domain)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "sub.json"
        common = [sys.executable, __file__, "--qos", qos, "--duration", str(duration),
                  *(["--raw"] if raw else [])]
        sub = subprocess.Popen([*common, "--role", "sub", "--result", str(result)], env=env)
        time.sleep(1.0)
        pub = subprocess.run(
            [*common, "--role", "pub"],
            env=env, capture_output=True, text=True, timeout=duration + 60,
        )
        sub.wait(timeout=duration + 60)
        if pub.returncode != 0 or not result.exists():
            raise RuntimeError(f"case {profile}/{qos} failed: {pub.stderr.strip()[-400:]}")
        sent = json.loads(pub.stdout.strip().splitlines()[-1])
        received = json.loads(result.read_text())
    cases = []
    for topic in ("image", "cloud"):
        values = received[topic]
        cases.append(
            {
                "profile": profile,
                "qos": qos,
                "allocator": allocator,
                "topic": topic,
                "sent": sent[topic],
                "received": len(values),
                "delivered_ratio": len(values) / sent[topic] if sent[topic] else 0.0,
                "latency_ms_p50": percentile(values, 50),
                "latency_ms_p99": percentile(values, 99),
            }
        )
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--profiles", default="default,project")
    parser.add_argument("--qos", default="reliable,best_effort")
    parser.add_argument("--raw", action="store_true",
                        help="subscribe to serialized messages (transport without the Python "
                        "deserialisation of the subscriber)")
    parser.add_argument("--allocator", default="tuned",
                        help="tuned (ros_env.ALLOCATOR_ENV, what the nodes use), glibc "
                        "(its defaults), or both: tuned,glibc")
    parser.add_argument("--role", choices=["pub", "sub"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        return run_publisher(args)
    if args.role == "sub":
        return run_subscriber(args)

    domain = 150 + os.getpid() % 50
    cases: list[dict] = []
    for profile in args.profiles.split(","):
        for qos in args.qos.split(","):
            for allocator in args.allocator.split(","):
                print(f"case profile={profile} qos={qos} allocator={allocator} "
                      f"({args.duration:.0f} s)...", flush=True)
                cases.extend(run_case(profile, qos, args.duration, domain, args.raw, allocator))
    header = ("profile", "qos", "alloc", "topic", "delivered", "p50 ms", "p99 ms")
    print("\n{:8s} {:12s} {:6s} {:6s} {:>10s} {:>8s} {:>8s}".format(*header))
    for case in cases:
        p50, p99 = case["latency_ms_p50"], case["latency_ms_p99"]
        print(
            f"{case['profile']:8s} {case['qos']:12s} {case['allocator']:6s} {case['topic']:6s} "
            f"{case['received']:>4d}/{case['sent']:<4d}  "
            f"{p50 if p50 is None else f'{p50:8.2f}'} {p99 if p99 is None else f'{p99:8.2f}'}"
        )
    report = {
        "cases": cases,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "duration_s": args.duration,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Live replay of one bag through the launched graph, every output recorded with its
receive time; the scoring is ROS-free (eval/recorded.py).

Sequence: start the launch file (launch runner, children in their own sessions), wait until
the graph subscribes to every input and publishes every output, warm it up with the bag's
first frame (first inferences pay for lazy initialisation; outputs of the warm-up are not
recorded), then play the bag at its recorded pace (or xR) with stamps moved to wall time,
record until the outputs stop, stop the graph. The recording folder gets the mcap bag, the
replay offset (replay.json) and the graph's log (launch.log).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from ad_perception.eval.errors import EvalError, topic_types
from ad_perception.eval.live_plan import (
    LivePlan,
    LivePlanError,
    default_launch_file,
    plan_live,
    recording_folder,
)
from ad_perception.eval.recorded import ReplayInfo
from ad_perception.eval.replay import (
    ReplayError,
    bag_topics,
    open_bag,
    schedule,
    shift_stamp,
)
from ad_perception.eval.runner import VariantModels
from ad_perception.eval.topic_map import TopicMap, TopicMapError
from ad_perception.ros.bag_player import BagPlayer, player_qos
from ad_perception.ros.bag_player import message_class as message_type_class
from ad_perception.ros.launch_runner import LaunchError, LaunchHandle, LaunchRunner
from ad_perception.ros.recorder import OutputRecorder
from ad_perception.ros_env import ros_environment

RECORDING_NAME = "outputs"


@dataclass
class LiveConfig:
    launch_file: Path | None = None
    launch_args: list[str] = field(default_factory=list)
    rate: float = 1.0
    clock: bool = False
    topic_map: TopicMap = field(default_factory=TopicMap)
    progress: bool = True
    ready_timeout_s: float = 120.0
    warmup_timeout_s: float = 60.0
    settle_s: float = 2.0  # outputs have stopped once none arrived for this long
    tail_timeout_s: float = 30.0
    log: Callable[[str], None] = print


class _Spinner:
    """Spins one node on its own thread while the main thread plays the bag."""

    def __init__(self, node: Node, context: Context) -> None:
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eval-spin", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._executor.shutdown()


def record_variant_on_bag(variant: VariantModels, bag: Path, recordings_dir: Path,
                          config: LiveConfig, fresh: bool = False) -> Path:
    """Replay ``bag`` through the graph running ``variant``; returns the recording folder
    (reused when a finished one exists and ``fresh`` is False). EvalError with the reason
    (and the graph's last words) when the replay cannot be done."""
    launch_file = Path(config.launch_file) if config.launch_file else default_launch_file()
    folder = recording_folder(recordings_dir, variant, bag, launch_file, config.rate,
                              config.clock, config.topic_map, config.launch_args)
    if (folder / RECORDING_NAME / "replay.json").exists() and not fresh:
        config.log(f"[eval] {variant.name} on {bag.name}: reusing live recording {folder}")
        return folder / RECORDING_NAME
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or stale recording
    folder.mkdir(parents=True)
    try:
        topics = config.topic_map.resolve(topic_types(bag), str(bag))
    except TopicMapError as err:
        raise EvalError(str(err)) from err
    environ = ros_environment()
    try:
        declared = _declared_arguments(launch_file, environ)
    except LaunchError as err:
        raise EvalError(f"launch file {launch_file}: {err}") from err
    try:
        plan = plan_live(declared, launch_file, variant, topics, config.topic_map, config.clock,
                         config.launch_args, summary_dir=folder / "summaries")
    except LivePlanError as err:
        raise EvalError(str(err)) from err
    for note in plan.notes:
        config.log(f"[eval] note: {note}")
    config.log(f"[eval] {variant.name} on {bag.name}: launching {launch_file.name} "
               + " ".join(f"{k}:={v}" for k, v in sorted(plan.arguments.items())))
    _replay(plan, bag, folder, config, environ)
    return folder / RECORDING_NAME


def _declared_arguments(launch_file: Path, environ: dict[str, str]) -> set[str]:
    runner = LaunchRunner(launch_file, environ=environ)
    plan = runner.plan()
    try:
        return set(plan.declared)
    finally:
        plan.close()


def _replay(plan: LivePlan, bag: Path, folder: Path, config: LiveConfig,
            environ: dict[str, str]) -> None:
    log_lock = threading.Lock()
    log_file = (folder / "launch.log").open("w")

    def sink(name: str, line: str, _is_stderr: bool) -> None:
        with log_lock:
            log_file.write(f"[{name}] {line}\n")
            log_file.flush()

    context = Context()
    rclpy.init(context=context)
    node = Node("ad_perception_live_eval", context=context)
    handle: LaunchHandle | None = None
    spinner = None
    try:
        recorder = OutputRecorder(node, plan.outputs)
        player = BagPlayer(node, bag, rate=config.rate, topics=plan.play_topics,
                           remap=plan.remap, restamp=True, publish_clock=config.clock)
        spinner = _Spinner(node, context)
        try:
            handle = LaunchRunner(plan.launch_file, plan.arguments, environ=environ,
                                  output=sink).start()
        except LaunchError as err:
            raise EvalError(f"cannot launch {plan.launch_file.name}: {err}") from err
        _wait_ready(node, player, plan, handle, config)
        _warm_up(node, bag, plan, recorder, handle, config)
        recorder.start()
        config.log(f"[eval] playing {bag.name} at x{config.rate:g}"
                   + (" with /clock" if config.clock else ""))
        summary = player.play()
        player.close()
        expected = _expected_outputs(summary.published, plan)
        _wait_tail(recorder, expected, handle, config)
        counts = recorder.save(folder / RECORDING_NAME)
        # beside the recording's own files: rosbag2 readers ignore extra files
        ReplayInfo(summary.stamp_offset_ns, config.rate, _bag_start(bag)).save(
            folder / RECORDING_NAME)
        config.log(f"[eval] recorded {sum(counts.values())} outputs "
                   f"({', '.join(f'{t}: {n}' for t, n in counts.items())}); max publish "
                   f"lateness {summary.max_lateness_ms:.1f} ms")
    except ReplayError as err:
        raise EvalError(f"{bag}: {err}") from err
    finally:
        if spinner is not None:
            spinner.close()
        if handle is not None:
            handle.stop(timeout=30.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
        log_file.close()


def _bag_start(bag: Path) -> int:
    reader = open_bag(bag)
    try:
        return int(reader.start_time)
    finally:
        reader.close()


def _graph_words(handle: LaunchHandle, lines: int = 12) -> str:
    tail = list(handle.lines)[-lines:]
    return "\n".join(f"  [{name}] {line}" for name, line in tail) or "  (no output)"


def _check_alive(handle: LaunchHandle, doing: str) -> None:
    if handle.failed or handle.returncode is not None:
        raise EvalError(f"the graph stopped while {doing} ({handle.failed or 'all'} exited); "
                        f"its last output:\n{_graph_words(handle)}")


def _wait_ready(node: Node, player: BagPlayer, plan: LivePlan, handle: LaunchHandle,
                config: LiveConfig) -> None:
    deadline = time.monotonic() + config.ready_timeout_s
    while True:
        _check_alive(handle, "starting")
        missing = [t for t in plan.inputs if node.count_subscribers(t) == 0]
        missing += [t for t in plan.outputs if node.count_publishers(t) == 0]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise EvalError(f"the graph was not ready after {config.ready_timeout_s:.0f} s: "
                            f"nothing on {missing}; its last output:\n{_graph_words(handle)}")
        time.sleep(0.1)


def _warm_up(node: Node, bag: Path, plan: LivePlan, recorder: OutputRecorder,
             handle: LaunchHandle, config: LiveConfig) -> None:
    """Publish the bag's first frame (stamped now, again every second: nodes still loading
    their models drop frames) until every output topic has answered once."""
    reader = open_bag(bag)
    firsts: dict[str, bytes] = {}
    try:
        start_ns = int(reader.start_time)
        for item in schedule(reader, topics=plan.play_topics):
            firsts.setdefault(item.topic, item.raw)
            if len(firsts) == len(plan.play_topics):
                break
        types = {c.topic: c.msgtype for c in reader.connections}
        header_first = {t.name: t.header_first for t in bag_topics(reader)}
    finally:
        reader.close()
    publishers = {}
    for topic in firsts:
        name = plan.remap.get(topic, topic)
        publishers[topic] = node.create_publisher(message_type_class(types[topic]), name,
                                                  player_qos(name))
    matched = time.monotonic() + 10.0  # a message published before matching is lost
    while time.monotonic() < matched and not all(
            p.get_subscription_count() for t, p in publishers.items()
            if plan.remap.get(t, t) in plan.inputs):
        time.sleep(0.02)
    before = dict(recorder.received)
    deadline = time.monotonic() + config.warmup_timeout_s
    next_publish = 0.0
    while not all(recorder.received[t] > before[t] for t in plan.outputs):
        _check_alive(handle, "warming up")
        now = time.monotonic()
        if now > deadline:
            silent = [t for t in plan.outputs if recorder.received[t] == before[t]]
            config.log(f"[eval] warm-up: no output on {silent} after "
                       f"{config.warmup_timeout_s:.0f} s; replaying anyway")
            break
        if now >= next_publish:
            offset = time.time_ns() - start_ns
            for topic, raw in firsts.items():
                publishers[topic].publish(shift_stamp(raw, offset) if header_first[topic]
                                          else raw)
            next_publish = now + 1.0
        time.sleep(0.05)
    time.sleep(config.settle_s / 2)  # late warm-up outputs must not reach the recording
    for publisher in publishers.values():
        node.destroy_publisher(publisher)


def _expected_outputs(published: dict[str, int], plan: LivePlan) -> int:
    """Upper bound of outputs: every image and cloud frame yields one per output topic."""
    frames = max((n for t, n in published.items()
                  if plan.remap.get(t, t) in plan.inputs), default=0)
    return frames * len(plan.outputs)


def _wait_tail(recorder: OutputRecorder, expected: int, handle: LaunchHandle,
               config: LiveConfig) -> None:
    """Keep recording until every output is in or none came for ``settle_s``."""
    deadline = time.monotonic() + config.tail_timeout_s
    while time.monotonic() < deadline and recorder.kept < expected:
        _check_alive(handle, "processing the last frames")
        quiet_s = (time.time_ns() - recorder.last_receive_ns) / 1e9
        if recorder.last_receive_ns and quiet_s > config.settle_s:
            return
        time.sleep(0.05)

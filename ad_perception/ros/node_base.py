"""What every perception node shares: validated parameters, run-time threshold changes,
/diagnostics, ``~/debug/*`` topics, throttled warnings, the shutdown summary and ``main``.

The logic behind each of these is ROS-free (``core.node_params``, ``monitoring.node_health``);
this module only moves values between it and rclpy, so a node file is its data path alone.
"""

from __future__ import annotations

import argparse
import array
import sys
from collections.abc import Callable, Iterable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args
from std_msgs.msg import Float64

from ad_perception.core.node_params import (
    ConfigError,
    ParamSpec,
    ParamValue,
    check_one,
    check_pairs,
    validate,
)
from ad_perception.monitoring.diagnostics import DiagnosticsConfig, Status, Throttle
from ad_perception.monitoring.latency_report import write_json
from ad_perception.monitoring.node_health import NodeHealth
from ad_perception.ros_env import (
    RealtimeError,
    blas_threads,
    check_realtime,
    fifo_threads,
    limit_blas_threads,
    prioritise_communication,
    tune_allocator,
)

NS_PER_S = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def status_to_msg(status: Status) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=bytes([status.level]), name=status.name, message=status.message[:1000],
        hardware_id=status.hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in status.values.items()])


def _plain(value: Any) -> ParamValue:
    """rclpy hands arrays back as array.array or tuples; the specs compare with lists."""
    return list(value) if isinstance(value, array.array | tuple | list) else value


def diagnostics_config(params: dict) -> DiagnosticsConfig:
    keys = ("latency_warn_ms", "latency_error_ms", "processing_warn_ms", "processing_error_ms",
            "stale_after_s")
    return DiagnosticsConfig.from_mapping({k: params[k] for k in keys if k in params})


class PerceptionNode(Node):
    """Base of the perception nodes. Subclasses call ``super().__init__(name, specs)``, read
    ``self.params``, report to ``self.health`` and override ``on_params_changed``."""

    DEBUG_TOPICS: tuple[str, ...] = ("processing_time_ms", "pipeline_latency_ms")

    def __init__(self, name: str, specs: Iterable[ParamSpec], **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._specs = {spec.name: spec for spec in specs}
        self.params = self._declare()
        self.health = NodeHealth(self.get_fully_qualified_name(),
                                 diagnostics_config(self.params),
                                 self.params.get("expected_rate_hz") or None,
                                 hardware_id=self.get_name())
        self._throttles: dict[str, Throttle] = {}
        self._debug = {topic: self.create_publisher(Float64, f"~/debug/{topic}", 10)
                       for topic in self.DEBUG_TOPICS}
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._check_change)
        self.add_post_set_parameters_callback(self._apply_change)
        # Steady time: /diagnostics keeps coming when a simulated /clock stops or jumps.
        self._diagnostics_timer = self.create_timer(
            float(self.params["diagnostics_period_s"]), self.publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._summary_written = False

    # ------------------------------------------------------------------- parameters
    def _declare(self) -> dict:
        values = {}
        for spec in self._specs.values():
            descriptor = ParameterDescriptor(description=spec.description, dynamic_typing=True)
            try:
                parameter = self.declare_parameter(spec.name, spec.default, descriptor)
            except ParameterException as err:
                raise ConfigError(f"parameter '{spec.name}': {err}") from err
            values[spec.name] = _plain(parameter.value)
        return validate(self._specs.values(), values)

    def _check_change(self, parameters: list[Parameter]) -> SetParametersResult:
        merged = dict(self.params)
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is None:
                continue  # rclpy's own (use_sim_time, qos overrides)
            if not spec.runtime:
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{spec.name}' cannot change while running; restart the node "
                    "with the new value (launch argument or config YAML)"))
            value = _plain(parameter.value)
            problem = check_one(spec, value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            merged[spec.name] = float(value) if isinstance(spec.default, float) else value
        try:
            check_pairs(merged)
            diagnostics_config(merged)
        except (ConfigError, ValueError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_change(self, parameters: list[Parameter]) -> None:
        changed = {}
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is not None:
                value = _plain(parameter.value)
                changed[spec.name] = float(value) if isinstance(spec.default, float) else value
        if not changed:
            return
        self.params.update(changed)
        self.health.update(diagnostics_config(self.params),
                           self.params.get("expected_rate_hz") or None)
        self.on_params_changed(changed)
        self.get_logger().info(f"parameters changed: {changed}")

    def on_params_changed(self, changed: dict) -> None:
        """Apply run-time changes (thresholds); the base already updated the budgets."""

    # --------------------------------------------------------------- reporting helpers
    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def debug(self, topic: str, value: float) -> None:
        publisher = self._debug.get(topic)
        if publisher is not None:
            publisher.publish(Float64(data=float(value)))

    def warn_throttled(self, key: str, text: str, period_s: float = 5.0) -> None:
        """Log a repeated problem at most once per period, saying how many were skipped."""
        throttle = self._throttles.setdefault(key, Throttle(period_s))
        if throttle.ready():
            more = f" ({throttle.suppressed} more since the last report)" \
                if throttle.suppressed else ""
            self.get_logger().warning(text + more)

    def publish_diagnostics(self) -> None:
        self.before_diagnostics()
        now = self.get_clock().now()
        message = DiagnosticArray()
        message.header.stamp = now.to_msg()
        message.status = [status_to_msg(s) for s in self.statuses(now.nanoseconds)]
        self._diagnostics.publish(message)

    def before_diagnostics(self) -> None:
        """Hook: pull counters kept elsewhere (gates, matchers) into ``self.health``."""

    def statuses(self, now_ns: int) -> list[Status]:
        return [self.health.status(now_ns)]

    def summary(self) -> dict:
        return self.health.summary(self.now_ns()) | {"blas_threads": blas_threads(),
                                                     "fifo_threads": fifo_threads()}

    def shutdown(self) -> None:
        """Stop background work and write the summary (once); called by ``run_node``."""
        path = self.params.get("summary_path")
        if path and not self._summary_written:
            self.before_diagnostics()
            write_json(path, self.summary())
            self._summary_written = True
            # the context may already be shut down: rosout would refuse a logger message
            print(f"[{self.get_name()}] summary written to {path}", file=sys.stderr, flush=True)


# rclpy's EventsExecutor (rclpy.experimental) dispatches from a C++ event queue instead of
# rebuilding a wait set in Python on every wake: on 2 cores it took 0.1-0.5 ms off the hop
# from a detector to the fusion, 0.2-1.2 ms of ROS overhead off the fused path and 3-16 ms
# off its p99 (docs/benchmarks.md, "Session 2026-11-29 (fifth)"). single and multi remain.
EXECUTORS = ("events", "single", "multi")
DEFAULT_EXECUTOR = "events"


def make_executor(kind: str, threads: int = 0, context: Any = None) -> tuple[Any, bool]:
    """The executor named ``kind`` and whether to spin it with a ``spin_once`` loop: the
    EventsExecutor's ``spin()`` does not return on SIGINT/SIGTERM, a loop of short
    ``spin_once`` calls stops as soon as the context is shut down."""
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context), True
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=threads or None, context=context), False
    if kind == "single":
        return SingleThreadedExecutor(context=context), False
    raise ValueError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")


def add_executor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=EXECUTORS, default=DEFAULT_EXECUTOR,
                        help="events (rclpy's EventsExecutor, default), single "
                        "(SingleThreadedExecutor) or multi (MultiThreadedExecutor)")
    parser.add_argument("--rt-priority", type=int, default=0,
                        help="SCHED_FIFO priority for the executor and DDS receive threads "
                        "(0: off; needs CAP_SYS_NICE or ulimit -r)")


def rt_priority_allowed(priority: int) -> bool:
    """Checked before rclpy starts and models load: False (after printing what to fix) for
    a priority out of range or refused, which the caller turns into exit status 2."""
    if priority == 0:
        return True
    try:
        check_realtime(priority)
    except RealtimeError as err:
        print(f"configuration error: {err}", file=sys.stderr, flush=True)
        return False
    return True


RT_RECHECK_S = 1.0  # how often DDS threads started late are looked for (--rt-priority)


def apply_rt_priority(nodes: list[PerceptionNode], priority: int) -> None:
    """Raise the spinning thread and the DDS receive threads (``ros_env``) once the nodes
    exist; a refusal here (rare after ``rt_priority_allowed``) is logged and the nodes run
    without it rather than stop."""
    if priority == 0:
        return
    try:
        raised = prioritise_communication(priority)
    except RealtimeError as err:
        nodes[0].get_logger().error(f"running without real-time threads: {err}")
        return
    nodes[0].get_logger().info(f"SCHED_FIFO {priority} for: {', '.join(raised)}")

    def raise_late_threads() -> None:
        # Fast DDS can start receive threads after the node exists (seen in CI: two UDP/SHM
        # receivers still SCHED_OTHER after the first pass); this runs in an executor
        # thread, so it raises receive threads only, never itself.
        try:
            late = prioritise_communication(priority, include_caller=False)
        except RealtimeError as err:
            nodes[0].get_logger().error(f"cannot raise late DDS threads: {err}")
            return
        if late:
            nodes[0].get_logger().info(f"SCHED_FIFO {priority} for late threads: "
                                       f"{', '.join(late)}")

    nodes[0].create_timer(RT_RECHECK_S, raise_late_threads)


def spin_nodes(nodes: list[PerceptionNode], executor: Any, loop: bool = False) -> None:
    """Spin until shutdown, then stop every node and write its summary."""
    try:
        for node in nodes:
            executor.add_node(node)
        if loop:
            while nodes[0].context.ok():
                executor.spin_once(timeout_sec=0.1)
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT shuts the context down while a MultiThreadedExecutor is between waits; it
        # then fails building its wait set ("context is not valid"). That is a shutdown, not
        # an error; anything raised while the context is still up is.
        if nodes and nodes[0].context.ok():
            raise
    finally:
        for node in nodes:
            try:
                node.shutdown()
            finally:
                executor.remove_node(node)
                node.destroy_node()


def run_node(factory: Callable[[], PerceptionNode], args: list[str] | None = None) -> int:
    """``main`` of a node: init, build, spin, clean up; a ConfigError exits with status 2
    and the message (the launch then stops with it instead of running half a graph).
    Options before ``--ros-args``: ``--executor events|single|multi``, ``--rt-priority N``."""
    argv = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog=argv[0] if argv else "node")
    add_executor_option(parser)
    options = parser.parse_args(remove_ros_args(argv)[1:])
    if not rt_priority_allowed(options.rt_priority):
        return 2
    tune_allocator()  # large messages into warm heap pages (ros_env.ALLOCATOR_ENV)
    limit_blas_threads()  # no spinning BLAS workers beside inference (ros_env)
    try:
        with rclpy.init(args=argv):
            try:
                node = factory()
            except ConfigError as err:
                print(f"configuration error: {err}", file=sys.stderr, flush=True)
                return 2
            apply_rt_priority([node], options.rt_priority)
            spin_nodes([node], *make_executor(options.executor))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0

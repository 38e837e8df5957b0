"""Run ``launch/*.launch.py`` files where launch_ros cannot be installed (PyPI ROS wheels).

The launch files stay real ``ros2 launch`` files; :mod:`ad_perception.ros.launch_shim`
executes the subset of the launch / launch_ros API they use, and this module supervises the
resulting processes the way ``ros2 launch`` does: one child per node with the node's ROS
command line, output prefixed with ``[name]``, SIGINT then SIGTERM then SIGKILL on shutdown,
and the whole launch stops (non-zero) when a node dies that was not meant to.

Supported: LaunchDescription; actions DeclareLaunchArgument (default_value, description,
choices), SetLaunchConfiguration, SetEnvironmentVariable, UnsetEnvironmentVariable,
IncludeLaunchDescription (Python sources, launch_arguments), GroupAction (scoped,
forwarding, launch_configurations), LogInfo, OpaqueFunction, ExecuteProcess (no shell);
substitutions TextSubstitution, LaunchConfiguration, PathJoinSubstitution,
EnvironmentVariable, PythonExpression, FindExecutable; conditions IfCondition,
UnlessCondition; launch_ros Node, PushRosNamespace, FindPackageShare, ParameterValue,
ParameterFile. Not supported: event handlers (RegisterEventHandler, OnProcessExit, ...),
TimerAction, Shutdown, lifecycle and composable nodes, XML/YAML launch files, emulate_tty
(children write to pipes; PYTHONUNBUFFERED=1 keeps Python output line by line).

Deliberate differences from ros2 launch: an undeclared ``name:=value`` is an error (ros2
launch ignores it, which hides typos); output="log" still goes to the screen; the prefix is
the node name (``[reporter]``), not ``[executable-N]``; each child runs in its own session so
a terminal's Ctrl-C is forwarded once by the runner (a SIGKILLed runner cannot stop them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

from ad_perception.ros.launch_shim._actions import ProcessSpec
from ad_perception.ros.launch_shim._base import LaunchArgumentError, LaunchError
from ad_perception.ros.launch_shim.plan import LaunchPlan, evaluate, parse_launch_arguments

__all__ = ["LaunchArgumentError", "LaunchError", "LaunchHandle", "LaunchRunner"]

# (process name, line without newline, came from stderr)
OutputSink = Callable[[str, str, bool], None]

# A child that ends by the signal we sent it stopped as asked; shells report 128 + signal.
_STOPPED_CLEANLY = {0, -signal.SIGINT, -signal.SIGTERM,
                    128 + signal.SIGINT, 128 + signal.SIGTERM}


def print_sink(stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> OutputSink:
    """Write ``[name] line`` to stdout/stderr, flushed per line so ordering stays readable."""
    lock = threading.Lock()

    def sink(name: str, line: str, is_stderr: bool) -> None:
        stream = (stderr or sys.stderr) if is_stderr else (stdout or sys.stdout)
        with lock:
            stream.write(f"[{name}] {line}\n")
            stream.flush()

    return sink


class _Managed:
    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.popen: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.restart_at: float | None = None
        self.restarts = 0
        self.pumps: list[threading.Thread] = []


class LaunchHandle:
    """Running launch: ``.processes``, ``.wait(timeout)``, ``.stop()``; a context manager."""

    def __init__(self, plan: LaunchPlan, output: OutputSink | None = None,
                 sigterm_timeout: float = 5.0, sigkill_timeout: float = 5.0,
                 keep_lines: int = 10_000) -> None:
        self.plan = plan
        self.sigterm_timeout, self.sigkill_timeout = sigterm_timeout, sigkill_timeout
        self.lines: deque[tuple[str, str]] = deque(maxlen=keep_lines)
        self.returncode: int | None = None
        self.failed: str | None = None  # name of the first process that died unexpectedly
        self._output = output
        self._emit_lock = threading.Lock()
        self._managed = [_Managed(spec) for spec in plan.processes]
        self._stop_requested = False
        self._escalate = False
        self._wake = threading.Event()
        self._done = threading.Event()
        self._monitor_thread = threading.Thread(target=self._monitor, name="launch-monitor",
                                                daemon=True)

    # -- public -------------------------------------------------------------------------
    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {m.spec.name: m.popen for m in self._managed if m.popen is not None}

    def request_stop(self, escalate: bool = False) -> None:
        """Begin shutdown without blocking (safe from a signal handler); again: escalate."""
        self._escalate = escalate or self._stop_requested
        self._stop_requested = True
        self._wake.set()

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status once every child has exited, or None if ``timeout`` passed first."""
        return self.returncode if self._done.wait(timeout) else None

    def stop(self, timeout: float | None = None) -> int | None:
        self.request_stop()
        return self.wait(timeout)

    def output_of(self, name: str) -> list[str]:
        return [line for who, line in list(self.lines) if who == name]

    def __enter__(self) -> LaunchHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        limit = self.sigterm_timeout + self.sigkill_timeout + 5.0
        if self.stop(limit) is None:  # the monitor is stuck: never leave children behind
            for managed in self._managed:
                self._signal(managed, signal.SIGKILL)

    # -- internals ------------------------------------------------------------------------
    def _start(self) -> None:
        for managed in self._managed:
            if not self._spawn(managed):
                break
        self._monitor_thread.start()

    def _emit(self, name: str, line: str, is_stderr: bool) -> None:
        with self._emit_lock:
            self.lines.append((name, line))
            if self._output is not None:
                self._output(name, line, is_stderr)

    def _log(self, message: str) -> None:
        self._emit("launch", message, True)

    def _spawn(self, managed: _Managed) -> bool:
        spec = managed.spec
        try:
            # Own session: a terminal's Ctrl-C reaches only the runner, which forwards it
            # once, and signals reach a node's own children too (killpg).
            popen = subprocess.Popen(spec.cmd, env=spec.env, cwd=spec.cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        except OSError as err:
            self._log(f"cannot start {spec.name}: {err} (cmd: {spec.cmd[0]})")
            self.failed = self.failed or spec.name
            return False
        managed.popen, managed.returncode = popen, None
        managed.pumps = [
            threading.Thread(target=self._pump, args=(spec.name, stream, is_err), daemon=True)
            for stream, is_err in ((popen.stdout, False), (popen.stderr, True))]
        for pump in managed.pumps:
            pump.start()
        self._log(f"process started with pid [{popen.pid}]: {spec.name}")
        return True

    def _pump(self, name: str, stream: IO[bytes], is_stderr: bool) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._emit(name, raw.decode("utf-8", "replace").rstrip("\r\n"), is_stderr)

    def _signal(self, managed: _Managed, signum: int) -> None:
        if managed.popen is None or managed.returncode is not None:
            return
        try:
            os.killpg(managed.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            try:
                managed.popen.send_signal(signum)
            except (ProcessLookupError, OSError):
                pass

    def _on_exit(self, managed: _Managed, returncode: int, shutting_down: bool) -> None:
        spec, pid = managed.spec, managed.popen.pid
        if returncode == 0:
            self._log(f"process has finished cleanly [pid {pid}]: {spec.name}")
        else:
            self._log(f"process has died [pid {pid}, exit code {returncode}]: {spec.name}")
        if shutting_down:
            return
        if spec.respawn:
            managed.restart_at = time.monotonic() + spec.respawn_delay
        elif returncode != 0 and self.failed is None:
            self.failed = spec.name

    def _monitor(self) -> None:
        stage, stage_since = 0, 0.0  # 0 running, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL
        timeouts = {1: self.sigterm_timeout, 2: self.sigkill_timeout}
        names = {1: "SIGINT", 2: "SIGTERM", 3: "SIGKILL"}
        signums = {1: signal.SIGINT, 2: signal.SIGTERM, 3: signal.SIGKILL}
        while True:
            now = time.monotonic()
            for managed in self._managed:
                if managed.popen is not None and managed.returncode is None:
                    returncode = managed.popen.poll()
                    if returncode is not None:
                        managed.returncode = returncode
                        self._on_exit(managed, returncode, shutting_down=stage > 0)
                if managed.restart_at is not None and (stage > 0 or now >= managed.restart_at):
                    managed.restart_at = None
                    if stage == 0:
                        managed.restarts += 1
                        self._spawn(managed)
            due = stage in timeouts and (self._escalate or now - stage_since >= timeouts[stage])
            if (stage == 0 and (self._stop_requested or self.failed)) or due:
                self._escalate = False
                stage, stage_since = stage + 1, now
                alive = [m for m in self._managed if m.popen and m.returncode is None]
                if alive:
                    why = f"{self.failed} died" if self.failed and stage == 1 else "shutdown"
                    self._log(f"{why}: sending {names[stage]} to "
                              f"{', '.join(m.spec.name for m in alive)}")
                for managed in alive:
                    self._signal(managed, signums[stage])
            alive = any(m.popen is not None and m.returncode is None for m in self._managed)
            pending = any(m.restart_at is not None for m in self._managed)
            if not alive and not pending:
                break
            self._wake.wait(0.05)
            self._wake.clear()
        for managed in self._managed:
            for pump in managed.pumps:
                pump.join(timeout=2.0)
        self.plan.close()
        self.returncode = self._exit_status()
        self._done.set()

    def _exit_status(self) -> int:
        codes = [m.returncode for m in self._managed if m.popen is not None]
        if self.failed is not None:
            return 1
        if self._stop_requested:
            return 0 if all(code in _STOPPED_CLEANLY for code in codes) else 1
        return 0 if all(code == 0 for code in codes) else 1


class LaunchRunner:
    """``LaunchRunner(path, {"name": "value"}).start()`` -> :class:`LaunchHandle`.

    ``arguments`` takes a mapping or ``name:=value`` strings; ``environ`` replaces
    os.environ as the launch's base environment (tests point AMENT_PREFIX_PATH at a fake
    prefix this way without touching their own process).
    """

    def __init__(self, path: str | os.PathLike[str],
                 arguments: Mapping[str, str] | Iterable[str] | None = None, *,
                 environ: Mapping[str, str] | None = None, output: OutputSink | None = None,
                 sigterm_timeout: float = 5.0, sigkill_timeout: float = 5.0) -> None:
        self.path = Path(path)
        if arguments is None or isinstance(arguments, Mapping):
            self.arguments = {str(k): str(v) for k, v in (arguments or {}).items()}
        else:
            self.arguments = parse_launch_arguments(arguments)
        self.environ = None if environ is None else dict(environ)
        self.output = print_sink() if output is None else output
        self.sigterm_timeout, self.sigkill_timeout = sigterm_timeout, sigkill_timeout

    def plan(self) -> LaunchPlan:
        """Evaluate the launch file; the caller owns the plan (``close()`` it when done)."""
        return evaluate(self.path, self.arguments, self.environ)

    def dry_run(self) -> str:
        plan = self.plan()
        try:
            return plan.describe()
        finally:
            plan.close()

    def start(self) -> LaunchHandle:
        plan = self.plan()
        for message in plan.messages:
            self.output("launch", message, True)
        handle = LaunchHandle(plan, self.output, self.sigterm_timeout, self.sigkill_timeout)
        handle._start()
        return handle

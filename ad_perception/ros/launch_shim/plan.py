"""Evaluate a launch file into a plan: every process resolved before any is started.

Resolving everything first means a typo in an argument, a bad choice or a missing
executable fails before the first node runs, and ``--dry-run`` can show exactly what would
be started (command lines and environment changes) without starting it.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ad_perception.ros.launch_shim import installed
from ad_perception.ros.launch_shim._actions import (
    IncludeLaunchDescription,
    ProcessSpec,
    PythonLaunchDescriptionSource,
)
from ad_perception.ros.launch_shim._base import (
    LaunchArgumentError,
    LaunchContext,
    LaunchError,
    visit_all,
)


def parse_launch_arguments(tokens: Iterable[str]) -> dict[str, str]:
    """``name:=value`` tokens as ``ros2 launch`` takes them (last one wins)."""
    arguments: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition(":=")
        if not sep or not name:
            raise LaunchArgumentError(f"launch arguments look like name:=value, got {token!r}")
        arguments[name] = value
    return arguments


@dataclass
class LaunchPlan:
    """The resolved launch: processes in start order, configurations, declared arguments."""

    path: Path
    processes: list[ProcessSpec]
    configurations: dict[str, str]
    declared: dict[str, str]  # name -> description
    base_env: dict[str, str]
    messages: list[str] = field(default_factory=list)
    _workdir: tempfile.TemporaryDirectory | None = None

    def env_delta(self, spec: ProcessSpec) -> dict[str, str | None]:
        """What the child's environment changes relative to the runner's (None: removed)."""
        delta: dict[str, str | None] = {
            k: v for k, v in spec.env.items() if self.base_env.get(k) != v}
        delta.update({k: None for k in self.base_env if k not in spec.env})
        return dict(sorted(delta.items()))

    def describe(self) -> str:
        lines = [f"# launch file: {self.path}"]
        lines += [f"# argument {k}:={v}" for k, v in sorted(self.configurations.items())]
        lines += [f"# log: {m}" for m in self.messages]
        for spec in self.processes:
            lines.append(f"[{spec.name}]" + (f" package={spec.package}" if spec.package else "")
                         + (" respawn=true" if spec.respawn else ""))
            lines.append(f"  cmd: {shlex.join(spec.cmd)}")
            if spec.cwd:
                lines.append(f"  cwd: {spec.cwd}")
            for key, value in self.env_delta(spec).items():
                lines.append(f"  env: -{key}" if value is None else f"  env: {key}={value}")
            for file, text in spec.params_files.items():
                lines.append(f"  params {file}:")
                lines += [f"    {line}" for line in text.rstrip().splitlines()]
        return "\n".join(lines)

    def close(self) -> None:
        """Remove the generated parameter files (call once no process needs them)."""
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def evaluate(path: str | os.PathLike[str], arguments: Mapping[str, str] | None = None,
             environ: Mapping[str, str] | None = None) -> LaunchPlan:
    """Visit the launch file the way ``ros2 launch FILE name:=value`` does and resolve it.

    The top-level file is included with the user's arguments, exactly as ros2 launch does,
    so required-argument checks and configuration scoping match.
    """
    path = Path(path).resolve()
    arguments = dict(arguments or {})
    base_env = dict(os.environ if environ is None else environ)
    workdir = tempfile.TemporaryDirectory(prefix="ad_launch_")
    context = LaunchContext(base_env)
    context.workdir = Path(workdir.name)
    top = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                   launch_arguments=list(arguments.items()))
    try:
        with installed():
            visit_all(top, context)
        unknown = sorted(set(arguments) - set(context.declared_arguments))
        if unknown:
            declared = "".join(
                f"\n  {name}: {arg.description}"
                + ("" if arg.default_value is None else " (has a default)")
                + ("" if arg.choices is None else f" choices={arg.choices}")
                for name, arg in sorted(context.declared_arguments.items()))
            raise LaunchArgumentError(
                f"unknown launch argument(s) {', '.join(repr(u) for u in unknown)} for "
                f"{path.name}; declared arguments:{declared or ' (none)'}")
    except LaunchError:
        workdir.cleanup()
        raise
    except Exception as err:
        workdir.cleanup()
        raise LaunchError(f"{path}: {type(err).__name__}: {err}") from err
    _make_names_unique(context.processes)
    return LaunchPlan(
        path=path, processes=list(context.processes),
        configurations=dict(context.launch_configurations),
        declared={n: a.description for n, a in context.declared_arguments.items()},
        base_env=base_env, messages=list(context.messages), _workdir=workdir)


def _make_names_unique(processes: list[ProcessSpec]) -> None:
    """Output prefixes must tell processes apart; launch appends -N, so do we on clashes."""
    seen: dict[str, int] = {}
    for spec in processes:
        count = seen.get(spec.name, 0) + 1
        seen[spec.name] = count
        if count > 1:
            spec.name = f"{spec.name}-{count}"

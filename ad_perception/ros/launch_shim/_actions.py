"""The ``launch.actions`` subset: arguments, environment, includes, groups, processes.

Each action does at visit time what its namesake in ``launch`` does, including the quirks
launch files come to rely on: include arguments are *not* scoped (they stay set for later
siblings), and only ``GroupAction(scoped=True)`` pushes and pops configurations.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ad_perception.ros.launch_shim._base import (
    Action,
    LaunchArgumentError,
    LaunchContext,
    LaunchDescription,
    LaunchDescriptionEntity,
    LaunchError,
    SomeSubstitutionsType,
    _truth,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)


@dataclass
class ProcessSpec:
    """One child process, fully resolved: what the runner starts and ``--dry-run`` prints."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    package: str | None = None
    cwd: str | None = None
    respawn: bool = False
    respawn_delay: float = 0.0
    params_files: dict[str, str] = field(default_factory=dict)  # generated path -> YAML text


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: SomeSubstitutionsType | None = None,
                 description: str | None = None, choices: Iterable[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.default_value = (None if default_value is None
                              else normalize_to_list_of_substitutions(default_value))
        self.description = description or "no description given"
        self.choices = None if choices is None else [str(c) for c in choices]
        if self.choices is not None and isinstance(default_value, str) \
                and default_value not in self.choices:
            raise LaunchArgumentError(
                f"default value {default_value!r} of argument '{name}' is not one of the "
                f"choices {self.choices}")

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        # Recorded even when its condition is false: the argument still exists for the user.
        context.declared_arguments.setdefault(self.name, self)
        return super().visit(context)

    def execute(self, context: LaunchContext) -> None:
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise LaunchArgumentError(
                    f"Required launch argument '{self.name}' (description: "
                    f"'{self.description}') was not provided; pass {self.name}:=VALUE")
            context.launch_configurations[self.name] = perform_substitutions(
                context, self.default_value)
        value = context.launch_configurations[self.name]
        if self.choices is not None and value not in self.choices:
            raise LaunchArgumentError(
                f"Argument '{self.name}' provided value '{value}' is not valid. "
                f"Valid options are: {self.choices}")


class SetLaunchConfiguration(Action):
    def __init__(self, name: SomeSubstitutionsType, value: SomeSubstitutionsType,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = normalize_to_list_of_substitutions(name)
        self.value = normalize_to_list_of_substitutions(value)

    def execute(self, context: LaunchContext) -> None:
        name = perform_substitutions(context, self.name)
        context.launch_configurations[name] = perform_substitutions(context, self.value)


class SetEnvironmentVariable(Action):
    def __init__(self, name: SomeSubstitutionsType, value: SomeSubstitutionsType,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = normalize_to_list_of_substitutions(name)
        self.value = normalize_to_list_of_substitutions(value)

    def execute(self, context: LaunchContext) -> None:
        name = perform_substitutions(context, self.name)
        context.environment[name] = perform_substitutions(context, self.value)


class UnsetEnvironmentVariable(Action):
    def __init__(self, name: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = normalize_to_list_of_substitutions(name)

    def execute(self, context: LaunchContext) -> None:
        context.environment.pop(perform_substitutions(context, self.name), None)


class _Scope(Action):
    def __init__(self, operation: Callable[[LaunchContext], None]) -> None:
        super().__init__()
        self.operation = operation

    def execute(self, context: LaunchContext) -> None:
        self.operation(context)


def PushLaunchConfigurations() -> Action:
    return _Scope(LaunchContext._push_configurations)


def PopLaunchConfigurations() -> Action:
    return _Scope(LaunchContext._pop_configurations)


class GroupAction(Action):
    def __init__(self, actions: Iterable[LaunchDescriptionEntity], *, scoped: bool = True,
                 forwarding: bool = True,
                 launch_configurations: dict[Any, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actions = list(actions)
        self.scoped = scoped
        self.forwarding = forwarding
        self.launch_configurations = dict(launch_configurations or {})

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        sets = [SetLaunchConfiguration(k, v) for k, v in self.launch_configurations.items()]
        if not self.scoped:
            return [*sets, *self.actions]
        entities: list[LaunchDescriptionEntity] = [
            _Scope(LaunchContext._push_configurations), _Scope(LaunchContext._push_environment)]
        if not self.forwarding:
            entities.append(_Scope(lambda ctx: ctx.launch_configurations.clear()))
        return [*entities, *sets, *self.actions, _Scope(LaunchContext._pop_environment),
                _Scope(LaunchContext._pop_configurations)]


class LogInfo(Action):
    def __init__(self, *, msg: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.msg = normalize_to_list_of_substitutions(msg)

    def execute(self, context: LaunchContext) -> None:
        context.messages.append(perform_substitutions(context, self.msg))


class OpaqueFunction(Action):
    def __init__(self, *, function: Callable[..., Any], args: Iterable[Any] | None = None,
                 kwargs: dict[str, Any] | None = None, **action_kwargs: Any) -> None:
        super().__init__(**action_kwargs)
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return self.function(context, *self.args, **self.kwargs)


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path: SomeSubstitutionsType) -> None:
        self.location = normalize_to_list_of_substitutions(launch_file_path)

    def get_launch_description(self, context: LaunchContext) -> tuple[str, LaunchDescription]:
        path = perform_substitutions(context, self.location)
        return path, load_launch_file(path)


AnyLaunchDescriptionSource = PythonLaunchDescriptionSource


def load_launch_file(path: str | os.PathLike[str]) -> LaunchDescription:
    """Execute a ``*.launch.py`` and call its ``generate_launch_description()``."""
    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"launch file not found: {path}")
    if not path.name.endswith(".py"):
        raise LaunchError(f"only Python launch files are supported here, not {path.name} "
                          "(XML/YAML launch files need `ros2 launch`)")
    module_name = "_launch_file_" + "".join(c if c.isalnum() else "_" for c in path.name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        raise LaunchError(
            f"{path}: {err}. The runner implements only a subset of launch/launch_ros "
            "(see ad_perception/ros/launch_runner.py); on a full ROS install use "
            "`ros2 launch`.") from err
    if not hasattr(module, "generate_launch_description"):
        raise LaunchError(f"{path} defines no generate_launch_description()")
    description = module.generate_launch_description()
    if not isinstance(description, LaunchDescription):
        raise LaunchError(f"{path}: generate_launch_description() returned "
                          f"{type(description).__name__}, not a LaunchDescription")
    return description


class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: Any, *,
                 launch_arguments: Iterable[tuple[Any, Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(launch_description_source, PythonLaunchDescriptionSource):
            launch_description_source = PythonLaunchDescriptionSource(launch_description_source)
        self.launch_description_source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        path, description = self.launch_description_source.get_launch_description(context)
        context.extend_locals({"current_launch_file_path": os.path.abspath(path),
                               "current_launch_file_directory": os.path.dirname(
                                   os.path.abspath(path))})
        given = [perform_substitutions(context, name) for name, _ in self.launch_arguments]
        for argument in description.get_launch_arguments():
            # Same best-effort check as launch: only unconditional arguments without default.
            if argument.condition is None and argument.default_value is None \
                    and argument.name not in given:
                raise LaunchArgumentError(
                    f"{os.path.basename(path)} is missing required argument "
                    f"'{argument.name}' (description: '{argument.description}'); pass "
                    f"{argument.name}:=VALUE (given: [{', '.join(given)}])")
        sets: list[LaunchDescriptionEntity] = [
            SetLaunchConfiguration(name, value) for name, value in self.launch_arguments]
        return [*sets, description]


class ExecuteProcess(Action):
    """A plain process; ``launch_ros`` Node builds on it with the ROS command line."""

    def __init__(self, *, cmd: Iterable[SomeSubstitutionsType], name: Any = None,
                 cwd: Any = None, additional_env: dict[Any, Any] | None = None,
                 output: str = "log", emulate_tty: bool = False, respawn: bool = False,
                 respawn_delay: float | None = None, shell: bool = False,
                 sigterm_timeout: Any = None, sigkill_timeout: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if shell:
            raise LaunchError("ExecuteProcess(shell=True) is not supported by the launch shim")
        self.cmd = [normalize_to_list_of_substitutions(part) for part in cmd]
        self.name = name
        self.cwd = cwd
        self.additional_env = dict(additional_env or {})
        self.output, self.emulate_tty = output, emulate_tty
        self.respawn = respawn  # bool, or substitutions evaluated like a condition
        self.respawn_delay = float(respawn_delay or 0.0)

    def _environment(self, context: LaunchContext) -> dict[str, str]:
        from ad_perception.ros_env import ros_environment

        env = ros_environment(context.environment)
        for key, value in self.additional_env.items():
            env[perform_substitutions(context, key)] = perform_substitutions(context, value)
        # Children write to pipes; unbuffered Python output keeps the prefixed lines live.
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spec(self, context: LaunchContext, cmd: list[str], name: str | None,
              package: str | None = None,
              params_files: dict[str, str] | None = None) -> ProcessSpec:
        return ProcessSpec(
            name=name or os.path.basename(cmd[0]), cmd=cmd, env=self._environment(context),
            package=package,
            cwd=None if self.cwd is None else perform_substitutions(context, self.cwd),
            respawn=(self.respawn if isinstance(self.respawn, bool)
                     else _truth(context, normalize_to_list_of_substitutions(self.respawn))),
            respawn_delay=self.respawn_delay,
            params_files=dict(params_files or {}))

    def execute(self, context: LaunchContext) -> None:
        cmd = [perform_substitutions(context, part) for part in self.cmd]
        name = None if self.name is None else perform_substitutions(context, self.name)
        context.processes.append(self._spec(context, cmd, name))

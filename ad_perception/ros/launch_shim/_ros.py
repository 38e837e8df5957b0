"""The ``launch_ros`` subset: Node, FindPackageShare, PushRosNamespace, parameter values.

The command line a Node gets is the one ``launch_ros`` builds (arguments, ``--ros-args``,
``__node``/``__ns`` remaps, one ``--params-file`` per parameter entry in order, remaps), so
a node behaves the same here and under ``ros2 launch``. Dict parameters go through a
generated YAML file rather than ``-p``, as in launch_ros, because rcl applies ``-p``
overrides after all files and that would change which entry wins.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ad_perception.ros.launch_shim._actions import ExecuteProcess
from ad_perception.ros.launch_shim._base import (
    Action,
    LaunchContext,
    LaunchError,
    SomeSubstitutionsType,
    Substitution,
    SubstitutionFailure,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)
from ad_perception.ros_env import PACKAGE_ROOT


def ament_prefixes(environment: Mapping[str, str]) -> list[str]:
    return [p for p in environment.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def find_package_share(package: str, environment: Mapping[str, str]) -> str:
    """``share/<package>`` from the ament index of the *launch* environment.

    Same lookup as ament_index_python, done against the launch context's AMENT_PREFIX_PATH
    (which a launch file or test may have changed). ``ad_perception`` itself falls back to
    the source tree, whose ``launch/`` and ``config/`` mirror the installed share directory.
    """
    for prefix in ament_prefixes(environment):
        marker = Path(prefix, "share", "ament_index", "resource_index", "packages", package)
        if marker.is_file():
            return str(Path(prefix, "share", package))
    if package == "ad_perception":
        return str(PACKAGE_ROOT.parent)
    raise SubstitutionFailure(
        f"package '{package}' not found in the ament index (AMENT_PREFIX_PATH="
        f"{environment.get('AMENT_PREFIX_PATH', '<unset>')})")


def resolve_executable(package: str, executable: str, environment: Mapping[str, str]) -> str:
    """Like ``ros2 run``: <prefix>/lib/<package>/<executable>, then the venv, then PATH."""
    looked: list[str] = []
    for prefix in ament_prefixes(environment):
        candidate = Path(prefix, "lib", package, executable)
        looked.append(str(candidate))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    venv_bin = Path(sys.prefix, "bin", executable)
    looked.append(str(venv_bin))
    if venv_bin.is_file() and os.access(venv_bin, os.X_OK):
        return str(venv_bin)
    found = shutil.which(executable, path=environment.get("PATH", ""))
    if found:
        return found
    looked.append(f"PATH={environment.get('PATH', '')}")
    raise LaunchError(f"executable '{executable}' of package '{package}' not found; looked in: "
                      + ", ".join(looked))


class FindPackageShare(Substitution):
    def __init__(self, package: SomeSubstitutionsType) -> None:
        self.package = normalize_to_list_of_substitutions(package)

    def perform(self, context: LaunchContext) -> str:
        return find_package_share(perform_substitutions(context, self.package),
                                  context.environment)


def _yaml_value(name: str, text: str) -> Any:
    """launch_ros rule: substituted text is read as YAML (``"10"`` -> 10) unless it is not."""
    try:
        value = yaml.safe_load(text if text else "''")
    except yaml.YAMLError as err:
        raise LaunchError(f"parameter '{name}': cannot parse {text!r} as YAML; wrap it in "
                          "ParameterValue(value, value_type=str)") from err
    if isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, list) and value and len({type(v) for v in value}) == 1 \
            and isinstance(value[0], (bool, int, float, str)):
        return value
    raise LaunchError(f"parameter '{name}': {text!r} is not a scalar or a uniform list")


class ParameterValue:
    def __init__(self, value: Any, *, value_type: Any = None) -> None:
        self.value, self.value_type = value, value_type

    def evaluate(self, context: LaunchContext, name: str = "?") -> Any:
        value = self.value
        if isinstance(value, (Substitution, str)) or (
                isinstance(value, list) and any(isinstance(v, Substitution) for v in value)):
            text = perform_substitutions(context, value)
            if self.value_type is str:
                return text
            value = _yaml_value(name, text)
        if self.value_type in (int, float, bool) and not isinstance(value, self.value_type):
            return self.value_type(value)
        return value


class ParameterFile:
    def __init__(self, param_file: SomeSubstitutionsType, *, allow_substs: bool = False) -> None:
        if allow_substs:
            raise LaunchError("ParameterFile(allow_substs=True) is not supported by the shim")
        self.param_file = normalize_to_list_of_substitutions(param_file)


def _evaluate_dict(context: LaunchContext, parameters: Mapping[Any, Any],
                   prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts with '.', evaluate substitutions with launch_ros's typing rules."""
    result: dict[str, Any] = {}
    for key, value in parameters.items():
        name = prefix + perform_substitutions(context, key)
        if isinstance(value, Mapping):
            result.update(_evaluate_dict(context, value, name + "."))
        elif isinstance(value, ParameterValue):
            result[name] = value.evaluate(context, name)
        elif isinstance(value, Substitution):
            result[name] = _yaml_value(name, value.perform(context))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Substitution) for v in value):
            if all(isinstance(v, (str, Substitution)) for v in value):  # one concatenated string
                result[name] = _yaml_value(name, perform_substitutions(context, value))
            else:  # each element is its own substitution list
                result[name] = [_yaml_value(name, perform_substitutions(context, v))
                                for v in value]
        elif isinstance(value, (list, tuple)):
            result[name] = list(value)
            if {int, float} == {type(v) for v in value}:
                result[name] = [float(v) for v in value]
        elif isinstance(value, (bool, int, float, str, bytes)):
            result[name] = value  # plain Python values keep their type (plain str stays str)
        else:
            raise LaunchError(f"parameter '{name}': unsupported value {value!r}")
    return result


def _absolute_namespace(base: str | None, namespace: str | None) -> str | None:
    if namespace is None:
        return base
    if base is not None and not namespace.startswith("/"):
        namespace = base.rstrip("/") + "/" + namespace
    return "/" + namespace.strip("/") if namespace.strip("/") else "/"


class PushRosNamespace(Action):
    def __init__(self, namespace: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.namespace = normalize_to_list_of_substitutions(namespace)

    def execute(self, context: LaunchContext) -> None:
        pushed = perform_substitutions(context, self.namespace)
        previous = context.launch_configurations.get("ros_namespace")
        context.launch_configurations["ros_namespace"] = _absolute_namespace(previous, pushed)


PushROSNamespace = PushRosNamespace


class Node(ExecuteProcess):
    def __init__(self, *, executable: SomeSubstitutionsType, package: Any = None,
                 name: Any = None, namespace: Any = None, exec_name: Any = None,
                 parameters: Iterable[Any] | None = None,
                 remappings: Iterable[tuple[Any, Any]] | None = None,
                 ros_arguments: Iterable[Any] | None = None,
                 arguments: Iterable[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(cmd=[executable], name=exec_name, **kwargs)
        if isinstance(parameters, (str, Mapping)):
            raise TypeError("Node(parameters=...) expects a list of dicts and/or file paths")
        self.package = package
        self.executable = normalize_to_list_of_substitutions(executable)
        self.node_name = name
        self.namespace = namespace
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.ros_arguments = [normalize_to_list_of_substitutions(a) for a in ros_arguments or []]
        self.arguments = [normalize_to_list_of_substitutions(a) for a in arguments or []]

    def execute(self, context: LaunchContext) -> None:
        sub = lambda value: perform_substitutions(context, value)  # noqa: E731
        environment = self._environment(context)
        executable = sub(self.executable)
        package = None if self.package is None else sub(self.package)
        path = (resolve_executable(package, executable, environment) if package
                else shutil.which(executable, path=environment.get("PATH", "")) or executable)
        node_name = None if self.node_name is None else sub(self.node_name).lstrip("/")
        namespace = _absolute_namespace(context.launch_configurations.get("ros_namespace"),
                                        None if self.namespace is None else sub(self.namespace))
        cmd = [path, *(sub(a) for a in self.arguments)]
        if self.ros_arguments:
            cmd += ["--ros-args", *(sub(a) for a in self.ros_arguments)]
        cmd.append("--ros-args")
        if node_name is not None:
            cmd += ["-r", f"__node:={node_name}"]
        if namespace is not None:
            cmd += ["-r", f"__ns:={namespace}"]
        label = node_name or os.path.basename(executable)
        generated: dict[str, str] = {}
        for entry in self.parameters:
            if isinstance(entry, Mapping):
                fqn = (f"{namespace.rstrip('/')}/{node_name}"
                       if node_name is not None and namespace is not None else "/**")
                text = yaml.safe_dump({fqn: {"ros__parameters": _evaluate_dict(context, entry)}},
                                      default_flow_style=False, sort_keys=False)
                file = _params_path(context, label, len(context.processes), len(generated))
                file.write_text(text, encoding="utf-8")
                generated[str(file)] = text
                cmd += ["--params-file", str(file)]
            else:
                file_entry = entry.param_file if isinstance(entry, ParameterFile) else entry
                params_path = sub(file_entry)
                if not Path(params_path).is_file():
                    raise LaunchError(f"node '{label}': parameter file not found: {params_path}")
                cmd += ["--params-file", params_path]
        for source, target in self.remappings:
            cmd += ["-r", f"{sub(source)}:={sub(target)}"]
        name = None if self.name is None else sub(self.name)
        context.processes.append(self._spec(context, cmd, name or label, package, generated))


def _params_path(context: LaunchContext, label: str, process: int, index: int) -> Path:
    if context.workdir is None:
        raise LaunchError("no directory for generated parameter files")
    return context.workdir / f"{process:02d}_{label.replace('/', '_')}_params_{index}.yaml"

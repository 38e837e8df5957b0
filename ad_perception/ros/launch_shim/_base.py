"""Launch context, substitutions and conditions with the semantics of ROS 2 ``launch``.

Substitutions are performed lazily against a :class:`LaunchContext`, exactly when the action
that holds them is visited, because that is what makes argument order and scoping in real
launch files behave the way their authors tested them with ``ros2 launch``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class LaunchError(RuntimeError):
    """A launch file could not be evaluated or its processes could not be started."""

    exit_code = 1


class LaunchArgumentError(LaunchError):
    """The user's ``name:=value`` arguments do not fit the declared launch arguments."""

    exit_code = 2


class SubstitutionFailure(LaunchError):  # noqa: N818 - launch's name
    """A substitution could not be performed (same name as in ``launch``)."""


class InvalidConditionExpressionError(LaunchError):
    """A condition evaluated to something other than true/false/1/0."""


class LaunchContext:
    """What actions read and write while a launch description is visited.

    ``environment`` is a private copy: launch files must not change the environment of the
    process hosting the runner (tests run it inside pytest).
    """

    def __init__(self, environment: dict[str, str], argv: Iterable[str] = ()) -> None:
        self.launch_configurations: dict[str, str] = {}
        self.environment: dict[str, str] = dict(environment)
        self.argv = list(argv)
        self.locals: dict[str, Any] = {}
        self.processes: list[Any] = []  # ProcessSpec, appended in visit order
        self.declared_arguments: dict[str, Any] = {}  # name -> DeclareLaunchArgument
        self.messages: list[str] = []
        self.workdir: Path | None = None  # where generated parameter files go
        self._config_stack: list[dict[str, str]] = []
        self._env_stack: list[dict[str, str]] = []

    def perform_substitution(self, substitution: Substitution) -> str:
        return substitution.perform(self)

    def extend_locals(self, new_locals: dict[str, Any]) -> None:
        self.locals.update(new_locals)

    def _push_configurations(self) -> None:
        self._config_stack.append(dict(self.launch_configurations))

    def _pop_configurations(self) -> None:
        self.launch_configurations = self._config_stack.pop()

    def _push_environment(self) -> None:
        self._env_stack.append(dict(self.environment))

    def _pop_environment(self) -> None:
        self.environment = self._env_stack.pop()


class Substitution:
    """Base of everything that turns into text once a context exists."""

    def perform(self, context: LaunchContext) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


SomeSubstitutionsType = Any  # str | Substitution | Path | Iterable[str | Substitution]


def normalize_to_list_of_substitutions(value: SomeSubstitutionsType) -> list[Substitution]:
    """Accept the same inputs as ``launch``: text, a substitution, or a sequence of both."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return [TextSubstitution(text=value)]
    if isinstance(value, Substitution):
        return [value]
    if isinstance(value, Iterable):
        result: list[Substitution] = []
        for item in value:
            if isinstance(item, Path):
                item = str(item)
            if isinstance(item, str):
                result.append(TextSubstitution(text=item))
            elif isinstance(item, Substitution):
                result.append(item)
            else:
                raise TypeError(f"expected str or Substitution in {value!r}, got {item!r}")
        return result
    raise TypeError(f"expected str, Substitution or a sequence of them, got {value!r}")


def perform_substitutions(context: LaunchContext, value: SomeSubstitutionsType) -> str:
    """Concatenate the performed substitutions (a list means concatenation in launch)."""
    return "".join(sub.perform(context) for sub in normalize_to_list_of_substitutions(value))


class TextSubstitution(Substitution):
    def __init__(self, *, text: str) -> None:
        self.text = str(text)

    def perform(self, context: LaunchContext) -> str:
        return self.text

    def describe(self) -> str:
        return repr(self.text)


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: SomeSubstitutionsType, *, default: Any = None) -> None:
        self.variable_name = normalize_to_list_of_substitutions(variable_name)
        self.default = None if default is None else normalize_to_list_of_substitutions(default)

    def perform(self, context: LaunchContext) -> str:
        name = perform_substitutions(context, self.variable_name)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is not None:
            return perform_substitutions(context, self.default)
        raise SubstitutionFailure(f"launch configuration '{name}' does not exist")

    def describe(self) -> str:
        return f"LaunchConfiguration({''.join(s.describe() for s in self.variable_name)})"


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions: Iterable[SomeSubstitutionsType]) -> None:
        self.substitutions = [normalize_to_list_of_substitutions(s) for s in substitutions]

    def perform(self, context: LaunchContext) -> str:
        return os.path.join(*(perform_substitutions(context, s) for s in self.substitutions))


class EnvironmentVariable(Substitution):
    def __init__(self, name: SomeSubstitutionsType, *, default_value: Any = None) -> None:
        self.name = normalize_to_list_of_substitutions(name)
        self.default_value = (None if default_value is None
                              else normalize_to_list_of_substitutions(default_value))

    def perform(self, context: LaunchContext) -> str:
        name = perform_substitutions(context, self.name)
        if name in context.environment:
            return context.environment[name]
        if self.default_value is not None:
            return perform_substitutions(context, self.default_value)
        raise SubstitutionFailure(f"environment variable '{name}' does not exist")


class PythonExpression(Substitution):
    def __init__(self, expression: SomeSubstitutionsType) -> None:
        self.expression = normalize_to_list_of_substitutions(expression)

    def perform(self, context: LaunchContext) -> str:
        expression = perform_substitutions(context, self.expression)
        return str(eval(expression, {}, dict(vars(math))))  # launch evaluates it the same way


class FindExecutable(Substitution):
    def __init__(self, *, name: SomeSubstitutionsType) -> None:
        self.name = normalize_to_list_of_substitutions(name)

    def perform(self, context: LaunchContext) -> str:
        name = perform_substitutions(context, self.name)
        found = shutil.which(name, path=context.environment.get("PATH"))
        if found is None:
            raise SubstitutionFailure(f"executable '{name}' not found on the PATH")
        return found


class Condition:
    """Base condition: ``condition=`` of an action; evaluated when the action is visited."""

    def evaluate(self, context: LaunchContext) -> bool:
        raise NotImplementedError


def _truth(context: LaunchContext, expression: list[Substitution]) -> bool:
    text = perform_substitutions(context, expression).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise InvalidConditionExpressionError(
        f"condition expression {text!r} is neither true/false nor 1/0")


class IfCondition(Condition):
    def __init__(self, predicate_expression: SomeSubstitutionsType) -> None:
        self.expression = normalize_to_list_of_substitutions(predicate_expression)

    def evaluate(self, context: LaunchContext) -> bool:
        return _truth(context, self.expression)


class UnlessCondition(IfCondition):
    def evaluate(self, context: LaunchContext) -> bool:
        return not _truth(context, self.expression)


class LaunchDescriptionEntity:
    """Anything that can appear in a LaunchDescription."""

    condition: Condition | None = None

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return None


class Action(LaunchDescriptionEntity):
    def __init__(self, *, condition: Condition | None = None) -> None:
        self.condition = condition

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        if self.condition is not None and not self.condition.evaluate(context):
            return None
        return self.execute(context)

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return None


class LaunchDescription(LaunchDescriptionEntity):
    def __init__(self, initial_entities: Iterable[LaunchDescriptionEntity] | None = None,
                 *, deprecated_reason: str | None = None) -> None:
        self.entities = list(initial_entities or [])

    def add_action(self, action: LaunchDescriptionEntity) -> None:
        self.entities.append(action)

    def add_entity(self, entity: LaunchDescriptionEntity) -> None:
        self.entities.append(entity)

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        return list(self.entities)

    def get_launch_arguments(self) -> list[Any]:
        """Unconditional DeclareLaunchArgument actions at top level (best effort, as launch)."""
        from ad_perception.ros.launch_shim._actions import DeclareLaunchArgument

        return [e for e in self.entities if isinstance(e, DeclareLaunchArgument)]


def visit_all(entity: LaunchDescriptionEntity, context: LaunchContext) -> None:
    """Depth-first, in order: what each action returns is visited before its next sibling."""
    pending: list[LaunchDescriptionEntity] = [entity]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, LaunchDescriptionEntity):
            raise LaunchError(f"not a launch entity: {current!r} (only the shim's launch / "
                              "launch_ros classes are supported)")
        produced = current.visit(context) or []
        pending[:0] = list(produced)

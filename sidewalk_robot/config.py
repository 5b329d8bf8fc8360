"""Frozen config dataclasses <-> ROS 2 parameter YAML files, without rclpy.

Every core takes a frozen dataclass. Its fields are the node's parameters: the field type is the
parameter type and ``metadata['description']`` its description. The node declares them from the
dataclass (see ros_params.py); tests and tools load the same YAML here without ROS.

Fields made with ``robot_field`` are no parameters: the robot description (the model.sdf the
config's ``robot_model`` parameter names; sidewalk_robot.description) sets them, so frames,
sensor mounts and the footprint live in one place. Their defaults are the delivery robot's, for
cores built without a description (tests); ``declare_config`` and ``load_config`` fill them from
the description, and a parameter file or ``-p`` that sets one is refused.

The parameters a node's command line sets (``--params-file`` files and ``-p`` overrides) are
read here too, so a node can say which file and key a configuration error comes from.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

ConfigT = TypeVar('ConfigT')

SCALAR_TYPES = (bool, int, float, str)


def describe(default: Any, description: str, **constraints: float) -> Any:
    """A dataclass field with a parameter description (and optional min/max constraints)."""
    metadata = {'description': description, **constraints}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


DEFAULT_ROBOT_MODEL = 'delivery_robot'
_FROM_ROBOT = 'robot_description'


def robot_model_parameter() -> Any:
    """The ``robot_model`` parameter of a config with ``robot_field`` fields."""
    return describe(DEFAULT_ROBOT_MODEL, 'robot model name (worlds/models/<name>/model.sdf) or '
                    'path to its model.sdf: the robot description the frames, sensor mounts and '
                    'footprint are read from')


def robot_field(default: Any, description: str, **constraints: float) -> Any:
    """A dataclass field the robot description sets (the config's ``robot_values``), not a
    parameter; ``default`` is the delivery robot's value."""
    return dataclasses.field(default=default, metadata={'description': description,
                                                        **constraints, _FROM_ROBOT: True})


def is_parameter(field: dataclasses.Field) -> bool:
    """A field a parameter file sets (not one the robot description sets)."""
    return not field.metadata.get(_FROM_ROBOT, False)


def robot_field_names(config_type: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(config_type) if not is_parameter(f))


def parameter_names(config_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(config_type) if is_parameter(f))


def field_types(config_type: type) -> dict[str, Any]:
    """Resolved type of each field (handles ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_type)}


class ParameterValueError(ValueError):
    """A parameter value that is not allowed: names the parameter and what it must be.

    ``node_name`` (the node's fully qualified name) is set where the node is known, so the
    node's entry point can find which file or ``-p`` override set the value.
    """

    def __init__(self, parameter: str, requirement: str, got: str | None = None,
                 node_name: str | None = None) -> None:
        self.parameter = parameter
        self.requirement = requirement
        self.got = got
        self.node_name = node_name
        super().__init__(f'parameter {parameter!r} must be {requirement}'
                         + (f', got {got}' if got is not None else ''))

    def at_node(self, node_name: str) -> ParameterValueError:
        return ParameterValueError(self.parameter, self.requirement, self.got, node_name)


_KIND_NAMES = {bool: ('true or false', 'true or false values'),
               int: ('an integer', 'integers'),
               float: ('a decimal number', 'decimal numbers'),
               str: ('a string', 'strings')}


def allowed_values(expected: Any, low: float | None = None, high: float | None = None) -> str:
    """What a parameter of type ``expected`` within [low, high] accepts, in words."""
    if typing.get_origin(expected) in (tuple, list):
        args = typing.get_args(expected)
        return f'a list of {_KIND_NAMES[args[0] if args else float][1]}'
    kind = _KIND_NAMES[expected][0]
    if low is not None and high is not None:
        return f'{kind} from {low} to {high}'
    if low is not None:
        return f'{kind} >= {low}'
    if high is not None:
        return f'{kind} <= {high}'
    return kind


def field_allowed_values(field: dataclasses.Field, expected: Any) -> str:
    return allowed_values(expected, field.metadata.get('min'), field.metadata.get('max'))


def coerce_value(name: str, expected: Any, value: Any) -> Any:
    """Convert a YAML / parameter value to the field's type, or raise ParameterValueError."""
    origin = typing.get_origin(expected)
    if origin in (tuple, list):
        args = typing.get_args(expected)
        item_type = args[0] if args else float
        if not isinstance(value, (list, tuple)):
            raise ParameterValueError(name, allowed_values(expected), repr(value))
        try:
            return tuple(coerce_value(name, item_type, v) for v in value)
        except ParameterValueError:
            raise ParameterValueError(name, allowed_values(expected), repr(value)) from None
    if expected is bool:
        if not isinstance(value, bool):
            raise ParameterValueError(name, allowed_values(bool), repr(value))
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterValueError(name, allowed_values(float), repr(value))
        if not math.isfinite(float(value)):
            raise ParameterValueError(name, 'finite', repr(value))
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterValueError(name, allowed_values(int), repr(value))
        return value
    if expected is str:
        if not isinstance(value, str):
            raise ParameterValueError(name, allowed_values(str), repr(value))
        return value
    raise TypeError(f'parameter {name!r} has unsupported type {expected!r}')


def check_constraints(config: Any) -> None:
    """Raise ParameterValueError for a value outside a field's ``min``/``max`` metadata."""
    types = field_types(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        low, high = f.metadata.get('min'), f.metadata.get('max')
        if (low is not None and value < low) or (high is not None and value > high):
            raise ParameterValueError(f.name, field_allowed_values(f, types[f.name]), repr(value))


def config_from_dict(config_type: type[ConfigT], values: dict[str, Any],
                     *, ignore_unknown: bool = False) -> ConfigT:
    """Build the dataclass from a flat mapping, checking names, types and ranges.

    A key for a field the robot description sets is refused even with ``ignore_unknown``; those
    fields keep their defaults here (``with_robot_description`` sets them).
    """
    types = field_types(config_type)
    from_robot = sorted(set(values) & robot_field_names(config_type))
    if from_robot:
        raise ValueError(f'{", ".join(from_robot)} of {config_type.__name__} '
                         f'{"is" if len(from_robot) == 1 else "are"} read from the robot '
                         f'description (robot_model), not set by parameters')
    unknown = sorted(set(values) - set(types))
    if unknown and not ignore_unknown:
        raise ValueError(f'unknown parameters for {config_type.__name__}: {", ".join(unknown)}')
    kwargs = {name: coerce_value(name, types[name], value)
              for name, value in values.items() if name in types}
    config = config_type(**kwargs)
    check_constraints(config)
    return config


def read_yaml_mapping(path: str | Path, what: str = 'file') -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file gives {}).

    FileNotFoundError names ``what`` and the path; ValueError names the path and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        document = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as error:
        raise ValueError(f'{path}: not valid YAML: {error}') from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f'{path}: expected a mapping at the top level')
    return document


def read_parameter_file(path: str | Path, node_name: str | None = None) -> dict[str, Any]:
    """The ``ros__parameters`` of a ROS 2 parameter YAML file for a node: its ``/**`` section,
    then its own section (``node_name`` or ``/node_name``) over it, as the node gets them."""
    settings = parameter_file_settings(path)
    own_node = f'/{node_name.strip("/")}' if node_name else None
    parameters = {s.name: s.value for s in settings if s.node == WILDCARD_NODE}
    parameters.update({s.name: s.value for s in settings if s.node == own_node})
    return parameters


def load_config(config_type: type[ConfigT], path: str | Path,
                node_name: str | None = None) -> ConfigT:
    """The config dataclass as a parameter file sets it (fields it leaves out keep defaults),
    with the fields the robot description sets read from it, as the node has them.

    Keys the dataclass does not know (for example ``use_sim_time``) are left to the node.
    """
    return with_robot_description(config_from_dict(
        config_type, read_parameter_file(path, node_name), ignore_unknown=True))


def with_robot_description(config: ConfigT) -> ConfigT:
    """``config`` with its ``robot_field`` fields set from the robot description its
    ``robot_model`` names (its ``robot_values``); a config without such fields as it is.

    A robot model that cannot be read, or that the config cannot take (``robot_values`` raises
    ValueError), is a ParameterValueError for ``robot_model``.
    """
    names = robot_field_names(type(config))
    if not names:
        return config
    from sidewalk_robot.description import load_description  # it imports this module

    robot_model = config.robot_model
    try:
        values = config.robot_values(load_description(robot_model))
    except (OSError, ValueError) as error:
        raise ParameterValueError('robot_model', f'a robot model this node can use ({error})',
                                  repr(robot_model)) from error
    if set(values) != names:
        raise TypeError(f'{type(config).__name__}.robot_values sets {sorted(values)}, its robot '
                        f'fields are {sorted(names)}')
    config = dataclasses.replace(config, **values)
    check_constraints(config)
    return config


# ------------------------------------------------------------ parameters a command line sets

WILDCARD_NODE = '/**'

_ROS_OPTIONS_WITH_VALUE = frozenset({'-r', '--remap', '-p', '--param', '--params-file', '-e',
                                     '--enclave', '--log-level', '--log-config-file',
                                     '--log-file-name'})


@dataclasses.dataclass(frozen=True)
class ParameterSetting:
    """One parameter value a node's command line sets, and where: a file or a ``-p``."""
    name: str
    value: Any
    node: str
    """``/**`` or the fully qualified name of the node it is for."""
    origin: str


def parameter_file_settings(path: str | Path) -> list[ParameterSetting]:
    """Every parameter of a ROS 2 parameter file, for every node section in it.

    Nested node keys form the node's name (``ns: {planner: ...}`` is ``/ns/planner``) and
    nested parameter keys its dotted name, as rcl reads the file.
    """
    document = read_yaml_mapping(path, 'parameter file')
    if document and not _has_parameter_section(document):
        raise ValueError(f'{path}: no "ros__parameters" section found')
    return list(_section_settings(document, (), str(path)))


def _has_parameter_section(section: Mapping[Any, Any]) -> bool:
    return 'ros__parameters' in section or any(
        isinstance(value, Mapping) and _has_parameter_section(value) for value in section.values())


def _section_settings(section: Mapping[Any, Any], node_path: tuple[str, ...],
                      origin: str) -> Iterator[ParameterSetting]:
    for key, value in section.items():
        if key == 'ros__parameters':
            if isinstance(value, Mapping):
                node = '/' + '/'.join(node_path)
                for name, parameter_value in _flatten(value, ''):
                    yield ParameterSetting(name, parameter_value, node, origin)
        elif isinstance(value, Mapping):
            yield from _section_settings(value, (*node_path, str(key).strip('/')), origin)


def _flatten(parameters: Mapping[Any, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in parameters.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def _override_setting(rule: str) -> ParameterSetting:
    """``-p name:=value``, or ``-p node:name:=value`` for one node only."""
    target, _, text = rule.partition(':=')
    node, _, name = target.rpartition(':')
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    return ParameterSetting(name, value, f'/{node.strip("/")}' if node else WILDCARD_NODE,
                            f'-p {rule}')


def command_line_settings(arguments: Sequence[str]) -> list[ParameterSetting]:
    """The parameters set by ``--params-file`` and ``-p`` in the ``--ros-args`` sections of a
    command line, in order (files are read here; a missing or broken file raises)."""
    settings: list[ParameterSetting] = []
    in_ros_arguments = False
    remaining = iter(arguments)
    for argument in remaining:
        if argument == '--ros-args':
            in_ros_arguments = True
        elif not in_ros_arguments:
            continue
        elif argument == '--':
            in_ros_arguments = False
        elif argument in _ROS_OPTIONS_WITH_VALUE:
            value = next(remaining, None)
            if value is None:
                break
            if argument == '--params-file':
                settings += parameter_file_settings(value)
            elif argument in ('-p', '--param'):
                settings.append(_override_setting(value))
    return settings


def settings_for_node(settings: Sequence[ParameterSetting],
                      node_name: str) -> list[ParameterSetting]:
    """The settings that reach the node ``node_name`` (fully qualified): ``/**`` and its own."""
    return [s for s in settings if s.node in (WILDCARD_NODE, node_name)]


def effective_setting(settings: Sequence[ParameterSetting], node_name: str,
                      parameter: str) -> ParameterSetting | None:
    """The setting a node gets for ``parameter``: as in rclpy, a section under the node's own
    name wins over ``/**``, and within each the last one given wins."""
    candidates = [s for s in settings if s.name == parameter]
    own = [s for s in candidates if s.node == node_name]
    wildcard = [s for s in candidates if s.node == WILDCARD_NODE]
    return (own or wildcard or [None])[-1]


def unknown_parameter_problem(settings: Sequence[ParameterSetting], node_name: str,
                              known: Collection[str]) -> str | None:
    """A one-line message for the first setting that reaches the node but names no parameter it
    has (with the nearest known name), or None. Sections for other nodes are not checked."""
    for setting in settings_for_node(settings, node_name):
        if setting.name not in known:
            nearest = difflib.get_close_matches(setting.name, list(known), n=1)
            hint = f' (did you mean {nearest[0]}?)' if nearest else ''
            return f'{setting.origin}: unknown parameter {setting.name!r} for {node_name}{hint}'
    return None


def located_parameter_error(error: ParameterValueError,
                            settings: Sequence[ParameterSetting]) -> str:
    """``error`` as one line that starts with the file (or ``-p``) its value came from."""
    setting = (effective_setting(settings, error.node_name, error.parameter)
               if error.node_name else None)
    if setting is None:
        return str(error)
    message = f'{setting.origin}: parameter {error.parameter!r} must be {error.requirement}, ' \
              f'got {setting.value!r}'
    if error.requirement.startswith(allowed_values(float)) and type(setting.value) is int:
        message += f' (write {setting.value}.0: ROS does not take an integer for it)'
    return message

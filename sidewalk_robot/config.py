"""Frozen config dataclasses <-> ROS 2 parameter YAML files, without rclpy.

Every core takes a frozen dataclass. Its fields are the node's parameters: the field type is the
parameter type and ``metadata['description']`` its description. The node declares them from the
dataclass (see ros_params.py); tests and tools load the same YAML here without ROS.
"""
from __future__ import annotations

import dataclasses
import math
import typing
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


def field_types(config_type: type) -> dict[str, Any]:
    """Resolved type of each field (handles ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_type)}


def coerce_value(name: str, expected: Any, value: Any) -> Any:
    """Convert a YAML / parameter value to the field's type, or raise a clear ValueError."""
    origin = typing.get_origin(expected)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'parameter {name!r} must be a list, got {value!r}')
        args = typing.get_args(expected)
        item_type = args[0] if args else float
        return tuple(coerce_value(f'{name}[{i}]', item_type, v) for i, v in enumerate(value))
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f'parameter {name!r} must be true or false, got {value!r}')
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'parameter {name!r} must be a number, got {value!r}')
        if not math.isfinite(float(value)):
            raise ValueError(f'parameter {name!r} must be finite, got {value!r}')
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'parameter {name!r} must be an integer, got {value!r}')
        return value
    if expected is str:
        if not isinstance(value, str):
            raise ValueError(f'parameter {name!r} must be a string, got {value!r}')
        return value
    raise TypeError(f'parameter {name!r} has unsupported type {expected!r}')


def check_constraints(config: Any) -> None:
    """Raise ValueError for a value outside a field's ``min``/``max`` metadata."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        low, high = f.metadata.get('min'), f.metadata.get('max')
        if low is not None and value < low:
            raise ValueError(f'parameter {f.name!r} = {value} is below its minimum {low}')
        if high is not None and value > high:
            raise ValueError(f'parameter {f.name!r} = {value} is above its maximum {high}')


def config_from_dict(config_type: type[ConfigT], values: dict[str, Any],
                     *, ignore_unknown: bool = False) -> ConfigT:
    """Build the dataclass from a flat mapping, checking names, types and ranges."""
    types = field_types(config_type)
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
    """The ``ros__parameters`` of a ROS 2 parameter YAML file (``/**`` or the node's key)."""
    path = Path(path)
    document = read_yaml_mapping(path, 'parameter file')
    parameters: dict[str, Any] = {}
    for key in ('/**', node_name, f'/{node_name}' if node_name else None):
        if key and isinstance(document.get(key), dict):
            parameters.update(document[key].get('ros__parameters') or {})
    if not parameters and not any(isinstance(v, dict) and 'ros__parameters' in v
                                  for v in document.values()):
        raise ValueError(f'{path}: no "ros__parameters" section found')
    return parameters


def load_config(config_type: type[ConfigT], path: str | Path,
                node_name: str | None = None) -> ConfigT:
    """The config dataclass as a parameter file sets it (fields it leaves out keep defaults).

    Keys the dataclass does not know (for example ``use_sim_time``) are left to the node.
    """
    return config_from_dict(config_type, read_parameter_file(path, node_name),
                            ignore_unknown=True)

"""Declare a node's parameters from its core's frozen config dataclass."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from sidewalk_robot.config import (ParameterValueError, config_from_dict, field_allowed_values,
                                   field_types, is_parameter, with_robot_description)

ConfigT = TypeVar('ConfigT')

_SCALAR_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_ARRAY_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}


def _parameter_type(expected: Any) -> int:
    if typing.get_origin(expected) in (tuple, list):
        return _ARRAY_PARAMETER_TYPES[typing.get_args(expected)[0]]
    return _SCALAR_PARAMETER_TYPES[expected]


def _descriptor(field: dataclasses.Field, expected: Any) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(
        name=field.name,
        type=_parameter_type(expected),
        description=field.metadata.get('description', ''),
        read_only=True,
    )
    low, high = field.metadata.get('min'), field.metadata.get('max')
    if low is not None or high is not None:
        if expected is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(low if low is not None else -1e300),
                to_value=float(high if high is not None else 1e300))]
        elif expected is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(low if low is not None else -(2**62)),
                to_value=int(high if high is not None else 2**62), step=1)]
    return descriptor


def declare_config(node: Node, config_type: type[ConfigT]) -> ConfigT:
    """Declare every field as a typed, described, read-only parameter and read them back.

    Values come from the node's parameter files and overrides; anything not set keeps the
    dataclass default. A wrong type or an out-of-range value raises ParameterValueError naming
    the parameter, what it allows and the node, so a bad YAML file stops the node at start-up
    with a clear message (run_node adds the file it came from). Fields the robot description
    sets are not declared: they are read from the description the ``robot_model`` parameter
    names (``with_robot_description``), so a file that sets one is refused as unknown.
    """
    defaults = config_type()
    types = field_types(config_type)
    node_name = node.get_fully_qualified_name()
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        if not is_parameter(field):
            continue
        default = getattr(defaults, field.name)
        if isinstance(default, tuple):
            default = list(default)
        try:
            parameter = node.declare_parameter(field.name, default,
                                               _descriptor(field, types[field.name]))
        except (InvalidParameterTypeException, InvalidParameterValueException):
            raise ParameterValueError(field.name, field_allowed_values(field, types[field.name]),
                                      node_name=node_name) from None
        values[field.name] = parameter.value
    try:
        return with_robot_description(config_from_dict(config_type, values))
    except ParameterValueError as error:
        raise error.at_node(node_name) from None

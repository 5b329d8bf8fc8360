"""declare_config declares typed, described parameters from a config dataclass."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from sidewalk_robot.config import describe
from sidewalk_robot.ros_params import declare_config


@dataclass(frozen=True)
class DriveConfig:
    max_speed: float = describe(1.5, 'top speed [m/s]', min=0.0, max=3.0)
    rate: int = describe(20, 'loop rate [Hz]', min=1)
    frame: str = describe('base_link', 'frame id')
    offsets: tuple[float, ...] = describe((0.3, 0.0), 'sensor offset [m]')


def test_parameters_are_declared_with_types_descriptions_and_overrides(make_node) -> None:
    node = make_node('declare_probe', parameter_overrides=[Parameter('max_speed', value=1.0)])
    config = declare_config(node, DriveConfig)
    assert config == DriveConfig(max_speed=1.0)
    descriptors = node.describe_parameters(['max_speed', 'rate', 'frame', 'offsets'])
    assert [d.type for d in descriptors] == [ParameterType.PARAMETER_DOUBLE,
                                             ParameterType.PARAMETER_INTEGER,
                                             ParameterType.PARAMETER_STRING,
                                             ParameterType.PARAMETER_DOUBLE_ARRAY]
    assert descriptors[0].description == 'top speed [m/s]'
    assert descriptors[0].floating_point_range[0].to_value == 3.0


def test_out_of_range_override_is_refused_with_the_parameter_name(make_node) -> None:
    node = make_node('declare_bad', parameter_overrides=[Parameter('max_speed', value=9.0)])
    with pytest.raises(Exception, match='max_speed'):
        declare_config(node, DriveConfig)

"""Config dataclasses load from ROS parameter YAML with clear errors."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidewalk_robot.config import (ParameterSetting, ParameterValueError, allowed_values,
                                   command_line_settings, config_from_dict, describe,
                                   effective_setting, field_types, load_config,
                                   located_parameter_error, settings_for_node,
                                   unknown_parameter_problem)
from sidewalk_robot.description import DescriptionConfig
from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.operations.config import IncidentRecorderConfig, OperatorConfig
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.system.faults import FaultInjectorConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'config'


@dataclass(frozen=True)
class ExampleConfig:
    speed: float = describe(1.0, 'top speed [m/s]', min=0.0)
    count: int = describe(3, 'how many')
    enabled: bool = describe(True, 'switch')
    name: str = describe('robot', 'a name')
    offsets: tuple[float, ...] = describe((0.1, 0.2), 'offsets [m]')


def test_yaml_values_override_defaults_and_unknown_keys_are_left_to_the_node(tmp_path: Path) -> None:
    path = tmp_path / 'example.yaml'
    path.write_text('/**:\n  ros__parameters:\n    speed: 2\n    offsets: [1.0, 2.0, 3.0]\n'
                    '    use_sim_time: true\n')
    config = load_config(ExampleConfig, path)
    assert config == ExampleConfig(speed=2.0, offsets=(1.0, 2.0, 3.0))
    assert isinstance(config.speed, float)


@pytest.mark.parametrize('values, message', [
    ({'speed': 'fast'}, "'speed' must be a decimal number, got 'fast'"),
    ({'speed': float('nan')}, "'speed' must be finite"),
    ({'speed': -1.0}, "'speed' must be a decimal number >= 0.0, got -1.0"),
    ({'count': 2.5}, "'count' must be an integer"),
    ({'enabled': 1}, "'enabled' must be true or false"),
    ({'offsets': 0.1}, "'offsets' must be a list of decimal numbers"),
    ({'offsets': [0.1, 'far']}, "'offsets' must be a list of decimal numbers"),
    ({'typo': 1}, 'unknown parameters'),
])
def test_bad_values_name_the_parameter(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_dict(ExampleConfig, values)


def test_missing_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='parameter file not found'):
        load_config(ExampleConfig, tmp_path / 'absent.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('/**: [unclosed\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        load_config(ExampleConfig, broken)
    no_section = tmp_path / 'plain.yaml'
    no_section.write_text('speed: 1.0\n')
    with pytest.raises(ValueError, match='ros__parameters'):
        load_config(ExampleConfig, no_section)


# ------------------------------------------------------------ parameters a command line sets

NODE_CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob('*.yaml') if p.stem != 'ros_gz_bridge')
CONFIG_TYPES = {'perception': PerceptionConfig, 'planner': PlannerConfig,
                'safety_monitor': SafetyConfig, 'sim': SimConfig,
                'fault_injector': FaultInjectorConfig, 'operator': OperatorConfig,
                'incident_recorder': IncidentRecorderConfig,
                'robot_description': DescriptionConfig, 'health_monitor': HealthMonitorConfig}
"""The config dataclass of each config/<node>.yaml checked here (a node started with its file
checks it too: run_node refuses keys it does not have)."""


@pytest.mark.parametrize('path', NODE_CONFIG_FILES, ids=lambda path: path.name)
def test_every_shipped_node_config_sets_only_known_parameters_with_allowed_values(
        path: Path) -> None:
    settings = command_line_settings(['--ros-args', '--params-file', str(path)])
    assert settings and settings_for_node(settings, f'/{path.stem}') == settings
    config_type = CONFIG_TYPES.get(path.stem)
    assert config_type is not None, f'list the config dataclass of {path.name} in CONFIG_TYPES'
    config_from_dict(config_type, {s.name: s.value for s in settings})
    types = field_types(config_type)
    assert not [s.name for s in settings if types[s.name] is float and type(s.value) is int], \
        'rclpy refuses an integer for a decimal parameter: write 1.0, not 1'


def test_files_and_overrides_are_read_in_order_with_their_nodes(tmp_path: Path) -> None:
    first = tmp_path / 'first.yaml'
    first.write_text('/**:\n  ros__parameters:\n    speed: 1.0\n    limits: {low: 0.5}\n'
                     'planner:\n  ros__parameters:\n    count: 2\n'
                     'robot:\n  /planner:\n    ros__parameters:\n      count: 3\n')
    second = tmp_path / 'second.yaml'
    second.write_text('/planner:\n  ros__parameters:\n    name: b\n')
    settings = command_line_settings([
        'planner_node', '--params-file', 'not_a_ros_argument.yaml',
        '--ros-args', '-r', '__node:=planner', '--params-file', str(first),
        '-p', 'speed:=2.5', '--', 'app_argument',
        '--ros-args', '--log-level', 'debug', '--param', 'name:=a b', '--params-file', str(second),
        '-p', 'sim:seed:=4'])
    assert [(s.name, s.value, s.node, s.origin) for s in settings] == [
        ('speed', 1.0, '/**', str(first)),
        ('limits.low', 0.5, '/**', str(first)),
        ('count', 2, '/planner', str(first)),
        ('count', 3, '/robot/planner', str(first)),
        ('speed', 2.5, '/**', '-p speed:=2.5'),
        ('name', 'a b', '/**', '-p name:=a b'),
        ('name', 'b', '/planner', str(second)),
        ('seed', 4, '/sim', '-p sim:seed:=4'),
    ]
    assert [s.name for s in settings_for_node(settings, '/robot/planner')] == [
        'speed', 'limits.low', 'count', 'speed', 'name']


def test_a_nodes_own_section_wins_over_the_wildcard_and_the_last_one_given_wins() -> None:
    settings = [ParameterSetting('speed', 1.0, '/planner', 'a.yaml'),
                ParameterSetting('speed', 2.0, '/**', 'b.yaml'),
                ParameterSetting('speed', 3.0, '/planner', 'c.yaml'),
                ParameterSetting('speed', 4.0, '/**', '-p speed:=4.0'),
                ParameterSetting('speed', 5.0, '/other', 'd.yaml')]
    assert effective_setting(settings, '/planner', 'speed').origin == 'c.yaml'
    assert effective_setting(settings, '/sim', 'speed').origin == '-p speed:=4.0'
    assert effective_setting(settings, '/sim', 'count') is None


def test_missing_and_broken_parameter_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='parameter file not found'):
        command_line_settings(['--ros-args', '--params-file', str(tmp_path / 'absent.yaml')])
    plain = tmp_path / 'plain.yaml'
    plain.write_text('speed: 1.0\n')
    with pytest.raises(ValueError, match='ros__parameters'):
        command_line_settings(['--ros-args', '--params-file', str(plain)])


KNOWN = ('max_linear_speed', 'max_reverse_speed', 'control_rate', 'use_sim_time')


@pytest.mark.parametrize('node_key', ['/**', '/planner'])
def test_a_misspelt_key_for_the_node_is_named_with_the_nearest_known_one(node_key: str) -> None:
    settings = [ParameterSetting('control_rate', 10.0, node_key, 'p.yaml'),
                ParameterSetting('max_speeed', 1.0, node_key, 'p.yaml')]
    assert unknown_parameter_problem(settings, '/planner', KNOWN) == (
        "p.yaml: unknown parameter 'max_speeed' for /planner (did you mean max_linear_speed?)")
    far_off = [ParameterSetting('colour', 'red', node_key, '-p colour:=red')]
    assert unknown_parameter_problem(far_off, '/planner', KNOWN) == (
        "-p colour:=red: unknown parameter 'colour' for /planner")


def test_keys_for_other_nodes_and_known_keys_are_no_problem() -> None:
    settings = [ParameterSetting('use_sim_time', True, '/**', 'p.yaml'),
                ParameterSetting('max_speeed', 1.0, '/safety_monitor', 'p.yaml'),
                ParameterSetting('max_speeed', 1.0, '/robot/planner', 'p.yaml')]
    assert unknown_parameter_problem(settings, '/planner', KNOWN) is None


def test_a_bad_value_is_located_in_the_file_that_set_it() -> None:
    settings = [ParameterSetting('control_rate', 20.0, '/**', 'base.yaml'),
                ParameterSetting('control_rate', 90.0, '/planner', 'mine.yaml')]
    requirement = allowed_values(float, 1.0, 50.0)
    error = ParameterValueError('control_rate', requirement, node_name='/planner')
    assert located_parameter_error(error, settings) == (
        "mine.yaml: parameter 'control_rate' must be a decimal number from 1.0 to 50.0, "
        "got 90.0")
    integer = [ParameterSetting('control_rate', 10, '/**', '-p control_rate:=10')]
    assert located_parameter_error(error, integer) == (
        "-p control_rate:=10: parameter 'control_rate' must be a decimal number from 1.0 to "
        "50.0, got 10 (write 10.0: ROS does not take an integer for it)")
    assert located_parameter_error(error, []) == (
        "parameter 'control_rate' must be a decimal number from 1.0 to 50.0")


@pytest.mark.parametrize('expected, low, high, words', [
    (float, 0.0, None, 'a decimal number >= 0.0'),
    (int, None, 10, 'an integer <= 10'),
    (int, 1, 10, 'an integer from 1 to 10'),
    (bool, None, None, 'true or false'),
    (str, None, None, 'a string'),
    (tuple[float, ...], None, None, 'a list of decimal numbers'),
])
def test_allowed_values_in_words(expected: object, low: float | None, high: float | None,
                                 words: str) -> None:
    assert allowed_values(expected, low, high) == words

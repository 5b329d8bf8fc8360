"""declare_config declares typed, described parameters from a config dataclass; a node started
with a bad parameter file or override stops with one line naming it (real console scripts)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from sidewalk_robot.config import ParameterValueError, describe
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.ros_params import declare_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'config'


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


def test_out_of_range_override_is_refused_with_the_parameter_its_range_and_the_node(
        make_node) -> None:
    node = make_node('declare_bad', parameter_overrides=[Parameter('max_speed', value=9.0)])
    with pytest.raises(ParameterValueError) as refused:
        declare_config(node, DriveConfig)
    assert refused.value.parameter == 'max_speed'
    assert refused.value.requirement == 'a decimal number from 0.0 to 3.0'
    assert refused.value.node_name == '/declare_bad'


def test_a_node_reads_the_mounts_from_the_robot_description_it_is_given(make_node,
                                                                          tmp_path: Path) -> None:
    model = (CONFIG_DIR.parent / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf').read_text()
    moved = tmp_path / 'model.sdf'
    moved.write_text(model.replace('<pose>0.30 0 0.40 0 0.35 0</pose>',
                                   '<pose>0.10 0 0.70 0 0.5 0</pose>'))  # camera, in base_link
    node = make_node('description_probe',
                     parameter_overrides=[Parameter('robot_model', value=str(moved))])
    config = declare_config(node, PerceptionConfig)
    assert (config.camera_x, config.camera_z, config.camera_pitch) == pytest.approx(
        (0.10, 0.80, 0.5))  # the height above the ground: base_link is 0.1 m up
    assert node.has_parameter('robot_model') and not node.has_parameter('camera_x')
    absent = make_node('description_absent', parameter_overrides=[
        Parameter('robot_model', value=str(tmp_path / 'absent' / 'model.sdf'))])
    with pytest.raises(ParameterValueError) as refused:
        declare_config(absent, PerceptionConfig)
    assert (refused.value.parameter, refused.value.node_name) == ('robot_model',
                                                                 '/description_absent')


# ------------------------------------------- a node's parameter files, checked at its start

NODE = str(Path(sys.executable).parent / 'fault_injector_node')


def _finished(process, timeout: float = 60.0) -> tuple[int, str]:
    code = process.popen.wait(timeout=timeout)
    return code, process.output()


def _start_with(ros_process, *ros_arguments: str):
    return ros_process('fault_injector_node', command=[NODE, '--ros-args', *ros_arguments])


def _the_error_line(output: str) -> str:
    assert 'Traceback' not in output, output
    lines = [line for line in output.splitlines() if 'configuration error' in line]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize('section', ['/**', '/fault_injector'])
def test_an_out_of_range_value_stops_the_node_with_the_file_key_and_range(
        ros_process, tmp_path: Path, section: str) -> None:
    params = tmp_path / 'fast.yaml'
    params.write_text(f'{section}:\n  ros__parameters:\n    command_rate_hz: 500.0\n')
    code, output = _finished(_start_with(ros_process, '--params-file', str(params)))
    assert code == 2, output
    assert _the_error_line(output).endswith(
        f"{params}: parameter 'command_rate_hz' must be a decimal number from 1.0 to 200.0, "
        f"got 500.0")


def test_a_wrong_type_names_the_file_that_set_it_among_several(ros_process,
                                                               tmp_path: Path) -> None:
    good = tmp_path / 'good.yaml'
    good.write_text('/**:\n  ros__parameters:\n    seed: 1\n')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('fault_injector:\n  ros__parameters:\n    seed: many\n')
    code, output = _finished(_start_with(ros_process, '--params-file', str(good),
                                         '--params-file', str(bad)))
    assert code == 2, output
    assert _the_error_line(output).endswith(
        f"{bad}: parameter 'seed' must be an integer, got 'many'")


@pytest.mark.parametrize('section', ['/**', 'fault_injector', '/fault_injector'])
def test_a_misspelt_key_stops_the_node_with_the_nearest_known_key(
        ros_process, tmp_path: Path, section: str) -> None:
    params = tmp_path / 'typo.yaml'
    params.write_text(f'{section}:\n  ros__parameters:\n    command_rate: 20.0\n')
    code, output = _finished(_start_with(ros_process, '--params-file', str(params)))
    assert code == 2, output
    assert _the_error_line(output).endswith(
        f"{params}: unknown parameter 'command_rate' for /fault_injector "
        f"(did you mean command_rate_hz?)")


def test_values_that_contradict_each_other_name_the_file_that_set_one(ros_process,
                                                                      tmp_path: Path) -> None:
    params = tmp_path / 'tight.yaml'
    params.write_text('safety_monitor:\n  ros__parameters:\n    slowdown_distance: 0.1\n'
                      '    stop_margin: 0.3\n')
    monitor = ros_process('safety_monitor_node', command=[
        str(Path(sys.executable).parent / 'safety_monitor_node'), '--ros-args',
        '--params-file', str(CONFIG_DIR / 'safety_monitor.yaml'), '--params-file', str(params)])
    code, output = _finished(monitor)
    assert code == 2, output
    assert _the_error_line(output).endswith(
        f"{params}: parameter 'slowdown_distance' must be at least stop_margin (0.3), got 0.1")


def test_a_bad_override_on_the_command_line_is_named(ros_process) -> None:
    code, output = _finished(_start_with(
        ros_process, '--params-file', str(CONFIG_DIR / 'fault_injector.yaml'),
        '-p', 'random_erase_probability:=1.5'))
    assert code == 2, output
    assert _the_error_line(output).endswith(
        "-p random_erase_probability:=1.5: parameter 'random_erase_probability' must be a "
        "decimal number from 0.0 to 1.0, got 1.5")


def test_keys_for_other_nodes_and_standard_ros_parameters_are_accepted(
        ros_process, tmp_path: Path, make_node, spin_until) -> None:
    params = tmp_path / 'several_nodes.yaml'
    params.write_text('/**:\n  ros__parameters:\n    use_sim_time: false\n'
                      'fault_injector:\n  ros__parameters:\n    seed: 3\n'
                      'planner:\n  ros__parameters:\n    max_speeed: 1.0\n')
    injector = _start_with(ros_process, '--params-file', str(CONFIG_DIR / 'fault_injector.yaml'),
                           '--params-file', str(params),
                           '-p', 'start_type_description_service:=false')
    diagnostics: list[DiagnosticArray] = []
    listener = make_node('diagnostics_listener')
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    assert spin_until(listener, lambda: bool(diagnostics) or not injector.alive(), 60.0), \
        injector.output()
    assert injector.alive(), injector.output()

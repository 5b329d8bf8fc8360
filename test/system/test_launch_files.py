"""The launch files parse, and every executable, parameter file and remap they name exists.

``ros2 launch`` is not installable here, so the demo and the scenario runner start what these
files describe; this test makes a broken launch file fail in ``make test``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidewalk_robot import share_directory
from sidewalk_robot.system.faults import FAULT_TYPES, parse_faults
from sidewalk_robot.system.launch_xml import find_executable, launch_file, read_launch_file
from sidewalk_robot.system.runner import RunOptions, launch_arguments_for

ROOT = share_directory()
STACK = {'robot_description_publisher': 'robot_description_node',
         'perception': 'perception_node', 'planner': 'planner_node',
         'safety_monitor': 'safety_monitor_node', 'health_monitor': 'health_monitor_node',
         'operator': 'operator_node', 'incident_recorder': 'incident_recorder_node'}
PARAMETER_FILES = {'robot_description_publisher': 'robot_description'}
"""Nodes whose parameter file is not config/<node name>.yaml."""
GLOBAL_TOPICS = {'/clock', '/diagnostics'}
"""Topics every node uses at the root whatever its namespace (use_sim_time; the aggregator)."""
EXTERNAL_PACKAGES = {'ros_gz_sim', 'ros_gz_bridge'}
"""Gazebo's ROS packages: named by gazebo.launch.xml, not installable on this machine."""
REQUIRED_ARGUMENTS = {'replay.launch.xml': {'bag': str(ROOT / 'test' / 'data' / 'pole_ahead')}}
"""Values for arguments a launch file declares without a default."""


def documented_topics() -> set[str]:
    """Every topic of docs/interfaces.md's topic table."""
    text = (ROOT / 'docs' / 'interfaces.md').read_text(encoding='utf-8')
    return set(re.findall(r'^\| (/[\w/]+)', text, flags=re.MULTILINE))


def launch_files() -> list[Path]:
    return sorted((ROOT / 'launch').glob('*.launch.xml'))


def test_project_launch_files_exist() -> None:
    names = {path.name for path in launch_files()}
    assert {'robot.launch.xml', 'sim.launch.xml'} <= names


@pytest.mark.parametrize('path', launch_files(), ids=lambda p: p.name)
def test_every_launch_file_parses_and_names_real_things(path: Path) -> None:
    plan = read_launch_file(path, REQUIRED_ARGUMENTS.get(path.name))
    assert plan.nodes, f'{path.name} starts nothing'
    topics = documented_topics()
    for spec in plan.nodes:
        assert spec.package in {'sidewalk_robot'} | EXTERNAL_PACKAGES
        if spec.package == 'sidewalk_robot':
            find_executable(spec.package, spec.executable)
        for params_file in spec.params_files:
            assert params_file.is_file(), f'{spec.label}: missing {params_file}'
        for name, value in spec.parameters:
            if value.startswith(str(ROOT)):
                assert Path(value).exists(), f'{spec.label}: parameter {name} names {value}'
        for source, target in spec.remaps:
            assert '/' + source.lstrip('/') in topics, \
                f'{spec.label}: remaps undocumented topic {source}'
            assert not target.startswith('/'), \
                f'{spec.label}: remap target {target} is absolute, so no namespace applies'
    for executable in plan.executables:
        for word in executable.command:
            if word.startswith(str(ROOT)):
                assert Path(word).exists(), f'{path.name}: {executable.command} names {word}'
    for argument in plan.declared_arguments:
        assert argument.description, f'{path.name}: argument {argument.name} lacks a description'


def test_robot_launch_file_starts_the_stack_with_its_parameter_files() -> None:
    plan = read_launch_file(launch_file('robot.launch.xml'), {'use_sim_time': True})
    assert {spec.label: spec.executable for spec in plan.nodes} == STACK
    for spec in plan.nodes:
        config = PARAMETER_FILES.get(spec.label, spec.label)
        assert spec.params_files == (ROOT / 'config' / f'{config}.yaml',)
        assert ('use_sim_time', 'true') in spec.parameters
    # on the robot, the base driver's odometry becomes odom -> base_footprint here
    assert ('publish_odom_tf', 'true') in plan.node('robot_description_publisher').parameters


@pytest.mark.parametrize('name', ['sim.launch.xml', 'gazebo.launch.xml', 'replay.launch.xml'])
def test_simulation_and_replay_include_the_robot_stack_on_sim_time(name: str) -> None:
    plan = read_launch_file(launch_file(name), REQUIRED_ARGUMENTS.get(name))
    assert launch_file('robot.launch.xml') in plan.files
    assert all(('use_sim_time', 'true') in plan.node(label).parameters for label in STACK)


def test_one_robot_model_argument_reaches_every_node_that_reads_the_description() -> None:
    """The simulated robot and every node of the stack read the same model.sdf."""
    model = str(ROOT / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf')
    plan = read_launch_file(launch_file('sim.launch.xml'), {'robot_model': model})
    readers = {'sim', 'robot_description_publisher', 'perception', 'planner', 'safety_monitor',
               'health_monitor', 'operator'}
    assert {spec.label for spec in plan.nodes if ('robot_model', model) in spec.parameters} \
        == readers


def test_sim_launch_file_adds_the_simulator_on_sim_time() -> None:
    plan = read_launch_file(launch_file('sim.launch.xml'), {'world': 'street_corner'})
    assert [spec.label for spec in plan.nodes] == ['sim', *STACK]
    sim = plan.node('sim')
    assert ('world', 'street_corner') in sim.parameters
    assert all(('use_sim_time', 'true') in plan.node(label).parameters for label in STACK)


def test_fault_runs_reroute_every_faulted_link_through_the_injector(tmp_path: Path) -> None:
    faults = parse_faults([{'type': fault_type} for fault_type in FAULT_TYPES])
    arguments = launch_arguments_for(RunOptions(faults=faults, seed=4), tmp_path)
    plan = read_launch_file(launch_file('sim.launch.xml'), arguments)
    injector = plan.node('fault_injector')
    find_executable(injector.package, injector.executable)
    assert injector.params_files == (tmp_path / 'fault_injector.yaml',)
    produced = {target for spec in plan.nodes for source, target in spec.remaps
                if source != target}
    assert {target for target in produced if target.startswith('fault_injector/')} == {
        'fault_injector/in/perception/obstacle_grid', 'fault_injector/in/perception/pedestrian_grid',
        'fault_injector/in/camera/image_raw', 'fault_injector/in/scan', 'fault_injector/in/odom',
        'fault_injector/in/cmd_vel_nav'}
    healthy = read_launch_file(launch_file('sim.launch.xml'),
                               launch_arguments_for(RunOptions(), tmp_path))
    assert 'fault_injector' not in [spec.label for spec in healthy.nodes]
    assert all(source.lstrip('/') == target for spec in healthy.nodes
               for source, target in spec.remaps)


@pytest.mark.parametrize('name', ['sim.launch.xml', 'robot.launch.xml', 'gazebo.launch.xml'])
def test_a_namespace_argument_puts_every_node_into_it(name: str) -> None:
    plan = read_launch_file(launch_file(name), {'namespace': 'robot1'})
    namespaced = [spec for spec in plan.nodes
                  if spec.package == 'sidewalk_robot' or spec.executable == 'parameter_bridge']
    assert namespaced and all(spec.namespace == '/robot1' for spec in namespaced)


def node_sources() -> list[Path]:
    return sorted({path for pattern in ('*/*_node.py', 'sidewalk_robot/**/*_node.py')
                   for path in ROOT.glob(pattern)})


@pytest.mark.parametrize('path', node_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nodes_name_their_topics_and_services_relatively(path: Path) -> None:
    """A namespace moves a relative name only: absolute ones would break the chain."""
    source = path.read_text(encoding='utf-8')
    calls = re.findall(r"(?:create_publisher|create_subscription|create_service|create_client|"
                       r"subscribe_from_any_publisher)\([^'\"()]*?['\"]([^'\"]+)['\"]", source)
    assert calls, f'{path.name} names no topic'
    absolute = sorted({name for name in calls if name.startswith('/')} - GLOBAL_TOPICS)
    assert not absolute, f'{path.name} names {absolute} absolutely'


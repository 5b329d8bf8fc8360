"""The Gazebo side: bridge YAML, gazebo.launch.xml and the robot model agree with each other and
with the topic contract (docs/interfaces.md), and sim_node publishes the same topics."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from sidewalk_robot import share_directory
from sidewalk_robot.simulation.robot import load_robot_model
from sidewalk_robot.simulation.world import available_worlds

SHARE = share_directory()
BRIDGE = SHARE / 'config' / 'ros_gz_bridge.yaml'
LAUNCH = SHARE / 'launch' / 'gazebo.launch.xml'
REQUIRED_GZ_TO_ROS = {'/clock', '/camera/image_raw', '/camera/camera_info', '/scan', '/odom', '/imu'}


def bridge_entries() -> list[dict]:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries
    return entries


def interface_topics() -> dict[str, str]:
    """Topic -> message type (pkg/Type) from the topic table of docs/interfaces.md."""
    topics = {}
    for line in (SHARE / 'docs' / 'interfaces.md').read_text().splitlines():
        match = re.match(r'\|\s*(/[\w/]+)\s*\|\s*([\w]+/[\w]+)', line)
        if match:
            topics[match.group(1)] = match.group(2)
    return topics


def model_gz_topics() -> set[str]:
    robot = load_robot_model()
    return {'/' + topic.lstrip('/') for topic in (
        robot.camera.topic, robot.camera.info_topic, robot.lidar.topic, robot.imu.topic,
        robot.drive.cmd_topic, robot.drive.odom_topic)}


def test_bridge_entries_are_complete_and_well_formed() -> None:
    entries = bridge_entries()
    keys = {'ros_topic_name', 'gz_topic_name', 'ros_type_name', 'gz_type_name', 'direction'}
    for entry in entries:
        assert set(entry) == keys, entry
        assert re.fullmatch(r'\w+/msg/\w+', entry['ros_type_name']), entry
        assert entry['gz_type_name'].startswith('gz.msgs.'), entry
    directions = {entry['ros_topic_name']: entry['direction'] for entry in entries}
    assert {t for t, d in directions.items() if d == 'GZ_TO_ROS'} == REQUIRED_GZ_TO_ROS
    assert {t for t, d in directions.items() if d == 'ROS_TO_GZ'} == {'/cmd_vel'}


def test_every_bridged_gz_topic_exists_in_the_robot_model() -> None:
    provided = model_gz_topics() | {'/clock'}  # gz-sim itself publishes /clock
    for entry in bridge_entries():
        assert entry['gz_topic_name'] in provided, entry['gz_topic_name']


def test_every_bridged_ros_topic_matches_the_interface_contract() -> None:
    contract = interface_topics()
    for entry in bridge_entries():
        topic = entry['ros_topic_name']
        assert topic in contract, f'{topic} is not in docs/interfaces.md'
        package, _, name = entry['ros_type_name'].partition('/msg/')
        assert contract[topic] == f'{package}/{name}', topic


def test_sim_node_publishes_the_topics_the_bridge_would() -> None:
    from sidewalk_robot.simulation import sim_node

    robot = load_robot_model()
    headless = {sim_node._ros_topic(t) for t in (
        robot.camera.topic, robot.camera.info_topic, robot.lidar.topic, robot.imu.topic,
        robot.drive.odom_topic)} | {'/clock'}
    assert headless == REQUIRED_GZ_TO_ROS
    assert sim_node._ros_topic(robot.drive.cmd_topic) == '/cmd_vel'


def launch_root() -> ElementTree.Element:
    return ElementTree.parse(LAUNCH).getroot()


def substitute(text: str, arguments: dict[str, str]) -> str:
    text = re.sub(r'\$\(var (\w+)\)', lambda m: arguments[m.group(1)], text)
    return text.replace('$(find-pkg-share sidewalk_robot)', str(SHARE))


def test_gazebo_launch_starts_the_world_spawns_the_robot_bridges_and_includes_the_stack() -> None:
    root = launch_root()
    arguments = {arg.get('name'): arg.get('default') for arg in root.findall('arg')}
    assert arguments['world'] in available_worlds()
    assert all(arg.get('description') for arg in root.findall('arg'))
    commands = [substitute(e.get('cmd'), arguments) for e in root.findall('executable')]
    assert commands and all(c.startswith('gz sim -r') for c in commands)
    for command in commands:
        assert Path(command.split()[-1]).is_file(), command
    nodes = {(n.get('pkg'), n.get('exec')): n for n in root.findall('node')}
    spawn = nodes[('ros_gz_sim', 'create')]
    spawn_args = substitute(spawn.get('args'), arguments).split()
    model_file = Path(spawn_args[spawn_args.index('-file') + 1])
    assert model_file == SHARE / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf'
    assert spawn_args[spawn_args.index('-world') + 1] == arguments['world']
    bridge = nodes[('ros_gz_bridge', 'parameter_bridge')]
    parameters = {p.get('name'): substitute(p.get('value'), arguments) for p in bridge.findall('param')}
    assert Path(parameters['config_file']) == BRIDGE
    assert parameters['use_sim_time'] == 'true'
    include = root.find('include')
    assert substitute(include.get('file'), arguments).endswith('launch/robot.launch.xml')
    assert Path(substitute(include.get('file'), arguments)).is_file()
    assert {a.get('name'): a.get('value') for a in include.findall('arg')} == {'use_sim_time': 'true'}


@pytest.mark.parametrize('world', available_worlds())
def test_the_world_name_given_to_spawn_is_the_sdf_world_name(world: str) -> None:
    """ros_gz_sim create addresses the world by its <world name>, the launch passes the file stem."""
    root = ElementTree.parse(SHARE / 'worlds' / f'{world}.sdf').getroot()
    assert root.find('world').get('name') == world

"""The Gazebo side cannot silently diverge from the headless one: model.sdf, the bridge YAML,
the launch files, sim_node and the nodes' parameters agree on every topic, type and frame, and
with the topic contract of docs/interfaces.md."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from sidewalk_robot import share_directory
from sidewalk_robot.config import load_config
from sidewalk_robot.description import load_description
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.simulation.robot import load_robot_model
from sidewalk_robot.simulation.world import available_worlds
from sidewalk_robot.system.launch_xml import launch_file, read_launch_file

SHARE = share_directory()
BRIDGE = SHARE / 'config' / 'ros_gz_bridge.yaml'
LAUNCH = SHARE / 'launch' / 'gazebo.launch.xml'
GLOBAL_TOPICS = {'/clock'}
"""Read by every node at the root whatever its namespace; everything else is relative."""
BRIDGED_TO_ROS = {'/clock', 'camera/image_raw', 'camera/camera_info', 'scan', 'odom', 'imu', 'tf'}


def bridge_entries() -> list[dict]:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries
    return entries


def bridged(direction: str) -> dict[str, dict]:
    return {entry['ros_topic_name']: entry for entry in bridge_entries()
            if entry['direction'] == direction}


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
        robot.drive.cmd_topic, robot.drive.odom_topic, robot.drive.tf_topic)}


def test_bridge_entries_are_complete_and_well_formed() -> None:
    keys = {'ros_topic_name', 'gz_topic_name', 'ros_type_name', 'gz_type_name', 'direction'}
    for entry in bridge_entries():
        assert set(entry) == keys, entry
        assert re.fullmatch(r'\w+/msg/\w+', entry['ros_type_name']), entry
        assert entry['gz_type_name'].startswith('gz.msgs.'), entry
        topic = entry['ros_topic_name']
        assert topic in GLOBAL_TOPICS or not topic.startswith('/'), \
            f'{topic}: relative, so that the bridge namespace applies'
    assert set(bridged('GZ_TO_ROS')) == BRIDGED_TO_ROS
    assert set(bridged('ROS_TO_GZ')) == {'cmd_vel'}


def test_every_bridged_gz_topic_exists_in_the_robot_model() -> None:
    provided = model_gz_topics() | {'/clock'}  # gz-sim itself publishes /clock
    for entry in bridge_entries():
        assert entry['gz_topic_name'] in provided, entry['gz_topic_name']


def test_the_bridge_carries_the_diff_drive_transform_and_odometry_of_the_model() -> None:
    drive = load_robot_model().drive
    assert bridged('GZ_TO_ROS')['tf']['gz_topic_name'] == drive.tf_topic
    assert bridged('GZ_TO_ROS')['tf']['ros_type_name'] == 'tf2_msgs/msg/TFMessage'
    assert bridged('GZ_TO_ROS')['tf']['gz_type_name'] == 'gz.msgs.Pose_V'
    assert bridged('GZ_TO_ROS')['odom']['gz_topic_name'] == '/' + drive.odom_topic
    assert bridged('ROS_TO_GZ')['cmd_vel']['gz_topic_name'] == '/' + drive.cmd_topic


def test_every_bridged_ros_topic_matches_the_interface_contract() -> None:
    contract = interface_topics()
    for entry in bridge_entries():
        topic = '/' + entry['ros_topic_name'].lstrip('/')
        assert topic in contract, f'{topic} is not in docs/interfaces.md'
        package, _, name = entry['ros_type_name'].partition('/msg/')
        assert contract[topic] == f'{package}/{name}', topic


def test_sim_node_publishes_the_topics_the_bridge_would() -> None:
    from sidewalk_robot.simulation import sim_node

    robot = load_robot_model()
    headless = {sim_node._ros_topic(t) for t in (
        robot.camera.topic, robot.camera.info_topic, robot.lidar.topic, robot.imu.topic,
        robot.drive.odom_topic)} | {'/clock', 'tf'}
    assert headless == BRIDGED_TO_ROS
    assert sim_node._ros_topic(robot.drive.cmd_topic) in bridged('ROS_TO_GZ')


def test_sensor_frames_are_the_description_frames_the_nodes_expect() -> None:
    """Gazebo stamps data with each sensor's gz_frame_id, sim_node with the same fields; the
    nodes check frames against those their configs read from the description. All must name
    the description's frames."""
    robot, description = load_robot_model(), load_description()
    assert robot.lidar.frame_id == description.laser_frame
    assert robot.camera.frame_id == description.camera_optical_frame
    assert robot.imu.frame_id in description.frames
    assert (robot.drive.odom_frame, robot.drive.base_frame) == (description.odom_frame,
                                                                 description.footprint_frame)
    safety = load_config(SafetyConfig, SHARE / 'config' / 'safety_monitor.yaml')
    planner = load_config(PlannerConfig, SHARE / 'config' / 'planner.yaml')
    assert safety.scan_frame == planner.scan_frame == description.laser_frame
    assert planner.odom_frame == description.odom_frame


def test_gazebo_model_without_a_frame_id_is_refused(tmp_path: Path) -> None:
    """Without gz_frame_id Gazebo stamps scans 'delivery_robot::base_link::bumper_lidar', which
    the safety monitor rejects: the robot would stand in STOP. The reader refuses such a model."""
    model = (SHARE / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf').read_text()
    broken = tmp_path / 'model.sdf'
    broken.write_text(model.replace('<gz_frame_id>laser_link</gz_frame_id>', ''))
    with pytest.raises(ValueError, match='gz_frame_id'):
        load_robot_model(broken)


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
    assert spawn_args[spawn_args.index('-name') + 1] == load_robot_model().name
    bridge = nodes[('ros_gz_bridge', 'parameter_bridge')]
    assert bridge.get('namespace') == '$(var namespace)'
    parameters = {p.get('name'): substitute(p.get('value'), arguments) for p in bridge.findall('param')}
    assert Path(parameters['config_file']) == BRIDGE
    assert parameters['use_sim_time'] == 'true'
    include = root.find('include')
    assert substitute(include.get('file'), arguments).endswith('launch/robot.launch.xml')
    assert Path(substitute(include.get('file'), arguments)).is_file()
    # The bridge carries the DiffDrive's odom -> base_footprint: the stack must not add its own.
    assert {a.get('name'): a.get('value') for a in include.findall('arg')} == {
        'namespace': '$(var namespace)', 'use_sim_time': 'true', 'publish_odom_tf': 'false'}


def test_exactly_one_source_of_odom_tf_on_each_path() -> None:
    """Gazebo: the bridged DiffDrive transform; headless: sim_node; robot: the description node
    from odometry. Two would fight over base_footprint's parent, none leaves the tree broken."""
    def odom_tf_from_description_node(plan) -> bool:
        node = plan.node('robot_description_publisher')
        return dict(node.parameters)['publish_odom_tf'] == 'true'

    robot = read_launch_file(launch_file('robot.launch.xml'))
    sim = read_launch_file(launch_file('sim.launch.xml'))
    gazebo = read_launch_file(LAUNCH)
    assert odom_tf_from_description_node(robot)
    assert not odom_tf_from_description_node(sim)
    assert not odom_tf_from_description_node(gazebo)
    assert 'tf' in bridged('GZ_TO_ROS')


@pytest.mark.parametrize('world', available_worlds())
def test_the_world_name_given_to_spawn_is_the_sdf_world_name(world: str) -> None:
    """ros_gz_sim create addresses the world by its <world name>, the launch passes the file stem."""
    root = ElementTree.parse(SHARE / 'worlds' / f'{world}.sdf').getroot()
    assert root.find('world').get('name') == world

"""sim_node over real DDS: topics, types, frames and rates; /cmd_vel driving, the stale-command
stop, a reported collision and rejected bad commands."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from sidewalk_robot.ros_common import COMMAND_QOS, SENSOR_QOS, image_to_array, stamp_to_seconds
from sidewalk_robot.simulation.semantics import SemanticClass

SENSOR_TOPICS = {
    '/camera/image_raw': (Image, 10.0), '/camera/camera_info': (CameraInfo, 10.0),
    '/scan': (LaserScan, 10.0), '/odom': (Odometry, 50.0), '/imu': (Imu, 50.0),
}
GROUND_TRUTH = {'/sim/ground_truth/robot_pose': PoseStamped,
                '/sim/ground_truth/obstacles': MarkerArray}


def test_publishes_every_bridged_topic_with_its_type_frame_and_rate(ros_process, make_node,
                                                                     spin_until) -> None:
    # use_sim_time must not stall the node that makes the sim time.
    process = ros_process('sim_node', config='sim', parameters={'real_time_factor': 2.0,
                                                                'use_sim_time': True})
    node = make_node('sim_topics_probe')
    received: dict[str, list] = defaultdict(list)
    for topic, (message_type, _) in SENSOR_TOPICS.items():
        node.create_subscription(message_type, topic,
                                 lambda m, t=topic: received[t].append(m), SENSOR_QOS)
    for topic, message_type in GROUND_TRUTH.items():
        node.create_subscription(message_type, topic, lambda m, t=topic: received[t].append(m), 10)
    node.create_subscription(Clock, '/clock', lambda m: received['/clock'].append(m), 10)
    node.create_subscription(TFMessage, '/tf', lambda m: received['/tf'].append(m), 100)
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: received['/diagnostics'].append(m), 10)
    assert spin_until(node, lambda: len(received['/camera/image_raw']) >= 25
                      and received['/diagnostics'], timeout=40), (dict(received), process.output())
    assert process.alive()

    for topic, (_, rate) in SENSOR_TOPICS.items():
        stamps = [stamp_to_seconds(m.header.stamp) for m in received[topic]]
        assert len(stamps) >= 10, topic
        assert np.median(np.diff(stamps)) == pytest.approx(1.0 / rate, rel=1e-3), topic
    clock = [stamp_to_seconds(m.clock) for m in received['/clock']]
    assert np.all(np.diff(clock) > 0) and np.median(np.diff(clock)) == pytest.approx(0.02)

    image = received['/camera/image_raw'][-1]
    assert (image.encoding, image.width, image.height) == ('rgb8', 320, 240)
    assert image.header.frame_id == 'camera_optical_frame'
    pixels = image_to_array(image)
    assert pixels.shape == (240, 320, 3) and pixels.std() > 10  # a scene, not a blank frame
    info = received['/camera/camera_info'][-1]
    assert list(info.k) == pytest.approx([160.0, 0.0, 160.0, 0.0, 160.0, 120.0, 0.0, 0.0, 1.0])
    assert info.header.frame_id == 'camera_optical_frame'
    scan = received['/scan'][-1]
    assert scan.header.frame_id == 'laser_link' and len(scan.ranges) == 360
    assert scan.angle_min == pytest.approx(-math.pi)
    assert scan.angle_increment == pytest.approx(2 * math.pi / 360, rel=1e-6)
    assert (scan.range_min, scan.range_max) == pytest.approx((0.1, 10.0))
    # odom -> base_footprint on tf, as Gazebo's DiffDrive publishes it: one per odometry message
    transforms = {stamp_to_seconds(t.header.stamp): t for m in received['/tf'] for t in m.transforms}
    # The newest odometry whose transform is here too: the spin may stop between the two.
    odometry = next(m for m in reversed(received['/odom'])
                    if stamp_to_seconds(m.header.stamp) in transforms)
    assert (odometry.header.frame_id, odometry.child_frame_id) == ('odom', 'base_footprint')
    assert odometry.pose.pose.position.x == pytest.approx(0.0)  # odom starts at the spawn pose
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms.values()} == {
        ('odom', 'base_footprint')}
    matched = transforms[stamp_to_seconds(odometry.header.stamp)]
    assert matched.transform.translation.x == odometry.pose.pose.position.x
    assert matched.transform.rotation == odometry.pose.pose.orientation
    assert received['/imu'][-1].linear_acceleration.z == pytest.approx(9.80665)
    pose = received['/sim/ground_truth/robot_pose'][-1]
    assert pose.header.frame_id == 'world'
    markers = received['/sim/ground_truth/obstacles'][-1].markers
    assert markers and {m.ns for m in markers} <= {c.label for c in SemanticClass}
    assert all(m.header.frame_id == 'world' and m.scale.x > 0 for m in markers)
    status = received['/diagnostics'][-1].status[0]
    assert status.name == 'sim' and 'sim_time' in {kv.key for kv in status.values}


def test_cmd_vel_drives_a_stale_command_stops_and_a_collision_is_reported(
        ros_process, make_node, spin_until, tmp_path: Path) -> None:
    scenario = tmp_path / 'crate_ahead.yaml'
    scenario.write_text('name: crate_ahead\nworld: sidewalk_straight\nobstacles:\n'
                        '  - {name: crate, shape: box, size: [0.5, 2.0, 1.0], x: 2.0, y: 0.0}\n')
    # Real time, so that the 0.25 s command timeout is not shorter than this test's own
    # publishing hiccups on a busy machine.
    process = ros_process('sim_node', config='sim', parameters={
        'real_time_factor': 1.0, 'scenario_file': str(scenario)})
    node = make_node('sim_driver')
    publisher = node.create_publisher(TwistStamped, '/cmd_vel', COMMAND_QOS)
    state: dict[str, object] = {'pose': None, 'speed': None, 'contacts': [], 'diagnostics': []}

    def on_pose(message: PoseStamped) -> None:
        state['pose'] = (stamp_to_seconds(message.header.stamp), message.pose.position.x)

    node.create_subscription(PoseStamped, '/sim/ground_truth/robot_pose', on_pose, 10)
    node.create_subscription(Odometry, '/odom',
                             lambda m: state.update(speed=m.twist.twist.linear.x), SENSOR_QOS)
    node.create_subscription(String, '/sim/ground_truth/contacts',
                             lambda m: state['contacts'].append(json.loads(m.data)), 100)
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: state['diagnostics'].append(m.status[0]), 10)
    command = {'linear': 0.5, 'angular': 0.0, 'sending': True, 'frame': 'base_link'}

    def send() -> None:
        if command['sending']:
            message = TwistStamped()
            message.header.frame_id = command['frame']
            message.twist.linear.x = command['linear']
            message.twist.angular.z = command['angular']
            publisher.publish(message)

    node.create_timer(0.02, send)
    assert spin_until(node, lambda: state['pose'] is not None and state['pose'][1] > 0.5
                      and abs(state['speed'] - 0.5) < 1e-6, timeout=30), process.output()

    command['sending'] = False  # the last command goes stale after 0.25 s of sim time
    assert spin_until(node, lambda: state['speed'] == 0.0, timeout=10), process.output()
    spin_until(node, lambda: False, timeout=0.3)  # ground truth comes at 10 Hz, odometry at 50
    stopped_at = state['pose'][1]
    spin_until(node, lambda: False, timeout=1.0)
    assert state['pose'][1] == pytest.approx(stopped_at, abs=1e-6)
    assert not state['contacts']

    command.update(linear=float('nan'), sending=True)  # rejected: the wheels stay stopped
    assert spin_until(node, lambda: any('non-finite' in s.message for s in state['diagnostics']),
                      timeout=10), process.output()
    assert state['pose'][1] == pytest.approx(stopped_at, abs=1e-6)
    command.update(linear=1.0, frame='odom')  # a twist in another frame is not a wheel command
    assert spin_until(node, lambda: any("frame 'odom'" in s.message for s in state['diagnostics']),
                      timeout=10), process.output()
    assert state['pose'][1] == pytest.approx(stopped_at, abs=1e-6)

    command.update(frame='base_link')
    assert spin_until(node, lambda: state['contacts'], timeout=30), process.output()
    contact = state['contacts'][0]
    assert contact['bodies'] == ['crate'] and contact['time'] > 0
    assert state['pose'][1] + 0.35 <= 1.75 + 1e-3  # blocked at the crate face
    assert process.alive()


def test_a_missing_world_is_a_clear_start_up_error(ros_process) -> None:
    process = ros_process('sim_node', config='sim', parameters={'world': 'no_such_world'})
    assert process.popen.wait(timeout=30) == 2
    assert "unknown world 'no_such_world'" in process.output()


def test_in_a_namespace_every_topic_moves_but_the_clock(ros_process, make_node,
                                                       spin_until) -> None:
    process = ros_process('sim_node', config='sim', parameters={'real_time_factor': 2.0,
                                                                'camera_enabled': False},
                          remaps={'__ns': '/robot1'})
    node = make_node('sim_namespace_probe')
    received: dict[str, int] = defaultdict(int)

    def count(topic: str):
        return lambda _message: received.__setitem__(topic, received[topic] + 1)

    node.create_subscription(LaserScan, '/robot1/scan', count('scan'), SENSOR_QOS)
    node.create_subscription(TFMessage, '/robot1/tf', count('tf'), 100)
    node.create_subscription(PoseStamped, '/robot1/sim/ground_truth/robot_pose',
                             count('ground_truth'), 10)
    node.create_subscription(Clock, '/clock', count('clock'), 10)
    node.create_subscription(LaserScan, '/scan', count('root_scan'), SENSOR_QOS)
    assert spin_until(node, lambda: all(received[t] for t in ('scan', 'tf', 'ground_truth',
                                                               'clock')), timeout=40), \
        (dict(received), process.output())
    assert received['root_scan'] == 0
    command_topics = {topic for topic, _ in node.get_topic_names_and_types()
                      if topic.endswith('cmd_vel')}
    assert command_topics == {'/robot1/cmd_vel'}

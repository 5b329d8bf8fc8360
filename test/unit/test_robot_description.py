"""The robot description: one frame tree from model.sdf (REP 105 heights), its URDF, and the
mount parameters other nodes still keep as copies cross-checked against it, so they cannot
drift apart."""
from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot import share_directory
from sidewalk_robot.config import load_config, read_parameter_file
from sidewalk_robot.description import (DescriptionConfig, description_from_model,
                                        load_description)
from sidewalk_robot.replay.criteria import ReplayCriteria, load_criteria
from sidewalk_robot.simulation.robot import load_robot_model
from sidewalk_robot.simulation.sdf import Pose3

SHARE = share_directory()
CONFIG = SHARE / 'config'
MOUNT_TOLERANCE = 1e-9


@pytest.fixture(scope='module')
def description():
    return load_description()


def close(pose: Pose3, expected: Pose3) -> bool:
    return np.allclose(pose.matrix(), expected.matrix(), atol=MOUNT_TOLERANCE)


def test_the_frame_tree_follows_rep_105(description) -> None:
    assert description.odom_frame == 'odom'
    assert [(m.parent, m.child) for m in description.mounts] == [
        ('base_footprint', 'base_link'), ('base_link', 'laser_link'),
        ('base_link', 'camera_link'), ('camera_link', 'camera_optical_frame')]
    base = description.pose_in('base_footprint', 'base_link')
    assert close(base, Pose3(z=0.1)), 'base_link sits above its ground projection, at the axles'
    assert description.imu_frame == 'base_link'


def test_sensor_mounts_keep_their_places_above_the_ground(description) -> None:
    assert close(description.pose_in('base_footprint', 'laser_link'), Pose3(0.30, 0.0, 0.25))
    assert close(description.pose_in('base_footprint', 'camera_link'),
                 Pose3(0.30, 0.0, 0.50, pitch=0.35))
    assert close(description.pose_in('base_link', 'laser_link'), Pose3(0.30, 0.0, 0.15))


def test_the_optical_frame_looks_along_the_camera_with_x_right_and_y_down(description) -> None:
    rotation = description.pose_in('camera_link', 'camera_optical_frame').matrix()[:3, :3]
    optical_x, optical_y, optical_z = rotation.T
    assert np.allclose(optical_z, [1, 0, 0]) and np.allclose(optical_x, [0, -1, 0])
    assert np.allclose(optical_y, [0, 0, -1])
    # REP 103 pitch down: the optical axis meets the ground in front of the robot.
    axis = description.pose_in('base_footprint', 'camera_optical_frame').matrix()[:3, 2]
    assert axis[0] > 0 and axis[2] == pytest.approx(-math.sin(0.35))


def test_the_footprint_is_the_body_outline_centred_on_base_footprint(description) -> None:
    assert description.footprint_min == pytest.approx((-0.35, -0.275), abs=1e-6)
    assert description.footprint_max == pytest.approx((0.35, 0.275), abs=1e-6)


def test_poses_between_any_two_frames_compose(description) -> None:
    laser_in_camera = description.pose_in('camera_link', 'laser_link')
    camera = description.pose_in('base_footprint', 'camera_link')
    assert close(camera.compose(laser_in_camera), description.pose_in('base_footprint',
                                                                      'laser_link'))
    with pytest.raises(KeyError, match='wheel'):
        description.pose_in('base_link', 'wheel')


def test_the_urdf_has_one_link_per_frame_and_fixed_joints_at_the_mounts(description) -> None:
    robot = ElementTree.fromstring(description.urdf())
    assert robot.tag == 'robot' and robot.get('name') == 'delivery_robot'
    assert [link.get('name') for link in robot.findall('link')] == list(description.frames)
    joints = robot.findall('joint')
    assert len(joints) == len(description.mounts)
    for joint, mount in zip(joints, description.mounts):
        assert joint.get('type') == 'fixed'
        assert (joint.find('parent').get('link'), joint.find('child').get('link')) == (
            mount.parent, mount.child)
        origin = joint.find('origin')
        xyz = [float(v) for v in origin.get('xyz').split()]
        rpy = [float(v) for v in origin.get('rpy').split()]
        assert close(Pose3(*xyz, *rpy), mount.pose)
    body = robot.find("link[@name='base_link']")
    visuals = body.findall('visual')
    assert len(visuals) == len(load_robot_model().visuals) == 11  # body, lid, sensors, 6 wheels
    for visual in visuals:
        assert visual.find('geometry')[0].tag in ('box', 'cylinder', 'sphere')
        assert len(visual.find('material/color').get('rgba').split()) == 4
    wheel = next(v for v in visuals if v.get('name') == 'wheel_front_left/visual')
    assert [float(v) for v in wheel.find('origin').get('xyz').split()] == pytest.approx(
        [0.25, 0.245, 0.0])  # axle height: wheels centred on base_link


def test_odometry_becomes_tf_only_between_odom_and_base_footprint(description) -> None:
    assert description.odometry_problem('odom', 'base_footprint') is None
    assert 'base_footprint' in description.odometry_problem('odom', 'base_link')
    assert description.odometry_problem('map', 'base_footprint')


def test_an_imu_away_from_its_frame_is_refused(tmp_path: Path) -> None:
    model = (SHARE / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf').read_text()
    moved = tmp_path / 'model.sdf'
    moved.write_text(model.replace('<sensor name="imu" type="imu">',
                                   '<sensor name="imu" type="imu">\n<pose>0 0 0.2 0 0 0</pose>'))
    with pytest.raises(ValueError, match='imu must sit at the origin'):
        description_from_model(load_robot_model(moved))


def test_the_parameter_file_sets_the_description_config() -> None:
    parameters = read_parameter_file(CONFIG / 'robot_description.yaml')
    assert set(parameters) == {field.name for field in dataclasses.fields(DescriptionConfig)}
    assert load_config(DescriptionConfig, CONFIG / 'robot_description.yaml') == DescriptionConfig()


# ---- copies of the mounts in other nodes' parameters: must equal the description -------------
# The 2D consumers work in base_footprint's plane (heights above the ground).

def test_perception_camera_extrinsics_are_the_description_mount(description) -> None:
    parameters = read_parameter_file(CONFIG / 'perception.yaml')
    mount = Pose3(*(parameters[f'camera_{axis}'] for axis in
                    ('x', 'y', 'z', 'roll', 'pitch', 'yaw')))
    assert close(mount, description.pose_in('base_footprint', description.camera_frame))


def test_safety_monitor_laser_offsets_are_the_description_mount(description) -> None:
    parameters = read_parameter_file(CONFIG / 'safety_monitor.yaml')
    laser = description.pose_in('base_footprint', description.laser_frame)
    assert laser.y == pytest.approx(0.0), 'the safety monitor has no lateral laser offset'
    assert (parameters['laser_x_offset'], parameters['laser_yaw_offset']) == pytest.approx(
        (laser.x, laser.yaw), abs=MOUNT_TOLERANCE)
    assert parameters['scan_frame'] == description.laser_frame


def test_planner_laser_offsets_are_the_description_mount(description) -> None:
    parameters = read_parameter_file(CONFIG / 'planner.yaml')
    laser = description.pose_in('base_footprint', description.laser_frame)
    assert (parameters['laser_x_offset'], parameters['laser_y_offset'],
            parameters['laser_yaw_offset']) == pytest.approx((laser.x, laser.y, laser.yaw),
                                                             abs=MOUNT_TOLERANCE)
    assert parameters['scan_frame'] == description.laser_frame


@pytest.mark.parametrize('node', ['planner', 'safety_monitor'])
def test_footprints_are_the_description_body(description, node: str) -> None:
    parameters = read_parameter_file(CONFIG / f'{node}.yaml')
    length = description.footprint_max[0] - description.footprint_min[0]
    width = description.footprint_max[1] - description.footprint_min[1]
    assert (parameters['footprint_length'], parameters['footprint_width']) == pytest.approx(
        (length, width), abs=1e-6)
    centre = np.add(description.footprint_min, description.footprint_max) / 2
    assert centre == pytest.approx((0.0, 0.0), abs=1e-6), 'the nodes centre it on the origin'


def test_grids_are_in_a_frame_of_the_ground_plane(description) -> None:
    """Perception projects onto the ground below the camera: its grid frame must share x, y and
    heading with base_footprint, and the planner must expect the same frame."""
    grid_frame = read_parameter_file(CONFIG / 'perception.yaml')['frame_id']
    assert read_parameter_file(CONFIG / 'planner.yaml')['robot_frame'] == grid_frame
    offset = description.pose_in('base_footprint', grid_frame)
    assert (offset.x, offset.y, offset.roll, offset.pitch, offset.yaw) == pytest.approx(
        (0.0,) * 5, abs=MOUNT_TOLERANCE)


@pytest.mark.parametrize('criteria', [ReplayCriteria(), 'test/data/replay_criteria.yaml'],
                         ids=['defaults', 'test_data'])
def test_replay_criteria_geometry_is_the_description(description, criteria) -> None:
    if isinstance(criteria, str):
        criteria = load_criteria(SHARE / criteria)
    laser = description.pose_in('base_footprint', description.laser_frame)
    camera = description.pose_in('base_footprint', description.camera_frame)
    assert (criteria.laser_x_m, criteria.laser_y_m, criteria.laser_z_m,
            criteria.laser_yaw_rad) == pytest.approx((laser.x, laser.y, laser.z, laser.yaw))
    assert (criteria.camera_x_m, criteria.camera_y_m, criteria.camera_z_m,
            criteria.camera_pitch_rad) == pytest.approx((camera.x, camera.y, camera.z,
                                                          camera.pitch))
    assert (criteria.footprint_length_m, criteria.footprint_width_m) == pytest.approx(
        (description.footprint_max[0] - description.footprint_min[0],
         description.footprint_max[1] - description.footprint_min[1]))

"""The robot description: one frame tree from model.sdf (REP 105 heights), its URDF, and the
nodes' frames, sensor mounts and footprint, which they read from it (robot_model)."""
from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot import share_directory
from sidewalk_robot.config import (ParameterValueError, config_from_dict, load_config,
                                   parameter_names, read_parameter_file, robot_field_names,
                                   with_robot_description)
from sidewalk_robot.description import (DescriptionConfig, description_from_model,
                                        load_description)
from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.operations.config import OperatorConfig
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.replay.criteria import ReplayCriteria, load_criteria
from sidewalk_robot.safety_monitor.config import SafetyConfig
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
    # robot_model is robot.launch.xml's argument, which every node gets
    assert set(parameters) == set(parameter_names(DescriptionConfig)) - {'robot_model'}
    assert load_config(DescriptionConfig, CONFIG / 'robot_description.yaml') == DescriptionConfig()


# ---- the nodes read frames, mounts and footprint from the description ----------------------
# The 2D consumers take a mount as x, y, angles in base_link and the height above the ground.

NODE_CONFIGS = {'perception': PerceptionConfig, 'planner': PlannerConfig,
                'safety_monitor': SafetyConfig, 'health_monitor': HealthMonitorConfig,
                'operator': OperatorConfig}
CAMERA_MOVED = Pose3(0.20, 0.05, 0.60, 0.0, 0.45, 0.1)
"""camera_link of ``moved_robot`` in base_footprint (its pose in base_link is 0.1 m lower)."""
LASER_MOVED = Pose3(0.35, 0.0, 0.20, 0.0, 0.0, 0.2)


@pytest.fixture(scope='module')
def moved_robot(tmp_path_factory) -> Path:
    """The delivery robot with the camera and the lidar moved, the lidar frame renamed."""
    model = (SHARE / 'worlds' / 'models' / 'delivery_robot' / 'model.sdf').read_text()
    for old, new in (('<pose>0.30 0 0.40 0 0.35 0</pose>',
                      '<pose>0.20 0.05 0.50 0 0.45 0.1</pose>'),
                     ('<pose>0.30 0 0.15 0 0 0</pose>', '<pose>0.35 0 0.10 0 0 0.2</pose>'),
                     ('<gz_frame_id>laser_link</gz_frame_id>',
                      '<gz_frame_id>front_lidar</gz_frame_id>')):
        assert model.count(old) == 1, old
        model = model.replace(old, new)
    path = tmp_path_factory.mktemp('moved_robot') / 'model.sdf'
    path.write_text(model)
    return path


def robot_config(config_type: type, robot: Path):
    """The config as a node started with robot_model:=<robot> has it (declare_config and
    load_config apply the description the same way)."""
    return with_robot_description(config_type(robot_model=str(robot)))


def test_perception_and_the_console_take_the_camera_mount_and_frame_of_the_description(
        moved_robot: Path) -> None:
    for config_type in (PerceptionConfig, OperatorConfig):
        config = robot_config(config_type, moved_robot)
        assert close(Pose3(*dataclasses.astuple(config.extrinsics())), CAMERA_MOVED), \
            config_type.__name__
    assert robot_config(PerceptionConfig, moved_robot).frame_id == 'base_link'
    assert robot_config(OperatorConfig, moved_robot).robot_frame == 'base_link'


def test_planner_safety_and_health_take_the_laser_mount_and_scan_frame_of_the_description(
        moved_robot: Path) -> None:
    laser = (pytest.approx(LASER_MOVED.x), pytest.approx(LASER_MOVED.yaw), 'front_lidar')
    planner = robot_config(PlannerConfig, moved_robot)
    assert (planner.laser_x_offset, planner.laser_yaw_offset, planner.scan_frame) == laser
    assert planner.laser_y_offset == pytest.approx(0.0)
    safety = robot_config(SafetyConfig, moved_robot)
    assert (safety.laser_x_offset, safety.laser_yaw_offset, safety.scan_frame) == laser
    health = robot_config(HealthMonitorConfig, moved_robot)
    assert (health.laser_x_offset, health.laser_yaw_offset, health.scan_frame) == laser
    assert health.camera_x == pytest.approx(CAMERA_MOVED.x)


def test_replay_criteria_take_the_geometry_of_the_robot_their_file_names(
        tmp_path: Path, moved_robot: Path) -> None:
    criteria_file = tmp_path / 'replay_criteria.yaml'
    criteria_file.write_text(f'robot_model: {moved_robot}\nmin_recall: 0.6\n')
    criteria = load_criteria(criteria_file)
    assert criteria.min_recall == 0.6
    assert (criteria.laser_x_m, criteria.laser_z_m, criteria.laser_yaw_rad, criteria.camera_x_m,
            criteria.camera_y_m, criteria.camera_z_m, criteria.camera_pitch_rad) == pytest.approx(
        (LASER_MOVED.x, LASER_MOVED.z, LASER_MOVED.yaw, CAMERA_MOVED.x, CAMERA_MOVED.y,
         CAMERA_MOVED.z, CAMERA_MOVED.pitch))
    shipped = load_criteria(SHARE / 'test' / 'data' / 'replay_criteria.yaml')
    assert (shipped.laser_z_m, shipped.camera_z_m) == pytest.approx((0.25, 0.50))
    criteria_file.write_text('camera_z_m: 0.5\n')
    with pytest.raises(ValueError, match='camera_z_m of ReplayCriteria is read from the robot'):
        load_criteria(criteria_file)


@pytest.mark.parametrize('config_type', [*NODE_CONFIGS.values(), ReplayCriteria],
                         ids=[*NODE_CONFIGS, 'replay_criteria'])
def test_the_defaults_cores_are_tested_with_are_the_delivery_robot(config_type: type) -> None:
    """Cores built without a description (unit tests) get the shipped robot's geometry."""
    assert with_robot_description(config_type()) == config_type()


@pytest.mark.parametrize('node', NODE_CONFIGS)
def test_a_parameter_file_cannot_set_what_the_description_says(node: str) -> None:
    config_type = NODE_CONFIGS[node]
    assert robot_field_names(config_type), f'{node} reads nothing from the description'
    shipped = read_parameter_file(CONFIG / f'{node}.yaml')
    assert not set(shipped) & robot_field_names(config_type)
    name = sorted(robot_field_names(config_type))[0]
    with pytest.raises(ValueError, match=f'{name} of {config_type.__name__} is read from the '
                                         'robot description'):
        config_from_dict(config_type, {name: getattr(config_type(), name)},
                         ignore_unknown=True)


def test_every_2d_consumer_uses_the_description_base_link_as_the_robot_frame(
        description) -> None:
    """Grids and commands are 2D and share one frame: the grids perception publishes are the
    ones the planner, the health monitor and the console accept, and the frame the planner and
    the safety monitor stamp commands with. base_link lies directly above base_footprint, so
    the projection onto the ground (heights above it) is in the same x, y."""
    frames = {load_config(PerceptionConfig, CONFIG / 'perception.yaml').frame_id,
              *(load_config(config_type, CONFIG / f'{node}.yaml').robot_frame
                for node, config_type in NODE_CONFIGS.items() if config_type != PerceptionConfig)}
    assert frames == {description.base_frame}
    base = description.pose_in(description.footprint_frame, description.base_frame)
    assert (base.x, base.y, base.roll, base.pitch, base.yaw) == pytest.approx((0.0,) * 5)


def test_a_robot_the_nodes_cannot_use_is_a_robot_model_error(tmp_path: Path,
                                                               moved_robot: Path) -> None:
    with pytest.raises(ParameterValueError) as missing:
        with_robot_description(PlannerConfig(robot_model=str(tmp_path / 'absent.sdf')))
    assert missing.value.parameter == 'robot_model'
    sideways = tmp_path / 'sideways' / 'model.sdf'
    sideways.parent.mkdir()
    sideways.write_text(moved_robot.read_text().replace('<pose>0.35 0 0.10 0 0 0.2</pose>',
                                                        '<pose>0.35 0.1 0.10 0 0 0.2</pose>'))
    assert with_robot_description(PlannerConfig(robot_model=str(sideways))).laser_y_offset == \
        pytest.approx(0.1)
    with pytest.raises(ParameterValueError, match='x axis') as off_axis:
        with_robot_description(SafetyConfig(robot_model=str(sideways)))
    assert off_axis.value.parameter == 'robot_model'

"""The robot description: frames, sensor mounts and a URDF, read from the robot's model.sdf.

Where the sensors sit is written once, in worlds/models/<robot>/model.sdf: the file Gazebo
spawns and the headless simulator loads. Everything else reads it from here: the static
transforms on /tf_static, the URDF on /robot_description (RViz's RobotModel display), the
simulator's frame names, and the nodes' frames, sensor mounts and footprint (the config fields
made with ``sidewalk_robot.config.robot_field``, set from the description their ``robot_model``
parameter names).

The frame tree (REP 105; docs/interfaces.md)::

    odom -> base_footprint -> base_link -> laser_link
                                        -> camera_link -> camera_optical_frame

``odom -> base_footprint`` is the odometry (dynamic, /tf); the rest is fixed (/tf_static).
base_footprint is the model frame: the centre of the footprint on the ground. base_link is the
body link, directly above it, and the frame of the stack's 2D messages (grids, velocity
commands; the footprint is centred on it): the two share x, y and heading, so a 2D quantity
means the same in either. The nodes take a sensor's ``mount``: its pose in base_link's x, y and
angles with its height above the ground.
No rclpy here: the nodes turn these into messages.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sidewalk_robot.config import describe, robot_model_parameter
from sidewalk_robot.simulation.robot import DEFAULT_ROBOT, RobotModel, VisualSpec, load_robot_model
from sidewalk_robot.simulation.sdf import Pose3

_SAME_PLANE_TOLERANCE = 1e-6
"""[m, rad]: offsets this small are rounding in the model file."""

OPTICAL_IN_MOUNT = Pose3(roll=-math.pi / 2, pitch=0.0, yaw=-math.pi / 2)
"""A camera's optical frame (z forward, x right, y down; REP 103) in its x-forward mount frame."""


@dataclass(frozen=True)
class DescriptionConfig:
    """Parameters of robot_description_node (config/robot_description.yaml)."""
    robot_model: str = robot_model_parameter()
    publish_odom_tf: bool = describe(True, 'publish odom -> base_footprint on tf from the odom '
                                           'topic (a robot whose base driver does not); false '
                                           'where the simulator or the Gazebo bridge publishes it')


@dataclass(frozen=True)
class Mount:
    """A fixed transform: ``child``'s pose in ``parent``."""
    parent: str
    child: str
    pose: Pose3


@dataclass(frozen=True)
class RobotDescription:
    name: str
    odom_frame: str
    footprint_frame: str
    """The model frame on the ground: the odometry child frame and the frame of 2D quantities."""
    base_frame: str
    laser_frame: str
    camera_frame: str
    """The camera's mount frame (x forward)."""
    camera_optical_frame: str
    imu_frame: str
    mounts: tuple[Mount, ...]
    """Every fixed transform, parents before children, rooted at ``footprint_frame``."""
    visuals: tuple[VisualSpec, ...]
    """The body's visuals for the URDF, posed in base_link."""
    footprint_min: tuple[float, float]
    footprint_max: tuple[float, float]
    """x, y corners of the body's outline in ``footprint_frame`` [m]."""

    @property
    def frames(self) -> tuple[str, ...]:
        return (self.footprint_frame, *(mount.child for mount in self.mounts))

    def pose_in(self, parent: str, child: str) -> Pose3:
        """``child``'s pose expressed in ``parent`` (any two frames of the fixed tree)."""
        return Pose3.from_matrix(np.linalg.inv(self._in_footprint(parent))
                                 @ self._in_footprint(child))

    def _in_footprint(self, frame: str) -> np.ndarray:
        parents = {mount.child: mount for mount in self.mounts}
        transform = np.eye(4)
        while frame != self.footprint_frame:
            if frame not in parents:
                raise KeyError(f'frame {frame!r} is not in the robot description '
                               f'(frames: {", ".join(self.frames)})')
            mount = parents[frame]
            transform = mount.pose.matrix() @ transform
            frame = mount.parent
        return transform

    def mount(self, frame: str) -> Pose3:
        """``frame``'s pose as the 2D consumers take it: x, y and angles in base_link, z the
        height above the ground (its pose in base_footprint). ValueError where base_link is
        not directly above base_footprint, as the stack's 2D frame must be."""
        base = self.pose_in(self.footprint_frame, self.base_frame)
        if not np.allclose(base.matrix()[:2], np.eye(4)[:2], atol=_SAME_PLANE_TOLERANCE):
            raise ValueError(f'{self.name}: {self.base_frame!r} must be directly above '
                             f'{self.footprint_frame!r} (same x, y and heading, level), '
                             f'got {base}')
        return self.pose_in(self.footprint_frame, frame)

    @property
    def footprint_size(self) -> tuple[float, float]:
        """Length (x) and width (y) of the footprint to the micrometre (the outline's corners
        carry the rounding of the wheels' rotations) [m]; ValueError unless it is centred on
        base_link, where the nodes put it."""
        centre = np.add(self.footprint_min, self.footprint_max) / 2
        if not np.allclose(centre, 0.0, atol=_SAME_PLANE_TOLERANCE):
            raise ValueError(f'{self.name}: the body outline must be centred on '
                             f'{self.base_frame!r}, its centre is at x, y = {tuple(centre)}')
        return (round(self.footprint_max[0] - self.footprint_min[0], 6),
                round(self.footprint_max[1] - self.footprint_min[1], 6))

    def odometry_problem(self, frame_id: str, child_frame_id: str) -> str | None:
        """Why odometry with these frames cannot become odom -> footprint on tf, or None."""
        if (frame_id, child_frame_id) == (self.odom_frame, self.footprint_frame):
            return None
        return (f'odometry is {frame_id!r} -> {child_frame_id!r}, expected '
                f'{self.odom_frame!r} -> {self.footprint_frame!r}: not published on tf')

    def urdf(self) -> str:
        """The description as URDF: one link per frame, the body's visuals on base_link."""
        robot = ElementTree.Element('robot', name=self.name)
        ElementTree.SubElement(robot, 'link', name=self.footprint_frame)
        for mount in self.mounts:
            link = ElementTree.SubElement(robot, 'link', name=mount.child)
            if mount.child == self.base_frame:
                for index, visual in enumerate(self.visuals):
                    _urdf_visual(link, visual, f'{self.name}_{index}')
            joint = ElementTree.SubElement(robot, 'joint', name=f'{mount.child}_joint',
                                           type='fixed')
            ElementTree.SubElement(joint, 'parent', link=mount.parent)
            ElementTree.SubElement(joint, 'child', link=mount.child)
            ElementTree.SubElement(joint, 'origin', **_urdf_origin(mount.pose))
        ElementTree.indent(robot)
        return '<?xml version="1.0"?>\n' + ElementTree.tostring(robot, encoding='unicode') + '\n'


def description_from_model(model: RobotModel) -> RobotDescription:
    """The frame tree of a loaded robot model (see the module docstring)."""
    footprint, base = model.drive.base_frame, model.base_link
    camera = model.camera
    base_in_footprint = model.base_link_pose
    footprint_to_base = np.linalg.inv(base_in_footprint.matrix())

    def in_base(pose: Pose3) -> Pose3:
        return Pose3.from_matrix(footprint_to_base @ pose.matrix())

    mounts = [Mount(footprint, base, base_in_footprint),
              Mount(base, model.lidar.frame_id, in_base(model.lidar.pose)),
              Mount(base, camera.mount_frame, in_base(camera.pose)),
              Mount(camera.mount_frame, camera.frame_id, OPTICAL_IN_MOUNT)]
    frames = [footprint, *(mount.child for mount in mounts)]
    if len(set(frames)) != len(frames):
        raise ValueError(f'{model.path}: frame names must differ, got {frames}')
    visuals = tuple(replace(spec, pose=in_base(spec.pose))
                    for spec in model.visuals)
    description = RobotDescription(
        name=model.name, odom_frame=model.drive.odom_frame, footprint_frame=footprint,
        base_frame=base, laser_frame=model.lidar.frame_id, camera_frame=camera.mount_frame,
        camera_optical_frame=camera.frame_id, imu_frame=model.imu.frame_id,
        mounts=tuple(mounts), visuals=visuals,
        footprint_min=(model.body_min[0], model.body_min[1]),
        footprint_max=(model.body_max[0], model.body_max[1]))
    if model.imu.frame_id not in frames:
        raise ValueError(f'{model.path}: the imu gz_frame_id {model.imu.frame_id!r} is none of '
                         f'the robot frames {frames}')
    imu_frame = description.pose_in(footprint, model.imu.frame_id)
    if not np.allclose(model.imu.pose.matrix(), imu_frame.matrix(), atol=1e-9):
        raise ValueError(f'{model.path}: the imu must sit at the origin of its frame '
                         f'{model.imu.frame_id!r}')
    return description


def load_description(robot_model: str | Path = DEFAULT_ROBOT) -> RobotDescription:
    """The description of a robot model by name (worlds/models/<name>) or model.sdf path."""
    return description_from_model(load_robot_model(robot_model))


def _number(value: float) -> str:
    # Rounding drops the 1e-17 residues of composing rotations; + 0.0 turns -0 into 0.
    return f'{round(value, 12) + 0.0:.12g}'


def _urdf_origin(pose: Pose3) -> dict[str, str]:
    # URDF's rpy is fixed-axis roll, pitch, yaw like SDF's pose.
    return {'xyz': ' '.join(_number(v) for v in (pose.x, pose.y, pose.z)),
            'rpy': ' '.join(_number(v) for v in (pose.roll, pose.pitch, pose.yaw))}


def _urdf_visual(link: ElementTree.Element, visual: VisualSpec, material: str) -> None:
    element = ElementTree.SubElement(link, 'visual', name=visual.name)
    ElementTree.SubElement(element, 'origin', **_urdf_origin(visual.pose))
    geometry = ElementTree.SubElement(element, 'geometry')
    shape = visual.geometry
    if shape.kind == 'box':
        ElementTree.SubElement(geometry, 'box', size=' '.join(_number(v) for v in shape.size))
    elif shape.kind == 'cylinder':
        ElementTree.SubElement(geometry, 'cylinder', radius=_number(shape.radius),
                               length=_number(shape.length))
    else:
        ElementTree.SubElement(geometry, 'sphere', radius=_number(shape.radius))
    colour = ElementTree.SubElement(element, 'material', name=material)
    ElementTree.SubElement(colour, 'color', rgba=' '.join(_number(v) for v in visual.color))

"""The robot as the headless simulator sees it, read from worlds/models/<name>/model.sdf.

Poses are in the model frame: base_footprint, the centre of the footprint on the ground (REP
105). Body: the bounding box of all collision geometries (wheels included). Sensors: the camera,
gpu_lidar (or lidar) and imu sensor blocks, each with the ``gz_frame_id`` its data is stamped
with. Drive: the gz-sim DiffDrive plugin. ``sidewalk_robot.description`` builds the frame tree
and the URDF from this.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidewalk_robot.config import DEFAULT_ROBOT_MODEL
from sidewalk_robot.simulation.sdf import Geometry, Pose3, SdfDocument
from sidewalk_robot.simulation.semantics import SDF_NAMESPACE
from sidewalk_robot.simulation.world import model_directory

DEFAULT_ROBOT = DEFAULT_ROBOT_MODEL
DIFF_DRIVE_PLUGIN = 'gz::sim::systems::DiffDrive'


@dataclass(frozen=True)
class CameraSpec:
    name: str
    pose: Pose3
    """Pose of the mount frame in the model frame (x forward; positive pitch looks down)."""
    frame_id: str
    """``gz_frame_id``: the optical frame images and camera info are stamped with."""
    mount_frame: str
    """``sr:mount_frame``: the frame the sensor pose gives (x forward, as Gazebo poses cameras);
    the optical frame is fixed below it (z forward, x right, y down)."""
    width: int
    height: int
    horizontal_fov: float
    update_rate: float
    topic: str
    near: float
    far: float
    noise_stddev: float

    @property
    def focal_length(self) -> float:
        """fx = fy in pixels (square pixels)."""
        return self.width / 2 / math.tan(self.horizontal_fov / 2)

    @property
    def vertical_fov(self) -> float:
        return 2 * math.atan(self.height / 2 / self.focal_length)

    @property
    def info_topic(self) -> str:
        """Gazebo publishes camera info next to the image: ``<parent>/camera_info``."""
        return self.topic.rsplit('/', 1)[0] + '/camera_info' if '/' in self.topic else 'camera_info'


@dataclass(frozen=True)
class LidarSpec:
    name: str
    pose: Pose3
    """In the model frame; also the pose of ``frame_id``."""
    frame_id: str
    samples: int
    angle_min: float
    angle_max: float
    range_min: float
    range_max: float
    update_rate: float
    topic: str
    noise_stddev: float

    @property
    def angle_increment(self) -> float:
        return (self.angle_max - self.angle_min) / max(1, self.samples - 1)

    def angles(self) -> np.ndarray:
        return self.angle_min + self.angle_increment * np.arange(self.samples)


@dataclass(frozen=True)
class ImuSpec:
    name: str
    pose: Pose3
    frame_id: str
    update_rate: float
    topic: str


@dataclass(frozen=True)
class DriveSpec:
    """DiffDrive limits and topics (speeds m/s, rad/s; accelerations m/s^2, rad/s^2)."""
    wheel_separation: float
    wheel_radius: float
    max_linear_velocity: float
    min_linear_velocity: float
    max_angular_velocity: float
    min_angular_velocity: float
    max_linear_acceleration: float
    min_linear_acceleration: float
    max_angular_acceleration: float
    min_angular_acceleration: float
    cmd_topic: str
    odom_topic: str
    tf_topic: str
    """gz topic of the odom -> base_frame transform (gz.msgs.Pose_V)."""
    odom_frame: str
    base_frame: str
    """The odometry child frame: the model frame, on the ground (base_footprint)."""
    odom_rate: float


@dataclass(frozen=True)
class VisualSpec:
    """One visual of the model (for the URDF), posed in the model frame."""
    name: str
    geometry: Geometry
    pose: Pose3
    color: tuple[float, float, float, float]


@dataclass(frozen=True)
class RobotModel:
    name: str
    path: Path
    body_min: tuple[float, float, float]
    body_max: tuple[float, float, float]
    """Bounding box of the collisions in the model frame [m]."""
    camera: CameraSpec
    lidar: LidarSpec
    imu: ImuSpec
    drive: DriveSpec
    base_link: str
    """Name of the model's first link, the robot's body frame."""
    base_link_pose: Pose3
    """Pose of ``base_link`` in the model frame."""
    visuals: tuple[VisualSpec, ...]

    @property
    def footprint(self) -> tuple[float, float]:
        """Length (x) and width (y) of the body [m]."""
        return (self.body_max[0] - self.body_min[0], self.body_max[1] - self.body_min[1])


def load_robot_model(name_or_path: str | Path = DEFAULT_ROBOT) -> RobotModel:
    """Read the robot model by model name (worlds/models/<name>) or model.sdf path."""
    candidate = Path(name_or_path)
    if candidate.suffix != '.sdf':
        candidate = model_directory(str(name_or_path)) / 'model.sdf'
    path = candidate
    document = SdfDocument(path)
    model = document.root.find('model')
    if model is None:
        raise document.error('model', 'the robot file must contain a <model>')
    model_pose = document.pose(model)
    links = model.findall('link')
    if not links:
        raise document.error('link', f'robot model {model.get("name")!r} has no link')
    corners: list[np.ndarray] = []
    sensors: dict[str, tuple[ElementTree.Element, Pose3]] = {}
    visuals: list[VisualSpec] = []
    for link in links:
        link_pose = model_pose.compose(document.pose(link))
        for visual in link.findall('visual'):
            visuals.append(VisualSpec(
                f'{link.get("name", "")}/{visual.get("name", "")}', document.geometry(visual),
                link_pose.compose(document.pose(visual)), document.color(visual)))
        for collision in link.findall('collision'):
            geometry = document.geometry(collision)
            pose = link_pose.compose(document.pose(collision)).matrix()
            half = np.array(geometry.half_extents())
            signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
            local = np.hstack([signs * half, np.ones((8, 1))])
            corners.append((pose @ local.T).T[:, :3])
        for sensor in link.findall('sensor'):
            sensors[sensor.get('type', '')] = (sensor, link_pose.compose(document.pose(sensor)))
    if not corners:
        raise document.error('collision', f'robot model {model.get("name")!r} has no collisions')
    points = np.vstack(corners)
    name = model.get('name', path.parent.name)
    return RobotModel(
        name=name, path=path,
        body_min=tuple(float(v) for v in points.min(axis=0)),
        body_max=tuple(float(v) for v in points.max(axis=0)),
        camera=_camera(document, sensors), lidar=_lidar(document, sensors),
        imu=_imu(document, sensors), drive=_drive(document, model, name),
        base_link=links[0].get('name', ''),
        base_link_pose=model_pose.compose(document.pose(links[0])), visuals=tuple(visuals))


def _sensor(document: SdfDocument, sensors: dict, *types: str) -> tuple[ElementTree.Element, Pose3]:
    for sensor_type in types:
        if sensor_type in sensors:
            return sensors[sensor_type]
    raise document.error('sensor', f'the robot needs a sensor of type {" or ".join(types)}')


def _frame_id(document: SdfDocument, sensor: ElementTree.Element) -> str:
    """The frame the sensor's data is stamped with; without it Gazebo would stamp its scoped
    sensor name (model::link::sensor), a frame no node knows."""
    return document.text(sensor, 'gz_frame_id')


def _noise_stddev(document: SdfDocument, parent: ElementTree.Element) -> float:
    noise = parent.find('noise')
    if noise is None or document.text(noise, 'type', 'none') == 'none':
        return 0.0
    return document.number(noise, 'stddev', 0.0)


def _camera(document: SdfDocument, sensors: dict) -> CameraSpec:
    sensor, pose = _sensor(document, sensors, 'camera', 'rgbd_camera')
    camera = sensor.find('camera')
    if camera is None:
        raise document.error(sensor, 'camera sensor without <camera>')
    image, clip = camera.find('image'), camera.find('clip')
    if image is None:
        raise document.error(camera, 'camera without <image>')
    return CameraSpec(
        name=sensor.get('name', 'camera'), pose=pose, frame_id=_frame_id(document, sensor),
        mount_frame=document.text(sensor, f'{{{SDF_NAMESPACE}}}mount_frame'),
        width=int(document.number(image, 'width')), height=int(document.number(image, 'height')),
        horizontal_fov=document.number(camera, 'horizontal_fov'),
        update_rate=document.number(sensor, 'update_rate'), topic=document.text(sensor, 'topic'),
        near=document.number(clip, 'near', 0.1) if clip is not None else 0.1,
        far=document.number(clip, 'far', 100.0) if clip is not None else 100.0,
        noise_stddev=_noise_stddev(document, camera))


def _lidar(document: SdfDocument, sensors: dict) -> LidarSpec:
    sensor, pose = _sensor(document, sensors, 'gpu_lidar', 'lidar', 'gpu_ray', 'ray')
    lidar = sensor.find('lidar')
    if lidar is None:
        lidar = sensor.find('ray')
    if lidar is None:
        raise document.error(sensor, 'lidar sensor without <lidar>')
    horizontal = lidar.find('scan/horizontal')
    range_element = lidar.find('range')
    if horizontal is None or range_element is None:
        raise document.error(lidar, 'lidar without <scan><horizontal> and <range>')
    return LidarSpec(
        name=sensor.get('name', 'lidar'), pose=pose, frame_id=_frame_id(document, sensor),
        samples=int(document.number(horizontal, 'samples')),
        angle_min=document.number(horizontal, 'min_angle'),
        angle_max=document.number(horizontal, 'max_angle'),
        range_min=document.number(range_element, 'min'),
        range_max=document.number(range_element, 'max'),
        update_rate=document.number(sensor, 'update_rate'), topic=document.text(sensor, 'topic'),
        noise_stddev=_noise_stddev(document, lidar))


def _imu(document: SdfDocument, sensors: dict) -> ImuSpec:
    sensor, pose = _sensor(document, sensors, 'imu')
    return ImuSpec(name=sensor.get('name', 'imu'), pose=pose, frame_id=_frame_id(document, sensor),
                   update_rate=document.number(sensor, 'update_rate'),
                   topic=document.text(sensor, 'topic'))


def _drive(document: SdfDocument, model: ElementTree.Element, model_name: str) -> DriveSpec:
    plugin = next((p for p in model.findall('plugin') if p.get('name') == DIFF_DRIVE_PLUGIN), None)
    if plugin is None:
        raise document.error('plugin', f'the robot needs the {DIFF_DRIVE_PLUGIN} plugin')
    max_linear = document.number(plugin, 'max_linear_velocity')
    max_angular = document.number(plugin, 'max_angular_velocity')
    max_linear_acceleration = document.number(plugin, 'max_linear_acceleration')
    max_angular_acceleration = document.number(plugin, 'max_angular_acceleration')
    return DriveSpec(
        wheel_separation=document.number(plugin, 'wheel_separation'),
        wheel_radius=document.number(plugin, 'wheel_radius'),
        max_linear_velocity=max_linear,
        min_linear_velocity=document.number(plugin, 'min_linear_velocity', -max_linear),
        max_angular_velocity=max_angular,
        min_angular_velocity=document.number(plugin, 'min_angular_velocity', -max_angular),
        max_linear_acceleration=max_linear_acceleration,
        min_linear_acceleration=document.number(plugin, 'min_linear_acceleration',
                                                -max_linear_acceleration),
        max_angular_acceleration=max_angular_acceleration,
        min_angular_acceleration=document.number(plugin, 'min_angular_acceleration',
                                                 -max_angular_acceleration),
        cmd_topic=document.text(plugin, 'topic', 'cmd_vel'),
        odom_topic=document.text(plugin, 'odom_topic', 'odom'),
        tf_topic=document.text(plugin, 'tf_topic', f'/model/{model_name}/tf'),
        odom_frame=document.text(plugin, 'frame_id', 'odom'),
        base_frame=document.text(plugin, 'child_frame_id', 'base_link'),
        odom_rate=document.number(plugin, 'odom_publish_frequency', 50.0))

"""Synthetic drives written straight into bags (no ROS graph): for tests and the benchmark.

A robot drives along +x at a constant speed towards a box; the lidar sees the box exactly, the
camera image is a flat ground/sky picture with the box drawn where the pinhole model puts it,
and odometry follows the motion. Optional: an e-stop at a given time, a goal, and ways to make
the bag bad on purpose (header stamps jumping backwards).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidewalk_robot.replay.bag_io import BagWriter, base_typestore, qos_from_policies

NS_PER_S = 1_000_000_000
SENSOR_OFFERED = qos_from_policies(reliable=False, transient_local=False, depth=5)
LATCHED_OFFERED = qos_from_policies(reliable=True, transient_local=True, depth=1)


@dataclass(frozen=True)
class SyntheticDrive:
    duration_s: float = 3.0
    speed_mps: float = 0.5
    box_x_m: float = 4.0
    """Near face of the box in the world, the robot starting at x = 0."""
    box_half_width_m: float = 0.4
    camera_hz: float = 10.0
    scan_hz: float = 10.0
    odom_hz: float = 20.0
    image_width: int = 320
    image_height: int = 240
    start_time_s: float = 100.0
    estop_at_s: float | None = None
    goal_x_m: float | None = None
    stamps_jump_back_at_s: float | None = None
    laser_x_m: float = 0.30
    compress: bool = True
    pixel_noise: int = 0
    """Amplitude of random pixel noise: like a real camera, it defeats most compression."""


def _time(store, seconds: float):
    nanoseconds = int(round(seconds * NS_PER_S))
    return store.types['builtin_interfaces/msg/Time'](sec=nanoseconds // NS_PER_S,
                                                      nanosec=nanoseconds % NS_PER_S)


def _header(store, seconds: float, frame_id: str):
    return store.types['std_msgs/msg/Header'](stamp=_time(store, seconds), frame_id=frame_id)


def box_ranges(robot_x: float, drive: SyntheticDrive, beams: int = 360) -> np.ndarray:
    """Exact ranges from the lidar to the box's near face (inf where a beam misses it)."""
    angles = -math.pi + 2.0 * math.pi / beams * np.arange(beams)
    ahead = drive.box_x_m - (robot_x + drive.laser_x_m)
    ranges = np.full(beams, np.inf)
    cos = np.cos(angles)
    with np.errstate(divide='ignore', invalid='ignore'):
        distance = ahead / cos
        lateral = distance * np.sin(angles)
    hit = (cos > 1e-6) & (np.abs(lateral) <= drive.box_half_width_m) & (distance > 0)
    ranges[hit] = distance[hit]
    ranges[(ranges < 0.1) | (ranges > 10.0)] = np.inf
    return ranges


def camera_image(robot_x: float, drive: SyntheticDrive) -> np.ndarray:
    """Ground and sky with the box's near face drawn as a dark rectangle."""
    height, width = drive.image_height, drive.image_width
    image = np.empty((height, width, 3), dtype=np.uint8)
    horizon = int(height * 0.3)
    image[:horizon] = (150, 190, 230)
    image[horizon:] = (120, 120, 120)
    depth = drive.box_x_m - (robot_x + 0.30)
    if depth > 0.3:
        half = int(160.0 * drive.box_half_width_m / depth)
        top = max(0, int(120 - 160.0 * 0.5 / depth))
        bottom = min(height, int(120 + 160.0 * 0.5 / depth) + 40)
        image[top:bottom, max(0, 160 - half):min(width, 160 + half)] = (40, 30, 30)
    if drive.pixel_noise:
        rng = np.random.default_rng(int(robot_x * 1000))
        noise = rng.integers(-drive.pixel_noise, drive.pixel_noise + 1, image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return image


def write_synthetic_drive(path: Path, drive: SyntheticDrive = SyntheticDrive()) -> Path:
    """Write the drive as a rosbag2 MCAP bag at ``path``; returns ``path``."""
    store = base_typestore()
    writer = BagWriter(path, compress=drive.compress, typestore=store)
    topics = {'/camera/image_raw': 'sensor_msgs/msg/Image',
              '/camera/camera_info': 'sensor_msgs/msg/CameraInfo',
              '/scan': 'sensor_msgs/msg/LaserScan', '/odom': 'nav_msgs/msg/Odometry'}
    for topic, msgtype in topics.items():
        writer.add_topic(topic, msgtype, [SENSOR_OFFERED])
    if drive.estop_at_s is not None:
        writer.add_topic('/safety/estop', 'std_msgs/msg/Bool', [LATCHED_OFFERED])
    if drive.goal_x_m is not None:
        writer.add_topic('/goal_pose', 'geometry_msgs/msg/PoseStamped', [LATCHED_OFFERED])

    events: list[tuple[float, str]] = []
    for topic, rate in (('/camera/image_raw', drive.camera_hz), ('/scan', drive.scan_hz),
                        ('/odom', drive.odom_hz)):
        events += [(i / rate, topic) for i in range(int(drive.duration_s * rate))]
    events += [(i / drive.camera_hz + 1e-4, '/camera/camera_info')
               for i in range(int(drive.duration_s * drive.camera_hz))]
    if drive.estop_at_s is not None:
        events.append((drive.estop_at_s, '/safety/estop'))
    if drive.goal_x_m is not None:
        events.append((0.0, '/goal_pose'))
    for offset, topic in sorted(events):
        stamp = drive.start_time_s + offset
        if drive.stamps_jump_back_at_s is not None and offset >= drive.stamps_jump_back_at_s:
            stamp -= 2.0  # a simulator reset: header time restarts behind the bag time
        message = _message(store, topic, offset, stamp, drive)
        writer.write(topic, int(round((drive.start_time_s + offset) * NS_PER_S)),
                     store.serialize_cdr(message, topics.get(topic) or message.__msgtype__))
    writer.close()
    return path


def _message(store, topic: str, offset: float, stamp: float, drive: SyntheticDrive):
    types = store.types
    robot_x = drive.speed_mps * offset
    if topic == '/camera/image_raw':
        pixels = camera_image(robot_x, drive)
        return types['sensor_msgs/msg/Image'](
            header=_header(store, stamp, 'camera_optical_frame'), height=pixels.shape[0],
            width=pixels.shape[1], encoding='rgb8', is_bigendian=0, step=pixels.shape[1] * 3,
            data=pixels.reshape(-1))
    if topic == '/camera/camera_info':
        return types['sensor_msgs/msg/CameraInfo'](
            header=_header(store, stamp, 'camera_optical_frame'), height=drive.image_height,
            width=drive.image_width, distortion_model='plumb_bob', d=np.zeros(5),
            k=np.array([160.0, 0, 160.0, 0, 160.0, 120.0, 0, 0, 1]),
            r=np.eye(3).reshape(-1), p=np.array([160.0, 0, 160.0, 0, 0, 160.0, 120.0, 0, 0, 0,
                                                 1, 0]),
            binning_x=0, binning_y=0,
            roi=types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                          width=0, do_rectify=False))
    if topic == '/scan':
        ranges = box_ranges(robot_x, drive).astype(np.float32)
        return types['sensor_msgs/msg/LaserScan'](
            header=_header(store, stamp, 'laser_link'), angle_min=-math.pi,
            angle_max=math.pi - 2 * math.pi / 360, angle_increment=2 * math.pi / 360,
            time_increment=0.0, scan_time=1.0 / drive.scan_hz, range_min=0.1, range_max=10.0,
            ranges=ranges, intensities=np.zeros(0, dtype=np.float32))
    if topic == '/odom':
        return _odometry(store, stamp, robot_x, drive.speed_mps)
    if topic == '/safety/estop':
        return types['std_msgs/msg/Bool'](data=True)
    if topic == '/goal_pose':
        pose = _pose(store, drive.goal_x_m or 0.0)
        return types['geometry_msgs/msg/PoseStamped'](header=_header(store, stamp, 'odom'),
                                                      pose=pose)
    raise ValueError(f'no synthetic message for {topic}')


def _pose(store, x: float):
    types = store.types
    return types['geometry_msgs/msg/Pose'](
        position=types['geometry_msgs/msg/Point'](x=x, y=0.0, z=0.0),
        orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))


def _odometry(store, stamp: float, x: float, speed: float):
    types = store.types
    vector = types['geometry_msgs/msg/Vector3']
    return types['nav_msgs/msg/Odometry'](
        header=_header(store, stamp, 'odom'), child_frame_id='base_link',
        pose=types['geometry_msgs/msg/PoseWithCovariance'](pose=_pose(store, x),
                                                            covariance=np.zeros(36)),
        twist=types['geometry_msgs/msg/TwistWithCovariance'](
            twist=types['geometry_msgs/msg/Twist'](linear=vector(x=speed, y=0.0, z=0.0),
                                                   angular=vector(x=0.0, y=0.0, z=0.0)),
            covariance=np.zeros(36)))

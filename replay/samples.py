"""The plain data evaluation works on, decoded from bags with rosbags (no rclpy).

Times: ``time`` is simulated (bag) time in seconds; ``wall`` is the wall clock of this machine
when the replay published or received the message, in seconds; ``stamp`` is the header stamp.
"""
from __future__ import annotations

import importlib
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from sidewalk_robot.replay.bag_io import BagError

NS = 1e-9

HEADER_FIRST_TYPES = frozenset({
    'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/LaserScan',
    'sensor_msgs/msg/Imu', 'nav_msgs/msg/Odometry', 'nav_msgs/msg/OccupancyGrid',
    'nav_msgs/msg/Path', 'geometry_msgs/msg/PoseStamped', 'geometry_msgs/msg/TwistStamped',
    'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/PointCloud2',
    'rosgraph_msgs/msg/Clock',
})
"""Types whose CDR body starts with a builtin_interfaces/Time (a Header's stamp, or Clock)."""


def message_class(msgtype: str) -> type:
    """The ROS message class for ``pkg/msg/Name``; ImportError/AttributeError if missing."""
    package, interface, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{interface}'), name)


def leading_stamp_ns(data: bytes | memoryview, msgtype: str) -> int | None:
    """The header stamp (or Clock time) read from raw CDR without decoding the message."""
    if msgtype not in HEADER_FIRST_TYPES or len(data) < 12:
        return None
    little_endian = data[1] == 1
    seconds, nanoseconds = struct.unpack_from('<iI' if little_endian else '>iI', data, 4)
    return seconds * 1_000_000_000 + nanoseconds


@dataclass(frozen=True)
class Frame:
    """A camera frame as played: bag time, header stamp, wall time of publication, and how
    late that was against the player's schedule."""
    time: float
    stamp: float
    wall: float
    lag: float = 0.0


@dataclass(frozen=True)
class Scan:
    time: float
    stamp: float
    ranges: np.ndarray
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float


@dataclass(frozen=True)
class CameraModel:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass(frozen=True)
class Grid:
    time: float
    wall: float
    stamp: float
    resolution: float
    origin_x: float
    origin_y: float
    origin_yaw: float
    cells: np.ndarray  # (height, width) int8: -1 unknown, 0..100 probability %


@dataclass(frozen=True)
class Twist:
    time: float
    wall: float
    linear: float
    angular: float


@dataclass(frozen=True)
class SafetyState:
    time: float
    wall: float
    state: str
    reason: str
    allowed_linear_speed: float
    nearest_obstacle_m: float


@dataclass(frozen=True)
class EStop:
    time: float
    engaged: bool


@dataclass
class PlaybackLog:
    """What was played and when: the evaluation maps wall time to bag time with ``clock``."""
    clock: list[tuple[float, float]] = field(default_factory=list)  # (wall s, bag time s)
    frames: list[Frame] = field(default_factory=list)
    published: dict[str, int] = field(default_factory=dict)
    max_lag_s: float = 0.0
    behind_s: float = 0.0
    first_time: float | None = None
    last_time: float | None = None
    wall_duration_s: float = 0.0
    interrupted: bool = False

    def to_json(self) -> dict:
        return {'clock': self.clock, 'frames': [vars(frame) for frame in self.frames],
                'published': self.published, 'max_lag_s': self.max_lag_s,
                'behind_s': self.behind_s, 'first_time': self.first_time,
                'last_time': self.last_time, 'wall_duration_s': self.wall_duration_s,
                'interrupted': self.interrupted}


def decode_scan(message, time: float) -> Scan:
    return Scan(time=time, stamp=_stamp(message.header.stamp),
                ranges=np.asarray(message.ranges, dtype=np.float64),
                angle_min=float(message.angle_min), angle_increment=float(message.angle_increment),
                range_min=float(message.range_min), range_max=float(message.range_max))


def decode_camera_info(message) -> CameraModel:
    k = list(message.k)
    if len(k) != 9 or k[0] <= 0 or k[4] <= 0:
        raise BagError(f'camera_info has no usable intrinsics (K = {k})')
    return CameraModel(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
                       width=int(message.width), height=int(message.height))


def decode_grid(message, time: float, wall: float) -> Grid:
    info = message.info
    width, height = int(info.width), int(info.height)
    cells = np.asarray(message.data, dtype=np.int8)
    if cells.size != width * height:
        raise ValueError(f'grid data has {cells.size} cells, expected {width}x{height}')
    q = info.origin.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    return Grid(time=time, wall=wall, stamp=_stamp(message.header.stamp),
                resolution=float(info.resolution), origin_x=float(info.origin.position.x),
                origin_y=float(info.origin.position.y), origin_yaw=yaw,
                cells=cells.reshape(height, width))


def decode_twist(message, time: float, wall: float) -> Twist:
    twist = message.twist if hasattr(message, 'twist') else message
    return Twist(time=time, wall=wall, linear=float(twist.linear.x), angular=float(twist.angular.z))


def decode_safety_state(message, time: float, wall: float) -> SafetyState:
    values = {item.key: item.value for item in message.values}
    return SafetyState(time=time, wall=wall, state=values.get('state', message.message),
                       reason=values.get('reason', ''),
                       allowed_linear_speed=_float(values.get('allowed_linear_speed')),
                       nearest_obstacle_m=_float(values.get('nearest_obstacle_m')))


def _float(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def _stamp(stamp) -> float:
    return stamp.sec + stamp.nanosec * NS

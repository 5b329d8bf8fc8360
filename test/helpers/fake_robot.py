"""A stand-in for the robot around the operator console and the safety monitor: sensors, a
planner that always drives, and ears on everything the console and the monitor publish.

It spins in a thread of its own, so a browser test can drive Chromium (synchronously) while
messages keep flowing.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import Bool, String

from helpers.images import street_image
from sidewalk_robot.ros_common import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, array_to_image

BEAMS = 360


@dataclass
class Heard:
    """Everything received, newest last."""
    cmd_vel: list[tuple[float, float, float]] = field(default_factory=list)
    """(wall time, linear, angular) of each /cmd_vel."""
    safety: list[dict[str, str]] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    manual_mode: list[bool] = field(default_factory=list)
    manual_cmd: list[tuple[float, float]] = field(default_factory=list)
    estop: list[bool] = field(default_factory=list)

    def safety_state(self) -> str:
        return self.safety[-1].get('state', '') if self.safety else ''


class FakeRobot:
    """Publishes /scan (clear), /odom (driving as /cmd_vel says), the camera, the grids and,
    unless a real planner runs (``drive_planner=False``), plays the planner with
    ``planner_speed`` on /cmd_vel_nav at 20 Hz; records the outputs in ``heard``. The obstacle
    grid shows a box 2 m ahead unless ``free_grids`` or ``obstacle_cells`` (flat indices)."""

    def __init__(self, *, planner_speed: float = 0.5, drive_planner: bool = True,
                 camera: bool = True, free_grids: bool = False,
                 picture: np.ndarray | None = None, obstacle_cells: np.ndarray | None = None
                 ) -> None:
        self.planner_speed = planner_speed
        self.heard = Heard()
        self._lock = threading.Lock()
        self.context = Context()
        rclpy.init(context=self.context)
        node = Node('fake_robot', context=self.context)
        self.node = node
        self._scan = node.create_publisher(LaserScan, 'scan', SENSOR_QOS)
        self._odom = node.create_publisher(Odometry, 'odom', SENSOR_QOS)
        self._image = node.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
        self._info = node.create_publisher(CameraInfo, 'camera/camera_info', SENSOR_QOS)
        self._grid = node.create_publisher(OccupancyGrid, 'perception/obstacle_grid', COMMAND_QOS)
        self._pedestrian_grid = node.create_publisher(OccupancyGrid, 'perception/pedestrian_grid',
                                                      COMMAND_QOS)
        self._crossings = node.create_publisher(String, 'route_crossings', LATCHED_QOS)
        self.free_grids = free_grids
        self._nav = node.create_publisher(TwistStamped, 'cmd_vel_nav', COMMAND_QOS)
        self._request = node.create_publisher(String, 'operator/assist_request', LATCHED_QOS)
        self._route = node.create_publisher(Path, 'route', LATCHED_QOS)
        self._health = node.create_publisher(DiagnosticStatus, 'monitoring/model_health',
                                             LATCHED_QOS)
        node.create_subscription(TwistStamped, 'cmd_vel', self._on_cmd_vel, COMMAND_QOS)
        node.create_subscription(DiagnosticStatus, 'safety/state', self._on_safety, LATCHED_QOS)
        node.create_subscription(String, 'operator/assist_response',
                                 lambda m: self._add('answers', json.loads(m.data)),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(String, 'operator/actions',
                                 lambda m: self._add('actions', json.loads(m.data)),
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(Bool, 'operator/manual_mode',
                                 lambda m: self._add('manual_mode', m.data), LATCHED_QOS)
        node.create_subscription(TwistStamped, 'operator/manual_cmd',
                                 lambda m: self._add('manual_cmd', (m.twist.linear.x,
                                                                    m.twist.angular.z)),
                                 COMMAND_QOS)
        node.create_subscription(Bool, 'safety/estop', lambda m: self._add('estop', m.data),
                                 LATCHED_QOS)
        self._x = 0.0
        self.wall_ahead_m: float | None = None
        """Set: the lidar sees a wall across the way this far ahead of the laser."""
        self._picture = street_image() if picture is None else picture
        self._obstacle_cells = obstacle_cells
        node.create_timer(0.05, self._tick_fast)
        if camera:
            node.create_timer(0.1, self._tick_camera)
        self.drive_planner = drive_planner
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    # ------------------------------------------------------------------------ spinning
    def _spin(self) -> None:
        while self._running and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(0.05)
        with self._lock:
            return bool(predicate())

    # ------------------------------------------------------------------------ inputs
    def _add(self, what: str, value: object) -> None:
        with self._lock:
            getattr(self.heard, what).append(value)

    def _on_cmd_vel(self, message: TwistStamped) -> None:
        self._add('cmd_vel', (time.time(), message.twist.linear.x, message.twist.angular.z))

    def _on_safety(self, message: DiagnosticStatus) -> None:
        self._add('safety', {kv.key: kv.value for kv in message.values})

    # ------------------------------------------------------------------------ outputs
    def _tick_fast(self) -> None:
        now = self.node.get_clock().now().to_msg()
        scan = LaserScan(angle_min=-math.pi, angle_max=math.pi - 2 * math.pi / BEAMS,
                         angle_increment=2 * math.pi / BEAMS, range_min=0.1, range_max=10.0)
        scan.header.stamp, scan.header.frame_id = now, 'laser_link'
        ranges = np.full(BEAMS, np.inf)
        if self.wall_ahead_m is not None:
            bearings = scan.angle_min + scan.angle_increment * np.arange(BEAMS)
            ahead = np.cos(bearings) > 0.3
            ranges[ahead] = self.wall_ahead_m / np.cos(bearings[ahead])
        scan.ranges = ranges.astype(np.float32).tolist()
        self._scan.publish(scan)
        speed = self.heard.cmd_vel[-1][1] if self.heard.cmd_vel else 0.0
        self._x += 0.05 * speed
        odometry = Odometry()
        odometry.header.stamp, odometry.header.frame_id = now, 'odom'
        odometry.child_frame_id = 'base_link'
        odometry.pose.pose.position.x = self._x
        odometry.pose.pose.orientation.w = 1.0
        odometry.twist.twist.linear.x = speed
        self._odom.publish(odometry)
        if self.drive_planner:
            command = TwistStamped()
            command.header.stamp, command.header.frame_id = now, 'base_link'
            command.twist.linear.x = self.planner_speed
            self._nav.publish(command)

    def _tick_camera(self) -> None:
        now = self.node.get_clock().now().to_msg()
        self._image.publish(array_to_image(self._picture, now, 'camera_optical_frame'))
        info = CameraInfo(width=320, height=240)
        info.header.stamp, info.header.frame_id = now, 'camera_optical_frame'
        info.k = [160.0, 0.0, 160.0, 0.0, 160.0, 120.0, 0.0, 0.0, 1.0]
        self._info.publish(info)
        cells = np.zeros((80, 80), dtype=np.int8)
        if self._obstacle_cells is not None:
            cells.reshape(-1)[self._obstacle_cells] = 90
        elif not self.free_grids:
            cells[37:43, 30:34] = 90  # a box 2.0-2.4 m ahead, 0.6 m wide
        self._grid.publish(self._grid_message(now, cells))
        self._pedestrian_grid.publish(self._grid_message(now, np.zeros((80, 80), np.int8)))

    @staticmethod
    def _grid_message(stamp, cells: np.ndarray) -> OccupancyGrid:
        grid = OccupancyGrid()
        grid.header.stamp, grid.header.frame_id = stamp, 'base_link'
        grid.info.resolution, grid.info.width, grid.info.height = 0.1, 80, 80
        grid.info.origin.position.x, grid.info.origin.position.y = -1.0, -4.0
        grid.info.origin.orientation.w = 1.0
        grid.data = cells.ravel().tolist()
        return grid

    @property
    def x(self) -> float:
        """How far the robot has driven along odom x [m]."""
        return self._x

    def publish_route(self, points: list[tuple[float, float]],
                      crossings: list[tuple[float, float]] = ()) -> None:
        """A straight route in odom; ``crossings`` as (start x, end x) on it."""
        route = Path()
        route.header.frame_id = 'odom'
        route.header.stamp = self.node.get_clock().now().to_msg()
        if crossings:
            stamp = route.header.stamp.sec + route.header.stamp.nanosec * 1e-9
            self._crossings.publish(String(data=json.dumps({
                'frame_id': 'odom', 'route_stamp': stamp,
                'crossings': [{'start': {'x': start, 'y': 0.0}, 'end': {'x': end, 'y': 0.0}}
                              for start, end in crossings]})))
        for x, y in points:
            pose = PoseStamped()
            pose.header = route.header
            pose.pose.position.x, pose.pose.position.y = x, y
            pose.pose.orientation.w = 1.0
            route.poses.append(pose)
        self._route.publish(route)

    def request_help(self, request: dict) -> None:
        self._request.publish(String(data=json.dumps(request)))

    def report_health(self, level: bytes, message: str) -> None:
        self._health.publish(DiagnosticStatus(level=level, name='model_health',
                                              message=message))

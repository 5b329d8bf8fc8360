"""health_monitor_node: the learned model's health from the lidar, the grids and perception's
statistics, on monitoring/model_health and /diagnostics (docs/operations.md)."""
from __future__ import annotations

import math
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import LaserScan

from sidewalk_robot.diagnostic_names import PERCEPTION_STATUS_TITLE, sibling_status, status_name
from sidewalk_robot.lockstep_ros import LockstepNode
from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.monitoring.health import LaserScanData, ModelHealthMonitor, compare
from sidewalk_robot.planning.geometry import Pose2D, yaw_from_quaternion
from sidewalk_robot.planning.grid import LocalGrid
from sidewalk_robot.planning.planner import OdometryHistory
from sidewalk_robot.ros_common import (COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, run_node, seconds_to_stamp,
                                       stamp_to_seconds)
from sidewalk_robot.ros_params import declare_config

SCANS_KEPT = 10
"""Recent scans kept to pair each grid with the one nearest in time (1 s at 10 Hz)."""


def grid_from_message(message: OccupancyGrid) -> LocalGrid:
    info = message.info
    q = info.origin.orientation
    origin = Pose2D(info.origin.position.x, info.origin.position.y,
                    yaw_from_quaternion(q.x, q.y, q.z, q.w))
    return LocalGrid.from_occupancy(np.asarray(message.data, dtype=np.int16), info.width,
                                    info.height, info.resolution, origin,
                                    stamp_to_seconds(message.header.stamp), message.header.frame_id)


class HealthMonitorNode(LockstepNode):
    LOCKSTEP_WAKING_TOPICS = ()
    """Its callbacks only store and compare; the timer publishes (lockstep)."""

    def __init__(self) -> None:
        super().__init__('health_monitor')
        self.config = declare_config(self, HealthMonitorConfig)
        self.monitor = ModelHealthMonitor(self.config)
        config = self.config
        self.laser = Pose2D(config.laser_x_offset, config.laser_y_offset, config.laser_yaw_offset)
        self.scans: deque[LaserScanData] = deque(maxlen=SCANS_KEPT)
        self.history = OdometryHistory()
        self.pedestrians: LocalGrid | None = None
        self.last_level = ''
        self.health_publisher = self.create_publisher(DiagnosticStatus, 'monitoring/model_health',
                                                      LATCHED_QOS)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(OccupancyGrid, 'perception/obstacle_grid', self.on_obstacle_grid,
                                 COMMAND_QOS)
        self.create_subscription(OccupancyGrid, 'perception/pedestrian_grid',
                                 self.on_pedestrian_grid, COMMAND_QOS)
        self.create_subscription(LaserScan, 'scan', self.on_scan, SENSOR_QOS)
        self.create_subscription(Odometry, 'odom', self.on_odometry, SENSOR_QOS)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 10)
        self.create_timer(config.publish_period, self.on_timer)
        self.get_logger().info('model health monitor ready')

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _refuse(self, what: str, why: str) -> None:
        self.get_logger().warning(f'{what} rejected: {why}', throttle_duration_sec=5.0)

    def on_scan(self, message: LaserScan) -> None:
        if message.header.frame_id != self.config.scan_frame:
            self._refuse('scan', f'frame {message.header.frame_id!r} is not '
                                 f'{self.config.scan_frame!r}')
            return
        ranges = np.asarray(message.ranges, dtype=np.float64)
        if not (math.isfinite(message.angle_min) and math.isfinite(message.angle_increment)
                and math.isfinite(message.range_max) and ranges.size):
            self._refuse('scan', 'its geometry is not finite or it has no ranges')
            return
        # REP 117: -inf is closer than range_min: a return at range_min.
        ranges = np.where(np.isneginf(ranges), message.range_min, ranges)
        ranges = np.where(ranges > message.range_max, np.inf, ranges)
        angles = message.angle_min + message.angle_increment * np.arange(ranges.size)
        self.scans.append(LaserScanData(stamp_to_seconds(message.header.stamp), angles, ranges,
                                        float(message.range_max)))
        self.monitor.saw_scan(self.now())

    def on_odometry(self, message: Odometry) -> None:
        if message.header.frame_id != self.config.odom_frame:
            self._refuse('odometry', f'frame {message.header.frame_id!r} is not '
                                     f'{self.config.odom_frame!r}')
            return
        q = message.pose.pose.orientation
        pose = Pose2D(message.pose.pose.position.x, message.pose.pose.position.y,
                      yaw_from_quaternion(q.x, q.y, q.z, q.w))
        stamp = stamp_to_seconds(message.header.stamp)
        if pose.is_finite() and math.isfinite(stamp):
            self.history.add(stamp, pose)

    def on_pedestrian_grid(self, message: OccupancyGrid) -> None:
        try:
            self.pedestrians = grid_from_message(message)
        except ValueError as error:
            self._refuse('pedestrian grid', str(error))

    def on_obstacle_grid(self, message: OccupancyGrid) -> None:
        now = self.now()
        try:
            grid = grid_from_message(message)
        except ValueError as error:
            self._refuse('obstacle grid', str(error))
            return
        if grid.frame_id != self.config.robot_frame:
            self._refuse('obstacle grid', f'frame {grid.frame_id!r} is not '
                                          f'{self.config.robot_frame!r}')
            return
        self.monitor.saw_grid(now)
        if not self.scans:
            return
        scan = min(self.scans, key=lambda s: abs(s.stamp - grid.stamp))
        if abs(scan.stamp - grid.stamp) > self.config.max_pair_gap:
            return
        laser_in_grid = self.laser
        if len(self.history):
            moved = self.history.pose_at(grid.stamp).inverse().compose(
                self.history.pose_at(scan.stamp))
            laser_in_grid = moved.compose(self.laser)
        pedestrians = self.pedestrians
        if pedestrians is not None and abs(pedestrians.stamp - grid.stamp) > 1e-6:
            pedestrians = None
        self.monitor.add_comparison(compare(grid, pedestrians, scan, laser_in_grid, self.config),
                                    now)

    def on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            name = sibling_status(self.get_namespace(), status.name)
            if name is None or not name.endswith(PERCEPTION_STATUS_TITLE):
                continue  # another robot's, or not perception's
            values = {kv.key: kv.value for kv in status.values}
            try:
                confidence = float(values['mean_confidence'])
                brightness = float(values['brightness'])
                uncertainty = float(values.get('uncertainty', 'nan'))
            except (KeyError, ValueError):
                continue
            self.monitor.add_perception_statistics(confidence, brightness, self.now(),
                                                   uncertainty)

    def on_timer(self) -> None:
        now = self.now()
        report = self.monitor.report(now)
        status = diagnostic_status(status_name(self.get_fully_qualified_name(), 'model health'),
                                   'perception', report.level, report.summary, report.values)
        self.health_publisher.publish(status)
        if report.level != self.last_level:
            text = f'model health {report.level} ({report.health:.2f}): {report.summary}'
            # rclpy wants one severity per call site.
            if report.level == 'OK':
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
            self.last_level = report.level
        self.diagnostics_publisher.publish(diagnostic_array(seconds_to_stamp(now), status))


def main(args: list[str] | None = None) -> int:
    return run_node(HealthMonitorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

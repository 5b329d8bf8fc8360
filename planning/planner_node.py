"""ROS 2 node around the planner core: parameters, QoS, message conversion and the timer."""
from __future__ import annotations

import json
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry as OdometryMsg, Path
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D, quaternion_from_yaw, yaw_from_quaternion
from sidewalk_robot.planning.grid import LocalGrid
from sidewalk_robot.planning.planner import Odometry, Planner, PlannerOutput
from sidewalk_robot.planning.scan_layer import Scan, scan_points
from sidewalk_robot.ros_common import (COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, run_node, seconds_to_stamp,
                                       stamp_to_seconds, subscribe_from_any_publisher)
from sidewalk_robot.ros_params import declare_config

CYCLE_WINDOW = 200
"""Planning cycles kept for the cycle-time figures in /diagnostics."""

DIAGNOSTICS_PERIOD = 1.0
"""Seconds between /diagnostics messages while nothing changes."""


def pose_from_message(pose) -> Pose2D:
    q = pose.orientation
    return Pose2D(pose.position.x, pose.position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))


def grid_from_message(message: OccupancyGrid) -> LocalGrid:
    info = message.info
    return LocalGrid.from_occupancy(
        np.asarray(message.data, dtype=np.int16), info.width, info.height, info.resolution,
        pose_from_message(info.origin), stamp_to_seconds(message.header.stamp),
        message.header.frame_id)


class PlannerNode(Node):
    def __init__(self) -> None:
        super().__init__('planner')
        self.config = declare_config(self, PlannerConfig)
        self.planner = Planner(self.config)
        self.cmd_publisher = self.create_publisher(TwistStamped, '/cmd_vel_nav', COMMAND_QOS)
        self.path_publisher = self.create_publisher(Path, '/planning/path', 10)
        self.assist_publisher = self.create_publisher(String, '/operator/assist_request',
                                                      LATCHED_QOS)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # RViz's 2D Goal Pose, Foxglove and `ros2 topic pub` publish volatile; a mission
        # executive may latch its goal before the planner starts: both must reach the planner.
        subscribe_from_any_publisher(self, PoseStamped, '/goal_pose', self.on_goal)
        subscribe_from_any_publisher(self, Path, '/route', self.on_route)
        self.create_subscription(OdometryMsg, '/odom', self.on_odometry, SENSOR_QOS)
        self.create_subscription(OccupancyGrid, '/perception/obstacle_grid', self.on_obstacle_grid,
                                 COMMAND_QOS)
        self.create_subscription(OccupancyGrid, '/perception/pedestrian_grid',
                                 self.on_pedestrian_grid, COMMAND_QOS)
        if self.config.use_scan:
            self.create_subscription(LaserScan, '/scan', self.on_scan, SENSOR_QOS)
        self.cycle_times: deque[float] = deque(maxlen=CYCLE_WINDOW)
        self.last_diagnostics = (None, None, -1.0)
        self.create_timer(1.0 / self.config.control_rate, self.on_timer)
        self.get_logger().info(f'planner ready, {self.planner.local_planner.rollout_count} '
                               f'rollouts at {self.config.control_rate:.0f} Hz')

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _report(self, error: str | None) -> None:
        if error:
            self.get_logger().warning(error, throttle_duration_sec=2.0)

    # ----------------------------------------------------------------------------- inputs
    def on_goal(self, message: PoseStamped) -> None:
        position = message.pose.position
        error = self.planner.set_goal(position.x, position.y, message.header.frame_id, self.now())
        self._report(error)
        if error is None:
            self.get_logger().info(f'new goal ({position.x:.2f}, {position.y:.2f})')

    def on_route(self, message: Path) -> None:
        points = [(p.pose.position.x, p.pose.position.y) for p in message.poses]
        error = self.planner.set_route(points, message.header.frame_id, self.now())
        self._report(error)
        if error is None:
            self.get_logger().info(f'new route of {len(points)} waypoints')

    def on_odometry(self, message: OdometryMsg) -> None:
        odometry = Odometry(stamp_to_seconds(message.header.stamp), message.header.frame_id,
                            pose_from_message(message.pose.pose), message.twist.twist.linear.x,
                            message.twist.twist.angular.z)
        self._report(self.planner.set_odometry(odometry, self.now()))

    def on_obstacle_grid(self, message: OccupancyGrid) -> None:
        try:
            grid = grid_from_message(message)
        except ValueError as error:
            self.planner.report_input_error(f'obstacle grid rejected: {error}')
            self._report(f'obstacle grid rejected: {error}')
            return
        self._report(self.planner.set_obstacle_grid(grid, self.now()))

    def on_pedestrian_grid(self, message: OccupancyGrid) -> None:
        try:
            grid = grid_from_message(message)
        except ValueError as error:
            self.planner.report_input_error(f'pedestrian grid rejected: {error}')
            self._report(f'pedestrian grid rejected: {error}')
            return
        self._report(self.planner.set_pedestrian_grid(grid, self.now()))

    def on_scan(self, message: LaserScan) -> None:
        problem = None
        if message.header.frame_id != self.config.scan_frame:
            problem = (f'scan rejected: frame {message.header.frame_id!r} is not '
                       f'{self.config.scan_frame!r}')
        else:
            try:
                points = scan_points(np.asarray(message.ranges, dtype=np.float64),
                                     message.angle_min, message.angle_increment,
                                     message.range_min, message.range_max, self.config)
            except ValueError as error:
                problem = f'scan rejected: {error}'
        if problem:
            self.planner.report_input_error(problem)
            self._report(problem)
            return
        scan = Scan(stamp_to_seconds(message.header.stamp), points)
        self._report(self.planner.set_scan(scan, self.now()))

    # ----------------------------------------------------------------------------- outputs
    def on_timer(self) -> None:
        now = self.now()
        started = time.perf_counter()
        output = self.planner.step(now)
        self.cycle_times.append(time.perf_counter() - started)
        stamp = seconds_to_stamp(now)

        command = TwistStamped()
        command.header.stamp = stamp
        command.header.frame_id = self.config.robot_frame
        command.twist.linear.x = output.linear
        command.twist.angular.z = output.angular
        self.cmd_publisher.publish(command)
        self.path_publisher.publish(self._path_message(output, stamp))
        if output.assist is not None:
            payload = output.assist.as_dict(self.config.odom_frame)
            self.assist_publisher.publish(String(data=json.dumps(payload)))
            self.get_logger().warning(f'assist {output.assist.status}: {output.assist.reason}')
        self._publish_diagnostics(output, now, stamp)

    def _path_message(self, output: PlannerOutput, stamp) -> Path:
        path = Path()
        path.header.stamp = stamp
        path.header.frame_id = self.config.odom_frame
        for pose in output.path:
            entry = PoseStamped()
            entry.header = path.header
            entry.pose.position.x, entry.pose.position.y = pose.x, pose.y
            (entry.pose.orientation.x, entry.pose.orientation.y, entry.pose.orientation.z,
             entry.pose.orientation.w) = quaternion_from_yaw(pose.yaw)
            path.poses.append(entry)
        return path

    def _publish_diagnostics(self, output: PlannerOutput, now: float, stamp) -> None:
        last_state, last_reason, last_time = self.last_diagnostics
        changed = (output.state, output.reason) != (last_state, last_reason)
        if not changed and now - last_time < DIAGNOSTICS_PERIOD and now >= last_time:
            return
        self.last_diagnostics = (output.state, output.reason, now)
        cycle_ms = np.array(self.cycle_times) * 1e3
        values = {'state': output.state, 'reason': output.reason,
                  'linear': output.linear, 'angular': output.angular,
                  'cycle_time_ms': float(cycle_ms[-1]),
                  'cycle_time_median_ms': float(np.median(cycle_ms)),
                  'cycle_time_p99_ms': float(np.percentile(cycle_ms, 99)),
                  'assist_requested': self.planner.assist_active, **output.values}
        status = diagnostic_status('planner', 'planner', output.level,
                                   f'{output.state}: {output.reason}', values)
        self.diagnostics_publisher.publish(diagnostic_array(stamp, status))


def main(args: list[str] | None = None) -> int:
    return run_node(PlannerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

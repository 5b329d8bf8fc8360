"""ROS 2 node around the planner core: parameters, QoS, message conversion and the timer.

Its callbacks only store what they get; the timer plans and publishes. So in lockstep
(``lockstep:=true``, lockstep_ros.LockstepNode) the planner takes a step only for its timer,
with every message released since handed over first, and a new episode (the replay's next
bag) starts from a fresh core.
"""
from __future__ import annotations

import json
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry as OdometryMsg, Path
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from sidewalk_robot.lockstep_ros import LockstepNode
from sidewalk_robot.planning.assist import parse_assist_response
from sidewalk_robot.planning.crossings import parse_route_crossings

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

ASSIST_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Latched like LATCHED_QOS, but deep enough that two changes in one cycle (an approval
expiring and the question asked again) both reach every subscriber."""


def pose_from_message(pose) -> Pose2D:
    q = pose.orientation
    return Pose2D(pose.position.x, pose.position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))


def grid_from_message(message: OccupancyGrid) -> LocalGrid:
    info = message.info
    return LocalGrid.from_occupancy(
        np.asarray(message.data, dtype=np.int16), info.width, info.height, info.resolution,
        pose_from_message(info.origin), stamp_to_seconds(message.header.stamp),
        message.header.frame_id)


class PlannerNode(LockstepNode):
    LOCKSTEP_WAKING_TOPICS = ()

    def __init__(self) -> None:
        super().__init__('planner')
        self.config = declare_config(self, PlannerConfig)
        self.reset_for_new_episode()
        self.cmd_publisher = self.create_publisher(TwistStamped, 'cmd_vel_nav', COMMAND_QOS)
        self.path_publisher = self.create_publisher(Path, 'planning/path', 10)
        self.assist_publisher = self.create_publisher(String, 'operator/assist_request',
                                                      ASSIST_QOS)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # RViz's 2D Goal Pose, Foxglove and `ros2 topic pub` publish volatile; a mission
        # executive may latch its goal before the planner starts: both must reach the planner,
        # and a publisher's older goal arriving late through another subscription must not
        # replace its newer one.
        subscribe_from_any_publisher(self, PoseStamped, 'goal_pose', self.on_goal,
                                     newest_only=True)
        subscribe_from_any_publisher(self, Path, 'route', self.on_route, newest_only=True)
        self.create_subscription(OdometryMsg, 'odom', self.on_odometry, SENSOR_QOS)
        self.create_subscription(OccupancyGrid, 'perception/obstacle_grid', self.on_obstacle_grid,
                                 COMMAND_QOS)
        self.create_subscription(OccupancyGrid, 'perception/pedestrian_grid',
                                 self.on_pedestrian_grid, COMMAND_QOS)
        if self.config.use_scan:
            self.create_subscription(LaserScan, 'scan', self.on_scan, SENSOR_QOS)
        # The operator's side (docs/operations.md): crossings of the route, answers, manual
        # driving, and the health monitor's verdict on the learned model.
        subscribe_from_any_publisher(self, String, 'route_crossings', self.on_route_crossings,
                                     newest_only=True)
        subscribe_from_any_publisher(self, String, 'operator/assist_response',
                                     self.on_assist_response)
        subscribe_from_any_publisher(self, Bool, 'operator/manual_mode', self.on_manual_mode,
                                     newest_only=True)
        self.create_subscription(TwistStamped, 'operator/manual_cmd', self.on_manual_command,
                                 COMMAND_QOS)
        self.create_subscription(DiagnosticStatus, 'monitoring/model_health',
                                 self.on_model_health, LATCHED_QOS)
        self.create_timer(1.0 / self.config.control_rate, self.on_timer)
        self.get_logger().info(f'planner ready, {self.planner.local_planner.rollout_count} '
                               f'rollouts at {self.config.control_rate:.0f} Hz')

    def reset_for_new_episode(self) -> None:
        self.planner = Planner(self.config)
        self.cycle_times: deque[float] = deque(maxlen=CYCLE_WINDOW)
        self.speed_cap: object = None
        self.last_diagnostics = (None, None, -1.0)

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
        error = self.planner.set_route(points, message.header.frame_id, self.now(),
                                       stamp_to_seconds(message.header.stamp))
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

    def on_route_crossings(self, message: String) -> None:
        try:
            crossings = parse_route_crossings(message.data)
        except ValueError as error:
            self.planner.report_input_error(f'route crossings rejected: {error}')
            self._report(f'route crossings rejected: {error}')
            return
        error = self.planner.set_route_crossings(crossings, self.now())
        self._report(error)
        if error is None:
            self.get_logger().info(f'{len(crossings.crossings)} crossings for the route stamped '
                                   f'{crossings.route_stamp:.3f}')

    def on_assist_response(self, message: String) -> None:
        try:
            response = parse_assist_response(message.data)
        except ValueError as error:
            self.get_logger().warning(f'assist response ignored: {error}')
            return
        ignored = self.planner.answer_assist(response, self.now())
        if ignored:
            self.get_logger().warning(ignored)
        else:
            self.get_logger().info(f'assist {response.request_id}: {response.decision} by '
                                   f'{response.operator}' + (f' ({response.note})'
                                                             if response.note else ''))

    def on_manual_mode(self, message: Bool) -> None:
        self.planner.set_manual_mode(bool(message.data), self.now())
        self.get_logger().info(f'manual driving {"on" if message.data else "off"}')

    def on_manual_command(self, message: TwistStamped) -> None:
        self._report(self.planner.set_manual_command(
            message.twist.linear.x, message.twist.angular.z,
            stamp_to_seconds(message.header.stamp), message.header.frame_id, self.now()))

    def on_model_health(self, message: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in message.values}
        try:
            health = float(values['health'])
        except (KeyError, ValueError):
            self._report(f'model health report without a "health" figure: {values}')
            return
        self._report(self.planner.set_model_health(health, message.message, self.now()))

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
        speed_cap = output.values.get('speed_cap_mps')
        # A cycle that stopped before judging the health (no odometry yet, manual driving)
        # says nothing about the cap.
        judged = 'goal_distance_m' in output.values or output.state == 'idle'
        if judged and speed_cap != self.speed_cap:
            self.get_logger().warning(f'model health degraded: speed capped at {speed_cap} m/s'
                                      if speed_cap is not None else 'speed cap lifted')
            self.speed_cap = speed_cap
        for request in output.assists:
            payload = request.as_dict(self.config.odom_frame)
            self.assist_publisher.publish(String(data=json.dumps(payload)))
            self.get_logger().warning(f'assist {request.id} {request.status}: {request.question} '
                                      f'({request.note or request.reason})')
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

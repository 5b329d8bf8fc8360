"""ROS 2 wrapper of the safety monitor: parameters, QoS, messages <-> core data, timers.

/cmd_vel is published from a steady-clock timer, so the output keeps coming even when the
inputs (or a simulated /clock) stop; a scan, e-stop or command that tightens the gate is
published at once from its callback instead of waiting for the next tick.

/safety/estop is accepted from publishers of any reliability and durability (three
subscriptions, each message handled once), and every message goes to the core in its own
callback, where a press latches on the message itself: a press released a millisecond later is
never lost. Copies taking different subscriptions can reach the callback out of order; the
publisher and sequence number passed on let a late press latch without undoing its release.
The e-stop subscriptions are created first, so in each round of the single-threaded executor
(which serves every ready subscription once, in creation order) an e-stop message is handled
before a scan or a command; their queues (depth 10) hold a press and its release while a flood
of scans keeps the node busy.

With ``lockstep:=true`` (lockstep_ros.LockstepNode) the node takes turns with the clock owner:
both timers run on simulated time at the owner's steps, so /cmd_vel comes at publish_rate per
simulated second (never skipped, however slow the machine), and a new episode (the replay's
next bag) starts from a fresh core, e-stop latch included.
"""
from __future__ import annotations

import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from sidewalk_robot.lockstep_ros import LockstepNode
from sidewalk_robot.ros_common import (COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, run_node, seconds_to_stamp,
                                       stamp_to_seconds, subscribe_from_any_publisher)
from sidewalk_robot.ros_params import declare_config
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.inputs import LaserScanData, OdometrySample, VelocityCommand
from sidewalk_robot.safety_monitor.monitor import Decision, Reason, SafetyMonitor, State

NODE_NAME = 'safety_monitor'
DIAGNOSTICS_PERIOD = 1.0
CHANGE_LOG_THROTTLE = 1.0
"""Seconds before the same state and reason is logged again."""

_LEVEL_BY_STATE = {State.CLEAR: 'OK', State.LIMIT: 'OK', State.STOP: 'WARN', State.ESTOP: 'ERROR'}


class SafetyMonitorNode(LockstepNode):
    LOCKSTEP_WAKING_TOPICS = ('safety/estop', 'cmd_vel_nav', 'scan')
    """Odometry is only stored until the next decision (lockstep)."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.config = declare_config(self, SafetyConfig)
        self.reset_for_new_episode()

        self._command_publisher = self.create_publisher(TwistStamped, 'cmd_vel', COMMAND_QOS)
        self._state_publisher = self.create_publisher(DiagnosticStatus, 'safety/state',
                                                      LATCHED_QOS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        subscribe_from_any_publisher(self, Bool, 'safety/estop', self._on_estop, with_origin=True)
        self.create_subscription(TwistStamped, 'cmd_vel_nav', self._on_command, COMMAND_QOS)
        self.create_subscription(LaserScan, 'scan', self._on_scan, SENSOR_QOS)
        self.create_subscription(Odometry, 'odom', self._on_odometry, SENSOR_QOS)
        self.create_service(Trigger, 'safety/reset', self._on_reset)

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / self.config.publish_rate, self._on_tick, clock=steady)
        self.create_timer(DIAGNOSTICS_PERIOD, self._publish_diagnostics, clock=steady)
        self._on_tick()
        heartbeat = self.config.estop_heartbeat_timeout
        self.get_logger().info(
            f'gating cmd_vel_nav -> cmd_vel at {self.config.publish_rate:.1f} Hz; '
            f'scan frame {self.config.scan_frame!r}; e-stop heartbeat '
            f'{f"timeout {heartbeat:.2f} s" if heartbeat > 0.0 else "off"}; '
            'starting in STOP until every input is valid')

    def reset_for_new_episode(self) -> None:
        self.monitor = SafetyMonitor(self.config)
        self._published: tuple[float, float] | None = None
        self._latest: Decision | None = None
        self._logged_at: dict[tuple[State, Reason], float] = {}

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Inputs ---------------------------------------------------------------------------------

    def _on_command(self, message: TwistStamped) -> None:
        now = self._now()
        self.monitor.update_command(VelocityCommand(
            stamp_to_seconds(message.header.stamp), message.twist.linear.x,
            message.twist.angular.z), now)
        self._decide(now, publish_if_tighter=True)

    def _on_scan(self, message: LaserScan) -> None:
        now = self._now()
        self.monitor.update_scan(LaserScanData(
            stamp=stamp_to_seconds(message.header.stamp), frame_id=message.header.frame_id,
            angle_min=message.angle_min, angle_max=message.angle_max,
            angle_increment=message.angle_increment,
            range_min=message.range_min, range_max=message.range_max,
            ranges=np.asarray(message.ranges, dtype=float)), now)
        self._decide(now, publish_if_tighter=True)

    def _on_odometry(self, message: Odometry) -> None:
        twist = message.twist.twist
        self.monitor.update_odometry(OdometrySample(
            stamp_to_seconds(message.header.stamp), twist.linear.x, twist.angular.z), self._now())

    def _on_estop(self, message: Bool, origin: tuple[bytes, int]) -> None:
        now = self._now()
        publisher, sequence = origin
        self.monitor.set_estop(bool(message.data), now, publisher, sequence)
        self._decide(now, publish_if_tighter=True)

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        result = self.monitor.request_reset(self._now())
        response.success, response.message = result.success, result.message
        if result.success:
            self.get_logger().info(f'/safety/reset: {result.message}')
        else:
            self.get_logger().warning(f'/safety/reset: {result.message}')
        return response

    # Outputs --------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        self._decide(self._now(), publish_if_tighter=False)

    def _decide(self, now: float, *, publish_if_tighter: bool) -> None:
        decision = self.monitor.decide(now)
        self._latest = decision
        if decision.changed:
            self._log_change(decision)
        if not publish_if_tighter or self._tightens(decision):
            self._publish(decision)

    def _tightens(self, decision: Decision) -> bool:
        if self._published is None:
            return True
        linear, angular = self._published
        return (abs(decision.linear) < abs(linear) or abs(decision.angular) < abs(angular)
                or decision.linear * linear < 0.0 or decision.angular * angular < 0.0)

    def _publish(self, decision: Decision) -> None:
        command = TwistStamped()
        command.header.stamp = seconds_to_stamp(decision.stamp)
        command.header.frame_id = self.config.robot_frame
        command.twist.linear.x = decision.linear
        command.twist.angular.z = decision.angular
        self._command_publisher.publish(command)
        self._published = (decision.linear, decision.angular)
        self._state_publisher.publish(self._state_status(decision))

    def _state_status(self, decision: Decision) -> DiagnosticStatus:
        return diagnostic_status(
            NODE_NAME, NODE_NAME, _LEVEL_BY_STATE[decision.state], decision.detail,
            {'state': decision.state.value, 'reason': decision.reason.value,
             'allowed_linear_speed': decision.allowed_linear_speed,
             'nearest_obstacle_m': decision.nearest_obstacle_m,
             'path_clearance_m': decision.path_clearance_m,
             'path_coverage': decision.path_coverage,
             'closing_speed_mps': decision.closing_speed_mps})

    def _log_change(self, decision: Decision) -> None:
        """One line per change; the same state and reason again within the throttle period
        (an obstacle flickering at the edge of a zone) is not repeated."""
        key = (decision.state, decision.reason)
        now = time.monotonic()
        if now - self._logged_at.get(key, -math.inf) < CHANGE_LOG_THROTTLE:
            return
        self._logged_at[key] = now
        line = f'{decision.state.value} ({decision.reason.value}): {decision.detail}'
        if decision.state is State.CLEAR:
            self.get_logger().info(line)
        else:
            self.get_logger().warning(line)

    def _publish_diagnostics(self) -> None:
        decision = self._latest
        if decision is None:
            return
        values: dict[str, object] = {'state': decision.state.value,
                                     'reason': decision.reason.value}
        values.update({f'entered.{reason.value}': self.monitor.counts[reason.value]
                       for reason in Reason})
        status = diagnostic_status(f'{NODE_NAME}: gate', NODE_NAME,
                                   _LEVEL_BY_STATE[decision.state], decision.detail, values)
        self._diagnostics_publisher.publish(
            diagnostic_array(self.get_clock().now().to_msg(), status))


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyMonitorNode, args)

"""Fault injector node: sits between producers and consumers and corrupts what passes.

For each link a scenario's faults need, the launch files rename the producer's output topic to
``<input_prefix>/<topic>`` (for example fault_injector/in/scan) and this node republishes on the
normal topic, healthy or faulty as ``FaultInjectorCore`` decides. Topics are relative, so the
injector works in the stack's namespace. It never touches the safety
monitor: the monitor sees the faulty world exactly as it would see a real failure.
"""
from __future__ import annotations

import array
import json

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, LaserScan

from sidewalk_robot.lockstep_ros import LockstepNode
from sidewalk_robot.ros_common import (COMMAND_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, run_node, stamp_to_seconds,
                                       subscribe_from_any_publisher)
from sidewalk_robot.ros_params import declare_config
from sidewalk_robot.system.faults import (LINK_TOPICS, FaultInjectorConfig, FaultInjectorCore,
                                          injector_input, parse_faults)

_LINK_TYPES: dict[str, tuple[type, QoSProfile]] = {
    'obstacle_grid': (OccupancyGrid, COMMAND_QOS),
    'pedestrian_grid': (OccupancyGrid, COMMAND_QOS),
    'camera_image': (Image, SENSOR_QOS),
    'scan': (LaserScan, SENSOR_QOS),
    'odom': (Odometry, SENSOR_QOS),
    'cmd_vel_nav': (TwistStamped, COMMAND_QOS),
}


class FaultInjectorNode(LockstepNode):
    """In lockstep (``lockstep:=true``) it passes each message on at its step."""

    def __init__(self) -> None:
        super().__init__('fault_injector')
        self._config = declare_config(self, FaultInjectorConfig)
        try:
            entries = json.loads(self._config.faults)
        except json.JSONDecodeError as error:
            raise ValueError(f'parameter "faults" is not valid JSON: {error}') from error
        if not isinstance(entries, list):
            raise ValueError('parameter "faults" must be a JSON list')
        self._core: FaultInjectorCore = FaultInjectorCore(self._config, parse_faults(entries))
        self._goal_time: float | None = None
        self._counts: dict[str, int] = {}
        self._link_publishers = {}
        for link in self._core.links:
            message_type, qos = _LINK_TYPES[link]
            self._link_publishers[link] = self.create_publisher(message_type, LINK_TOPICS[link],
                                                                qos)
            self.create_subscription(message_type, injector_input(self._config.input_prefix, link),
                                     lambda message, link=link: self._on_message(link, message),
                                     qos)
        # the mission starts with a goal or a route, whichever is issued first
        subscribe_from_any_publisher(self, PoseStamped, 'goal_pose', self._on_task)
        subscribe_from_any_publisher(self, Path, 'route', self._on_task)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if 'cmd_vel_nav' in self._core.links:
            self.create_timer(1.0 / self._config.command_rate_hz, self._publish_override)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f'faults: {[f.as_dict() for f in self._core.faults]}; links: {self._core.links}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _mission_time(self) -> float | None:
        return None if self._goal_time is None else self._now() - self._goal_time

    def _on_task(self, task: PoseStamped | Path) -> None:
        if self._goal_time is not None:
            return
        stamp = stamp_to_seconds(task.header.stamp)
        self._goal_time = stamp if stamp > 0.0 else self._now()
        self.get_logger().info(f'mission started at t={self._goal_time:.2f} s')

    def _count(self, what: str) -> None:
        self._counts[what] = self._counts.get(what, 0) + 1

    def _on_message(self, link: str, message) -> None:
        mission_time = self._mission_time()
        if link in ('obstacle_grid', 'pedestrian_grid'):
            cells = np.frombuffer(array.array('b', message.data).tobytes(), dtype=np.int8)
            changed = self._core.grid(link, mission_time, cells, int(message.info.width))
            if changed is not cells:
                message.data = array.array('b', changed.astype(np.int8).tobytes())
                self._count(f'{link}_corrupted')
            self._link_publishers[link].publish(message)
            return
        if link == 'cmd_vel_nav':
            if self._core.override_command(mission_time) is None:
                self._link_publishers[link].publish(message)
            else:
                self._count('planner_commands_replaced')
            return
        forwarded = self._core.message(link, mission_time, message)
        if forwarded is None:
            self._count(f'{link}_dropped')
            return
        if forwarded is not message:
            self._count(f'{link}_held')
            if link == 'camera_image':
                # a frozen camera keeps stamping the stale buffer with the current time
                forwarded.header.stamp = message.header.stamp
        self._link_publishers[link].publish(forwarded)

    def _publish_override(self) -> None:
        command = self._core.override_command(self._mission_time())
        if command is None:
            return
        twist = TwistStamped()
        twist.header.stamp = self.get_clock().now().to_msg()
        twist.header.frame_id = 'base_link'
        twist.twist.linear.x, twist.twist.angular.z = command
        self._link_publishers['cmd_vel_nav'].publish(twist)

    def _publish_diagnostics(self) -> None:
        active = [fault.type for fault in self._core.active_faults(self._mission_time())]
        level = 'WARN' if active else 'OK'
        status = diagnostic_status(
            'fault_injector', 'sidewalk_robot', level,
            f'injecting {", ".join(active)}' if active else 'no fault active',
            {'active_faults': ','.join(active), 'links': ','.join(self._core.links),
             **self._counts})
        self._diagnostics.publish(diagnostic_array(self.get_clock().now().to_msg(), status))


def main(args: list[str] | None = None) -> int:
    return run_node(FaultInjectorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

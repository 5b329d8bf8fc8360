"""ROS 2 side of the operator console: topics in, operator topics out, the web server beside.

The web server runs in a thread of its own (operations/web.py); this node subscribes to what
the page shows, hands it over, and carries out the commands the console core accepted. Its
only publishers are the operator topics and the e-stop, so nothing on the page can publish
anything else (test/node/test_operator_node.py checks the list).
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from sidewalk_robot.operations.config import OperatorConfig
from sidewalk_robot.operations.console import AuditLog, ConsoleCore, Outcome, Requester
from sidewalk_robot.operations.levels import level_name
from sidewalk_robot.operations.overlay import GridLayer, draw_overlay, encode_jpeg
from sidewalk_robot.operations.security import load_token_digest
from sidewalk_robot.operations.web import ConsoleServer
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry, Intrinsics
from sidewalk_robot.ros_common import (COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, image_to_array,
                                       run_node, stamp_to_seconds, subscribe_from_any_publisher)
from sidewalk_robot.ros_params import declare_config

NODE_NAME = 'operator'
ANSWER_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ACTIONS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
OPERATOR_PUBLICATIONS = ('safety/estop', 'operator/assist_response', 'operator/manual_mode',
                         'operator/manual_cmd', 'operator/actions')
"""Every topic this node publishes (besides rclpy's own /rosout and /parameter_events)."""


def _yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _grid_layer(message: OccupancyGrid) -> GridLayer:
    info = message.info
    geometry = GridGeometry(info.resolution, info.width, info.height,
                            info.origin.position.x, info.origin.position.y)
    values = np.asarray(message.data, dtype=np.int16)
    if values.size != info.width * info.height:
        raise ValueError(f'grid data has {values.size} cells, not {info.width}x{info.height}')
    return GridLayer(geometry, values, message.header.frame_id)


class OperatorNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__(NODE_NAME, **node_options)
        self.config = declare_config(self, OperatorConfig)
        config = self.config
        digest = load_token_digest(config.token_file) if config.needs_token else None

        self._estop = self.create_publisher(Bool, 'safety/estop', LATCHED_QOS)
        self._answers = self.create_publisher(String, 'operator/assist_response', ANSWER_QOS)
        self._manual_mode = self.create_publisher(Bool, 'operator/manual_mode', LATCHED_QOS)
        self._manual_cmd = self.create_publisher(TwistStamped, 'operator/manual_cmd', COMMAND_QOS)
        self._actions = self.create_publisher(String, 'operator/actions', ACTIONS_QOS)
        self._reset = self.create_client(Trigger, 'safety/reset')

        audit = AuditLog(config.audit_log, config.recent_actions,
                         listener=lambda line: self._actions.publish(String(data=line)))
        self.core = ConsoleCore(config, audit, digest)

        self._image_sent_at = -math.inf
        self._intrinsics: Intrinsics | None = None
        self._obstacles: GridLayer | None = None
        self._pedestrians: GridLayer | None = None
        self._frame_problem = ''

        self.create_subscription(Image, 'camera/image_raw', self._on_image, SENSOR_QOS)
        self.create_subscription(CameraInfo, 'camera/camera_info', self._on_camera_info,
                                 SENSOR_QOS)
        self.create_subscription(OccupancyGrid, 'perception/obstacle_grid',
                                 lambda m: self._on_grid(m, 'obstacles'), COMMAND_QOS)
        self.create_subscription(OccupancyGrid, 'perception/pedestrian_grid',
                                 lambda m: self._on_grid(m, 'pedestrians'), COMMAND_QOS)
        self.create_subscription(DiagnosticStatus, 'safety/state', self._on_safety, LATCHED_QOS)
        self.create_subscription(DiagnosticStatus, 'monitoring/model_health', self._on_health,
                                 LATCHED_QOS)
        self.create_subscription(String, 'operator/assist_request', self._on_request,
                                 LATCHED_QOS)
        self.create_subscription(Odometry, 'odom', self._on_odometry, SENSOR_QOS)
        subscribe_from_any_publisher(self, Path, 'route', self._on_route)
        self.create_subscription(Path, 'planning/path', self._on_path, 10)

        self.server = ConsoleServer(self.core, self, config.host, config.port)
        try:
            port = self.server.start()
        except OSError as error:
            audit.close()
            raise ValueError(str(error)) from error
        self.core.port = port
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / config.state_rate, self._send_state, clock=steady)
        access = ('token required' if config.needs_token
                  else 'no token: this machine only')
        self.get_logger().info(f'operator console on http://{_url_host(config.host)}:{port}/ '
                               f'({access}); audit log {audit.path}')

    # --------------------------------------------------------------------------- Backend
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text)

    async def execute(self, outcome: Outcome, requester: Requester,
                      payload: dict[str, Any]) -> dict[str, Any]:
        """Carry out an accepted command (called on the web server's thread)."""
        result: dict[str, Any] = {'status': 200, 'record': outcome.record}
        for effect in outcome.effects:
            if effect.kind == 'estop':
                self._estop.publish(Bool(data=bool(effect.value)))
            elif effect.kind == 'assist_response':
                self._answers.publish(String(data=json.dumps(effect.value)))
            elif effect.kind == 'manual_mode':
                self._manual_mode.publish(Bool(data=bool(effect.value)))
            elif effect.kind == 'manual_cmd':
                self._manual_cmd.publish(self._twist(*effect.value))
            elif effect.kind == 'reset':
                success, message = await self._call_reset()
                record = self.core.reset_answered(requester, self.now(),
                                                  str(payload.get('operator', '')),
                                                  str(payload.get('note', '')), success, message)
                result.update(status=200 if success else 409, message=message,
                              reset={'success': success, 'message': message}, record=record)
        self._send_state()
        return result

    async def _call_reset(self) -> tuple[bool | None, str]:
        if not self._reset.service_is_ready():
            return None, 'the safety monitor\'s reset service is not available'
        loop = asyncio.get_running_loop()
        answered: asyncio.Future = loop.create_future()

        def on_done(future) -> None:
            if not answered.done():
                loop.call_soon_threadsafe(_settle, answered, future)

        self._reset.call_async(Trigger.Request()).add_done_callback(on_done)
        try:
            response = await asyncio.wait_for(answered, self.config.reset_timeout)
        except asyncio.TimeoutError:
            return None, f'the safety monitor did not answer within {self.config.reset_timeout:g} s'
        return bool(response.success), str(response.message)

    def _twist(self, linear: float, angular: float) -> TwistStamped:
        command = TwistStamped()
        command.header.stamp = self.get_clock().now().to_msg()
        command.header.frame_id = self.config.robot_frame
        command.twist.linear.x = float(linear)
        command.twist.angular.z = float(angular)
        return command

    # --------------------------------------------------------------------------- inputs
    def _on_image(self, message: Image) -> None:
        # Sent on arrival (not from a timer) so the picture is as fresh as it can be; frames
        # coming faster than camera_rate are skipped.
        now = time.monotonic()
        if now - self._image_sent_at < 1.0 / self.config.camera_rate:
            return
        if self._send_camera(message):
            self._image_sent_at = now

    def _on_camera_info(self, message: CameraInfo) -> None:
        k = message.k
        candidate = Intrinsics(k[0], k[4], k[2], k[5], message.width, message.height)
        try:
            candidate.validate()
        except ValueError as error:
            self.get_logger().warning(f'camera_info ignored: {error}', throttle_duration_sec=10.0)
            return
        self._intrinsics = candidate

    def _on_grid(self, message: OccupancyGrid, which: str) -> None:
        if message.header.frame_id != self.config.robot_frame:
            self.get_logger().warning(f'{which} grid in {message.header.frame_id!r}, not '
                                      f'{self.config.robot_frame!r}: not drawn',
                                      throttle_duration_sec=10.0)
            return
        try:
            layer = _grid_layer(message)
        except ValueError as error:
            self.get_logger().warning(f'{which} grid ignored: {error}', throttle_duration_sec=10.0)
            return
        setattr(self, f'_{which}', layer)

    def _on_safety(self, message: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in message.values}
        before = (self.core.safety.get('state'), self.core.safety.get('reason'))
        self.core.on_safety_state(level_name(message.level), message.message, values)
        # The monitor publishes its state with every command (20 Hz): the page hears of a
        # change at once and of the rest with the periodic state.
        if (values.get('state'), values.get('reason')) != before:
            self._send_state()

    def _on_health(self, message: DiagnosticStatus) -> None:
        self.core.on_model_health(level_name(message.level),
                                  message.name, message.message,
                                  {kv.key: kv.value for kv in message.values})
        self._send_state()

    def _on_request(self, message: String) -> None:
        if self.core.on_assist_request(message.data, self.now()) is None:
            self.get_logger().warning(f'unreadable assist request: {message.data[:200]!r}')
        self._send_state()

    def _on_odometry(self, message: Odometry) -> None:
        pose = message.pose.pose
        self.core.on_odometry(message.header.frame_id, pose.position.x, pose.position.y,
                              _yaw(pose.orientation))

    def _on_route(self, message: Path) -> None:
        self.core.on_route([(p.pose.position.x, p.pose.position.y) for p in message.poses])

    def _on_path(self, message: Path) -> None:
        self.core.on_path([(p.pose.position.x, p.pose.position.y) for p in message.poses])

    # --------------------------------------------------------------------------- outputs
    def _send_state(self) -> None:
        if self.server.client_count:
            self.server.publish_state(self.core.snapshot(self.now()))

    def _send_camera(self, message: Image) -> bool:
        """Overlay, encode and hand a frame to the open pages; False if none is open."""
        if not self.server.client_count:
            return False
        try:
            pixels = image_to_array(message, 'rgb8')
            camera = CameraModel(self._camera_intrinsics(message.width, message.height),
                                 self.config.extrinsics())
            view = draw_overlay(pixels, camera, self._obstacles, self._pedestrians,
                                self.config.overlay_threshold)
            jpeg = encode_jpeg(view, self.config.jpeg_quality)
        except ValueError as error:
            if str(error) != self._frame_problem:
                self.get_logger().warning(f'camera frame not shown: {error}')
            self._frame_problem = str(error)
            return True
        self._frame_problem = ''
        self.server.publish_camera(jpeg, stamp_to_seconds(message.header.stamp), message.width,
                                   message.height)
        return True

    def _camera_intrinsics(self, width: int, height: int) -> Intrinsics:
        known = self._intrinsics
        if known is not None and (known.width, known.height) == (width, height):
            return known
        return self.config.default_intrinsics().scaled_to(width, height)

    def destroy_node(self) -> None:
        self.server.stop()
        self.core.audit.close()
        super().destroy_node()


def _settle(answered: asyncio.Future, future) -> None:
    if answered.done():
        return
    error = future.exception()
    if error is not None:
        answered.set_exception(error)
    else:
        answered.set_result(future.result())


def _url_host(host: str) -> str:
    return f'[{host}]' if ':' in host else host


def main(args: list[str] | None = None) -> int:
    return run_node(OperatorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

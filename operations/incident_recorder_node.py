"""ROS 2 side of the incident recorder: a ring buffer of the stack's topics, written as an
incident (MCAP bag + incident.json) when something happens worth learning from.

A node of its own, not part of the operator console: it must record whether or not anyone has
the console open (vetoes in an unattended run are the most useful data), it holds tens of MB
of camera frames that have no business in a process serving web pages, and the console's
restriction to operator publishers stays easy to check.
"""
from __future__ import annotations

import json
import math
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from sidewalk_robot import share_directory
from sidewalk_robot.diagnostic_names import PERCEPTION_STATUS_TITLE, sibling_status
from sidewalk_robot.lockstep_ros import LockstepObserver
from sidewalk_robot.operations.config import IncidentRecorderConfig
from sidewalk_robot.operations.incidents import (BAG_FOLDER, INCIDENT_FILE, NS, EventDetector,
                                                 IncidentScheduler, PendingIncident, RingBuffer,
                                                 folder_bytes, incident_name, incident_record,
                                                 remove_partial)
from sidewalk_robot.operations.levels import level_name
from sidewalk_robot.replay.bag_io import BagError, BagWriter
from sidewalk_robot.replay.recorder import offered_qos_record, subscription_qos
from sidewalk_robot.replay.samples import message_class
from sidewalk_robot.ros_common import (LATCHED_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, run_node)
from sidewalk_robot.ros_params import declare_config

NODE_NAME = 'incident_recorder'
DISCOVERY_PERIOD_S = 1.0
DIAGNOSTICS_PERIOD_S = 1.0
ACTIONS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
SIM_STATUS = 'sim'


def _yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


class IncidentRecorderNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__(NODE_NAME, **node_options)
        self.config = declare_config(self, IncidentRecorderConfig)
        config = self.config
        self.folder = Path(config.folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.buffer = RingBuffer(config.buffer_seconds, int(config.max_buffer_mb * 1e6))
        self.detector = EventDetector(config.veto_reasons)
        self.scheduler = IncidentScheduler(config.post_event_seconds, config.cooldown_seconds)
        self._lock = threading.Lock()
        self._wanted = {self.resolve_topic_name(topic) for topic in config.topics}
        self._recorded: dict[str, tuple[str, Any, list]] = {}
        """topic -> (type, subscription, offered QoS records)."""
        self._pose: dict[str, Any] = {}
        self._model_version: str | None = None
        self._world: str | None = None
        self._writers: list[threading.Thread] = []
        self.written: list[Path] = []
        self.problems: list[str] = []

        self.create_subscription(DiagnosticStatus, 'safety/state', self._on_safety, LATCHED_QOS)
        self.create_subscription(DiagnosticStatus, 'monitoring/model_health', self._on_health,
                                 LATCHED_QOS)
        self.create_subscription(String, 'operator/actions', self._on_action, ACTIONS_QOS)
        self.create_subscription(String, 'operator/assist_request', self._on_request,
                                 LATCHED_QOS)
        self.create_subscription(Odometry, 'odom', self._on_odometry, SENSOR_QOS)
        self.create_subscription(PoseStamped, 'sim/ground_truth/robot_pose',
                                 self._on_true_pose, 10)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics, clock=steady)
        self.create_timer(DISCOVERY_PERIOD_S, self._discover, clock=steady)
        self.create_timer(0.2, self._write_due, clock=steady)
        if config.lockstep:
            LockstepObserver(self, lambda: self._wanted,
                             lambda: [subscription for _, subscription, _
                                      in self._recorded.values()])
        self._discover()
        self.get_logger().info(
            f'keeping {config.buffer_seconds:g} s of {len(self._wanted)} topics; incidents go '
            f'to {self.folder} (cooldown {config.cooldown_seconds:g} s)')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / NS

    # --------------------------------------------------------------------------- ring buffer
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic not in self._wanted:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            known = self._recorded.get(topic)
            qos = subscription_qos(publishers)
            if known is not None:
                if _same_policies(known[1].qos_profile, qos):
                    continue
                # A publisher with weaker QoS joined (a volatile one next to latched ones):
                # subscribe again so that it is recorded too.
                self.destroy_subscription(known[1])
            try:
                message_type = message_class(types[0])
            except (ImportError, AttributeError, ValueError) as error:
                self._problem(f'{topic}: cannot record type {types[0]}: {error}')
                self._wanted.discard(topic)
                continue
            subscription = self.create_subscription(
                message_type, topic, lambda data, topic=topic: self._keep(topic, data), qos,
                raw=True)
            self._recorded[topic] = (types[0], subscription,
                                     [offered_qos_record(p.qos_profile) for p in publishers])

    def _keep(self, topic: str, data: bytes) -> None:
        with self._lock:
            self.buffer.add(topic, self.get_clock().now().nanoseconds, data)

    # --------------------------------------------------------------------------- context
    def _on_odometry(self, message: Odometry) -> None:
        pose = message.pose.pose
        self._pose['odom'] = {'frame_id': message.header.frame_id, 'x': pose.position.x,
                              'y': pose.position.y, 'yaw': _yaw(pose.orientation)}

    def _on_true_pose(self, message: PoseStamped) -> None:
        pose = message.pose
        self._pose['world'] = {'frame_id': message.header.frame_id, 'x': pose.position.x,
                               'y': pose.position.y, 'yaw': _yaw(pose.orientation)}

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            values = {kv.key: kv.value for kv in status.values}
            own = sibling_status(self.get_namespace(), status.name)
            if own is not None and own.endswith(PERCEPTION_STATUS_TITLE) \
                    and values.get('model_version'):
                self._model_version = values['model_version']
            elif status.name == SIM_STATUS and values.get('world'):
                self._world = values['world']

    # --------------------------------------------------------------------------- events
    def _on_safety(self, message: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in message.values}
        self._event(self.detector.on_safety_state(self.resolve_topic_name('safety/state'),
                                                  values, message.message, self._now()))

    def _on_health(self, message: DiagnosticStatus) -> None:
        self._event(self.detector.on_model_health(
            self.resolve_topic_name('monitoring/model_health'), level_name(message.level),
            message.message, {kv.key: kv.value for kv in message.values}, self._now()))

    def _on_action(self, message: String) -> None:
        record = self._json(message.data, 'operator/actions')
        if record is not None:
            self._event(self.detector.on_operator_action(
                self.resolve_topic_name('operator/actions'), record, self._now()))

    def _on_request(self, message: String) -> None:
        request = self._json(message.data, 'operator/assist_request')
        if request is not None:
            self._event(self.detector.on_assist_request(
                self.resolve_topic_name('operator/assist_request'), request, self._now()))

    def _json(self, data: str, topic: str) -> dict[str, Any] | None:
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self._problem(f'{topic}: not a JSON object: {data[:100]!r}')
            return None
        return value

    def _event(self, event) -> None:
        if event is None:
            return
        with self._lock:
            opened = self.scheduler.on_event(event, time.monotonic())
            if opened:
                self.scheduler.pending[-1].context = {
                    'pose': {key: dict(value) for key, value in self._pose.items()},
                    'model': self._model(), 'world': self._world}
        if opened:
            self.get_logger().warning(f'incident: {event.summary}')
        else:
            self.get_logger().info(f'within the cooldown, joins the last incident: '
                                   f'{event.summary}')

    # --------------------------------------------------------------------------- writing
    def _write_due(self, *, everything: bool = False) -> None:
        with self._lock:
            due = self.scheduler.due(self._now(), time.monotonic(), everything=everything)
            snapshots = [(pending, self.buffer.window(
                int((pending.event.time - self.config.buffer_seconds) * NS),
                int(pending.end_time * NS))) for pending in due]
            recorded = {topic: (msgtype, qos) for topic, (msgtype, _, qos)
                        in self._recorded.items()}
        for pending, messages in snapshots:
            writer = threading.Thread(target=self._write, args=(pending, messages, recorded),
                                      name='incident-writer', daemon=False)
            writer.start()
            self._writers.append(writer)
        self._writers = [w for w in self._writers if w.is_alive()]

    def _write(self, pending: PendingIncident, messages: list[tuple[str, int, bytes]],
               recorded: dict[str, tuple[str, list]]) -> None:
        used = folder_bytes(self.folder)
        if used > self.config.max_folder_mb * 1e6:
            self._problem(f'incident not written: {self.folder} holds {used / 1e6:.0f} MB, more '
                          f'than max_folder_mb ({self.config.max_folder_mb:g}); '
                          f'event: {pending.event.summary}')
            return
        created = datetime.now(timezone.utc)
        name = incident_name(pending.event, created, self.folder)
        path = self.folder / name
        try:
            path.mkdir(parents=True)
            writer = BagWriter(path / BAG_FOLDER, compress=self.config.compress)
            try:
                for topic in sorted({topic for topic, _, _ in messages}):
                    msgtype, qos = recorded[topic]
                    writer.add_topic(topic, msgtype, qos)
                for topic, stamp_ns, data in messages:
                    writer.write(topic, stamp_ns, data)
                counts = writer.message_counts
            finally:
                writer.close()
            times = [stamp for _, stamp, _ in messages] or [int(pending.event.time * NS)]
            record = incident_record(
                name, pending, created, window=(min(times) / NS, max(times) / NS),
                topic_counts=counts, bag_bytes=sum(
                    p.stat().st_size for p in (path / BAG_FOLDER).iterdir()),
                settings={'buffer_seconds': self.config.buffer_seconds,
                          'post_event_seconds': self.config.post_event_seconds,
                          'cooldown_seconds': self.config.cooldown_seconds})
            (path / INCIDENT_FILE).write_text(json.dumps(record, indent=2, default=str) + '\n',
                                              encoding='utf-8')
        except (BagError, OSError, KeyError) as error:
            remove_partial(path)
            self._problem(f'incident {name} not written: {error}')
            return
        self.written.append(path)
        self.get_logger().info(f'incident written: {path} ({len(messages)} messages, '
                               f'{record["bag_bytes"] / 1e6:.1f} MB)')

    def _publish_diagnostics(self) -> None:
        with self._lock:
            values = {'buffered_mb': self.buffer.bytes / 1e6,
                      'dropped_for_memory': self.buffer.dropped_for_memory,
                      'recorded_topics': len(self._recorded),
                      'pending_incidents': len(self.scheduler.pending),
                      'events_in_cooldown': self.scheduler.suppressed,
                      'incidents_written': len(self.written), 'problems': len(self.problems),
                      'last_problem': self.problems[-1] if self.problems else ''}
        level = 'ERROR' if self.problems else 'OK'
        status = diagnostic_status(NODE_NAME, NODE_NAME, level,
                                   values['last_problem'] or f'{len(self.written)} incidents',
                                   values)
        self._diagnostics.publish(diagnostic_array(self.get_clock().now().to_msg(), status))

    def _model(self) -> dict[str, Any]:
        if self._model_version:
            return {'version': self._model_version, 'source': '/diagnostics'}
        return _model_from_card()

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        self.get_logger().error(text)

    def destroy_node(self) -> None:
        """Write what is pending (the run may end right after a veto), then stop."""
        self._write_due(everything=True)
        for writer in self._writers:
            writer.join(timeout=60.0)
        super().destroy_node()


def _same_policies(current, wanted) -> bool:
    return (current.reliability == wanted.reliability
            and current.durability == wanted.durability)


def _model_from_card() -> dict[str, Any]:
    """The version in the card of the model perception is configured with (no report seen)."""
    from sidewalk_robot.config import load_config
    from sidewalk_robot.perception.config import PerceptionConfig

    try:
        config = load_config(PerceptionConfig, share_directory() / 'config' / 'perception.yaml')
        card = json.loads((config.resolved_model_dir() / 'card.json').read_text())
        return {'version': card.get('version'), 'source': 'card of config/perception.yaml'}
    except (OSError, ValueError) as error:
        return {'version': None, 'source': f'unknown: {error}'}


def main(args: list[str] | None = None) -> int:
    return run_node(IncidentRecorderNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

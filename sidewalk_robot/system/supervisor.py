"""The run supervisor's ROS side: watches ground truth and safety, sends the goal, records.

It lives in its own rclpy context (one per run) on simulated time, so consecutive runs of a
scenario suite in one Python process never share DDS state, and in the stack's namespace: its
topic names are relative like the stack's (only /diagnostics is global).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import OccupancyGrid, Path as PathMessage
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from sidewalk_robot.lockstep import LockstepConfig
from sidewalk_robot.lockstep_ros import Participant
from sidewalk_robot.replay.recorder import subscription_qos
from sidewalk_robot.ros_common import LATCHED_QOS, stamp_to_seconds
from sidewalk_robot.ros_env import confine_this_process
from sidewalk_robot.system.evidence import PlannerTransitions, RecentMessages, is_planner_status
from sidewalk_robot.system.metrics import Obstacle, RunMonitor
from sidewalk_robot.system.processes import ProcessSupervisor

if TYPE_CHECKING:
    from sidewalk_robot.system.runner import ScriptedOperator

GROUND_TRUTH_POSE = 'sim/ground_truth/robot_pose'
GROUND_TRUTH_OBSTACLES = 'sim/ground_truth/obstacles'
GROUND_TRUTH_CONTACTS = 'sim/ground_truth/contacts'
SAFETY_STATE = 'safety/state'
OBSTACLE_GRID = 'perception/obstacle_grid'
_WATCHED = {GROUND_TRUTH_POSE: PoseStamped, GROUND_TRUTH_OBSTACLES: MarkerArray,
            GROUND_TRUTH_CONTACTS: String, SAFETY_STATE: DiagnosticStatus,
            '/diagnostics': DiagnosticArray, OBSTACLE_GRID: OccupancyGrid}
_REQUIRED_BEFORE_GOAL = (GROUND_TRUTH_POSE, SAFETY_STATE, OBSTACLE_GRID)
_EVERY_NODE_PUBLISHES = {'/rosout', '/parameter_events'}
ASSIST_REQUEST = 'operator/assist_request'
ASSIST_RESPONSE = 'operator/assist_response'
ROUTE_CROSSINGS = 'route_crossings'
_ASSIST_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
LOCKSTEP_PERIOD_S = 0.05
"""Simulated seconds between the supervisor's own steps in a lockstep run."""
RECORDER_TAKE_PERIOD_S = 0.02
"""Wall seconds between the lockstep recorder's takes (its readers hold 100 per topic)."""


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def obstacle_from_marker(marker: Marker) -> Obstacle | None:
    """A ground-truth marker as an Obstacle (cylinders and spheres as circles, cubes as boxes)."""
    pose = marker.pose
    yaw = yaw_from_quaternion(pose.orientation.x, pose.orientation.y, pose.orientation.z,
                              pose.orientation.w)
    name = marker.text or f'{marker.ns}/{marker.id}'
    bottom_z = pose.position.z - marker.scale.z / 2.0
    if marker.type in (Marker.CYLINDER, Marker.SPHERE):
        return Obstacle(name, marker.ns, pose.position.x, pose.position.y, yaw,
                        radius=max(marker.scale.x, marker.scale.y) / 2.0, bottom_z=bottom_z)
    if marker.type == Marker.CUBE:
        return Obstacle(name, marker.ns, pose.position.x, pose.position.y, yaw,
                        length=marker.scale.x, width=marker.scale.y, bottom_z=bottom_z)
    return None


class SupervisorSession:
    """Context manager: a node on sim time that feeds ``monitor`` and optionally records."""

    def __init__(self, domain_id: int, monitor: RunMonitor, bag_dir: Path | None,
                 namespace: str = '', operator: ScriptedOperator | None = None,
                 recent_messages: RecentMessages | None = None, lockstep: bool = False) -> None:
        self._domain_id = domain_id
        self._lockstep = lockstep
        self.participant: Participant | None = None
        self.on_step: Callable[[float], bool] | None = None
        """Lockstep: called at every step with the simulated time once the mission has
        started; False ends the mission there."""
        self.mission_start: float | None = None
        self._goal_when_ready: tuple | None = None
        self._operator = operator
        self._due_answers: dict[str, float] = {}
        self.operator_events: list[str] = []
        """What the scripted operator was asked and answered, in order."""
        self._namespace = namespace
        self._monitor = monitor
        self._bag_dir = bag_dir
        self._received: dict[str, int] = {}
        self._subscriptions: dict[str, object] = {}
        self._safety = ('-', '')
        self.recorder = None
        self._recent_messages = recent_messages
        """Where the recorder writes when there is no bag_dir: the last seconds, in memory."""
        self.planner_transitions = PlannerTransitions()

    def __enter__(self) -> SupervisorSession:
        confine_this_process()  # loopback profile for this process; the domain is passed below
        self._context = Context()
        rclpy.init(context=self._context, domain_id=self._domain_id)
        self.node = Node('mission_supervisor', context=self._context,
                         namespace=self._namespace,
                         parameter_overrides=[Parameter('use_sim_time', value=True)])
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        create = self.node.create_publisher
        if self._lockstep:
            self.participant = Participant(self.node, LockstepConfig(lockstep=True))
            create = self.participant.publisher
        self._goal_publisher = create(PoseStamped, 'goal_pose', LATCHED_QOS)
        self._route_publisher = create(PathMessage, 'route', LATCHED_QOS)
        self._crossings_publisher = create(String, ROUTE_CROSSINGS, LATCHED_QOS)
        if self._operator is not None:
            self._answer_publisher = create(String, ASSIST_RESPONSE, 10)
            if self.participant is not None:
                self.participant.subscription(String, ASSIST_REQUEST, self._on_assist_request,
                                              wakes=False)
            else:
                self.node.create_subscription(String, ASSIST_REQUEST, self._on_assist_request,
                                              _ASSIST_QOS)
        if self.participant is not None:
            # Everything it watches, from the start: lockstep messages are never latched.
            for topic, message_type in _WATCHED.items():
                self._subscriptions[topic] = self.participant.subscription(
                    message_type, topic, lambda message, topic=topic: self._on(topic, message),
                    wakes=False)
            self.participant.timer(LOCKSTEP_PERIOD_S, self._lockstep_tick)
        # In lockstep the supervisor's clock moves in steps anyway: taking what the recorder's
        # readers hold every few milliseconds costs far less than a wake-up per message.
        take_period_s = RECORDER_TAKE_PERIOD_S if self._lockstep else None
        if self._bag_dir is not None:
            from sidewalk_robot.replay.recorder import BagRecorder
            self.recorder = BagRecorder(self.node, self._bag_dir, take_period_s=take_period_s)
        elif self._recent_messages is not None:
            from sidewalk_robot.replay.recorder import BagRecorder
            self.recorder = BagRecorder(self.node, self._recent_messages.path,
                                        writer=self._recent_messages,
                                        take_period_s=take_period_s)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.recorder is not None:
            self.close_bag([])
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self._context)

    # spinning and time -------------------------------------------------------------------------

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._executor.spin_once(timeout_sec=min(remaining, 0.02))
            if self.participant is None:
                self._answer_when_due()

    def _lockstep_tick(self) -> None:
        """A step of the supervisor's in a lockstep run (simulated time)."""
        self._answer_when_due()
        if self._goal_when_ready is not None and self._ready():
            goal, route, crossings = self._goal_when_ready
            self._goal_when_ready = None
            self.send_goal(goal, route, crossings)
        elif self.mission_start is not None and self.on_step is not None:
            if not self.on_step(self.sim_time()):
                self.participant.halt()

    def goal_when_ready(self, goal_xyyaw: tuple[float, float, float],
                        route_xy: Sequence[tuple[float, float]] = (),
                        crossings: Sequence[tuple[tuple[float, float],
                                                  tuple[float, float]]] = ()) -> None:
        """Lockstep: send the goal (``send_goal``) at the first step the stack is ready."""
        self._goal_when_ready = (goal_xyyaw, tuple(route_xy), tuple(crossings))

    def stop_participant(self, name: str) -> None:
        """Lockstep: ``name`` takes no step after this one (its process is being killed)."""
        self.participant.leave(name)

    def sim_time(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def safety_text(self) -> str:
        state, reason = self._safety
        return f'{state} {reason}'.strip()

    # subscriptions -----------------------------------------------------------------------------

    def _subscribe_when_published(self) -> None:
        """Subscribe to each watched topic once it has publishers, matching their QoS."""
        for topic, message_type in _WATCHED.items():
            if topic in self._subscriptions:
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if publishers:
                self._subscriptions[topic] = self.node.create_subscription(
                    message_type, topic, lambda message, topic=topic: self._on(topic, message),
                    subscription_qos(publishers))

    def _on(self, topic: str, message) -> None:
        self._received[topic] = self._received.get(topic, 0) + 1
        monitor = self._monitor
        if topic == GROUND_TRUTH_POSE:
            q = message.pose.orientation
            monitor.on_pose(stamp_to_seconds(message.header.stamp), message.pose.position.x,
                            message.pose.position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))
        elif topic == GROUND_TRUTH_OBSTACLES:
            self._on_markers(message)
        elif topic == GROUND_TRUTH_CONTACTS:
            self._on_contacts(message)
        elif topic == SAFETY_STATE:
            values = {kv.key: kv.value for kv in message.values}
            self._safety = (values.get('state', '?'), values.get('reason', ''))
            monitor.on_safety_state(self.sim_time(), *self._safety,
                                    _float_or_none(values.get('allowed_linear_speed')))
        elif topic == '/diagnostics':
            for status in message.status:
                if 'safety' in status.name:
                    monitor.on_monitor_counts({kv.key: kv.value for kv in status.values
                                               if kv.key.startswith('entered.')})
                elif is_planner_status(status.name):
                    self.planner_transitions.observe(
                        stamp_to_seconds(message.header.stamp),
                        {kv.key: kv.value for kv in status.values})

    def _on_assist_request(self, message: String) -> None:
        try:
            request = json.loads(message.data)
            request_id, kind, status = request['id'], request['kind'], request['status']
        except (ValueError, KeyError, TypeError) as error:
            self.node.get_logger().error(f'unreadable assist request {message.data!r}: {error}')
            return
        elapsed = self.sim_time() - (self._monitor.mission_start or self.sim_time())
        self.operator_events.append(f'[{elapsed:6.1f} s] planner: {kind} {status} '
                                    f'({request.get("question", "")}) {request_id}')
        if status == 'requested' and kind in self._operator.approves:
            self._due_answers[request_id] = self.sim_time() + self._operator.delay_s
        elif status != 'requested':
            self._due_answers.pop(request_id, None)

    def _answer_when_due(self) -> None:
        now = self.sim_time()
        for request_id, due in list(self._due_answers.items()):
            if now < due:
                continue
            del self._due_answers[request_id]
            self._answer_publisher.publish(String(data=json.dumps({
                'id': request_id, 'decision': 'approve', 'operator': self._operator.name,
                'note': 'unattended run: approved by the mission script'})))
            self.operator_events.append(f'{self._operator.name}: approved {request_id}')

    def _on_markers(self, message: MarkerArray) -> None:
        obstacles = []
        for marker in message.markers:
            if marker.action == Marker.DELETEALL:
                self._monitor.obstacles.clear()
                continue
            if marker.action == Marker.DELETE:
                self._monitor.obstacles.pop(marker.text or f'{marker.ns}/{marker.id}', None)
                continue
            obstacle = obstacle_from_marker(marker)
            if obstacle is not None:
                obstacles.append(obstacle)
        stamp = (stamp_to_seconds(message.markers[0].header.stamp) if message.markers
                 else self.sim_time())
        self._monitor.on_obstacles(stamp, obstacles)

    def _on_contacts(self, message: String) -> None:
        try:
            contact = json.loads(message.data)
            bodies = [str(body) for body in contact.get('bodies', [])]
            stamp = float(contact.get('time', self.sim_time()))
        except (ValueError, AttributeError, TypeError) as error:
            self.node.get_logger().error(f'unreadable contacts message {message.data!r}: {error}')
            return
        self._monitor.on_contacts(stamp, bodies)

    # the mission -------------------------------------------------------------------------------

    def wait_until_ready(self, processes: ProcessSupervisor, timeout_s: float) -> str | None:
        """Spin until the simulator, perception, planner and monitor all talk and every started
        node has its publishers up (a fault injector standing in for perception's topics must
        not make a perception node still loading its model look ready); else why not."""
        deadline = time.monotonic() + timeout_s
        expected = sorted(processes.processes)
        while time.monotonic() < deadline:
            if self.participant is None:
                self._subscribe_when_published()
            self.spin_for(0.1)
            dead = processes.unexpected_exits()
            if dead:
                label, code = next(iter(dead.items()))
                return (f'{label} exited with status {code} while starting:\n'
                        f'{processes.processes[label].log_tail(1500)}')
            if self.participant is not None:
                if self.mission_start is not None:  # every node took part in the steps
                    return None
            elif self._ready() and not self._silent_nodes(expected):
                return None
        missing = [topic for topic in _REQUIRED_BEFORE_GOAL if not self._received.get(topic)]
        unpublished = sorted(set(_WATCHED) - set(self._subscriptions))
        return (f'the stack did not come up within {timeout_s:.0f} s: nothing received on '
                f'{", ".join(missing) or "-"}; no publisher yet of '
                f'{", ".join(unpublished) or "-"}; nodes without publishers yet: '
                f'{", ".join(self._silent_nodes(expected)) or "-"}')

    def _silent_nodes(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that publish nothing beyond what every rclpy node publishes."""
        namespaces = dict(self.node.get_node_names_and_namespaces())
        silent = []
        for name in names:
            topics = set()
            if name in namespaces:
                topics = {topic for topic, _ in self.node.get_publisher_names_and_types_by_node(
                    name, namespaces[name])}
            if not topics - _EVERY_NODE_PUBLISHES:
                silent.append(name)
        return silent

    def _planner_seen(self) -> bool:
        return 'planner' in self.node.get_node_names()

    def _ready(self) -> bool:
        # In lockstep every node is up before the first step: the graph need not be asked.
        # Otherwise every watched topic must be subscribed by now (their publishers exist from
        # the start): one still undiscovered, such as the simulator's obstacles or contacts,
        # would never be subscribed, and the run would report no clearance or no collision.
        return (all(self._received.get(topic) for topic in _REQUIRED_BEFORE_GOAL)
                and self.sim_time() > 0.0
                and (self.participant is not None
                     or (self._planner_seen() and set(_WATCHED) <= set(self._subscriptions))))

    def graph_snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Publishers and subscribers (node names) of every topic: where the remaps led."""
        graph = {}
        for topic, _ in sorted(self.node.get_topic_names_and_types()):
            graph[topic] = {
                'publishers': sorted(i.node_name for i in
                                     self.node.get_publishers_info_by_topic(topic)),
                'subscribers': sorted(i.node_name for i in
                                      self.node.get_subscriptions_info_by_topic(topic))}
        return graph

    def send_goal(self, goal_xyyaw: tuple[float, float, float],
                  route_xy: Sequence[tuple[float, float]] = (),
                  crossings: Sequence[tuple[tuple[float, float], tuple[float, float]]] = ()
                  ) -> float:
        """Issue the delivery in odom; the mission starts now (sim time).

        A route with waypoints between start and goal (a corner, a detour) or with street
        crossings goes out on route, whose last point is the goal, after its crossings on
        route_crossings (stamped with the route's stamp); otherwise the goal alone on
        goal_pose. Never both: the planner takes whichever arrives last as the whole task.
        """
        now = self.node.get_clock().now().to_msg()
        if crossings:
            self._crossings_publisher.publish(String(data=json.dumps({
                'frame_id': 'odom', 'route_stamp': stamp_to_seconds(now),
                'crossings': [{'start': {'x': start[0], 'y': start[1]},
                               'end': {'x': end[0], 'y': end[1]}} for start, end in crossings]})))
        if len(route_xy) > 2 or crossings:
            route = PathMessage()
            route.header.stamp, route.header.frame_id = now, 'odom'
            for x, y in route_xy:
                pose = PoseStamped()
                pose.header = route.header
                pose.pose.position.x, pose.pose.position.y = float(x), float(y)
                pose.pose.orientation.w = 1.0
                route.poses.append(pose)
            self._route_publisher.publish(route)
        else:
            goal = PoseStamped()
            goal.header.stamp, goal.header.frame_id = now, 'odom'
            x, y, yaw = goal_xyyaw
            goal.pose.position.x, goal.pose.position.y = float(x), float(y)
            goal.pose.orientation.z, goal.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            self._goal_publisher.publish(goal)
        mission_start = stamp_to_seconds(now)
        self._monitor.start_mission(mission_start)
        self.mission_start = mission_start
        return mission_start

    def close_bag(self, notes: list[str]) -> None:
        if self.recorder is None:
            return
        recorder, self.recorder = self.recorder, None
        try:
            recorder.close()
        except Exception as error:  # a broken bag must not lose the run's summary
            notes.append(f'bag could not be finalised: {error}')
        notes.extend(f'recorder: {problem}' for problem in recorder.problems)


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None

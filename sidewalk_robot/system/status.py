"""``sidewalk-robot status``: what a running stack is doing, from its own topics.

Every node's diagnostic level, the rates of the main topics, perception's latency, the
model's health, the planner's state, the safety monitor's state and veto counts, and the open
question to the operator. On a terminal it refreshes in place (rich); otherwise, and with
``--once``, it prints plain text.

The collecting and the text are pure (``StatusBoard``); only ``watch`` touches ROS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rclpy.executors import Executor
    from rclpy.subscription import Subscription

RATE_TOPICS = ('camera/image_raw', 'scan', 'odom', 'perception/obstacle_grid', 'cmd_vel_nav',
               'cmd_vel')
"""Topics whose rates are shown, relative to the stack's namespace."""

LEVEL_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
STALE_AFTER = 5.0
"""A node whose diagnostics are older than this [s] is shown as STALE."""
VETO_STATES = ('STOP', 'ESTOP')


@dataclass
class StatusEntry:
    """The latest diagnostic status of one name, and when it arrived (monotonic seconds)."""
    level: str
    message: str
    values: dict[str, str]
    received: float


@dataclass
class StatusBoard:
    """Everything heard so far; ``text(now)`` turns it into the report."""
    rate_window: float = 5.0
    statuses: dict[str, StatusEntry] = field(default_factory=dict)
    arrivals: dict[str, deque[float]] = field(default_factory=dict)
    safety: dict[str, str] = field(default_factory=dict)
    health: StatusEntry | None = None
    assist: dict[str, object] | None = None
    listening_since: float | None = None
    """When listening began (monotonic): after the subscriptions were made and, for a report
    over a window, their discovery settled; what comes before is start-up."""

    def on_status(self, name: str, level: int, message: str, values: Mapping[str, str],
                  now: float) -> None:
        self.statuses[name] = StatusEntry(LEVEL_NAMES.get(level, str(level)), message,
                                          dict(values), now)

    def on_safety(self, values: Mapping[str, str]) -> None:
        self.safety = dict(values)

    def on_health(self, level: int, message: str, values: Mapping[str, str],
                  now: float) -> None:
        self.health = StatusEntry(LEVEL_NAMES.get(level, str(level)), message, dict(values), now)

    def on_assist(self, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            return
        if isinstance(request, dict):
            self.assist = request

    def on_message(self, topic: str, now: float) -> None:
        arrivals = self.arrivals.setdefault(topic, deque())
        arrivals.append(now)
        while arrivals and arrivals[0] < now - self.rate_window:
            arrivals.popleft()

    def rate(self, topic: str, now: float, listened: float) -> float:
        """Messages per second over the rate window (or as long as we have listened)."""
        arrivals = [t for t in self.arrivals.get(topic, ()) if t >= now - self.rate_window]
        span = min(self.rate_window, listened)
        return len(arrivals) / span if span > 0 else 0.0

    def heard_anything(self) -> bool:
        return bool(self.statuses or self.safety or self.health or any(self.arrivals.values()))

    def node_rows(self, now: float) -> list[tuple[str, str, str, str]]:
        """(name, level, message, details) per diagnostic status, by name."""
        rows = []
        for name in sorted(self.statuses):
            entry = self.statuses[name]
            level = 'STALE' if now - entry.received > STALE_AFTER else entry.level
            values = entry.values
            details = []
            if 'inference_latency_ms' in values:
                details.append(f'latency {values["inference_latency_ms"]} ms')
            if 'mean_confidence' in values:
                details.append(f'confidence {values["mean_confidence"]}')
            if 'health' in values:
                details.append(f'health {values["health"]}')
            if 'cycle_time_median_ms' in values:
                details.append(f'cycle {values["cycle_time_median_ms"]} ms')
            rows.append((name, level, entry.message, ', '.join(details)))
        return rows

    def vetoes(self) -> dict[str, int]:
        """The safety monitor's entries into each reason (its ``entered.*`` counters)."""
        counts: dict[str, int] = {}
        for entry in self.statuses.values():
            for key, value in entry.values.items():
                if key.startswith('entered.'):
                    try:
                        count = int(value)
                    except ValueError:
                        continue
                    if count:
                        counts[key.removeprefix('entered.')] = count
        return counts

    def sections(self, now: float, listened: float) -> dict[str, list[str]]:
        """The report as titled lists of lines."""
        nodes = [f'{name:<34.34} {level:<5} {message}' + (f'  [{details}]' if details else '')
                 for name, level, message, details in self.node_rows(now)]
        planner = self.statuses.get('planner')
        planner_lines = ['no planner diagnostics yet']
        if planner is not None:
            values = planner.values
            planner_lines = [f'{values.get("state", "?")}: {values.get("reason", "")}']
            figures = [f'{key} {values[key]}' for key in
                       ('goal_distance_m', 'route_remaining_m', 'speed_cap_mps', 'model_health',
                        'crossing') if key in values]
            if figures:
                planner_lines.append(', '.join(figures))
        safety_lines = ['no safety state yet']
        if self.safety:
            safety_lines = [f'{self.safety.get("state", "?")} ({self.safety.get("reason", "")}),'
                            f' allowed {self.safety.get("allowed_linear_speed", "?")} m/s']
        vetoes = self.vetoes()
        safety_lines.append('entries: ' + (', '.join(f'{reason} x{count}' for reason, count
                                                     in sorted(vetoes.items())) or 'none'))
        health_lines = ['no model health report yet']
        if self.health is not None:
            health_lines = [f'{self.health.level} {self.health.values.get("health", "?")}: '
                            f'{self.health.message}']
        assist_lines = ['none']
        if self.assist is not None:
            assist_lines = [f'{self.assist.get("kind")} {self.assist.get("status")}: '
                            f'{self.assist.get("question")} ({self.assist.get("reason")})']
        rates = [f'{topic:<26} {self.rate(topic, now, listened):5.1f} Hz' for topic in RATE_TOPICS]
        return {'nodes': nodes or ['no diagnostics yet'], 'planner': planner_lines,
                'safety': safety_lines, 'model health': health_lines,
                'operator question': assist_lines, 'topic rates': rates}

    def text(self, now: float, listened: float, title: str) -> str:
        lines = [title]
        for section, content in self.sections(now, listened).items():
            lines.append(f'{section.upper()}')
            lines += [f'  {line}' for line in content]
        return '\n'.join(lines)


def level_number(level: bytes | int) -> int:
    """DiagnosticStatus.level arrives as a one-byte ``bytes`` in rclpy."""
    return level[0] if isinstance(level, bytes) else int(level)


DISCOVERY_QUIET_S = 1.0
"""A window report starts once the publishers matched have not changed for this long..."""
DISCOVERY_WAIT_S = 6.0
"""...or after this long at most (a publisher discovered later only misses the start)."""


def watch(board: StatusBoard, namespace: str, until: Callable[[], bool],
          refresh: Callable[[], None], refresh_period: float, settle: bool = False) -> None:
    """Listen on the stack's topics (in ``namespace``) and call ``refresh`` every
    ``refresh_period`` until ``until()``. ``settle``: first wait for discovery to settle
    (on a busy machine a node's writers can take seconds to match), so that rates over a
    window are not those of half-discovered topics."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import OccupancyGrid, Odometry
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, LaserScan
    from geometry_msgs.msg import TwistStamped
    from std_msgs.msg import String

    from sidewalk_robot.ros_common import LATCHED_QOS

    types = {'camera/image_raw': Image, 'scan': LaserScan, 'odom': Odometry,
             'perception/obstacle_grid': OccupancyGrid, 'cmd_vel_nav': TwistStamped,
             'cmd_vel': TwistStamped}
    # Best effort matches every publisher, reliable or not: the right thing for counting.
    listening = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                           durability=DurabilityPolicy.VOLATILE)
    questions = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
    context = Context()
    rclpy.init(context=context)
    node = Node('status_viewer', namespace=namespace, context=context,
                start_parameter_services=False)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def values_of(status) -> dict[str, str]:
        return {kv.key: kv.value for kv in status.values}

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            board.on_status(status.name, level_number(status.level), status.message,
                            values_of(status), time.monotonic())

    def on_health(status: DiagnosticStatus) -> None:
        board.on_health(level_number(status.level), status.message, values_of(status),
                        time.monotonic())

    try:
        subscriptions = [
            # Raw: counting needs no deserialising (the camera's images are large).
            node.create_subscription(types[topic], topic,
                                     lambda _data, topic=topic: board.on_message(
                                         topic, time.monotonic()), listening, raw=True)
            for topic in RATE_TOPICS]
        subscriptions += [
            node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, listening),
            node.create_subscription(DiagnosticStatus, 'safety/state',
                                     lambda status: board.on_safety(values_of(status)),
                                     LATCHED_QOS),
            node.create_subscription(DiagnosticStatus, 'monitoring/model_health', on_health,
                                     LATCHED_QOS),
            node.create_subscription(String, 'operator/assist_request',
                                     lambda message: board.on_assist(message.data), questions)]
        if settle:
            _spin_until_discovery_settles(executor, subscriptions)
            board.arrivals.clear()  # rates count from here; what was said stays
        board.listening_since = time.monotonic()
        next_refresh = board.listening_since + refresh_period
        while not until():
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_refresh:
                refresh()
                next_refresh += refresh_period
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _spin_until_discovery_settles(executor: Executor, subscriptions: list[Subscription]) -> None:
    """Spin until the publishers matched have not changed for DISCOVERY_QUIET_S (and some
    are), or DISCOVERY_WAIT_S have passed."""
    started = quiet_since = time.monotonic()
    matched = None
    while time.monotonic() - started < DISCOVERY_WAIT_S:
        now_matched = [subscription.get_publisher_count() for subscription in subscriptions]
        if now_matched != matched:
            matched, quiet_since = now_matched, time.monotonic()
        elif any(matched) and time.monotonic() - quiet_since >= DISCOVERY_QUIET_S:
            return
        executor.spin_once(timeout_sec=0.05)


def run_status(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.ros_env import confine_this_process

    confine_this_process(domain_id=arguments.domain)
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    where = f'ROS_DOMAIN_ID={domain}' + (f', namespace {arguments.namespace}'
                                         if arguments.namespace else '')
    board = StatusBoard()
    started = time.monotonic()

    def title() -> str:
        return f'sidewalk-robot status ({where}, {time.strftime("%H:%M:%S")})'

    def report() -> str:
        now = time.monotonic()
        return board.text(now, now - (board.listening_since or started), title())

    def listened_a_window() -> bool:
        # From discovery settled on: on a busy machine start-up alone can take the window.
        return board.listening_since is not None \
            and time.monotonic() - board.listening_since >= arguments.window

    if arguments.once:
        watch(board, arguments.namespace, listened_a_window, lambda: None, arguments.window,
              settle=True)
        print(report())
        if not board.heard_anything():
            print(f'nothing heard in {arguments.window:.1f} s: is the stack running in '
                  f'{where}?', file=sys.stderr)
            return 1
        return 0
    if not sys.stdout.isatty():
        watch(board, arguments.namespace, lambda: False, lambda: print(report() + '\n',
                                                                       flush=True),
              arguments.refresh)
        return 0
    return _live(board, arguments, title, started)


def _live(board: StatusBoard, arguments: argparse.Namespace, title: Callable[[], str],
          started: float) -> int:
    from rich.console import Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    colours = {'OK': 'green', 'WARN': 'yellow', 'ERROR': 'bold red', 'STALE': 'magenta'}

    def render() -> Group:
        now = time.monotonic()
        sections = board.sections(now, now - (board.listening_since or started))
        nodes = Table(title=title(), expand=True, title_justify='left')
        for column in ('node', 'level', 'message', 'figures'):
            nodes.add_column(column)
        for name, level, message, details in board.node_rows(now):
            nodes.add_row(name, Text(level, style=colours.get(level, '')), message, details)
        rest = Table(show_header=False, expand=True)
        rest.add_column(style='bold')
        rest.add_column()
        for section in ('planner', 'safety', 'model health', 'operator question',
                        'topic rates'):
            rest.add_row(section, '\n'.join(sections[section]))
        return Group(nodes, rest)

    with Live(render(), refresh_per_second=4, screen=False) as live:
        watch(board, arguments.namespace, lambda: False, lambda: live.update(render()),
              arguments.refresh)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        'status', help='show what a running stack is doing (levels, rates, states, vetoes)',
        description='Listen to a running stack (in this ROS_DOMAIN_ID, or --domain) and show '
                    'every node\'s diagnostic level, topic rates, perception latency, the '
                    'model\'s health, the planner\'s and the safety monitor\'s state and veto '
                    'counts; refreshing on a terminal, plain text otherwise.')
    status.add_argument('--once', action='store_true',
                        help='wait for discovery to settle (at most 6 s), listen --window '
                             'seconds, print one report and exit (scripts)')
    status.add_argument('--window', type=float, default=3.0,
                        help='seconds to listen with --once (default 3)')
    status.add_argument('--refresh', type=float, default=1.0,
                        help='seconds between refreshes (default 1)')
    status.add_argument('--domain', type=int, default=None,
                        help='ROS domain of the stack (default: $ROS_DOMAIN_ID)')
    status.add_argument('--namespace', default='',
                        help='ROS namespace of the stack (default: none)')
    status.set_defaults(handler=run_status)

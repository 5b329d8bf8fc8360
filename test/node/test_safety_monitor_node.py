"""safety_monitor_node over real DDS: a test node plays planner, lidar, odometry and operator."""
from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass, field

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from sidewalk_robot.ros_common import (COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, seconds_to_stamp,
                                       stamp_to_seconds)

BEAMS = 360
FEED_PERIOD = 0.05


@dataclass
class Scene:
    linear: float = 0.0
    angular: float = 0.0
    wall_from_laser: float | None = None
    scan_frame: str = 'laser_link'
    feeding: bool = True
    scanning: bool = True
    """Publish /scan with the other inputs (off while another publisher provides the scans)."""
    heartbeat: bool = False
    """Publish e-stop released with the other inputs (the heartbeat of an e-stop device)."""


@dataclass
class Received:
    commands: list[TwistStamped] = field(default_factory=list)
    states: list[DiagnosticStatus] = field(default_factory=list)
    diagnostics: list[DiagnosticArray] = field(default_factory=list)

    def state(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.states[-1].values} if self.states else {}

    def reasons_since(self, index: int) -> list[str]:
        return [kv.value for status in self.states[index:] for kv in status.values
                if kv.key == 'reason']

    def last_linear(self) -> float | None:
        return self.commands[-1].twist.linear.x if self.commands else None


class Harness:
    """Publishes /scan, /odom and /cmd_vel_nav at 20 Hz from ``scene``; records the outputs."""

    def __init__(self, make_node, spin_until, stamp_source=None) -> None:
        self.node = make_node('safety_monitor_test_peer')
        self.spin_until = spin_until
        self.stamp_source = stamp_source or (lambda: self.node.get_clock().now().to_msg())
        self.scene = Scene()
        self.received = Received()
        node = self.node
        self.scan_publisher = node.create_publisher(LaserScan, 'scan', SENSOR_QOS)
        self.odom_publisher = node.create_publisher(Odometry, 'odom', SENSOR_QOS)
        self.command_publisher = node.create_publisher(TwistStamped, 'cmd_vel_nav', COMMAND_QOS)
        self.estop_publisher = node.create_publisher(Bool, 'safety/estop', LATCHED_QOS)
        self.estop_default_qos_publisher = node.create_publisher(Bool, 'safety/estop', 10)
        node.create_subscription(TwistStamped, 'cmd_vel', self.received.commands.append,
                                 COMMAND_QOS)
        node.create_subscription(DiagnosticStatus, 'safety/state', self.received.states.append,
                                 LATCHED_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 self.received.diagnostics.append, 10)
        self.reset_client = node.create_client(Trigger, 'safety/reset')
        node.create_timer(FEED_PERIOD, self._feed)

    def _feed(self) -> None:
        if not self.scene.feeding:
            return
        stamp = self.stamp_source()
        if self.scene.scanning:
            self.scan_publisher.publish(open_scan(stamp, self.scene.scan_frame,
                                                  self.scene.wall_from_laser))
        if self.scene.heartbeat:
            self.estop_default_qos_publisher.publish(Bool(data=False))
        odometry = Odometry()
        odometry.header.stamp, odometry.header.frame_id = stamp, 'odom'
        odometry.child_frame_id = 'base_link'
        self.odom_publisher.publish(odometry)
        command = TwistStamped()
        command.header.stamp, command.header.frame_id = stamp, 'base_link'
        command.twist.linear.x, command.twist.angular.z = self.scene.linear, self.scene.angular
        self.command_publisher.publish(command)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        return self.spin_until(self.node, predicate, timeout)

    def collect_for(self, seconds: float) -> list[TwistStamped]:
        start = len(self.received.commands)
        self.spin_until(self.node, lambda: False, seconds)
        return self.received.commands[start:]

    def linear_becomes(self, expected: float, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda: self.received.last_linear() is not None
                             and abs(self.received.last_linear() - expected) < 1e-6, timeout)

    def reset(self) -> Trigger.Response:
        assert self.reset_client.wait_for_service(timeout_sec=10.0)
        future = self.reset_client.call_async(Trigger.Request())
        assert self.wait_for(future.done, 10.0)
        return future.result()


def open_scan(stamp, frame: str = 'laser_link', wall_from_laser: float | None = None) -> LaserScan:
    """360 beams over a full turn (docs/interfaces.md): +inf, or a wall ahead."""
    scan = LaserScan(angle_min=-math.pi, angle_max=math.pi - 2 * math.pi / BEAMS,
                     angle_increment=2 * math.pi / BEAMS, range_min=0.1, range_max=10.0)
    scan.header.stamp, scan.header.frame_id = stamp, frame
    ranges = [math.inf] * BEAMS
    if wall_from_laser is not None:
        for offset in range(-30, 31):
            ranges[BEAMS // 2 + offset] = wall_from_laser / math.cos(math.radians(offset))
    scan.ranges = ranges
    return scan


@pytest.fixture
def harness(ros_process, make_node, spin_until) -> Harness:
    monitor = ros_process('safety_monitor_node', config='safety_monitor')
    peer = Harness(make_node, spin_until)
    peer.scene.feeding = False
    assert peer.wait_for(lambda: peer.received.commands, 20.0), monitor.output()
    assert monitor.alive()
    return peer


def test_gates_commands_and_never_goes_silent(harness: Harness) -> None:
    received, scene = harness.received, harness.scene
    assert harness.wait_for(lambda: received.state().get('reason') == 'waiting_for_inputs')
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in received.commands)
    assert received.commands[-1].header.frame_id == 'base_link'

    scene.feeding, scene.linear = True, 0.4
    assert harness.linear_becomes(0.4), received.state()
    scene.linear = 3.0
    assert harness.linear_becomes(1.5), received.state()
    assert received.state()['state'] == 'CLEAR'

    scene.wall_from_laser = 0.2        # 0.15 m from the front edge: inside stop_margin
    assert harness.linear_becomes(0.0), received.state()
    assert harness.wait_for(lambda: received.state().get('reason') == 'obstacle_stop')
    assert float(received.state()['nearest_obstacle_m']) == pytest.approx(0.15, abs=0.01)
    scene.wall_from_laser = None
    assert harness.wait_for(lambda: harness.received.last_linear() > 0.0)

    scene.scan_frame = 'base_link'
    assert harness.linear_becomes(0.0)
    assert harness.wait_for(lambda: received.state().get('reason') == 'scan_invalid')
    scene.scan_frame = 'laser_link'
    assert harness.wait_for(lambda: harness.received.last_linear() > 0.0)

    scene.feeding = False
    silent_inputs = harness.collect_for(1.5)[10:]
    assert len(silent_inputs) >= 15, 'the monitor must keep publishing while inputs are silent'
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in silent_inputs)
    assert received.state()['reason'] in ('cmd_stale', 'scan_stale', 'odom_stale')
    assert received.state()['state'] == 'STOP'

    assert harness.wait_for(lambda: any(s.name == 'safety_monitor: gate'
                                        for a in received.diagnostics for s in a.status))
    gate = [s for a in received.diagnostics for s in a.status
            if s.name == 'safety_monitor: gate'][-1]
    counts = {kv.key: kv.value for kv in gate.values}
    assert int(counts['entered.obstacle_stop']) >= 1
    assert int(counts['entered.scan_invalid']) >= 1


def test_estop_latches_until_a_reset_after_release(harness: Harness) -> None:
    received, scene = harness.received, harness.scene
    scene.feeding, scene.linear = True, 0.3
    assert harness.linear_becomes(0.3), received.state()

    harness.estop_publisher.publish(Bool(data=True))
    assert harness.linear_becomes(0.0)
    assert harness.wait_for(lambda: received.state().get('reason') == 'estop_pressed')
    refused = harness.reset()
    assert not refused.success and 'still pressed' in refused.message

    harness.estop_publisher.publish(Bool(data=False))
    assert harness.wait_for(lambda: received.state().get('reason') == 'estop_latched')
    assert all(c.twist.linear.x == 0.0 for c in harness.collect_for(0.5))

    scene.wall_from_laser = 0.2
    harness.collect_for(0.3)
    blocked = harness.reset()
    assert not blocked.success and 'stop_margin' in blocked.message
    scene.wall_from_laser = None
    harness.collect_for(0.3)

    accepted = harness.reset()
    assert accepted.success, accepted.message
    assert harness.linear_becomes(0.3), received.state()


def test_runs_on_simulated_time_and_keeps_publishing_when_the_clock_stops(
        ros_process, make_node, spin_until) -> None:
    ros_process('safety_monitor_node', config='safety_monitor', parameters={'use_sim_time': True})
    sim = {'now': 1000.0, 'running': True}
    peer = Harness(make_node, spin_until, stamp_source=lambda: seconds_to_stamp(sim['now']))
    clock_publisher = peer.node.create_publisher(Clock, '/clock', 10)

    def tick_clock() -> None:
        if sim['running']:
            sim['now'] += 0.01
            clock_publisher.publish(Clock(clock=seconds_to_stamp(sim['now'])))

    peer.node.create_timer(0.01, tick_clock)
    peer.scene.linear = 0.3
    assert peer.linear_becomes(0.3, timeout=20.0), peer.received.state()
    stamp = stamp_to_seconds(peer.received.commands[-1].header.stamp)
    assert abs(stamp - sim['now']) < 0.5, 'the output must be stamped with simulated time'

    sim['running'] = False
    peer.scene.feeding = False
    assert len(peer.collect_for(1.0)) >= 15, 'a stopped /clock must not silence /cmd_vel'


ESTOP_PUBLISHERS = {
    'reliable_volatile': QoSProfile(depth=10),
    'best_effort': QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT),
    'transient_local': LATCHED_QOS,
}
"""The defaults of rclpy, rclcpp and ``ros2 topic pub``; a best-effort device; a latched one."""


def wait_for_reason(harness: Harness, reason: str, since: int) -> None:
    received = harness.received
    assert harness.wait_for(lambda: reason in received.reasons_since(since), 5.0), \
        f'no {reason}: reasons since {set(received.reasons_since(since))}'


def publish_until_reason(harness: Harness, publisher, message: Bool, reason: str, since: int,
                         *, repeat: bool) -> None:
    """Publish ``message`` once, or with ``repeat`` every 50 ms, until ``reason`` shows."""
    publisher.publish(message)
    deadline = time.monotonic() + 5.0
    while (repeat and reason not in harness.received.reasons_since(since)
           and time.monotonic() < deadline):
        harness.collect_for(0.05)
        publisher.publish(message)
    wait_for_reason(harness, reason, since)


def reset_and_leave_estop(harness: Harness) -> None:
    """Reset, retrying while the monitor rightly refuses for want of a fresh scan: on a busy
    machine the scan source can be starved for longer than scan_timeout."""
    received = harness.received
    deadline = time.monotonic() + 10.0
    accepted = harness.reset()
    while not accepted.success and 'no fresh valid scan' in accepted.message \
            and time.monotonic() < deadline:
        harness.collect_for(0.1)
        accepted = harness.reset()
    assert accepted.success, accepted.message
    start = len(received.states)
    assert harness.wait_for(lambda: received.states[start:]
                            and received.state().get('state') != 'ESTOP', 5.0)


def test_estop_from_a_publisher_of_any_reliability_and_durability_latches(
        harness: Harness) -> None:
    received, scene = harness.received, harness.scene
    scene.feeding, scene.linear = True, 0.3
    assert harness.linear_becomes(0.3), received.state()
    for name, qos in ESTOP_PUBLISHERS.items():
        publisher = harness.node.create_publisher(Bool, 'safety/estop', qos)
        assert harness.wait_for(lambda: publisher.get_subscription_count() > 0), name
        # Matched on this side does not mean matched on the monitor's: a reliable writer
        # delivers once it is, a best-effort sample is gone. A best-effort device repeats its
        # state for that reason, and so does this one.
        repeats = qos.reliability == ReliabilityPolicy.BEST_EFFORT
        start = len(received.states)
        publish_until_reason(harness, publisher, Bool(data=True), 'estop_pressed', start,
                             repeat=repeats)
        assert harness.linear_becomes(0.0), name
        publish_until_reason(harness, publisher, Bool(data=False), 'estop_latched', start,
                             repeat=repeats)
        reset_and_leave_estop(harness)
        assert harness.linear_becomes(0.3), (name, received.state())
        harness.node.destroy_publisher(publisher)


def test_a_latched_press_sent_before_the_monitor_started_reaches_it(
        ros_process, make_node, spin_until) -> None:
    peer = Harness(make_node, spin_until)
    peer.estop_publisher.publish(Bool(data=True))
    ros_process('safety_monitor_node', config='safety_monitor')
    assert peer.wait_for(lambda: peer.received.state().get('reason') == 'estop_pressed', 20.0), \
        peer.received.state()


REPETITIONS = 100


SCAN_FLOOD = f"""
import math, time
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from sidewalk_robot.ros_common import SENSOR_QOS

rclpy.init()
node = Node('safety_monitor_scan_flood')
publisher = node.create_publisher(LaserScan, 'scan', SENSOR_QOS)
scan = LaserScan(angle_min=-math.pi, angle_max=math.pi - 2 * math.pi / {BEAMS},
                 angle_increment=2 * math.pi / {BEAMS}, range_min=0.1, range_max=10.0,
                 ranges=[math.inf] * {BEAMS})
scan.header.frame_id = 'laser_link'
sent, start = 0, time.monotonic()
try:
    while True:
        scan.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(scan)
        sent += 1
        time.sleep(max(0.0, start + sent / 1000.0 - time.monotonic()))
except KeyboardInterrupt:
    print(f'flooded {{sent}} scans in {{time.monotonic() - start:.1f}} s', flush=True)
"""
"""Open-space scans at 1 kHz from a process of its own (catching up when it falls behind)."""


@pytest.mark.parametrize('flooded', [False, True], ids=['idle', 'scan_flood_1kHz'])
def test_a_press_released_1ms_later_is_never_lost(harness: Harness, ros_process,
                                                   flooded: bool) -> None:
    received, scene = harness.received, harness.scene
    scene.feeding = True
    assert harness.wait_for(lambda: received.state().get('state') == 'CLEAR'), received.state()
    publisher = harness.estop_default_qos_publisher
    assert harness.wait_for(lambda: publisher.get_subscription_count() > 0)
    if flooded:
        flood = ros_process('scan_flood', command=[sys.executable, '-c', SCAN_FLOOD])
        assert harness.wait_for(lambda: harness.node.count_publishers('scan') >= 2, 20.0)
        scene.scanning = False      # the flood is the only source of scans (stamps in order)
        settled = len(received.states)
        assert harness.wait_for(lambda: received.reasons_since(settled)[-5:] == ['clear'] * 5,
                                20.0), received.state()
    for repetition in range(REPETITIONS):
        start = len(received.states)
        publisher.publish(Bool(data=True))
        time.sleep(0.001)
        publisher.publish(Bool(data=False))
        try:
            wait_for_reason(harness, 'estop_latched', start)
            reset_and_leave_estop(harness)
        except AssertionError as error:
            raise AssertionError(f'press {repetition + 1} of {REPETITIONS}: {error}') from None
    if flooded:
        assert flood.alive(), flood.output()
        flood.popen.send_signal(signal.SIGINT)
        flood.popen.wait(timeout=10.0)
        print(flood.output().strip())


def test_a_silent_estop_heartbeat_latches_until_it_beats_again_and_is_reset(
        ros_process, make_node, spin_until) -> None:
    ros_process('safety_monitor_node', config='safety_monitor',
                parameters={'estop_heartbeat_timeout': 1.0})
    peer = Harness(make_node, spin_until)
    received, scene = peer.received, peer.scene
    scene.linear = 0.3
    assert peer.wait_for(lambda: received.state().get('reason') == 'estop_heartbeat_lost', 20.0), \
        'no e-stop message since start must count as pressed'
    assert peer.linear_becomes(0.0)
    scene.heartbeat = True
    assert peer.wait_for(lambda: received.state().get('reason') == 'estop_latched')
    accepted = peer.reset()
    assert accepted.success, accepted.message
    assert peer.linear_becomes(0.3), received.state()

    scene.heartbeat = False
    assert peer.wait_for(lambda: received.state().get('reason') == 'estop_heartbeat_lost')
    assert peer.linear_becomes(0.0)
    refused = peer.reset()
    assert not refused.success and 'heartbeat' in refused.message

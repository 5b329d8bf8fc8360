"""safety_monitor_node in lockstep over real DDS: the test is the clock owner."""
from __future__ import annotations

import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool

from sidewalk_robot.lockstep import NS_PER_S, LockstepError
from sidewalk_robot.lockstep_ros import LockstepOwner, lockstep_parameters
from sidewalk_robot.ros_common import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, seconds_to_stamp

from test_safety_monitor_node import open_scan

QUANTUM_S = 0.01
SENSOR_PERIOD_NS = 50_000_000


class Owner:
    """Plays lidar, odometry, planner and e-stop at 20 Hz of simulated time, one step at a
    time, and keeps what the monitor released at each step."""

    def __init__(self, node) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.node = node
        self.owner = LockstepOwner(node, ['safety_monitor'], QUANTUM_S)
        self.scan = self.owner.publisher(LaserScan, 'scan', SENSOR_QOS)
        self.odom = self.owner.publisher(Odometry, 'odom', SENSOR_QOS)
        self.command = self.owner.publisher(TwistStamped, 'cmd_vel_nav', COMMAND_QOS)
        self.estop = self.owner.publisher(Bool, 'safety/estop', LATCHED_QOS)
        self.released: list[tuple[int, float]] = []
        self.states: list[tuple[int, str]] = []
        self.owner.subscription(TwistStamped, 'cmd_vel',
                                lambda m, t: self.released.append((t, m.twist.linear.x)))
        self.owner.subscription(DiagnosticStatus, 'safety/state', self._on_state)
        self.arrivals: list[float] = []
        """Wall times /cmd_vel messages arrived, outside the lockstep."""
        node.create_subscription(TwistStamped, 'cmd_vel',
                                 lambda _m: self.arrivals.append(time.monotonic()), 100)
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()

    def _on_state(self, message: DiagnosticStatus, time_ns: int) -> None:
        values = {kv.key: kv.value for kv in message.values}
        self.states.append((time_ns, values['state']))

    def run(self, start_ns: int, seconds: float, linear: float,
            estop_at_ns: int | None = None) -> None:
        """Publish every input up front (the owner may run ahead), then let the monitor take
        its steps."""
        end_ns = start_ns + round(seconds * NS_PER_S)
        self.owner.start_episode(start_ns)
        for now in range(start_ns, end_ns + 1, SENSOR_PERIOD_NS):
            stamp = seconds_to_stamp(now / NS_PER_S)
            self.scan.publish(open_scan(stamp))
            odometry = Odometry()
            odometry.header.stamp, odometry.header.frame_id = stamp, 'odom'
            self.odom.publish(odometry)
            command = TwistStamped()
            command.header.stamp, command.header.frame_id = stamp, 'base_link'
            command.twist.linear.x = linear
            self.command.publish(command)
            if now == estop_at_ns:
                self.estop.publish(Bool(data=True))
                self.estop.publish(Bool(data=False))
            self.owner.own_data(now, None if now + SENSOR_PERIOD_NS > end_ns
                                else now + SENSOR_PERIOD_NS)
        self.owner.end_at(end_ns)
        while True:
            self.owner.dispatch()
            if self.owner.finished():
                break
            # The monitor answers from its own process while this thread dispatches: judged
            # at the dispatch, an answer just after it cannot make the run look stuck.
            assert not self.owner.idle_at_dispatch, 'steps are left but none can be taken'
            assert self.owner.wait_for_answer(30.0)
        self.owner.finish(10.0)

    def close(self) -> None:
        self.executor.shutdown()
        self.spinner.join(timeout=5.0)


@pytest.fixture
def owner(ros_process, make_node):
    monitor = ros_process('safety_monitor_node', config='safety_monitor',
                          parameters={'use_sim_time': True, **dict(
                              p.split(':=') for p in lockstep_parameters(0.002))})
    peer = Owner(make_node('lockstep_owner'))
    try:
        peer.owner.wait_until_ready(30.0, dead=lambda: None if monitor.alive() else
                                    f'monitor exited: {monitor.output()[-2000:]}')
        yield peer
    finally:
        peer.close()


def test_outputs_follow_simulated_time_only_and_a_new_episode_starts_fresh(owner) -> None:
    time.sleep(1.0)  # wall time passes: in lockstep nothing may come of it
    assert owner.arrivals == []
    owner.run(1 * NS_PER_S, 2.0, linear=0.5, estop_at_ns=2 * NS_PER_S)
    first_run, first_states = list(owner.released), list(owner.states)
    arrived = len(owner.arrivals)
    time.sleep(1.0)
    assert len(owner.arrivals) == arrived  # the steady 20 Hz timer runs on simulated time now

    # The 20 Hz timer: a /cmd_vel at every 50 ms of simulated time, released 2 ms later
    # (rounded up to the 10 ms grid), however long the wall-clock steps took.
    release_times = {t for t, _ in first_run}
    ticks = {1_000_000_000 + k * SENSOR_PERIOD_NS + 10_000_000 for k in range(1, 40)}
    assert ticks <= release_times
    assert max(v for _, v in first_run) == pytest.approx(0.5)
    assert ('ESTOP' in {state for _, state in first_states})
    assert first_states[-1][1] == 'ESTOP'  # latched

    owner.released.clear()
    owner.states.clear()
    owner.run(1 * NS_PER_S, 2.0, linear=0.5, estop_at_ns=2 * NS_PER_S)
    assert owner.released == first_run  # same inputs, same steps: the same answer
    assert owner.states == first_states  # and the e-stop latch did not leak into it


def test_a_missing_participant_is_named(make_node) -> None:
    owner = Owner(make_node('lockstep_owner_alone'))
    try:
        with pytest.raises(LockstepError, match='safety_monitor has not said hello'):
            owner.owner.wait_until_ready(1.0)
    finally:
        owner.close()

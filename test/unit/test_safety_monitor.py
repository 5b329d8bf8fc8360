"""The SafetyMonitor state machine: start-up, watchdogs, bad input, e-stop, escape, counters."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sidewalk_robot.safety_monitor import (LaserScanData, OdometrySample, Reason, SafetyConfig,
                                           SafetyMonitor, State, VelocityCommand)
from sidewalk_robot.safety_monitor.geometry import COVERAGE_STEP
from sidewalk_robot.safety_monitor.rules import required_distance

CONFIG = SafetyConfig()
BEAMS = 360
PERIOD = 1.0 / CONFIG.publish_rate


def beam(angle_deg: float) -> int:
    return int(round((math.radians(angle_deg) + math.pi) / (2 * math.pi / BEAMS))) % BEAMS


def scan(stamp: float, obstacles: dict[float, float] | None = None, *, frame: str = 'laser_link',
         ranges: np.ndarray | None = None) -> LaserScanData:
    """A 360-beam scan as docs/interfaces.md describes; ``obstacles`` maps angle (deg) -> range."""
    if ranges is None:
        ranges = np.full(BEAMS, np.inf)
        for angle, distance in (obstacles or {}).items():
            ranges[beam(angle)] = distance
    return LaserScanData(stamp, frame, -math.pi, math.pi - 2 * math.pi / BEAMS,
                         2 * math.pi / BEAMS, 0.1, 10.0,
                         np.asarray(ranges, dtype=float))


def wall_ahead(distance_from_laser: float, half_angle_deg: float = 5.0) -> dict[float, float]:
    """A straight wall across the path, ``distance_from_laser`` ahead of the laser."""
    return {float(a): distance_from_laser / math.cos(math.radians(a))
            for a in np.arange(-half_angle_deg, half_angle_deg + 1)}


class Drive:
    """Feeds a monitor consistent inputs on a 20 Hz clock."""

    def __init__(self, config: SafetyConfig = CONFIG) -> None:
        self.monitor = SafetyMonitor(config)
        self.now = 100.0

    def feed(self, linear: float = 0.0, angular: float = 0.0,
             obstacles: dict[float, float] | None = None, *,
             laser_scan: LaserScanData | None = None) -> None:
        self.monitor.update_command(VelocityCommand(self.now, linear, angular), self.now)
        self.monitor.update_odometry(OdometrySample(self.now, 0.0, 0.0), self.now)
        self.monitor.update_scan(scan(self.now, obstacles) if laser_scan is None
                                 else dataclasses.replace(laser_scan, stamp=self.now), self.now)

    def step(self, linear: float = 0.0, angular: float = 0.0,
             obstacles: dict[float, float] | None = None, ticks: int = 1, *,
             laser_scan: LaserScanData | None = None):
        for _ in range(ticks):
            self.now += PERIOD
            self.feed(linear, angular, obstacles, laser_scan=laser_scan)
            decision = self.monitor.decide(self.now)
        return decision


def test_starts_in_stop_until_every_input_has_been_seen_valid() -> None:
    drive = Drive()
    monitor = drive.monitor
    first = monitor.decide(drive.now)
    assert (first.state, first.reason, first.linear) == (State.STOP, Reason.WAITING_FOR_INPUTS, 0.0)
    monitor.update_command(VelocityCommand(drive.now, 1.0, 0.0), drive.now)
    monitor.update_scan(scan(drive.now), drive.now)
    waiting = monitor.decide(drive.now)
    assert waiting.reason is Reason.WAITING_FOR_INPUTS and 'odometry' in waiting.detail
    assert waiting.linear == 0.0
    monitor.update_odometry(OdometrySample(drive.now, 0.0, 0.0), drive.now)
    assert monitor.decide(drive.now + PERIOD).linear > 0.0


def test_clear_path_passes_the_command_after_accelerating() -> None:
    drive = Drive()
    ramping = drive.step(1.0)
    assert ramping.reason is Reason.ACCELERATION_CAP and ramping.linear == pytest.approx(0.05)
    settled = drive.step(1.0, 0.5, ticks=25)
    assert (settled.state, settled.reason) == (State.CLEAR, Reason.CLEAR)
    assert (settled.linear, settled.angular) == pytest.approx((1.0, 0.5))


def test_commands_above_the_caps_are_clipped() -> None:
    decision = Drive().step(5.0, -5.0, ticks=40)
    assert (decision.linear, decision.angular) == pytest.approx((1.5, -1.5))
    assert (decision.state, decision.reason) == (State.CLEAR, Reason.SPEED_CAP)


def test_obstacle_ahead_slows_then_stops_and_braking_is_immediate() -> None:
    drive = Drive()
    drive.step(1.0, ticks=30)
    slowed = drive.step(1.0, obstacles=wall_ahead(1.0))
    assert (slowed.state, slowed.reason) == (State.LIMIT, Reason.OBSTACLE_SLOWDOWN)
    assert 0.0 < slowed.linear < 1.0
    assert slowed.allowed_linear_speed == pytest.approx(slowed.linear)
    stopped = drive.step(1.0, obstacles=wall_ahead(0.2))
    assert (stopped.state, stopped.reason, stopped.linear) == \
        (State.STOP, Reason.OBSTACLE_STOP, 0.0)
    assert stopped.nearest_obstacle_m == pytest.approx(0.15, abs=1e-3)


def test_clear_decision_is_not_delayed_by_more_than_one_scan() -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    assert drive.step(0.5, obstacles=wall_ahead(0.2)).linear == 0.0
    assert drive.step(0.5).linear > 0.0


def test_single_noisy_beam_does_not_stop_the_robot() -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    assert drive.step(0.5, obstacles={0.0: 0.2}).linear == pytest.approx(0.5)


def test_stopped_at_an_obstacle_the_robot_may_turn_away_or_back_off() -> None:
    drive = Drive(dataclasses.replace(CONFIG, max_linear_accel=100.0))
    wall = wall_ahead(0.25, half_angle_deg=60)    # 0.20 m from the front: inside stop_margin
    assert drive.step(0.5, 0.0, obstacles=wall).reason is Reason.OBSTACLE_STOP
    turning = drive.step(0.5, 1.0, obstacles=wall)
    assert (turning.state, turning.reason) == (State.LIMIT, Reason.ESCAPE_ROTATION)
    assert (turning.linear, turning.angular) == (0.0, pytest.approx(1.0))
    backing = drive.step(-0.2, 0.0, obstacles=wall, ticks=10)
    assert backing.linear == pytest.approx(-0.2) and backing.state is State.CLEAR


def test_reverse_without_rear_coverage_is_flagged_and_capped() -> None:
    config = SafetyConfig()
    monitor = SafetyMonitor(config)
    now = 10.0
    front_only = LaserScanData(now, 'laser_link', -math.radians(120), math.radians(120),
                               math.radians(1), 0.1, 10.0,
                               np.full(241, np.inf))
    decision = None
    for _ in range(20):
        now += PERIOD
        monitor.update_command(VelocityCommand(now, -1.0, 0.0), now)
        monitor.update_odometry(OdometrySample(now, 0.0, 0.0), now)
        monitor.update_scan(dataclasses.replace(front_only, stamp=now), now)
        decision = monitor.decide(now)
    assert (decision.state, decision.reason) == (State.LIMIT, Reason.REVERSE_UNCHECKED)
    assert decision.linear == pytest.approx(-config.max_reverse_speed)


@pytest.mark.parametrize('silent, reason', [('command', Reason.CMD_STALE),
                                            ('scan', Reason.SCAN_STALE),
                                            ('odometry', Reason.ODOM_STALE)])
def test_a_stale_input_stops_the_robot(silent: str, reason: Reason) -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    monitor = drive.monitor
    for _ in range(8):
        drive.now += PERIOD
        if silent != 'command':
            monitor.update_command(VelocityCommand(drive.now, 0.5, 0.0), drive.now)
        if silent != 'odometry':
            monitor.update_odometry(OdometrySample(drive.now, 0.0, 0.0), drive.now)
        if silent != 'scan':
            monitor.update_scan(scan(drive.now), drive.now)
    decision = monitor.decide(drive.now)
    assert (decision.state, decision.reason, decision.linear, decision.angular) == \
        (State.STOP, reason, 0.0, 0.0)


def test_no_inputs_at_all_keeps_deciding_zero() -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    decisions = [drive.monitor.decide(drive.now + k * PERIOD) for k in range(1, 40)]
    assert all(d.linear == 0.0 and d.angular == 0.0 for d in decisions[6:])


@pytest.mark.parametrize('bad_input, reason, words', [
    (lambda t: ('command', VelocityCommand(t, math.nan, 0.0)), Reason.CMD_INVALID, 'not finite'),
    (lambda t: ('command', VelocityCommand(t, 0.5, math.inf)), Reason.CMD_INVALID, 'not finite'),
    (lambda t: ('command', VelocityCommand(t + 1.0, 0.5, 0.0)), Reason.CMD_INVALID, 'future'),
    (lambda t: ('command', VelocityCommand(t - 0.2, 0.5, 0.0)), Reason.CMD_INVALID, 'older'),
    (lambda t: ('odometry', OdometrySample(t, math.nan, 0.0)), Reason.ODOM_INVALID, 'not finite'),
    (lambda t: ('odometry', OdometrySample(math.nan, 0.0, 0.0)), Reason.ODOM_INVALID, 'stamp'),
    (lambda t: ('scan', scan(t, ranges=np.empty(0))), Reason.SCAN_INVALID, 'empty'),
    (lambda t: ('scan', scan(t, ranges=np.full(BEAMS, np.nan))), Reason.SCAN_INVALID,
     'none of its 360 beams'),
    (lambda t: ('scan', scan(t, frame='base_link')), Reason.SCAN_INVALID, 'frame'),
    (lambda t: ('scan', scan(t + 1.0)), Reason.SCAN_INVALID, 'future'),
    (lambda t: ('scan', dataclasses.replace(scan(t), angle_increment=math.nan)),
     Reason.SCAN_INVALID, 'angles'),
    (lambda t: ('scan', dataclasses.replace(scan(t), range_max=math.inf)),
     Reason.SCAN_INVALID, 'range limits'),
])
def test_bad_input_stops_with_its_reason_until_a_good_one_arrives(bad_input, reason: Reason,
                                                                  words: str) -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    drive.now += PERIOD
    drive.feed(0.5)
    kind, message = bad_input(drive.now)
    update = {'command': drive.monitor.update_command, 'odometry': drive.monitor.update_odometry,
              'scan': drive.monitor.update_scan}[kind]
    update(message, drive.now)
    decision = drive.monitor.decide(drive.now)
    assert (decision.state, decision.reason, decision.linear) == (State.STOP, reason, 0.0)
    assert words in decision.detail
    assert drive.step(0.5).state is not State.STOP


def test_all_infinite_scan_is_valid_open_space() -> None:
    assert Drive().step(0.5, ticks=20).linear == pytest.approx(0.5)


def test_estop_latches_and_only_a_reset_after_release_resumes() -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    monitor = drive.monitor
    monitor.set_estop(True, drive.now)
    pressed = monitor.decide(drive.now)
    assert (pressed.state, pressed.reason, pressed.linear) == \
        (State.ESTOP, Reason.ESTOP_PRESSED, 0.0)
    refused = monitor.request_reset(drive.now)
    assert not refused.success and 'still pressed' in refused.message
    monitor.set_estop(False, drive.now)
    released = drive.step(0.5, ticks=5)
    assert (released.state, released.reason, released.linear) == \
        (State.ESTOP, Reason.ESTOP_LATCHED, 0.0)
    assert monitor.request_reset(drive.now).success
    assert drive.step(0.5).state is State.CLEAR


def test_reset_is_refused_with_an_obstacle_inside_the_stop_margin_or_no_fresh_scan() -> None:
    drive = Drive()
    drive.step(0.0, obstacles=wall_ahead(0.2), ticks=3)
    drive.monitor.set_estop(True, drive.now)
    drive.monitor.set_estop(False, drive.now)
    refused = drive.monitor.request_reset(drive.now)
    assert not refused.success and 'inside stop_margin' in refused.message
    stale = drive.monitor.request_reset(drive.now + 1.0)
    assert not stale.success and 'no fresh valid scan' in stale.message
    drive.step(0.0, obstacles=wall_ahead(1.0), ticks=1)
    assert drive.monitor.request_reset(drive.now).success


def test_reset_is_refused_until_odometry_is_fresh_again() -> None:
    drive = Drive()
    drive.step(0.0, obstacles=wall_ahead(1.0), ticks=3)
    drive.monitor.set_estop(True, drive.now)
    drive.monitor.set_estop(False, drive.now)
    later = drive.now + 1.0
    drive.monitor.update_scan(scan(later, wall_ahead(1.0)), later)
    refused = drive.monitor.request_reset(later)
    assert not refused.success and 'no fresh valid odometry' in refused.message
    drive.monitor.update_odometry(OdometrySample(later, 0.0, 0.0), later)
    assert drive.monitor.request_reset(later).success


def test_clock_jumping_back_forgets_inputs_and_stops() -> None:
    drive = Drive()
    drive.step(0.5, ticks=20)
    decision = drive.monitor.decide(1.0)
    assert (decision.state, decision.reason, decision.linear) == \
        (State.STOP, Reason.CLOCK_JUMPED_BACK, 0.0)
    drive.now = 1.0
    assert drive.step(0.5).state is State.CLEAR


def test_every_change_is_flagged_once_and_counted_by_reason() -> None:
    drive = Drive()
    drive.monitor.decide(drive.now)
    drive.step(0.5, ticks=30)
    stops = [drive.step(0.5, obstacles=wall_ahead(0.2)) for _ in range(3)]
    assert [d.changed for d in stops] == [True, False, False]
    drive.step(0.5, ticks=3)
    drive.step(0.5, obstacles=wall_ahead(0.2))
    counts = drive.monitor.counts
    assert counts['obstacle_stop'] == 2
    assert counts['waiting_for_inputs'] == 1
    assert counts['acceleration_cap'] >= 1


# Rule 10: path coverage, and the scan checks of rule 4 it relies on ------------------------------

ANGLES = -math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
AHEAD = np.abs(ANGLES) < math.radians(30)


def cruising(config: SafetyConfig = CONFIG) -> Drive:
    """At 1.0 m/s in open space, the planner's command in the issue's measurements."""
    drive = Drive(config)
    assert drive.step(1.0, ticks=30).linear == pytest.approx(1.0)
    return drive


def test_nan_beams_in_front_are_not_free_space() -> None:
    """A wall the sensor failed to measure (NaN ahead) gave CLEAR at 1.0 m/s."""
    ranges = np.where(AHEAD, np.nan, np.inf)
    decision = cruising().step(1.0, laser_scan=scan(0.0, ranges=ranges))
    assert (decision.state, decision.reason, decision.linear) == \
        (State.STOP, Reason.COVERAGE_STOP, 0.0)
    assert decision.path_coverage < CONFIG.min_path_coverage
    assert 'observed' in decision.detail
    assert decision.allowed_linear_speed == 0.0


def test_one_infinite_beam_among_nan_beams_observes_almost_nothing() -> None:
    ranges = np.full(BEAMS, np.nan)
    ranges[beam(0.0)] = np.inf
    decision = cruising().step(1.0, laser_scan=scan(0.0, ranges=ranges))
    assert (decision.state, decision.reason, decision.linear) == \
        (State.STOP, Reason.COVERAGE_STOP, 0.0)
    assert decision.path_coverage < 0.05


def test_a_scan_whose_beams_all_point_backwards_is_invalid() -> None:
    backwards = LaserScanData(0.0, 'laser_link', math.radians(91), math.radians(269),
                              math.radians(1), 0.1, 10.0, np.full(179, np.inf))
    decision = cruising().step(1.0, laser_scan=backwards)
    assert (decision.state, decision.reason, decision.linear) == \
        (State.STOP, Reason.SCAN_INVALID, 0.0)
    assert 'forward sector' in decision.detail


@pytest.mark.parametrize('angle_max_error, valid', [(0.5, False), (-0.5, False),
                                                    (0.9 * 2 * math.pi / BEAMS, True)])
def test_a_scan_whose_angle_max_disagrees_with_its_beams_is_invalid(angle_max_error: float,
                                                                    valid: bool) -> None:
    """With a wrong angle_max a 1 m wall read as further away than it is; within one increment
    (float32 rounding of a driver's header) the scan is fine."""
    wall = scan(0.0, wall_ahead(1.0, half_angle_deg=30))
    skewed = dataclasses.replace(wall, angle_max=wall.angle_max + angle_max_error)
    decision = cruising().step(1.0, laser_scan=skewed)
    if valid:
        assert (decision.state, decision.reason) == (State.LIMIT, Reason.OBSTACLE_SLOWDOWN)
    else:
        assert (decision.state, decision.reason, decision.linear) == \
            (State.STOP, Reason.SCAN_INVALID, 0.0)
        assert 'inconsistent' in decision.detail


def test_a_short_range_sensor_limits_the_speed_to_stop_within_what_it_observes() -> None:
    """+inf means nothing within range_max: the path beyond it is not observed, so the robot
    may only drive as fast as lets it stop within (min_path_coverage of) what it observes."""
    short_range = dataclasses.replace(scan(0.0), range_max=1.2)
    drive = Drive(dataclasses.replace(CONFIG, max_linear_accel=100.0))
    decision = drive.step(1.5, laser_scan=short_range, ticks=3)
    assert (decision.state, decision.reason) == (State.LIMIT, Reason.COVERAGE_SLOWDOWN)
    observed_ahead = CONFIG.laser_x_offset + math.sqrt(1.2 ** 2 - 0.275 ** 2) - 0.35
    assert 0.5 < decision.linear < 1.5
    assert observed_ahead <= required_distance(decision.linear, CONFIG) \
        <= observed_ahead / CONFIG.min_path_coverage + COVERAGE_STEP
    assert drive.step(1.0, laser_scan=short_range).state is State.CLEAR


def test_unobserved_front_still_lets_the_robot_back_off_or_turn_away() -> None:
    unobserved_front = scan(0.0, ranges=np.where(AHEAD, np.nan, np.inf))
    drive = Drive(dataclasses.replace(CONFIG, max_linear_accel=100.0))
    backing = drive.step(-0.3, laser_scan=unobserved_front, ticks=3)
    assert (backing.state, backing.linear) == (State.CLEAR, pytest.approx(-0.3))
    turning = drive.step(0.5, 1.0, laser_scan=unobserved_front)
    assert (turning.state, turning.reason) == (State.LIMIT, Reason.ESCAPE_ROTATION)
    assert (turning.linear, turning.angular) == (0.0, pytest.approx(1.0))


def test_min_path_coverage_zero_switches_the_rule_off() -> None:
    ranges = np.where(AHEAD, np.nan, np.inf)
    off = dataclasses.replace(CONFIG, min_path_coverage=0.0)
    decision = cruising(off).step(1.0, laser_scan=scan(0.0, ranges=ranges))
    assert (decision.state, decision.linear) == (State.CLEAR, pytest.approx(1.0))


def test_scattered_dropouts_and_the_shadow_of_an_obstacle_do_not_limit_the_speed() -> None:
    """A few NaN beams (dust, a dark spot) leave most of the path observed; behind a wall the
    path is hidden, but the wall itself already limits the speed to stop before it."""
    ranges = np.full(BEAMS, np.inf)
    ranges[[beam(-40.0), beam(-3.0), beam(7.0), beam(25.0)]] = np.nan
    assert cruising().step(1.0, laser_scan=scan(0.0, ranges=ranges)).state is State.CLEAR
    wall = cruising().step(1.0, obstacles=wall_ahead(1.0, half_angle_deg=30))
    assert (wall.state, wall.reason) == (State.LIMIT, Reason.OBSTACLE_SLOWDOWN)
    assert wall.path_coverage > CONFIG.min_path_coverage


def test_the_headless_simulators_scan_of_an_open_sidewalk_keeps_the_robot_driving() -> None:
    """The demo's scan (360 beams over a full turn, float32 as in the LaserScan message, +inf
    for no return) drives the robot along sidewalk_straight at the planner's 1.0 m/s."""
    from sidewalk_robot.simulation.headless import HeadlessSimulator

    drive = Drive()
    reasons = []
    with HeadlessSimulator('sidewalk_straight') as sim:
        lidar = sim.robot.lidar
        header = np.array([lidar.angle_min, lidar.angle_max, lidar.angle_increment,
                           lidar.range_min, lidar.range_max], dtype=np.float32).astype(float)
        for _ in range(80):
            drive.now += PERIOD
            laser_scan = LaserScanData(drive.now, lidar.frame_id, *header,
                                       sim.scan().astype(float))
            drive.monitor.update_command(VelocityCommand(drive.now, 1.0, 0.0), drive.now)
            drive.monitor.update_odometry(OdometrySample(drive.now, *sim.velocity()), drive.now)
            drive.monitor.update_scan(laser_scan, drive.now)
            decision = drive.monitor.decide(drive.now)
            reasons.append(decision.reason)
            for _ in range(5):
                sim.step(decision.linear, decision.angular, PERIOD / 5)
        travelled = sim.robot_pose().x
    assert set(reasons) == {Reason.ACCELERATION_CAP, Reason.CLEAR}, set(reasons)
    assert decision.path_coverage == 1.0 and decision.linear == pytest.approx(1.0)
    assert travelled > 2.5


# Rule 5: e-stop presses and heartbeat --------------------------------------------------------

def test_a_press_released_at_once_still_latches() -> None:
    drive = cruising()
    drive.monitor.set_estop(True, drive.now)
    drive.monitor.set_estop(False, drive.now)
    decision = drive.step(1.0)
    assert (decision.state, decision.reason, decision.linear) == \
        (State.ESTOP, Reason.ESTOP_LATCHED, 0.0)


def test_a_silent_estop_heartbeat_latches_until_it_is_fresh_and_reset() -> None:
    config = dataclasses.replace(CONFIG, estop_heartbeat_timeout=0.3)
    drive = Drive(config)
    never_heard = drive.step(0.5, ticks=8)
    assert (never_heard.state, never_heard.reason) == (State.ESTOP, Reason.ESTOP_HEARTBEAT_LOST)
    assert 'estop_heartbeat_timeout' in never_heard.detail
    refused = drive.monitor.request_reset(drive.now)
    assert not refused.success and 'heartbeat' in refused.message

    def beating(ticks: int):
        for _ in range(ticks):
            drive.monitor.set_estop(False, drive.now)
            decision = drive.step(0.5)
        return decision

    assert beating(3).reason is Reason.ESTOP_LATCHED
    assert drive.monitor.request_reset(drive.now).success
    assert beating(20).state is State.CLEAR
    silent = drive.step(0.5, ticks=7)
    assert (silent.state, silent.reason, silent.linear) == \
        (State.ESTOP, Reason.ESTOP_HEARTBEAT_LOST, 0.0)
    assert beating(1).reason is Reason.ESTOP_LATCHED
    assert 'heartbeat was lost' in drive.step(0.5).detail

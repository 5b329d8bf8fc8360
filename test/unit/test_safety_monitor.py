"""The SafetyMonitor state machine: start-up, watchdogs, bad input, e-stop, escape, counters."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sidewalk_robot.safety_monitor import (LaserScanData, OdometrySample, Reason, SafetyConfig,
                                           SafetyMonitor, State, VelocityCommand)

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
    return LaserScanData(stamp, frame, -math.pi, 2 * math.pi / BEAMS, 0.1, 10.0,
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
             obstacles: dict[float, float] | None = None) -> None:
        self.monitor.update_command(VelocityCommand(self.now, linear, angular), self.now)
        self.monitor.update_odometry(OdometrySample(self.now, 0.0, 0.0), self.now)
        self.monitor.update_scan(scan(self.now, obstacles), self.now)

    def step(self, linear: float = 0.0, angular: float = 0.0,
             obstacles: dict[float, float] | None = None, ticks: int = 1):
        for _ in range(ticks):
            self.now += PERIOD
            self.feed(linear, angular, obstacles)
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
    front_only = LaserScanData(now, 'laser_link', -math.radians(120), math.radians(1), 0.1, 10.0,
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

"""The safety monitor's state machine: timestamped inputs in, one gated command out.

Time is always passed in (seconds on the node's clock); the core never reads a clock, so the
same code runs on wall time, simulated time and in tests.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

import numpy as np

from sidewalk_robot.safety_monitor.approach import ApproachTracker
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.estop import EStopLatch, ResetResult
from sidewalk_robot.safety_monitor.geometry import (Arc, Footprint, ScanPoints, kth_smallest,
                                                    scan_to_points)
from sidewalk_robot.safety_monitor.inputs import (LaserScanData, OdometrySample, VelocityCommand,
                                                  command_problem, odometry_problem,
                                                  scan_header_problem, stamp_problem)
from sidewalk_robot.safety_monitor.rules import (Separation, approaching_clearance,
                                                 cap_acceleration, cap_speeds, escape_rotation,
                                                 separation_limit, staleness_problem)


class State(str, Enum):
    CLEAR = 'CLEAR'
    """The command passes (possibly clipped to the caps)."""
    LIMIT = 'LIMIT'
    """The command passes, slowed or reduced to a turn because of an obstacle."""
    STOP = 'STOP'
    """Zero output: an obstacle inside the stop distance, or an input missing, stale or bad."""
    ESTOP = 'ESTOP'
    """Zero output until /safety/reset succeeds."""


class Reason(str, Enum):
    CLEAR = 'clear'
    SPEED_CAP = 'speed_cap'
    ACCELERATION_CAP = 'acceleration_cap'
    OBSTACLE_SLOWDOWN = 'obstacle_slowdown'
    COVERAGE_SLOWDOWN = 'coverage_slowdown'
    ESCAPE_ROTATION = 'escape_rotation'
    REVERSE_UNCHECKED = 'reverse_unchecked'
    OBSTACLE_STOP = 'obstacle_stop'
    COVERAGE_STOP = 'coverage_stop'
    APPROACH_STOP = 'approach_stop'
    WAITING_FOR_INPUTS = 'waiting_for_inputs'
    CLOCK_JUMPED_BACK = 'clock_jumped_back'
    CMD_INVALID = 'cmd_invalid'
    SCAN_INVALID = 'scan_invalid'
    ODOM_INVALID = 'odom_invalid'
    CMD_STALE = 'cmd_stale'
    SCAN_STALE = 'scan_stale'
    ODOM_STALE = 'odom_stale'
    ESTOP_PRESSED = 'estop_pressed'
    ESTOP_HEARTBEAT_LOST = 'estop_heartbeat_lost'
    ESTOP_LATCHED = 'estop_latched'


@dataclass(frozen=True)
class Decision:
    stamp: float
    linear: float
    angular: float
    state: State
    reason: Reason
    detail: str
    allowed_linear_speed: float
    """Largest |linear| the gate lets through on the commanded path (straight ahead when the
    command has no linear part); 0 while stopped."""
    nearest_obstacle_m: float
    """Clearance from the footprint to the nearest debounced return in any direction
    (inf: none; nan: no valid scan yet)."""
    path_clearance_m: float
    """Lead-point travel along the commanded path to the nearest debounced return."""
    path_coverage: float
    """Observed share of the commanded path within the stopping distance (rule 10; nan: not
    judged, e.g. standing still or stopped for another reason)."""
    closing_speed_mps: float
    """Fastest closing speed of any return of the latest scan (rule 9; 0: nothing approaches,
    nan: no valid scan yet)."""
    changed: bool
    """True when state or reason differ from the previous decision."""


InputT = TypeVar('InputT')


class _InputSlot(Generic[InputT]):
    """Latest accepted sample of one input, and why the newest message was rejected, if it was."""

    def __init__(self, name: str, invalid: Reason, stale: Reason, timeout: float) -> None:
        self.name, self.invalid, self.stale, self.timeout = name, invalid, stale, timeout
        self.sample: InputT | None = None
        self.stamp = -math.inf
        self.problem: str | None = None

    def accept(self, sample: InputT, stamp: float) -> None:
        self.sample, self.stamp, self.problem = sample, stamp, None

    def reject(self, problem: str) -> None:
        self.problem = f'{self.name}: {problem}'

    def forget(self) -> None:
        self.sample, self.stamp, self.problem = None, -math.inf, None

    def fresh_and_valid(self, now: float) -> bool:
        return self.sample is not None and self.problem is None \
            and not staleness_problem(self.name, self.stamp, now, self.timeout)

    def check_stamp(self, stamp: float, now: float, future_tolerance: float) -> str | None:
        problem = stamp_problem(stamp, now, future_tolerance)
        if problem is None and stamp < self.stamp:
            problem = f'stamp {stamp:.3f} s is older than the previous one ({self.stamp:.3f} s)'
        return problem


@dataclass(frozen=True)
class _Verdict:
    state: State
    reason: Reason
    detail: str


class SafetyMonitor:
    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.footprint = Footprint.from_size(config.footprint_length, config.footprint_width)
        self._command: _InputSlot[VelocityCommand] = _InputSlot(
            'command', Reason.CMD_INVALID, Reason.CMD_STALE, config.cmd_timeout)
        self._scan: _InputSlot[ScanPoints] = _InputSlot(
            'scan', Reason.SCAN_INVALID, Reason.SCAN_STALE, config.scan_timeout)
        self._odometry: _InputSlot[OdometrySample] = _InputSlot(
            'odometry', Reason.ODOM_INVALID, Reason.ODOM_STALE, config.odom_timeout)
        self._estop = EStopLatch(config.estop_heartbeat_timeout)
        self._approach = ApproachTracker(config, self.footprint)
        self._latest_time = -math.inf
        self._clock_note: str | None = None
        self._previous_linear = 0.0
        self._previous_decision_time: float | None = None
        self._previous_key: tuple[State, Reason] | None = None
        self.counts: Counter[str] = Counter()
        """How often each reason was entered (rule 8)."""

    @property
    def _slots(self) -> tuple[_InputSlot, ...]:
        return self._command, self._scan, self._odometry

    # Inputs ---------------------------------------------------------------------------------

    def update_command(self, command: VelocityCommand, now: float) -> None:
        problem = self._stamp_problem(self._command, command.stamp, now) \
            or command_problem(command)
        self._store(self._command, command, command.stamp, problem)

    def update_odometry(self, odometry: OdometrySample, now: float) -> None:
        problem = self._stamp_problem(self._odometry, odometry.stamp, now) \
            or odometry_problem(odometry)
        self._store(self._odometry, odometry, odometry.stamp, problem)

    def update_scan(self, scan: LaserScanData, now: float) -> None:
        problem = self._stamp_problem(self._scan, scan.stamp, now) \
            or scan_header_problem(scan, self.config.scan_frame, self.config.laser_yaw_offset,
                                   self.config.forward_sector_half_angle)
        points = None
        if problem is None:
            points = scan_to_points(scan, self.config.laser_x_offset, self.config.laser_yaw_offset,
                                    self.footprint)
            if points.valid_beams == 0:
                problem = f'none of its {len(scan.ranges)} beams is valid'
        self._store(self._scan, points, scan.stamp, problem)
        if problem is None:
            odometry = self._odometry.sample
            self._approach.observe(scan.stamp, points.points,
                                   None if odometry is None else odometry.linear,
                                   None if odometry is None else odometry.angular)

    def _stamp_problem(self, slot: _InputSlot, stamp: float, now: float) -> str | None:
        self._observe_clock(now)
        return slot.check_stamp(stamp, now, self.config.future_stamp_tolerance)

    @staticmethod
    def _store(slot: _InputSlot[InputT], sample: InputT | None, stamp: float,
               problem: str | None) -> None:
        if problem is None:
            slot.accept(sample, stamp)
        else:
            slot.reject(problem)

    def set_estop(self, pressed: bool, now: float, source: Hashable | None = None,
                  sequence: int | None = None) -> None:
        """One /safety/estop message, received at ``now``: a press latches at once. ``source``
        and ``sequence`` (publisher and message count) let a late older message latch without
        overriding the button state a newer one gave."""
        self._observe_clock(now)
        self._estop.update(pressed, now, source, sequence)

    def request_reset(self, now: float) -> ResetResult:
        """Rule 5: unlatch the e-stop, unless it is pressed, its heartbeat is not fresh, the
        scan or odometry is not fresh and valid, or the stop margin is not clear."""
        self._observe_clock(now)
        return self._estop.reset(now, self._reset_hazard(now))

    def _reset_hazard(self, now: float) -> str | None:
        if not self._scan.fresh_and_valid(now):
            return 'no fresh valid scan to confirm the stop margin is clear'
        if not self._odometry.fresh_and_valid(now):
            return 'no fresh valid odometry: how the robot moves is not known'
        nearest = self._nearest_obstacle()
        if nearest <= self.config.stop_margin:
            return (f'an obstacle is {nearest:.2f} m from the footprint, inside stop_margin '
                    f'{self.config.stop_margin:.2f} m')
        return None

    def _observe_clock(self, now: float) -> None:
        """A clock that jumps back (a replayed bag looping, a restarted simulator) makes every
        stored stamp meaningless: forget the inputs and start over as at start-up. The e-stop
        heartbeat is watched from the first time seen on."""
        if now < self._latest_time:
            self._clock_note = (f'clock jumped back from {self._latest_time:.3f} s to '
                                f'{now:.3f} s; waiting for fresh inputs')
            for slot in self._slots:
                slot.forget()
            self._approach.forget()
            self._estop.restart_watch(now)
        self._latest_time = now
        self._estop.watch_heartbeat(now)

    # Decision -------------------------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        self._observe_clock(now)
        verdict = self._blocking_verdict(now)
        path_clearance = coverage = math.nan
        if verdict is not None:
            linear = angular = allowed = 0.0
        else:
            linear, angular, allowed, path_clearance, coverage, verdict = self._gate_motion(now)
        self._previous_linear = linear
        self._previous_decision_time = now
        key = (verdict.state, verdict.reason)
        changed = key != self._previous_key
        if changed:
            self.counts[verdict.reason.value] += 1
            self._previous_key = key
        return Decision(now, linear, angular, verdict.state, verdict.reason, verdict.detail,
                        allowed, self._nearest_obstacle(), path_clearance, coverage,
                        self._fastest_closing_speed(), changed)

    def _blocking_verdict(self, now: float) -> _Verdict | None:
        """Rules 4, 5 and 6: anything that forces a stop regardless of the command."""
        estop = self._estop
        if estop.latched:
            if estop.pressed:
                return _Verdict(State.ESTOP, Reason.ESTOP_PRESSED, 'e-stop is pressed')
            if estop.heartbeat_lost:
                return _Verdict(State.ESTOP, Reason.ESTOP_HEARTBEAT_LOST,
                                f'no /safety/estop message for {estop.silence(now):.2f} s '
                                f'(estop_heartbeat_timeout {estop.heartbeat_timeout:.2f} s): '
                                'treated as pressed')
            cause = 'e-stop heartbeat was lost' if estop.latched_by_heartbeat \
                else 'e-stop was pressed'
            return _Verdict(State.ESTOP, Reason.ESTOP_LATCHED,
                            f'{cause}; call /safety/reset to resume')
        for slot in self._slots:
            if slot.problem is not None:
                return _Verdict(State.STOP, slot.invalid, slot.problem)
        missing = [slot.name for slot in self._slots if slot.sample is None]
        if missing:
            if self._clock_note is not None:
                return _Verdict(State.STOP, Reason.CLOCK_JUMPED_BACK, self._clock_note)
            return _Verdict(State.STOP, Reason.WAITING_FOR_INPUTS,
                            f'no valid {", ".join(missing)} received yet')
        self._clock_note = None
        for slot in self._slots:
            problem = staleness_problem(slot.name, slot.stamp, now, slot.timeout)
            if problem:
                return _Verdict(State.STOP, slot.stale, problem)
        return None

    def _gate_motion(self, now: float) -> tuple[float, float, float, float, float, _Verdict]:
        """Rules 1, 2, 9, 10, 3 and 7 applied to the current command, in that order."""
        config = self.config
        command = self._command.sample
        scan = self._scan.sample
        speeds = self._approach.point_speeds
        capped = cap_speeds(command.linear, command.angular, config)
        linear = cap_acceleration(capped.linear, self._previous_linear,
                                  config.max_linear_accel * self._elapsed(now))
        accel_limited = linear != capped.linear
        angular = capped.angular
        separation = separation_limit(linear, angular, scan.points, self.footprint, config,
                                      speeds, scan.observation)
        coverage = separation.coverage.fraction
        approaching = approaching_clearance(scan.points, speeds, linear, self.footprint, config)
        approach_stop = approaching <= config.approach_stop_distance
        allowed = 0.0 if approach_stop else \
            self._allowed_linear_speed(linear, angular, separation.allowed_lead_speed)
        if separation.scale == 0.0 or approach_stop:
            if approach_stop:
                reason = Reason.APPROACH_STOP
                blocked = (f'a return {approaching:.2f} m from the footprint closes in, within '
                           f'approach_stop_distance {config.approach_stop_distance:.2f} m')
            elif separation.limited_by_coverage:
                reason = Reason.COVERAGE_STOP
                blocked = self._coverage_words(separation)
            else:
                reason = Reason.OBSTACLE_STOP
                blocked = (f'return {separation.path_clearance:.2f} m along the path is within '
                           f'the stop distance')
            turn = escape_rotation(angular, scan.points, self.footprint, config,
                                   scan.observation)
            if turn != 0.0:
                return 0.0, turn, allowed, separation.path_clearance, coverage, _Verdict(
                    State.LIMIT, Reason.ESCAPE_ROTATION, f'{blocked}; turning in place')
            return 0.0, 0.0, allowed, separation.path_clearance, coverage, _Verdict(
                State.STOP, reason, blocked)
        linear, angular = linear * separation.scale, angular * separation.scale
        if separation.scale < 1.0 and separation.limited_by_coverage:
            verdict = _Verdict(State.LIMIT, Reason.COVERAGE_SLOWDOWN,
                               f'{self._coverage_words(separation)}: speed limited to '
                               f'{allowed:.2f} m/s')
        elif separation.scale < 1.0:
            verdict = _Verdict(State.LIMIT, Reason.OBSTACLE_SLOWDOWN,
                               f'return {separation.path_clearance:.2f} m along the path limits '
                               f'speed to {allowed:.2f} m/s')
        elif linear < 0.0 and not scan.covers_rear:
            verdict = _Verdict(State.LIMIT, Reason.REVERSE_UNCHECKED,
                               'the scan does not cover the rear; reversing only at '
                               f'max_reverse_speed {config.max_reverse_speed:.2f} m/s or less')
        elif accel_limited:
            verdict = _Verdict(State.CLEAR, Reason.ACCELERATION_CAP,
                               f'speeding up at most {config.max_linear_accel:.2f} m/s^2')
        elif capped.limited:
            verdict = _Verdict(State.CLEAR, Reason.SPEED_CAP, 'command clipped to the speed caps')
        else:
            verdict = _Verdict(State.CLEAR, Reason.CLEAR, 'command passes')
        return linear, angular, allowed, separation.path_clearance, coverage, verdict

    def _coverage_words(self, separation: Separation) -> str:
        coverage = separation.coverage
        return (f'only {coverage.fraction:.0%} of the path within the stopping distance is '
                f'observed (min_path_coverage {self.config.min_path_coverage:.0%}); enough of '
                f'it is for the first {coverage.observed_travel:.2f} m')

    def _elapsed(self, now: float) -> float:
        """Time since the previous decision, at most one publish period: a long pause must not
        allow a jump in speed."""
        period = 1.0 / self.config.publish_rate
        if self._previous_decision_time is None:
            return period
        return min(max(now - self._previous_decision_time, 0.0), period)

    def _allowed_linear_speed(self, linear: float, angular: float, lead_limit: float) -> float:
        config = self.config
        if linear == 0.0:
            return self._straight_ahead_limit()
        cap = config.max_linear_speed if linear > 0.0 else config.max_reverse_speed
        arc = Arc(linear, angular, self.footprint)
        return min(cap, lead_limit * abs(linear) / arc.lead_speed)

    def _straight_ahead_limit(self) -> float:
        config = self.config
        scan = self._scan.sample
        separation = separation_limit(config.max_linear_speed, 0.0, scan.points, self.footprint,
                                      config, self._approach.point_speeds, scan.observation)
        return min(config.max_linear_speed, separation.allowed_lead_speed)

    def _fastest_closing_speed(self) -> float:
        if self._scan.sample is None:
            return math.nan
        speeds = self._approach.point_speeds
        return float(speeds.max()) if len(speeds) else 0.0

    def _nearest_obstacle(self) -> float:
        if self._scan.sample is None:
            return math.nan
        points: np.ndarray = self._scan.sample.points
        return kth_smallest(self.footprint.clearance(points), self.config.min_points)

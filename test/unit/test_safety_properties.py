"""Property-based tests of the monitor's guarantees over random scans, commands and odometry.

The references here are written independently of the core: the straight-line check is the
closed-form gap to the footprint's front edge, and the arc check integrates the unicycle in
time, where the core samples closed-form poses by lead-point travel.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidewalk_robot.safety_monitor import (LaserScanData, OdometrySample, SafetyConfig,
                                           SafetyMonitor, VelocityCommand)
from sidewalk_robot.safety_monitor.rules import required_distance

BEAMS = 360
LASER_X = 0.30
HALF_LENGTH, HALF_WIDTH = 0.35, 0.275
SWEEP_TOLERANCE = 0.011
"""How deep a return may graze the footprint between the core's sampled poses [m]."""

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])

special_range = st.sampled_from([math.inf, -math.inf, math.nan])
segment = st.tuples(st.integers(0, BEAMS - 1), st.integers(1, 40),
                    st.one_of(st.floats(0.0, 4.0), special_range))


@st.composite
def scans(draw) -> np.ndarray:
    """Sparse scenes: open space (+inf) with a few objects, and odd beams anywhere."""
    ranges = np.full(BEAMS, math.inf)
    wall = draw(st.one_of(st.none(), st.floats(0.0, 3.0), st.floats(0.3, 1.5)))
    if wall is not None:
        ahead = np.arange(BEAMS // 2 - 30, BEAMS // 2 + 31)
        ranges[ahead] = wall / np.cos(np.radians(ahead - BEAMS // 2))
    for start, width, distance in draw(st.lists(segment, max_size=3)):
        ranges[np.arange(start, start + width) % BEAMS] = distance
    for index, value in draw(st.lists(st.tuples(st.integers(0, BEAMS - 1), special_range),
                                      max_size=3)):
        ranges[index] = value
    return ranges


speeds = st.floats(-2.5, 2.5)


@st.composite
def configs(draw) -> SafetyConfig:
    """Defaults and random tunings; a zero-width slow-down zone makes the stopping rule bind."""
    if draw(st.booleans()):
        return SafetyConfig(min_points=draw(st.integers(1, 3)))
    stop_margin = draw(st.floats(0.0, 0.5))
    return SafetyConfig(
        max_linear_speed=draw(st.floats(0.2, 2.5)), max_reverse_speed=draw(st.floats(0.0, 1.0)),
        max_angular_speed=draw(st.floats(0.1, 2.5)),
        max_linear_accel=draw(st.sampled_from([0.5, 1.0, 100.0])),
        brake_decel=draw(st.floats(0.3, 4.0)), reaction_time=draw(st.floats(0.0, 0.6)),
        stop_margin=stop_margin,
        slowdown_distance=stop_margin + draw(st.sampled_from([0.0, 0.0, 0.5, 2.0])),
        min_points=draw(st.integers(1, 3)))


def make_scan(stamp: float, ranges: np.ndarray) -> LaserScanData:
    return LaserScanData(stamp, 'laser_link', -math.pi, math.pi - 2 * math.pi / BEAMS,
                         2 * math.pi / BEAMS, 0.1, 10.0, ranges)


def decide_once(config: SafetyConfig, ranges: np.ndarray, linear: float, angular: float,
                previous_linear: float = 0.0):
    """Warm the monitor up to ``previous_linear`` in open space, then show it ``ranges``."""
    monitor = SafetyMonitor(config)
    now = 10.0
    for _ in range(200):
        now += 0.05
        monitor.update_command(VelocityCommand(now, previous_linear, 0.0), now)
        monitor.update_odometry(OdometrySample(now, previous_linear, 0.0), now)
        monitor.update_scan(make_scan(now, np.full(BEAMS, math.inf)), now)
        if monitor.decide(now).linear == previous_linear:
            break
    now += 0.05
    monitor.update_command(VelocityCommand(now, linear, angular), now)
    monitor.update_odometry(OdometrySample(now, previous_linear, 0.0), now)
    monitor.update_scan(make_scan(now, ranges), now)
    return monitor.decide(now)


def returns_in_base_link(ranges: np.ndarray) -> np.ndarray:
    """REP 117 returns; one inside the body stands on the nearest edge (docs/safety.md)."""
    angles = -math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
    keep = np.isneginf(ranges) | (np.isfinite(ranges) & (ranges >= 0.1) & (ranges <= 10.0))
    distance = np.where(np.isneginf(ranges), 0.0, ranges)[keep]
    points = []
    for x, y in zip(LASER_X + distance * np.cos(angles[keep]), distance * np.sin(angles[keep])):
        gap_x, gap_y = HALF_LENGTH - abs(x), HALF_WIDTH - abs(y)
        if gap_x > 0 and gap_y > 0:
            if gap_x <= gap_y:
                x = math.copysign(HALF_LENGTH, x)
            else:
                y = math.copysign(HALF_WIDTH, y)
        points.append((x, y))
    return np.array(points).reshape(-1, 2)


def stops_in_time(speed: float, distance: float, config: SafetyConfig) -> bool:
    return speed == 0.0 or (speed * config.reaction_time + speed ** 2 / (2 * config.brake_decel)
                            + config.stop_margin <= distance + 1e-9)


@PROPERTY_SETTINGS
@given(config=configs(), ranges=scans(), linear=speeds, angular=speeds,
       previous=st.floats(-0.3, 1.5))
def test_output_never_exceeds_any_cap(config: SafetyConfig, ranges: np.ndarray, linear: float,
                                      angular: float, previous: float) -> None:
    decision = decide_once(config, ranges, linear, angular, previous)
    assert -config.max_reverse_speed <= decision.linear <= config.max_linear_speed
    assert abs(decision.angular) <= config.max_angular_speed
    speed_up = abs(decision.linear) - abs(previous) if decision.linear * previous >= 0 \
        else abs(decision.linear)
    assert speed_up <= config.max_linear_accel / config.publish_rate + 1e-9


@PROPERTY_SETTINGS
@given(config=configs(), ranges=scans(), linear=st.floats(0.0, 2.5))
def test_forward_speed_respects_the_stopping_distance_to_the_nearest_swept_return(
        config: SafetyConfig, ranges: np.ndarray, linear: float) -> None:
    decision = decide_once(config, ranges, linear, 0.0, previous_linear=linear)
    points = returns_in_base_link(ranges)
    in_path = (np.abs(points[:, 1]) <= HALF_WIDTH) & (points[:, 0] >= HALF_LENGTH)
    gaps = np.sort(points[in_path, 0] - HALF_LENGTH)
    nearest = gaps[config.min_points - 1] if len(gaps) >= config.min_points else math.inf
    assert stops_in_time(decision.linear, nearest, config), (decision, nearest)


def unicycle_poses(linear: float, angular: float, duration: float, steps: int) -> np.ndarray:
    """Poses (x, y, yaw) reached by holding the twist, integrated exactly step by step."""
    poses = [(0.0, 0.0, 0.0)]
    dt = duration / steps
    x = y = yaw = 0.0
    for _ in range(steps):
        if abs(angular) < 1e-9:
            x, y = x + linear * dt * math.cos(yaw), y + linear * dt * math.sin(yaw)
        else:
            new_yaw = yaw + angular * dt
            x += linear / angular * (math.sin(new_yaw) - math.sin(yaw))
            y -= linear / angular * (math.cos(new_yaw) - math.cos(yaw))
            yaw = new_yaw
        poses.append((x, y, yaw))
    return np.array(poses)


def fastest_footprint_speed(linear: float, angular: float) -> float:
    corners = np.array([[sx * HALF_LENGTH, sy * HALF_WIDTH] for sx in (-1, 1) for sy in (-1, 1)])
    velocities = np.column_stack((linear - angular * corners[:, 1], angular * corners[:, 0]))
    return float(np.max(np.hypot(velocities[:, 0], velocities[:, 1])))


@PROPERTY_SETTINGS
@given(config=configs(), ranges=scans(), linear=speeds, angular=speeds)
def test_the_robot_can_stop_along_its_arc_before_reaching_a_return(
        config: SafetyConfig, ranges: np.ndarray, linear: float, angular: float) -> None:
    """Holding the output for reaction_time, braking at brake_decel (at the fastest footprint
    point) and then keeping stop_margin of travel in hand touches fewer than min_points returns."""
    decision = decide_once(config, ranges, linear, angular, previous_linear=linear)
    lead_speed = fastest_footprint_speed(decision.linear, decision.angular)
    if lead_speed < 1e-9:
        return  # standing still (a slower creep would overflow the oracle's step count)
    travel = lead_speed * config.reaction_time + lead_speed ** 2 / (2 * config.brake_decel) \
        + config.stop_margin
    # Braking keeps the path, so the stopping motion is the arc itself, covered at lead speed.
    duration = travel / lead_speed
    poses = unicycle_poses(decision.linear, decision.angular, duration,
                           steps=max(2, int(travel / 0.002)))
    points = returns_in_base_link(ranges)
    start_gap = np.maximum(np.abs(points[:, 0]) - HALF_LENGTH, np.abs(points[:, 1]) - HALF_WIDTH)
    points = points[start_gap > 2 * SWEEP_TOLERANCE]
    dx = points[None, :, 0] - poses[:, None, 0]
    dy = points[None, :, 1] - poses[:, None, 1]
    cos_yaw, sin_yaw = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    local_x, local_y = cos_yaw * dx + sin_yaw * dy, cos_yaw * dy - sin_yaw * dx
    depth = np.minimum(HALF_LENGTH - np.abs(local_x), HALF_WIDTH - np.abs(local_y))
    touched = np.count_nonzero((depth > SWEEP_TOLERANCE).any(axis=0))
    assert touched < config.min_points, (decision, touched)


nasty = st.one_of(st.floats(allow_nan=True, allow_infinity=True), special_range)


@PROPERTY_SETTINGS
@given(ranges=scans(), linear=nasty, angular=nasty, odom=nasty, stamp_shift=nasty,
       range_limit=nasty)
def test_nan_or_inf_anywhere_yields_a_finite_output(ranges: np.ndarray, linear: float,
                                                   angular: float, odom: float,
                                                   stamp_shift: float, range_limit: float) -> None:
    config = SafetyConfig()
    monitor = SafetyMonitor(config)
    now = 50.0
    stamp = now + stamp_shift if math.isfinite(stamp_shift) else stamp_shift
    monitor.update_command(VelocityCommand(stamp, linear, angular), now)
    monitor.update_odometry(OdometrySample(now, odom, odom), now)
    scan = make_scan(now, ranges)
    monitor.update_scan(LaserScanData(scan.stamp, scan.frame_id, scan.angle_min, scan.angle_max,
                                      scan.angle_increment, 0.1, range_limit, ranges), now)
    decision = monitor.decide(now)
    assert math.isfinite(decision.linear) and math.isfinite(decision.angular)
    assert abs(decision.linear) <= config.max_linear_speed
    assert abs(decision.angular) <= config.max_angular_speed


@PROPERTY_SETTINGS
@given(ages=st.tuples(*[st.floats(0.0, 2.0)] * 3), linear=speeds, angular=speeds)
def test_stale_input_yields_zero(ages: tuple[float, float, float], linear: float,
                                 angular: float) -> None:
    config = SafetyConfig()
    monitor = SafetyMonitor(config)
    now = 20.0
    command_age, scan_age, odom_age = ages
    monitor.update_command(VelocityCommand(now - command_age, linear, angular), now)
    monitor.update_scan(make_scan(now - scan_age, np.full(BEAMS, math.inf)), now)
    monitor.update_odometry(OdometrySample(now - odom_age, 0.0, 0.0), now)
    decision = monitor.decide(now)
    if command_age > config.cmd_timeout or scan_age > config.scan_timeout \
            or odom_age > config.odom_timeout:
        assert (decision.linear, decision.angular) == (0.0, 0.0)
        assert decision.reason.value.endswith('_stale')


# Rule 10: hiding part of an obstacle never buys speed the observed beams do not justify --------

BEARINGS = -math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
WALL_BEAMS = np.flatnonzero(np.abs(BEARINGS) < math.radians(80))
no_information = st.sampled_from([math.nan, 0.05, 11.0])
"""NaN, below range_min, beyond range_max: REP 117 beams that observe nothing."""


@st.composite
def hidden_walls(draw) -> tuple[SafetyConfig, float, np.ndarray]:
    """A wall across the path within the stopping distance of the commanded speed, any subset
    of whose beams (a block of neighbours and any others) is replaced by a value that carries
    no information."""
    config = draw(configs())
    config = dataclasses.replace(config, min_path_coverage=draw(
        st.one_of(st.just(SafetyConfig().min_path_coverage), st.just(1.0), st.floats(0.3, 1.0))))
    linear = draw(st.floats(0.1, max(0.1, config.max_linear_speed)))
    gap = draw(st.floats(0.0, required_distance(linear, config)))
    ranges = np.full(BEAMS, math.inf)
    ranges[WALL_BEAMS] = (HALF_LENGTH + gap - LASER_X) / np.cos(BEARINGS[WALL_BEAMS])
    centre, half_width = draw(st.floats(-80.0, 80.0)), draw(st.floats(0.0, 80.0))
    block = WALL_BEAMS[np.abs(np.degrees(BEARINGS[WALL_BEAMS]) - centre) <= half_width]
    ranges[block] = draw(no_information)
    for index in draw(st.sets(st.sampled_from(WALL_BEAMS.tolist()))):
        ranges[index] = draw(no_information)
    return config, linear, ranges


@st.composite
def hidden_objects(draw) -> tuple[SafetyConfig, float, np.ndarray]:
    """An object of any width from a thin post to wider than the robot, anywhere across the
    path, its face within the stopping distance of the commanded speed; any block of its beams
    and any others carry no information."""
    config = draw(configs())
    config = dataclasses.replace(config, min_path_coverage=draw(
        st.one_of(st.just(SafetyConfig().min_path_coverage), st.just(1.0), st.floats(0.3, 1.0))))
    linear = draw(st.floats(0.1, max(0.1, config.max_linear_speed)))
    face = HALF_LENGTH + draw(st.floats(0.0, required_distance(linear, config))) - LASER_X
    width = draw(st.floats(0.05, 1.2))
    centre = draw(st.floats(-HALF_WIDTH, HALF_WIDTH))
    ranges = np.full(BEAMS, math.inf)
    ahead = np.flatnonzero(np.cos(BEARINGS) > 0.05)
    across = face * np.tan(BEARINGS[ahead])
    hits = ahead[np.abs(across - centre) <= width / 2]
    ranges[hits] = face / np.cos(BEARINGS[hits])
    if len(hits):
        first, count = draw(st.integers(0, len(hits) - 1)), draw(st.integers(0, len(hits)))
        ranges[hits[first:first + count]] = draw(no_information)
        for index in draw(st.sets(st.sampled_from(hits.tolist()))):
            ranges[index] = draw(no_information)
    return config, linear, ranges


def observed_range(ranges: np.ndarray) -> np.ndarray:
    """How far each beam looked (REP 117): to its return, to range_max for +inf, else nowhere."""
    measured = np.isfinite(ranges) & (ranges >= 0.1) & (ranges <= 10.0)
    return np.where(measured, ranges, np.where(np.isposinf(ranges), 10.0, 0.0))


def observed_share(ranges: np.ndarray, length: float) -> float:
    """Share of the corridor ``length`` ahead of the front edge that the beams observe, on a
    1 cm grid; each point belongs to the beam nearest its bearing."""
    x, y = np.meshgrid(HALF_LENGTH + np.arange(0.005, length + 0.005, 0.01),
                       np.arange(-HALF_WIDTH + 0.005, HALF_WIDTH, 0.01))
    nearest = np.rint((np.arctan2(y, x - LASER_X) + math.pi) / (2 * math.pi / BEAMS))
    reach = observed_range(ranges)[nearest.astype(int) % BEAMS]
    return float(np.mean(np.hypot(x - LASER_X, y) <= reach))


@PROPERTY_SETTINGS
@given(case=st.one_of(hidden_walls(), hidden_objects()))
def test_the_speed_never_exceeds_what_the_observed_beams_justify(
        case: tuple[SafetyConfig, float, np.ndarray]) -> None:
    """The robot can stop before the min_points-th observed return, and within a stretch of the
    path that is observed to at least min_path_coverage (judged here on a 1 cm grid, with 0.05
    tolerance for the monitor's coarser sampling)."""
    config, linear, ranges = case
    decision = decide_once(config, ranges, linear, 0.0, previous_linear=linear)
    speed = decision.linear
    if speed == 0.0:
        return
    points = returns_in_base_link(ranges)
    in_path = (np.abs(points[:, 1]) <= HALF_WIDTH) & (points[:, 0] >= HALF_LENGTH)
    gaps = np.sort(points[in_path, 0] - HALF_LENGTH)
    nearest = gaps[config.min_points - 1] if len(gaps) >= config.min_points else math.inf
    assert stops_in_time(speed, nearest, config), (decision, nearest)
    share = observed_share(ranges, required_distance(speed, config))
    assert share >= config.min_path_coverage - 0.05, (decision, share)


@PROPERTY_SETTINGS
@given(case=hidden_walls())
def test_hiding_all_of_a_walls_beams_in_the_path_stops_the_robot(
        case: tuple[SafetyConfig, float, np.ndarray]) -> None:
    """With the wall's beams across the path gone, the path right ahead is unobserved."""
    config, linear, ranges = case
    config = dataclasses.replace(config, min_path_coverage=SafetyConfig().min_path_coverage)
    hidden = ranges.copy()
    hidden[np.abs(BEARINGS) < math.radians(45)] = math.nan
    assert decide_once(config, hidden, linear, 0.0, previous_linear=linear).linear == 0.0

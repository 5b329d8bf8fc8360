"""Each rule of the safety monitor as a pure function (rules 1, 2, 3, 4, 5, 7, 10)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot.config import load_config, parameter_names
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.estop import EStopLatch
from sidewalk_robot.safety_monitor.geometry import (COVERAGE_STEP, SWEEP_STEP, Arc, Footprint,
                                                    ScanObservation, scan_to_points)
from sidewalk_robot.safety_monitor.inputs import (LaserScanData, covers_sector,
                                                  scan_header_problem)
from sidewalk_robot.safety_monitor.rules import (PathCoverage, cap_acceleration, cap_speeds,
                                                 escape_rotation, path_coverage,
                                                 required_distance, separation_limit,
                                                 slowdown_speed_limit, staleness_problem,
                                                 stopping_speed_limit)

CONFIG = SafetyConfig()
FOOTPRINT = Footprint.from_size(CONFIG.footprint_length, CONFIG.footprint_width)
YAML = Path(__file__).resolve().parents[2] / 'config' / 'safety_monitor.yaml'


def test_yaml_sets_every_parameter_to_the_issue_defaults() -> None:
    text = YAML.read_text()
    # robot_model is the launch file's argument, the same for every node
    for name in set(parameter_names(SafetyConfig)) - {'robot_model'}:
        assert f'    {name}:' in text, f'{name} missing from {YAML.name}'
    assert load_config(SafetyConfig, YAML) == SafetyConfig()
    assert all(f.metadata['description'] for f in dataclasses.fields(SafetyConfig))


def test_slowdown_distance_below_stop_margin_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match='slowdown_distance'):
        SafetyConfig(stop_margin=1.0, slowdown_distance=0.5)


# Rule 1 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('linear, angular, expected', [
    (2.0, 0.0, (1.5, 0.0, True)),
    (-1.0, 0.0, (-0.3, 0.0, True)),
    (0.5, 3.0, (0.5, 1.5, True)),
    (0.5, -3.0, (0.5, -1.5, True)),
    (1.0, 0.5, (1.0, 0.5, False)),
])
def test_speed_caps(linear: float, angular: float, expected: tuple) -> None:
    capped = cap_speeds(linear, angular, CONFIG)
    assert (capped.linear, capped.angular, capped.limited) == expected


@pytest.mark.parametrize('target, previous, expected', [
    (1.0, 0.0, 0.05),      # speeding up: one step
    (1.0, 0.5, 0.55),
    (0.2, 0.5, 0.2),       # slowing down: at once
    (0.0, 1.0, 0.0),
    (-0.3, 0.5, -0.05),    # reversing: brake to 0 at once, then one step back
    (-0.3, -0.1, -0.15),
    (0.52, 0.5, 0.52),     # within one step
])
def test_acceleration_cap_limits_speeding_up_never_braking(target: float, previous: float,
                                                           expected: float) -> None:
    assert cap_acceleration(target, previous, 0.05) == pytest.approx(expected)


# Rule 2 ---------------------------------------------------------------------------------------

def test_stopping_limit_is_the_largest_speed_meeting_the_stopping_inequality() -> None:
    for distance in (0.3, 0.5, 1.0, 2.0, 5.0):
        speed = stopping_speed_limit(distance, CONFIG)
        assert required_distance(speed, CONFIG) == pytest.approx(distance)
    assert stopping_speed_limit(CONFIG.stop_margin, CONFIG) == 0.0
    assert stopping_speed_limit(0.1, CONFIG) == 0.0
    assert stopping_speed_limit(math.inf, CONFIG) == math.inf


def test_slowdown_ramps_from_full_speed_to_zero_between_the_zone_edges() -> None:
    assert slowdown_speed_limit(CONFIG.slowdown_distance, CONFIG) == math.inf
    middle = (CONFIG.slowdown_distance + CONFIG.stop_margin) / 2
    assert slowdown_speed_limit(middle, CONFIG) == pytest.approx(CONFIG.max_linear_speed / 2)
    assert slowdown_speed_limit(CONFIG.stop_margin, CONFIG) == 0.0


def obstacle_ahead(gap: float, width: float = 0.2, spacing: float = 0.02) -> np.ndarray:
    """A wall segment ``gap`` in front of the footprint's front edge."""
    y = np.arange(-width / 2, width / 2 + 1e-9, spacing)
    return np.column_stack((np.full_like(y, FOOTPRINT.half_length + gap), y))


def test_obstacle_far_ahead_does_not_limit_and_near_obstacle_slows() -> None:
    assert separation_limit(1.5, 0.0, obstacle_ahead(3.0), FOOTPRINT, CONFIG).scale == 1.0
    near = separation_limit(1.5, 0.0, obstacle_ahead(1.0), FOOTPRINT, CONFIG)
    assert 0.0 < near.scale < 1.0
    assert 1.0 - 2 * SWEEP_STEP <= near.path_clearance <= 1.0
    assert near.allowed_lead_speed <= stopping_speed_limit(1.0, CONFIG)


def test_inside_stop_margin_forward_motion_is_zero_and_reverse_is_allowed() -> None:
    points = obstacle_ahead(0.2)
    assert separation_limit(0.5, 0.0, points, FOOTPRINT, CONFIG).scale == 0.0
    assert separation_limit(-0.3, 0.0, points, FOOTPRINT, CONFIG).scale == 1.0


def test_reverse_is_checked_against_returns_behind() -> None:
    behind = -obstacle_ahead(0.2)
    assert separation_limit(-0.3, 0.0, behind, FOOTPRINT, CONFIG).scale == 0.0
    assert separation_limit(0.5, 0.0, behind, FOOTPRINT, CONFIG).scale == 1.0


def test_obstacle_beside_the_straight_path_does_not_limit_it() -> None:
    beside = obstacle_ahead(0.5) + np.array([0.0, 0.6])
    assert separation_limit(1.5, 0.0, beside, FOOTPRINT, CONFIG).scale == 1.0
    assert separation_limit(1.5, 1.5, beside, FOOTPRINT, CONFIG).scale < 1.0


# Rule 3 ---------------------------------------------------------------------------------------

def test_escape_turns_in_place_when_the_turn_is_clear() -> None:
    wall = obstacle_ahead(0.2, width=1.0)       # 0.55 m from the centre, beyond the corners
    assert escape_rotation(1.0, wall, FOOTPRINT, CONFIG) == pytest.approx(1.0)
    assert escape_rotation(-1.0, wall, FOOTPRINT, CONFIG) == pytest.approx(-1.0)


def test_escape_refuses_a_turn_that_would_sweep_a_corner_into_the_obstacle() -> None:
    wall = obstacle_ahead(0.03, width=1.0)      # the corners would swing into it
    assert escape_rotation(1.0, wall, FOOTPRINT, CONFIG) == 0.0


# Rule 4 ---------------------------------------------------------------------------------------

def test_staleness_is_judged_by_stamp_age() -> None:
    assert staleness_problem('scan', 10.0, 10.29, 0.3) is None
    problem = staleness_problem('scan', 10.0, 10.31, 0.3)
    assert problem is not None and 'scan is stale' in problem


def scan_spanning(first_deg: float, last_deg: float, step_deg: float = 1.0) -> LaserScanData:
    count = round((last_deg - first_deg) / step_deg) + 1
    return LaserScanData(0.0, 'laser_link', math.radians(first_deg), math.radians(last_deg),
                         math.radians(step_deg), 0.1, 10.0, np.full(count, np.inf))


@pytest.mark.parametrize('first, last, step, laser_yaw, covered', [
    (-180.0, 179.0, 1.0, 0.0, True),          # the robot's full turn
    (-90.0, 90.0, 1.0, 0.0, True),            # exactly the sector (half a beam either side)
    (-89.0, 89.0, 1.0, 0.0, False),
    (-135.0, 135.0, 0.25, 0.0, True),         # a 270 degree scanner
    (91.0, 269.0, 1.0, 0.0, False),           # every beam points backwards
    (90.0, 270.0, 1.0, math.pi, True),        # a rear-facing scanner mounted turned round
    (90.0, -90.0, -1.0, 0.0, True),           # negative increment (upside-down scanner)
    (90.0, -90.0, -1.0, math.pi, False),
    (-90.0, 90.0, 1.0, math.pi / 2, False),
])
def test_the_scan_must_cover_the_forward_sector(first: float, last: float, step: float,
                                                laser_yaw: float, covered: bool) -> None:
    scan = scan_spanning(first, last, step)
    assert covers_sector(scan, laser_yaw, math.pi / 2) is covered
    problem = scan_header_problem(scan, 'laser_link', laser_yaw, math.pi / 2)
    assert (problem is None) is covered
    if not covered:
        assert 'forward sector' in problem


def test_a_scan_header_must_agree_with_its_beam_count() -> None:
    scan = scan_spanning(-180.0, 179.0)
    increment = scan.angle_increment
    assert scan_header_problem(dataclasses.replace(scan, angle_max=scan.angle_max + increment),
                               'laser_link', 0.0, math.pi / 2) is None
    for wrong in (scan.angle_max + 1.1 * increment, scan.angle_max - 1.1 * increment, math.nan):
        problem = scan_header_problem(dataclasses.replace(scan, angle_max=wrong), 'laser_link',
                                      0.0, math.pi / 2)
        assert problem is not None and ('inconsistent' in problem or 'unusable' in problem)


# Rule 5 ---------------------------------------------------------------------------------------

def test_estop_latch_needs_release_and_no_hazard_to_reset() -> None:
    latch = EStopLatch()
    assert latch.reset(0.0, None).success and not latch.latched
    latch.update(True, 0.0)
    latch.update(False, 0.001)
    assert latch.latched
    latch.update(True, 0.1)
    refused = latch.reset(0.1, None)
    assert not refused.success and 'still pressed' in refused.message
    latch.update(False, 0.2)
    blocked = latch.reset(0.2, 'an obstacle is near')
    assert not blocked.success and 'an obstacle is near' in blocked.message and latch.latched
    assert latch.reset(0.2, None).success and not latch.latched


@pytest.mark.parametrize('late_press', [True, False])
def test_a_late_older_message_latches_but_does_not_undo_the_newer_button_state(
        late_press: bool) -> None:
    """Copies of one publisher's messages can arrive out of order: press 1 after release 2, or
    release 1 after press 2."""
    latch = EStopLatch()
    latch.update(not late_press, 0.0, source=b'button', sequence=2)
    latch.update(late_press, 0.001, source=b'button', sequence=1)
    assert latch.latched
    assert latch.pressed is (not late_press)
    assert latch.reset(0.002, None).success is late_press
    latch.update(False, 0.003, source=b'another button', sequence=1)
    assert not latch.pressed, 'the newest message of any publisher gives the button state'


def test_a_silent_estop_heartbeat_latches_and_blocks_reset_until_it_is_fresh() -> None:
    latch = EStopLatch(heartbeat_timeout=0.5)
    latch.watch_heartbeat(10.0)
    latch.watch_heartbeat(10.5)
    assert not latch.latched, 'silence up to the timeout is allowed, also since start'
    latch.watch_heartbeat(10.51)
    assert latch.latched and latch.heartbeat_lost, 'never heard since start: treated as pressed'
    late = latch.reset(10.6, None)
    assert not late.success and 'heartbeat' in late.message
    latch.update(False, 10.7)
    assert not latch.heartbeat_lost and latch.latched
    assert latch.reset(10.8, None).success
    latch.watch_heartbeat(11.2)
    assert not latch.latched
    latch.watch_heartbeat(11.3)
    assert latch.latched and latch.heartbeat_lost
    stale = latch.reset(11.3, None)
    assert not stale.success and 'heartbeat' in stale.message
    off = EStopLatch()
    off.watch_heartbeat(0.0)
    off.watch_heartbeat(1e6)
    assert not off.latched, 'without a heartbeat timeout, no publisher means not pressed'


# Rule 10 --------------------------------------------------------------------------------------

def observation_of(ranges: np.ndarray, range_max: float = 10.0) -> ScanObservation:
    scan = LaserScanData(0.0, 'laser_link', -math.pi, math.pi - 2 * math.pi / len(ranges),
                         2 * math.pi / len(ranges), 0.1, range_max, ranges)
    return scan_to_points(scan, CONFIG.laser_x_offset, 0.0, FOOTPRINT).observation


BEARINGS = -math.pi + 2 * math.pi / 360 * np.arange(360)


def test_an_open_scan_observes_the_whole_path_straight_on_an_arc_and_turning() -> None:
    observation = observation_of(np.full(360, np.inf))
    for linear, angular in ((1.5, 0.0), (-0.3, 0.0), (1.0, 0.8), (0.0, 1.5)):
        coverage = path_coverage(Arc(linear, angular, FOOTPRINT), observation, 1.5, 1.0)
        assert coverage == PathCoverage(1.0, math.inf)


def test_nan_ahead_leaves_not_even_the_first_stretch_of_the_path_observed() -> None:
    observation = observation_of(np.where(np.abs(BEARINGS) < math.radians(30), np.nan, np.inf))
    coverage = path_coverage(Arc(1.0, 0.0, FOOTPRINT), observation, 1.0, 0.9)
    assert coverage.fraction < 0.9 and coverage.observed_travel == 0.0
    assert path_coverage(Arc(-0.3, 0.0, FOOTPRINT), observation, 1.0, 0.9).fraction == 1.0
    enough = path_coverage(Arc(1.0, 0.0, FOOTPRINT), observation, 1.0, coverage.fraction)
    assert enough.observed_travel == math.inf, 'the stretch is looked for only when needed'


SHORT_RANGE_OBSERVED = CONFIG.laser_x_offset + math.sqrt(1.2 ** 2 - 0.275 ** 2) \
    - FOOTPRINT.half_length
"""How far a 1.2 m sensor sees along the whole width of the straight path ahead [m]."""


def test_a_short_range_leaves_the_path_beyond_it_unobserved() -> None:
    observation = observation_of(np.full(360, np.inf), range_max=1.2)
    coverage = path_coverage(Arc(1.5, 0.0, FOOTPRINT), observation, 1.45, 0.9)
    assert coverage.fraction == pytest.approx(SHORT_RANGE_OBSERVED / 1.45, abs=0.05)
    assert SHORT_RANGE_OBSERVED <= coverage.observed_travel \
        <= SHORT_RANGE_OBSERVED / 0.9 + COVERAGE_STEP
    strict = path_coverage(Arc(1.5, 0.0, FOOTPRINT), observation, 1.45, 1.0)
    assert SHORT_RANGE_OBSERVED - COVERAGE_STEP <= strict.observed_travel \
        <= SHORT_RANGE_OBSERVED + COVERAGE_STEP


def test_separation_stops_before_the_unobserved_path_only_when_coverage_is_too_low() -> None:
    observation = observation_of(np.full(360, np.inf), range_max=1.2)
    none = np.empty((0, 2))
    limited = separation_limit(1.5, 0.0, none, FOOTPRINT, CONFIG, observation=observation)
    assert limited.limited_by_coverage and 0.0 < limited.scale < 1.0
    assert required_distance(limited.allowed_lead_speed, CONFIG) \
        == pytest.approx(limited.coverage.observed_travel)
    assert separation_limit(1.5, 0.0, none, FOOTPRINT, CONFIG).scale == 1.0
    off = dataclasses.replace(CONFIG, min_path_coverage=0.0)
    assert separation_limit(1.5, 0.0, none, FOOTPRINT, off, observation=observation).scale == 1.0
    slow = separation_limit(0.5, 0.0, none, FOOTPRINT, CONFIG, observation=observation)
    assert slow.scale == 1.0 and slow.coverage.fraction == 1.0, 'judged within its own stop'


# Rule 7 ---------------------------------------------------------------------------------------

def test_a_single_noisy_return_does_not_stop_but_min_points_returns_do() -> None:
    one_beam = np.array([[FOOTPRINT.half_length + 0.1, 0.0]])
    assert separation_limit(1.0, 0.0, one_beam, FOOTPRINT, CONFIG).scale == 1.0
    strict = dataclasses.replace(CONFIG, min_points=1)
    assert separation_limit(1.0, 0.0, one_beam, FOOTPRINT, strict).scale == 0.0
    two_beams = np.array([[FOOTPRINT.half_length + 0.1, 0.0], [FOOTPRINT.half_length + 0.1, 0.02]])
    assert separation_limit(1.0, 0.0, two_beams, FOOTPRINT, CONFIG).scale == 0.0

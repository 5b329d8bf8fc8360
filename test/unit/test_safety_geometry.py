"""Scan returns in base_link (REP 117) and the footprint swept along a commanded arc."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidewalk_robot.safety_monitor.geometry import (COVERAGE_STEP, SWEEP_STEP, Arc, Footprint,
                                                    ScanObservation, contact_distances,
                                                    kth_smallest, scan_to_points, swept_path)
from sidewalk_robot.safety_monitor.inputs import LaserScanData

FOOTPRINT = Footprint.from_size(0.70, 0.55)
LASER_X = 0.30


def full_turn_scan(ranges: np.ndarray, range_min: float = 0.1, range_max: float = 10.0,
                   count: int = 360) -> LaserScanData:
    return LaserScanData(0.0, 'laser_link', -math.pi, math.pi - 2 * math.pi / count,
                         2 * math.pi / count, range_min, range_max,
                         np.asarray(ranges, dtype=float))


def beam_index(angle_deg: float, count: int = 360) -> int:
    return int(round((math.radians(angle_deg) + math.pi) / (2 * math.pi / count))) % count


def test_beams_map_to_base_link_with_the_laser_offset_and_yaw() -> None:
    ranges = np.full(360, np.inf)
    ranges[beam_index(0)] = 2.0
    ranges[beam_index(90)] = 1.0
    points = scan_to_points(full_turn_scan(ranges), LASER_X, 0.0, FOOTPRINT).points
    assert sorted(map(tuple, np.round(points, 6))) == [(0.3, 1.0), (2.3, 0.0)]
    rotated = scan_to_points(full_turn_scan(ranges), LASER_X, math.pi / 2, FOOTPRINT).points
    assert sorted(map(tuple, np.round(rotated, 6))) == [(-0.7, 0.0), (0.3, 2.0)]


def test_rep117_positive_inf_is_valid_but_no_return() -> None:
    result = scan_to_points(full_turn_scan(np.full(360, np.inf)), LASER_X, 0.0, FOOTPRINT)
    assert result.valid_beams == 360 and len(result.points) == 0


def test_rep117_nan_and_out_of_limits_values_carry_no_information() -> None:
    ranges = np.full(360, np.nan)
    ranges[0] = 0.05      # below range_min: a driver's "no echo", not an obstacle
    ranges[1] = 11.0      # beyond range_max
    ranges[2] = 3.0
    result = scan_to_points(full_turn_scan(ranges), LASER_X, 0.0, FOOTPRINT)
    assert result.valid_beams == 1 and len(result.points) == 1


def test_rep117_negative_inf_is_an_obstacle_at_the_sensor_on_the_footprint_edge() -> None:
    ranges = np.full(360, np.inf)
    ranges[beam_index(0)] = -np.inf
    result = scan_to_points(full_turn_scan(ranges), LASER_X, 0.0, FOOTPRINT)
    assert result.valid_beams == 360
    np.testing.assert_allclose(result.points, [[0.35, 0.0]])


def test_rear_coverage_depends_on_the_scan_field_of_view() -> None:
    full = scan_to_points(full_turn_scan(np.full(360, np.inf)), LASER_X, 0.0, FOOTPRINT)
    front_only = LaserScanData(0.0, 'laser_link', -math.radians(120), math.radians(120),
                               math.radians(1), 0.1, 10.0,
                               np.full(241, np.inf))
    assert full.covers_rear
    assert not scan_to_points(front_only, LASER_X, 0.0, FOOTPRINT).covers_rear


def test_points_inside_the_footprint_move_to_the_nearest_edge() -> None:
    pushed = FOOTPRINT.push_to_boundary(np.array([[0.30, 0.0], [-0.30, 0.1], [0.0, 0.2],
                                                  [1.0, 1.0]]))
    np.testing.assert_allclose(pushed, [[0.35, 0.0], [-0.35, 0.1], [0.0, 0.275], [1.0, 1.0]])


def test_clearance_is_euclidean_outside_and_zero_inside() -> None:
    clearance = FOOTPRINT.clearance(np.array([[1.35, 0.0], [0.65, 0.675], [0.0, 0.0]]))
    np.testing.assert_allclose(clearance, [1.0, 0.5, 0.0])


def test_straight_contact_is_the_gap_to_the_front_rounded_down_by_at_most_two_steps() -> None:
    points = np.array([[1.35, 0.1], [1.35, 0.30], [-1.0, 0.0]])
    forward = contact_distances(points, Arc(1.0, 0.0, FOOTPRINT), horizon=3.0)
    assert len(forward) == 1
    assert 1.0 - 2 * SWEEP_STEP <= forward[0] <= 1.0
    backward = contact_distances(points, Arc(-0.3, 0.0, FOOTPRINT), horizon=3.0)
    assert len(backward) == 1 and 0.65 - 2 * SWEEP_STEP <= backward[0] <= 0.65


def test_contacts_beyond_the_horizon_are_not_reported() -> None:
    points = np.array([[2.35, 0.0]])
    assert len(contact_distances(points, Arc(1.0, 0.0, FOOTPRINT), horizon=1.0)) == 0


def test_turning_in_place_hits_returns_within_the_corner_circle_only() -> None:
    near_corner = np.array([[0.40, 0.0]])      # 0.40 < corner radius 0.445: the corner sweeps it
    beyond_corners = np.array([[0.50, 0.0]])
    turn = Arc(0.0, 1.0, FOOTPRINT)
    assert len(contact_distances(near_corner, turn, horizon=5.0)) == 1
    assert len(contact_distances(beyond_corners, turn, horizon=5.0)) == 0
    assert turn.lead_speed == pytest.approx(FOOTPRINT.circumradius)


def test_an_arc_reaches_a_return_on_its_side_that_a_straight_path_misses() -> None:
    left_ahead = np.array([[1.2, 0.9]])
    assert len(contact_distances(left_ahead, Arc(1.0, 0.0, FOOTPRINT), horizon=3.0)) == 0
    assert len(contact_distances(left_ahead, Arc(1.0, 0.8, FOOTPRINT), horizon=3.0)) == 1
    assert len(contact_distances(left_ahead, Arc(1.0, -0.8, FOOTPRINT), horizon=3.0)) == 0


def test_a_return_touching_the_footprint_blocks_motion_into_it_but_not_away() -> None:
    touching = np.array([[0.35, 0.0]])
    assert contact_distances(touching, Arc(0.5, 0.0, FOOTPRINT), horizon=2.0).tolist() == [0.0]
    assert len(contact_distances(touching, Arc(-0.3, 0.0, FOOTPRINT), horizon=2.0)) == 0


def test_kth_smallest_is_the_debounced_distance() -> None:
    values = np.array([3.0, 1.0, 2.0])
    assert kth_smallest(values, 1) == 1.0
    assert kth_smallest(values, 2) == 2.0
    assert kth_smallest(values, 4) == math.inf


# Rule 10: what a scan has observed, and the path the footprint sweeps -------------------------

def observation_of(ranges: np.ndarray, scan: LaserScanData | None = None) -> ScanObservation:
    scan = scan or full_turn_scan(ranges)
    return scan_to_points(scan, LASER_X, 0.0, FOOTPRINT).observation


def test_a_beam_observes_up_to_its_return_or_range_max_and_nan_observes_nothing() -> None:
    ranges = np.full(360, np.inf)
    ranges[beam_index(0)] = 2.0
    ranges[beam_index(90)] = np.nan
    ranges[beam_index(180)] = 11.0       # beyond range_max: no information
    ranges[beam_index(-45)] = -np.inf    # closer than range_min: a return at the sensor
    points = np.array([[LASER_X + 1.9, 0.0], [LASER_X + 2.1, 0.0],     # before / behind a return
                       [LASER_X, 0.5],                                 # along the NaN beam
                       [LASER_X, -5.0], [LASER_X, -10.5],               # +inf: out to range_max
                       [LASER_X - 1.0, 0.0],
                       [LASER_X + 0.5, -0.5]])
    in_view, observed = observation_of(ranges).look_up(points[:, 0], points[:, 1])
    assert in_view.all()
    assert observed.tolist() == [True, False, False, True, False, False, False]


def test_bearings_no_beam_covers_are_outside_the_field_of_view() -> None:
    front_only = LaserScanData(0.0, 'laser_link', -math.radians(120), math.radians(120),
                               math.radians(1), 0.1, 10.0, np.full(241, np.inf))
    observation = observation_of(np.empty(0), front_only)
    in_view, observed = observation.look_up(np.array([LASER_X + 1.0, LASER_X - 1.0]),
                                            np.array([0.0, 0.0]))
    assert in_view.tolist() == [True, False] and observed.tolist() == [True, False]


def test_straight_motion_sweeps_the_corridor_ahead_or_behind_evenly() -> None:
    ahead = swept_path(Arc(1.0, 0.0, FOOTPRINT), horizon=1.0)
    assert np.all((ahead.x > 0.35) & (ahead.x <= 0.35 + 1.0 + COVERAGE_STEP + 1e-9))
    assert np.all(np.abs(ahead.y) < 0.275)
    assert np.all(ahead.travel <= ahead.x - 0.35 + 1e-9), 'contact never reported late'
    assert np.all(ahead.travel >= ahead.x - 0.35 - COVERAGE_STEP - 1e-9)
    assert np.ptp(ahead.weight) == pytest.approx(0.0)
    behind = swept_path(Arc(-0.3, 0.0, FOOTPRINT), horizon=1.0)
    assert np.all(behind.x < -0.35) and len(behind.x) == len(ahead.x)
    assert len(swept_path(Arc(0.0, 0.0, FOOTPRINT), horizon=1.0).x) == 0


def test_turning_in_place_sweeps_only_the_corner_circle_outside_the_footprint() -> None:
    turn = swept_path(Arc(0.0, 1.0, FOOTPRINT), horizon=5.0)
    radius = np.hypot(turn.x, turn.y)
    assert len(turn.x) > 0
    assert np.all(radius <= FOOTPRINT.circumradius + 1e-9)
    assert np.all(FOOTPRINT.box_distance(turn.x, turn.y) > 0.0)
    assert turn.travel.max() < 2 * math.pi * FOOTPRINT.circumradius

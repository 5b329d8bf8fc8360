"""Per-frame evaluation: stopping rule, staleness, e-stop, lidar agreement, latencies."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidewalk_robot.replay.criteria import ReplayCriteria, load_criteria
from sidewalk_robot.replay.evaluation import (ReplayRecord, corridor_distance, evaluate,
                                              in_camera_view, lidar_agreement, scan_points,
                                              swept_clearance)
from sidewalk_robot.replay.samples import (CameraModel, EStop, Frame, Grid, SafetyState, Scan,
                                           Twist)
from sidewalk_robot.replay.synthetic import SyntheticDrive, box_ranges

CRITERIA = ReplayCriteria()
CAMERA = CameraModel(fx=160.0, fy=160.0, cx=160.0, cy=120.0, width=320, height=240)


def box_scan(time: float, box_distance_from_front: float, half_width: float = 0.4) -> Scan:
    """A scan with a box face ``box_distance_from_front`` ahead of the footprint's front."""
    drive = SyntheticDrive(box_x_m=0.35 + box_distance_from_front, box_half_width_m=half_width)
    return Scan(time=time, stamp=time, ranges=box_ranges(0.0, drive), angle_min=-math.pi,
                angle_increment=2 * math.pi / 360, range_min=0.1, range_max=10.0)


def empty_grid(time: float, wall: float, value: int = 0) -> Grid:
    return Grid(time=time, wall=wall, stamp=time, resolution=0.1, origin_x=-1.0, origin_y=-4.0,
                origin_yaw=0.0, cells=np.full((80, 80), value, dtype=np.int8))


def record_with(gated_speeds: list[float], distance: float = 2.0, *, rate_hz: float = 20.0,
                estop_at: float | None = None, duration: float = 2.0) -> ReplayRecord:
    frames = [Frame(time=t, stamp=t, wall=1000.0 + t) for t in np.arange(0.0, duration, 0.1)]
    scans = [box_scan(t, distance) for t in np.arange(0.0, duration, 0.1)]
    gated = [Twist(time=i / rate_hz, wall=1000.0 + i / rate_hz + 0.01, linear=speed, angular=0.0)
             for i, speed in enumerate(gated_speeds)]
    return ReplayRecord(bag='test', frames=frames, scans=scans, camera=CAMERA, gated=gated,
                        estops=[EStop(estop_at, True)] if estop_at is not None else [],
                        start_time=0.0, end_time=duration)


@given(st.floats(min_value=0.0, max_value=20.0))
def test_speed_limit_is_the_inverse_of_the_stopping_distance(distance: float) -> None:
    limit = CRITERIA.speed_limit(distance)
    if distance <= CRITERIA.stop_margin_m:
        assert limit == 0.0
    else:
        assert CRITERIA.stopping_distance(limit) == pytest.approx(distance, abs=1e-9)


def test_stopping_distance_matches_the_brief_formula() -> None:
    v = 1.2
    assert CRITERIA.stopping_distance(v) == pytest.approx(v * 0.3 + v * v / (2 * 1.5) + 0.25)


def test_corridor_distance_measures_from_the_front_edge() -> None:
    points, _ = scan_points(box_scan(0.0, 1.5), CRITERIA)
    assert corridor_distance(points, CRITERIA) == pytest.approx(1.5, abs=1e-6)
    # A single stray return is debounced (min_points = 2), as the monitor does.
    stray = np.array([[1.0, 0.0]])
    assert corridor_distance(stray, CRITERIA) == math.inf
    narrow_side = np.array([[1.0, 0.5], [1.2, -0.4]])  # beside the corridor
    assert corridor_distance(narrow_side, CRITERIA) == math.inf


def test_turning_away_from_an_obstacle_off_to_the_side_clears_it() -> None:
    # Two returns ahead-left: driving straight passes them, a left curve runs into them.
    points = np.array([[1.2, 0.45], [1.25, 0.45]])
    straight, _ = swept_clearance(points, 0.5, 0.0, CRITERIA, horizon=3.0)
    left, lead_speed = swept_clearance(points, 0.5, 0.2, CRITERIA, horizon=3.0)
    right, _ = swept_clearance(points, 0.5, -0.2, CRITERIA, horizon=3.0)
    assert straight == math.inf and right == math.inf
    assert 0.7 < left < 1.2
    assert lead_speed > 0.5  # the outer corner moves faster than base_link


def test_safe_commands_pass_and_too_fast_ones_are_flagged() -> None:
    # 1.0 m free allows about 1.12 m/s; the monitor sending 1.0 is fine, 1.5 is not.
    passing = evaluate(record_with([1.0] * 40, distance=1.0), CRITERIA)
    assert passing.metrics['stopping_violations'] == 0
    failing = evaluate(record_with([1.0] * 20 + [1.5] * 20, distance=1.0), CRITERIA)
    assert failing.metrics['stopping_violations'] == 20
    check = next(c for c in failing.checks if c.name == 'stopping_distance')
    assert not check.passed and '1.5 m/s' in check.detail
    assert any(row['stopping_violations'] for row in failing.rows)
    assert not all(row['passed'] for row in failing.rows)


def test_moving_before_any_scan_is_a_violation() -> None:
    record = record_with([0.3] * 10)
    record.scans = [scan for scan in record.scans if scan.time > 0.35]
    violations = evaluate(record, CRITERIA).metrics['stopping_violations']
    assert violations == 8  # the commands at 0.0 .. 0.35 s


def test_a_silent_monitor_is_stale() -> None:
    record = record_with([0.0] * 40)
    record.gated = [g for g in record.gated if not 0.8 < g.time < 1.6]
    evaluation = evaluate(record, CriteriaWithoutWarmup)
    check = next(c for c in evaluation.checks if c.name == 'outputs_not_stale')
    assert not check.passed and '/cmd_vel silent 0.80s from t=0.80s' in check.detail


CriteriaWithoutWarmup = ReplayCriteria(warmup_s=0.0)


def test_estop_must_bring_cmd_vel_to_zero() -> None:
    honoured = evaluate(record_with([0.5] * 20 + [0.0] * 20, estop_at=0.9), CRITERIA)
    assert next(c for c in honoured.checks if c.name == 'estop_honoured').passed
    ignored = evaluate(record_with([0.5] * 40, estop_at=0.9), CRITERIA)
    check = next(c for c in ignored.checks if c.name == 'estop_honoured')
    assert not check.passed
    assert ignored.metrics['estop_violations'] == 40 - 24  # after 0.9 + 0.25 s


def test_camera_view_contains_what_is_ahead_only() -> None:
    points = np.array([[3.0, 0.0, 0.25], [-2.0, 0.0, 0.25], [1.0, 3.0, 0.25], [0.4, 0.0, 0.25]])
    assert in_camera_view(points, CAMERA, CRITERIA).tolist() == [True, False, False, False]


def grid_marking(scan: Scan, value: int = 100) -> Grid:
    grid = empty_grid(scan.time, 0.0)
    points, _ = scan_points(scan, CRITERIA)
    rows = np.floor((points[:, 1] + 4.0) / 0.1).astype(int)
    cols = np.floor((points[:, 0] + 1.0) / 0.1).astype(int)
    inside = (rows >= 0) & (rows < 80) & (cols >= 0) & (cols < 80)
    grid.cells[rows[inside], cols[inside]] = value
    return grid


def test_a_grid_that_matches_the_lidar_agrees_fully() -> None:
    scan = box_scan(0.0, 2.0)
    agreement = lidar_agreement(grid_marking(scan), scan, CAMERA, CRITERIA)
    assert agreement.lidar_obstacles > 5
    assert agreement.recall == 1.0
    assert agreement.false_alarm_rate == 0.0


def test_an_empty_grid_misses_and_a_full_grid_false_alarms() -> None:
    scan = box_scan(0.0, 2.0)
    missing = lidar_agreement(empty_grid(0.0, 0.0), scan, CAMERA, CRITERIA)
    assert missing.recall == 0.0 and missing.false_alarm_rate == 0.0
    everything = lidar_agreement(empty_grid(0.0, 0.0, 100), scan, CAMERA, CRITERIA)
    assert everything.recall == 1.0 and everything.false_alarm_rate == 1.0
    unknown = lidar_agreement(empty_grid(0.0, 0.0, -1), scan, CAMERA, CRITERIA)
    assert unknown.recall == 0.0 and unknown.false_alarm_rate == 0.0


def test_grids_are_matched_to_frames_and_latencies_measured() -> None:
    record = record_with([0.2] * 40)
    record.grids = [grid_marking(scan) for scan in record.scans]
    record.grids = [Grid(**{**vars(g), 'wall': 1000.0 + g.time + 0.05}) for g in record.grids]
    record.commands = [Twist(time=g.time + 0.07, wall=g.wall + 0.02, linear=0.2, angular=0.0)
                       for g in record.grids]
    record.gated = [Twist(time=c.time, wall=c.wall + 0.01, linear=0.2, angular=0.0)
                    for c in record.commands]
    record.states = [SafetyState(0.0, 1000.0, 'CLEAR', 'clear', 1.5, 2.0),
                     SafetyState(1.0, 1001.0, 'STOP', 'obstacle', 0.0, 0.2)]
    evaluation = evaluate(record, CRITERIA)
    metrics = evaluation.metrics
    assert metrics['frames_without_grid'] == 0
    assert metrics['sensor_to_grid_s_median'] == pytest.approx(0.05, abs=1e-6)
    assert metrics['grid_to_cmd_s_median'] == pytest.approx(0.02, abs=1e-6)
    assert metrics['cmd_to_gated_s_median'] == pytest.approx(0.01, abs=1e-6)
    assert metrics['recall'] == 1.0
    assert metrics['veto_frames'] == 10  # STOP from t = 1.0 s on
    assert evaluation.rows[0]['safety_state'] == 'CLEAR'
    assert evaluation.rows[-1]['veto'] is True


def test_frames_without_grid_fail_the_grid_check() -> None:
    record = record_with([0.0] * 40)
    record.grids = [empty_grid(f.time, f.wall + 0.01) for f in record.frames[:5]]
    evaluation = evaluate(record, CRITERIA)
    check = next(c for c in evaluation.checks if c.name == 'grid_per_frame')
    assert not check.passed and '15 of 20 frames' in check.detail


def test_checks_of_nodes_not_running_are_left_out() -> None:
    evaluation = evaluate(record_with([0.0] * 40), CRITERIA, running_nodes=('safety_monitor',),
                          crashed_nodes=('planner',))
    names = {check.name for check in evaluation.checks}
    assert 'perception_recall' not in names and 'latency_grid_to_cmd_s' not in names
    assert 'stopping_distance' in names
    assert not next(c for c in evaluation.checks if c.name == 'nodes_stayed_up').passed


def test_replay_falling_behind_fails_when_beyond_the_limit() -> None:
    record = record_with([0.0] * 40)
    record.max_lag_s, record.behind_s = 2.5, 1.0
    check = next(c for c in evaluate(record, CRITERIA).checks if c.name == 'replay_kept_up')
    assert not check.passed and '2.500s behind' in check.detail


def test_criteria_file_overrides_defaults_and_rejects_unknown_keys(tmp_path) -> None:
    path = tmp_path / 'criteria.yaml'
    path.write_text('min_recall: 0.8\nrequired_topics: [/scan]\n')
    criteria = load_criteria(path)
    assert criteria.min_recall == 0.8 and criteria.required_topics == ('/scan',)
    path.write_text('min_recal: 0.8\n')
    with pytest.raises(ValueError, match='min_recal'):
        load_criteria(path)
    path.write_text('min_recall: 2.0\n')
    with pytest.raises(ValueError, match='must be a decimal number from 0.0 to 1.0'):
        load_criteria(path)

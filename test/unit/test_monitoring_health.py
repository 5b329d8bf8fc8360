"""The model health core on synthetic scans and grids: agreement counts, scores, levels."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.monitoring.health import (ERROR, OK, WARN, Comparison, LaserScanData,
                                              ModelHealthMonitor, compare, score)
from sidewalk_robot.planning.geometry import Pose2D
from sidewalk_robot.planning.grid import LocalGrid

CONFIG = HealthMonitorConfig()
LASER = Pose2D(CONFIG.laser_x_offset, 0.0, 0.0)
ANGLES = -math.pi + np.arange(360) * (2 * math.pi / 360)


def grid(boxes: list[tuple[float, float, float, float]] = (), unknown_x_below: float = 0.9,
         stamp: float = 0.0) -> LocalGrid:
    """The default 80 x 80 grid (x -1..7, y -4..4): boxes (x0, y0, x1, y1) at 100 %, the rest
    free, the camera's blind spot unknown."""
    xs, ys = np.meshgrid(-1.0 + 0.1 * (np.arange(80) + 0.5), -4.0 + 0.1 * (np.arange(80) + 0.5))
    values = np.zeros((80, 80), dtype=np.int16)
    for x0, y0, x1, y1 in boxes:
        values[(xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)] = 100
    values[xs < unknown_x_below] = -1
    return LocalGrid.from_occupancy(values.ravel(), 80, 80, 0.1, Pose2D(-1.0, -4.0, 0.0), stamp,
                                    'base_link')


def scan_of(boxes: list[tuple[float, float, float, float]], laser: Pose2D = LASER,
            stamp: float = 0.0) -> LaserScanData:
    """Exact ranges from ``laser`` (base_link) to axis-aligned boxes (x0, y0, x1, y1)."""
    ranges = np.full(360, np.inf)
    directions = laser.yaw + ANGLES
    for x0, y0, x1, y1 in boxes:
        for index, angle in enumerate(directions):
            for distance in np.arange(0.05, 10.0, 0.01):
                x = laser.x + distance * math.cos(angle)
                y = laser.y + distance * math.sin(angle)
                if x0 <= x <= x1 and y0 <= y <= y1:
                    ranges[index] = min(ranges[index], distance)
                    break
    return LaserScanData(stamp, ANGLES.copy(), ranges, 10.0)


POLE = (3.0, -0.2, 3.3, 0.2)


def test_a_model_that_sees_what_the_lidar_sees_has_no_misses_and_no_phantoms() -> None:
    result = compare(grid([POLE]), None, scan_of([POLE]), LASER, CONFIG)
    assert result.returns >= 5 and result.missed == 0
    assert result.obstacle_cells >= 2 and result.phantoms == 0


def test_returns_in_cells_the_model_called_free_are_missed() -> None:
    result = compare(grid([]), None, scan_of([POLE]), LASER, CONFIG)
    assert result.returns >= 5 and result.missed == result.returns
    assert result.obstacle_cells == 0


def test_a_pedestrian_in_the_pedestrian_grid_is_no_miss() -> None:
    people = grid([POLE])
    result = compare(grid([]), people, scan_of([POLE]), LASER, CONFIG)
    assert result.returns >= 5 and result.missed == 0


def test_predicted_obstacles_the_beams_pass_through_are_phantoms() -> None:
    result = compare(grid([POLE]), None, scan_of([]), LASER, CONFIG)
    assert result.returns == 0
    assert result.obstacle_cells >= 6 and result.phantoms == result.obstacle_cells


def test_only_cells_both_sensors_cover_are_compared() -> None:
    beside = (1.5, 3.0, 1.8, 3.3)  # 65 degrees off the camera's axis: out of its view
    far = (6.0, -0.2, 6.3, 0.2)  # beyond compare_range
    blind = (0.4, -0.2, 0.7, 0.2)  # in the camera's blind spot (unknown)
    boxes = [beside, far, blind]
    result = compare(grid([]), None, scan_of(boxes), LASER, CONFIG)
    assert (result.returns, result.missed, result.obstacle_cells) == (0, 0, 0)
    phantoms = compare(grid([beside, far]), None, scan_of([]), LASER, CONFIG)
    assert phantoms.obstacle_cells == 0


def test_the_robots_motion_between_scan_and_grid_is_taken_out() -> None:
    # The scan was taken 0.5 m further back than the grid: the pole looked 0.5 m further off.
    laser_then = Pose2D(LASER.x - 0.5, 0.0, 0.0)
    scan = scan_of([POLE], laser=laser_then)
    lined_up = compare(grid([POLE]), None, scan, laser_then, CONFIG)
    assert lined_up.missed == 0 and lined_up.phantoms == 0
    assumed_still = compare(grid([POLE]), None, scan, LASER, CONFIG)
    assert assumed_still.missed == assumed_still.returns > 0


def test_scores_fall_linearly_between_good_and_bad() -> None:
    assert score(0.1, 0.15, 0.5) == 1.0
    assert score(0.325, 0.15, 0.5) == pytest.approx(0.5)
    assert score(0.9, 0.15, 0.5) == 0.0


def healthy_inputs(monitor: ModelHealthMonitor, start: float, seconds: float,
                   phantom_share: float = 0.3, confidence: float = 0.97,
                   uncertainty: float = 0.05) -> None:
    for step in range(int(seconds * 10)):
        now = start + 0.1 * step
        monitor.saw_grid(now)
        monitor.saw_scan(now)
        monitor.add_comparison(Comparison(now, 20, 0, 10, int(round(10 * phantom_share))), now)
        if step % 10 == 0:
            monitor.add_perception_statistics(confidence, 0.65, now, uncertainty)


def test_health_follows_the_worst_symptom_with_hysteresis_between_levels() -> None:
    monitor = ModelHealthMonitor(CONFIG)
    healthy_inputs(monitor, 0.0, 6.0)
    report = monitor.report(6.0)
    assert report.level == OK and report.health == 1.0
    assert report.values['phantom_obstacle_rate'] == pytest.approx(0.3)

    healthy_inputs(monitor, 6.0, 6.0, phantom_share=1.0)  # the lidar sees through everything
    report = monitor.report(12.0)
    assert report.level == ERROR and report.health == 0.0
    assert 'phantom' in report.summary

    # Health 0.45: above error_below (0.4), but not by the hysteresis: still ERROR.
    phantom = CONFIG.phantom_rate_bad - 0.45 * (CONFIG.phantom_rate_bad - CONFIG.phantom_rate_ok)
    healthy_inputs(monitor, 12.0, 6.0, phantom_share=phantom)
    assert monitor.report(18.0).level == ERROR
    phantom = CONFIG.phantom_rate_bad - 0.6 * (CONFIG.phantom_rate_bad - CONFIG.phantom_rate_ok)
    healthy_inputs(monitor, 18.0, 6.0, phantom_share=phantom)
    assert monitor.report(24.0).level == WARN
    healthy_inputs(monitor, 24.0, 6.0, phantom_share=0.3)
    assert monitor.report(30.0).level == OK


def test_low_confidence_and_unusual_brightness_lower_the_health() -> None:
    monitor = ModelHealthMonitor(CONFIG)
    healthy_inputs(monitor, 0.0, 6.0, confidence=0.74)  # as on a world of unseen colours
    report = monitor.report(6.0)
    assert report.health == pytest.approx(score(-0.74, -CONFIG.confidence_ok,
                                                -CONFIG.confidence_bad))
    assert report.level == ERROR and 'confidence' in report.summary
    dark = ModelHealthMonitor(CONFIG)
    for second in range(6):
        dark.saw_grid(second)
        dark.saw_scan(second)
        dark.add_perception_statistics(0.97, CONFIG.brightness_min - 0.1, float(second))
    assert dark.report(5.5).values['score.unusual_brightness'] == pytest.approx(1 / 3)


def test_high_uncertainty_near_the_ground_lowers_the_health() -> None:
    """The figures of docs/perception.md: v5 averages 0.05 on the training worlds, 0.42 on the
    unseen ground of tiled_street."""
    familiar = ModelHealthMonitor(CONFIG)
    healthy_inputs(familiar, 0.0, 6.0, uncertainty=0.05)
    report = familiar.report(6.0)
    assert report.level == OK and report.values['uncertainty'] == pytest.approx(0.05)
    assert report.values['score.high_uncertainty'] == 1.0
    unfamiliar = ModelHealthMonitor(CONFIG)
    healthy_inputs(unfamiliar, 0.0, 6.0, uncertainty=0.42)
    report = unfamiliar.report(6.0)
    assert report.health == 0.0 and report.level == ERROR
    assert 'uncertainty' in report.summary
    halfway = ModelHealthMonitor(CONFIG)
    healthy_inputs(halfway, 0.0, 6.0, uncertainty=0.3)
    assert halfway.report(6.0).health == pytest.approx(0.5)
    without = ModelHealthMonitor(CONFIG)  # a perception that reports no uncertainty
    healthy_inputs(without, 0.0, 6.0, uncertainty=float('nan'))
    report = without.report(6.0)
    assert report.level == OK and 'uncertainty' not in report.values


def test_a_model_that_leaves_its_view_unknown_is_unhealthy() -> None:
    silent = grid([], unknown_x_below=8.0)  # everything -1, as when perception fails
    result = compare(silent, None, scan_of([POLE]), LASER, CONFIG)
    assert result.returns == 0 and result.view_cells > 100
    assert result.unknown_cells == result.view_cells
    seeing = compare(grid([POLE]), None, scan_of([POLE]), LASER, CONFIG)
    assert seeing.unknown_cells == 0 and seeing.view_cells == result.view_cells
    monitor = ModelHealthMonitor(CONFIG)
    for step in range(20):
        monitor.saw_grid(0.1 * step)
        monitor.saw_scan(0.1 * step)
        monitor.add_comparison(replace(result, stamp=0.1 * step), 0.1 * step)
    report = monitor.report(2.0)
    assert report.health == 0.0 and report.level == ERROR and 'unknown' in report.summary


def test_too_little_evidence_is_no_verdict_and_missing_inputs_say_so() -> None:
    monitor = ModelHealthMonitor(CONFIG)
    monitor.add_comparison(Comparison(1.0, 3, 3, 2, 2), now=1.0)  # all wrong, but only 3
    report = monitor.report(1.0)
    assert report.health == 1.0 and 'missed_return_rate' not in report.values
    assert report.level == WARN and 'no recent obstacle grid, scan' in report.summary


def test_old_comparisons_leave_the_window() -> None:
    monitor = ModelHealthMonitor(CONFIG)
    healthy_inputs(monitor, 0.0, 6.0, phantom_share=1.0)
    healthy_inputs(monitor, 6.0, CONFIG.window + 0.5)
    assert monitor.report(6.0 + CONFIG.window + 0.5).level in (WARN, OK)
    assert monitor.report(6.0 + CONFIG.window + 0.5).values['phantom_obstacle_rate'] == \
        pytest.approx(0.3)


@pytest.mark.parametrize('changes, complaint', [
    ({'phantom_rate_bad': 0.5}, 'phantom_rate_bad'), ({'confidence_bad': 0.95}, 'confidence'),
    ({'brightness_min': 0.9}, 'brightness_min'), ({'error_below': 0.8}, 'error_below'),
    ({'unknown_share_bad': 0.2}, 'unknown_share'), ({'uncertainty_bad': 0.1}, 'uncertainty')])
def test_contradictory_parameters_are_refused(changes: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ModelHealthMonitor(replace(CONFIG, **changes))

"""Each rule of the safety monitor as a pure function (rules 1, 2, 3, 4, 5, 7)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot.config import load_config
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.estop import EStopLatch
from sidewalk_robot.safety_monitor.geometry import SWEEP_STEP, Footprint
from sidewalk_robot.safety_monitor.rules import (cap_acceleration, cap_speeds, escape_rotation,
                                                 required_distance, separation_limit,
                                                 slowdown_speed_limit, staleness_problem,
                                                 stopping_speed_limit)

CONFIG = SafetyConfig()
FOOTPRINT = Footprint.from_size(CONFIG.footprint_length, CONFIG.footprint_width)
YAML = Path(__file__).resolve().parents[2] / 'config' / 'safety_monitor.yaml'


def test_yaml_sets_every_parameter_to_the_issue_defaults() -> None:
    text = YAML.read_text()
    for field in dataclasses.fields(SafetyConfig):
        assert f'    {field.name}:' in text, f'{field.name} missing from {YAML.name}'
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


# Rule 5 ---------------------------------------------------------------------------------------

def test_estop_latch_needs_release_and_no_hazard_to_reset() -> None:
    latch = EStopLatch()
    assert latch.reset(None).success and not latch.latched
    latch.update(True)
    latch.update(False)
    assert latch.latched
    latch.update(True)
    refused = latch.reset(None)
    assert not refused.success and 'still pressed' in refused.message
    latch.update(False)
    blocked = latch.reset('an obstacle is near')
    assert not blocked.success and 'an obstacle is near' in blocked.message and latch.latched
    assert latch.reset(None).success and not latch.latched


# Rule 7 ---------------------------------------------------------------------------------------

def test_a_single_noisy_return_does_not_stop_but_min_points_returns_do() -> None:
    one_beam = np.array([[FOOTPRINT.half_length + 0.1, 0.0]])
    assert separation_limit(1.0, 0.0, one_beam, FOOTPRINT, CONFIG).scale == 1.0
    strict = dataclasses.replace(CONFIG, min_points=1)
    assert separation_limit(1.0, 0.0, one_beam, FOOTPRINT, strict).scale == 0.0
    two_beams = np.array([[FOOTPRINT.half_length + 0.1, 0.0], [FOOTPRINT.half_length + 0.1, 0.02]])
    assert separation_limit(1.0, 0.0, two_beams, FOOTPRINT, CONFIG).scale == 0.0

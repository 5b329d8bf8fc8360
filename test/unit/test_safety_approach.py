"""Rule 9: returns that close in on the robot (walkers) are given their speed, static ones are not.

The scenes are simulated here independently of the core: circles in a world frame, a robot that
holds the monitor's output for reaction_time and then brakes at brake_decel (the timing the
stopping rule assumes), and a 360-beam laser ray-cast from the robot's pose.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidewalk_robot.safety_monitor import (LaserScanData, OdometrySample, Reason, SafetyConfig,
                                           SafetyMonitor, VelocityCommand)
from sidewalk_robot.safety_monitor.geometry import Footprint
from sidewalk_robot.safety_monitor.rules import (lead_speed_limit, lead_speed_limits,
                                                 required_distance, separation_limit,
                                                 stopping_speed_limit)

CONFIG = SafetyConfig()
STATIC_ONLY = dataclasses.replace(CONFIG, max_obstacle_speed=0.0, approach_stop_distance=0.0)
"""Rule 9 switched off: the monitor as it was before approaching obstacles were considered."""
BEAMS = 360
PERIOD = 0.05
CROSSER_X = 1.8
LASER_X = 0.30
HALF_LENGTH, HALF_WIDTH = 0.35, 0.275


@dataclass
class Body:
    x: float
    y: float
    radius: float
    vx: float = 0.0
    vy: float = 0.0


class World:
    """Robot on the plane among circular bodies; the base follows the output late and braking."""

    def __init__(self, config: SafetyConfig, bodies: list[Body], noise: float = 0.0,
                 seed: int = 0, forced_linear: float | None = None) -> None:
        self.monitor = SafetyMonitor(config)
        self.config = config
        self.bodies = bodies
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.now = 10.0
        self.x = self.y = self.yaw = 0.0
        self.linear = self.angular = 0.0
        self.outputs: list[tuple[float, float, float]] = []
        self.moving_contacts = 0
        self.forced_linear = forced_linear
        """Drive at this speed whatever the output (to see where the monitor would stop)."""

    def scan(self) -> LaserScanData:
        angles = self.yaw - math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
        laser_x = self.x + LASER_X * math.cos(self.yaw)
        laser_y = self.y + LASER_X * math.sin(self.yaw)
        ranges = np.full(BEAMS, np.inf)
        for body in self.bodies:
            cx, cy = body.x - laser_x, body.y - laser_y
            along = cx * np.cos(angles) + cy * np.sin(angles)
            discriminant = along ** 2 - (cx * cx + cy * cy - body.radius ** 2)
            hit = (discriminant >= 0.0) & (along > 0.0)
            ranges[hit] = np.minimum(ranges[hit], along[hit] - np.sqrt(discriminant[hit]))
        if self.noise:
            finite = np.isfinite(ranges)
            ranges[finite] += self.rng.normal(0.0, self.noise, int(finite.sum()))
        return LaserScanData(self.now, 'laser_link', -math.pi, math.pi - 2 * math.pi / BEAMS,
                             2 * math.pi / BEAMS, 0.1, 10.0,
                             ranges)

    def gap(self, body: Body) -> float:
        """Distance from the footprint to the body's surface (negative: overlapping)."""
        dx, dy = body.x - self.x, body.y - self.y
        local_x = math.cos(self.yaw) * dx + math.sin(self.yaw) * dy
        local_y = math.cos(self.yaw) * dy - math.sin(self.yaw) * dx
        return math.hypot(max(abs(local_x) - HALF_LENGTH, 0.0),
                          max(abs(local_y) - HALF_WIDTH, 0.0)) - body.radius

    def step(self, linear: float, angular: float = 0.0):
        self.now += PERIOD
        self.monitor.update_command(VelocityCommand(self.now, linear, angular), self.now)
        self.monitor.update_odometry(OdometrySample(self.now, self.linear, self.angular),
                                     self.now)
        self.monitor.update_scan(self.scan(), self.now)
        decision = self.monitor.decide(self.now)
        self.outputs.append((self.now, decision.linear, decision.angular))
        self._move()
        return decision

    def _move(self) -> None:
        applied = [out for out in self.outputs if out[0] <= self.now - self.config.reaction_time]
        target_linear, target_angular = applied[-1][1:] if applied else (0.0, 0.0)
        brake = self.config.brake_decel * PERIOD
        if self.forced_linear is not None:
            self.linear = self.forced_linear
        elif abs(target_linear) < abs(self.linear):
            self.linear = max(abs(target_linear), abs(self.linear) - brake) \
                * math.copysign(1.0, self.linear)
        else:
            self.linear = target_linear
        self.angular = target_angular
        self.yaw += self.angular * PERIOD
        self.x += self.linear * PERIOD * math.cos(self.yaw)
        self.y += self.linear * PERIOD * math.sin(self.yaw)
        for body in self.bodies:
            body.x += body.vx * PERIOD
            body.y += body.vy * PERIOD
            if self.gap(body) <= 0.0 and self.linear > 0.0 and body.x > self.x:
                self.moving_contacts += 1


def crosser_run(config: SafetyConfig) -> World:
    """The robot drives at 0.8 m/s; a walker comes from the right at 1.1 m/s and steps into its
    path just ahead of the front edge."""
    world = World(config, [Body(x=CROSSER_X, y=-2.6, radius=0.25, vy=1.1)])
    for _ in range(80):
        world.step(0.8)
    return world


def test_a_crosser_entering_the_path_from_the_side_is_stopped_for_before_contact() -> None:
    assert crosser_run(STATIC_ONLY).moving_contacts > 0, 'the scene must be a hazard at all'
    world = crosser_run(CONFIG)
    assert world.moving_contacts == 0
    assert world.monitor.counts[Reason.APPROACH_STOP.value] > 0


def stopping_gap(walker_speed: float) -> float:
    """Gap between footprint and body when the monitor first outputs 0, the robot rolling at
    0.4 m/s towards a body that stands still or comes head-on at ``walker_speed``."""
    body = Body(x=3.5, y=0.0, radius=0.25, vx=-walker_speed)
    world = World(CONFIG, [body], forced_linear=0.4)
    for _ in range(200):
        decision = world.step(0.4)
        if decision.linear == 0.0 and world.now > 11.0:
            return world.gap(body)
    raise AssertionError('never stopped')


def test_a_head_on_walker_makes_the_robot_stop_earlier_than_a_static_obstacle() -> None:
    static_gap = stopping_gap(0.0)
    walker_gap = stopping_gap(1.1)
    assert static_gap <= CONFIG.stop_margin + 0.05
    # One tick of closing (1.5 m/s for 0.05 s) may pass between the check and the gap measured.
    assert walker_gap >= CONFIG.approach_stop_distance - 0.15
    assert walker_gap > static_gap + 0.5


def test_a_head_on_walker_lowers_the_allowed_speed_by_its_closing_speed() -> None:
    config = dataclasses.replace(CONFIG, max_linear_accel=100.0)
    world = World(config, [Body(x=6.0, y=0.0, radius=0.25, vx=-1.1)], forced_linear=0.0)
    compared = 0
    for _ in range(80):
        decision = world.step(1.5)
        static_limit = lead_speed_limit(decision.path_clearance_m, config)
        if decision.path_clearance_m < 2.5 and static_limit > 0.0:
            assert decision.closing_speed_mps == pytest.approx(1.1, abs=0.1)
            assert decision.allowed_linear_speed < static_limit
            compared += 1
    assert compared > 10


@pytest.mark.parametrize('linear, angular', [(1.0, 0.0), (0.8, 0.5), (0.0, 1.0)])
def test_a_static_scene_gives_exactly_the_static_limits(linear: float, angular: float) -> None:
    """Driving among static poles with range noise: no closing speed, no extra veto, and the
    same output, decision by decision, as with rule 9 switched off."""
    poles = [Body(3.0, 0.1, 0.1), Body(2.0, 1.0, 0.2), Body(1.5, -0.9, 0.15), Body(-1.0, 0.8, 0.3)]
    worlds = [World(config, [dataclasses.replace(pole) for pole in poles], noise=0.01, seed=3)
              for config in (CONFIG, STATIC_ONLY)]
    for _ in range(60):
        with_rule, without = (world.step(linear, angular) for world in worlds)
        assert with_rule.closing_speed_mps == 0.0
        assert (with_rule.linear, with_rule.angular, with_rule.reason) == \
            (without.linear, without.angular, without.reason)
        assert with_rule.allowed_linear_speed == without.allowed_linear_speed


def test_a_clock_jump_forgets_the_scan_history() -> None:
    world = World(CONFIG, [Body(x=4.0, y=0.0, radius=0.25, vx=-1.1)])
    for _ in range(10):
        world.step(0.0)
    assert world.monitor.decide(world.now).closing_speed_mps == pytest.approx(1.1, abs=0.1)
    world.now -= 5.0
    world.step(0.0)
    assert world.monitor.decide(world.now).closing_speed_mps == 0.0


@settings(max_examples=200, deadline=None)
@given(distance=st.floats(0.0, 10.0), obstacle_speed=st.floats(0.0, 3.0),
       reaction=st.floats(0.0, 0.6), decel=st.floats(0.3, 4.0), margin=st.floats(0.0, 0.5))
def test_an_approaching_obstacle_only_ever_lowers_the_limit(distance: float,
                                                            obstacle_speed: float,
                                                            reaction: float, decel: float,
                                                            margin: float) -> None:
    config = SafetyConfig(reaction_time=reaction, brake_decel=decel, stop_margin=margin,
                          slowdown_distance=margin + 1.0)
    limit = stopping_speed_limit(distance, config, obstacle_speed)
    assert limit <= stopping_speed_limit(distance, config) + 1e-12
    if limit > 0.0:
        assert required_distance(limit, config, obstacle_speed) == pytest.approx(distance)
    vector = lead_speed_limits(np.array([distance]), np.array([obstacle_speed]), config)[0]
    assert vector == pytest.approx(lead_speed_limit(distance, config, obstacle_speed), abs=1e-9)


SEGMENTS = 36


@settings(max_examples=100, deadline=None)
@given(ranges=st.lists(st.floats(0.1, 4.0), min_size=SEGMENTS, max_size=SEGMENTS),
       speeds=st.lists(st.floats(0.0, 2.0), min_size=SEGMENTS, max_size=SEGMENTS),
       linear=st.floats(-0.3, 1.5), angular=st.floats(-1.5, 1.5))
def test_closing_speeds_never_loosen_the_separation_limit(ranges: list[float],
                                                         speeds: list[float], linear: float,
                                                         angular: float) -> None:
    """Any closing speeds, on a scene of 36 flat segments: never a looser limit than rule 2."""
    angles = -math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
    distance = np.repeat(ranges, BEAMS // SEGMENTS)
    speeds = np.repeat(speeds, BEAMS // SEGMENTS)
    points = np.column_stack((LASER_X + distance * np.cos(angles), distance * np.sin(angles)))
    footprint = Footprint(HALF_LENGTH, HALF_WIDTH)
    points = footprint.push_to_boundary(points)
    static = separation_limit(linear, angular, points, footprint, CONFIG)
    moving = separation_limit(linear, angular, points, footprint, CONFIG, speeds)
    assert moving.allowed_lead_speed <= static.allowed_lead_speed
    assert moving.scale <= static.scale
    # A closing speed lengthens the stretch of path that must be clear, so the check may see
    # a return the static check did not need to look at: never a longer clearance.
    assert moving.path_clearance <= static.path_clearance

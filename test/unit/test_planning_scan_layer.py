"""The planner's lidar layer: scan conversion, clusters, moving returns, and what it changes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D
from sidewalk_robot.planning.planner import Odometry, Planner
from sidewalk_robot.planning.scan_layer import (MovingReturn, MovingReturnTracker, Scan,
                                                cluster_slices, mark_predicted_ways, scan_points,
                                                small_clusters)
from sidewalk_robot.planning.synthetic import Box, World, drive

CONFIG = PlannerConfig()
LENGTH, WIDTH = CONFIG.footprint_length, CONFIG.footprint_width


def square(x: float, y: float, half: float = 0.25) -> Box:
    return Box(x - half, y - half, x + half, y + half)


# ------------------------------------------------------------------------- scan conversion

def test_scan_points_follow_rep_117_and_the_laser_mounting() -> None:
    ranges = np.array([2.0, np.inf, np.nan, -np.inf, 20.0, 0.05])  # beam 3 at pi/2
    points = scan_points(ranges, 0.0, math.pi / 6, 0.1, 10.0, CONFIG)
    # +inf (no return), NaN (error), beyond range_max and below range_min are dropped;
    # -inf is something closer than range_min and stays, at range_min.
    assert points.shape == (2, 2)
    np.testing.assert_allclose(points[0], [CONFIG.laser_x_offset + 2.0, 0.0])
    np.testing.assert_allclose(points[1], [CONFIG.laser_x_offset, 0.1], atol=1e-12)


@pytest.mark.parametrize('ranges, increment, range_min, range_max, message', [
    ([], 0.1, 0.1, 10.0, 'no ranges'),
    ([1.0], 0.0, 0.1, 10.0, 'angle'),
    ([1.0], float('nan'), 0.1, 10.0, 'angle'),
    ([1.0], 0.1, 5.0, 1.0, 'range limits'),
])
def test_unusable_scans_are_refused(ranges, increment, range_min, range_max, message) -> None:
    with pytest.raises(ValueError, match=message):
        scan_points(np.array(ranges), 0.0, increment, range_min, range_max, CONFIG)


def test_clusters_split_at_gaps_and_join_across_the_end_of_the_sweep() -> None:
    points = np.array([[1.0, 0.0], [1.0, 0.1], [3.0, 3.0], [3.0, 3.1], [1.0, -0.1]])
    groups = cluster_slices(points, gap=0.25)
    assert sorted(sorted(g.tolist()) for g in groups) == [[0, 1, 4], [2, 3]]
    assert cluster_slices(np.zeros((0, 2)), 0.25) == []


def test_a_cluster_partly_hidden_behind_a_nearer_one_is_no_walker_candidate() -> None:
    pose = Pose2D(0.0, 0.0, 0.0)
    in_the_open = World(obstacles=[square(4.0, 0.0, 0.25)]).scan(pose, 0.0, CONFIG)
    assert len(small_clusters(in_the_open.points, CONFIG)[0]) == 1
    # A post 1 m ahead hides the right half of the same box.
    half_hidden = World(obstacles=[square(4.0, 0.0, 0.25), square(1.6, -0.1, 0.05)])
    centroids, _, _ = small_clusters(half_hidden.scan(pose, 0.0, CONFIG).points, CONFIG)
    assert all(np.hypot(*(centroid - [4.0 - 0.25, 0.0])) > 0.5 for centroid in centroids), \
        'the half-hidden box must not be a candidate'


# ------------------------------------------------------------------------- moving returns

def run_tracker(world_at, robot_at, duration: float = 2.0, rate: float = 10.0):
    """Feed scans of ``world_at(t)`` seen from ``robot_at(t)`` to a tracker; all movers."""
    tracker = MovingReturnTracker(CONFIG)
    found: list[tuple[float, list[MovingReturn]]] = []
    for index in range(int(duration * rate)):
        now = index / rate
        pose = robot_at(now)
        found.append((now, tracker.update(world_at(now).scan(pose, now, CONFIG), pose)))
    return found


def test_a_walker_crossing_ahead_is_tracked_with_its_velocity() -> None:
    found = run_tracker(lambda t: World(pedestrians=[square(5.0, -2.0 + 1.2 * t)]),
                        lambda t: Pose2D(0.0, 0.0, 0.0))
    late = [movers for now, movers in found if now >= 0.6]
    assert all(len(movers) == 1 for movers in late)
    for movers in late:
        assert movers[0].velocity_x == pytest.approx(0.0, abs=0.25)
        assert movers[0].velocity_y == pytest.approx(1.2, abs=0.25)
    assert all(movers == [] for now, movers in found if now < 0.35), 'needs both baselines'


def test_nothing_moves_in_a_static_scene_seen_by_a_driving_robot() -> None:
    world = World(obstacles=[square(4.0, 1.0, 0.1), square(6.0, -1.2, 0.3),
                             Box(-5.0, 2.0, 30.0, 2.3)])  # poles and a long wall beside
    found = run_tracker(lambda t: world, lambda t: Pose2D(1.2 * t, 0.0, 0.3 * t), duration=3.0)
    assert all(movers == [] for _, movers in found)


@settings(max_examples=40, deadline=None)
@given(obstacles=st.lists(st.tuples(st.floats(-6.0, 8.0), st.floats(-4.0, 4.0),
                                    st.floats(0.05, 0.6)), min_size=1, max_size=6),
       speed=st.floats(0.0, 1.5), turn=st.floats(-0.6, 0.6))
def test_property_a_static_world_never_has_moving_returns(obstacles, speed, turn) -> None:
    boxes = [square(x, y, half) for x, y, half in obstacles
             if math.hypot(x, y) > 1.5 + half]  # not overlapping the robot's way out
    world = World(obstacles=boxes)
    found = run_tracker(lambda t: world, lambda t: Pose2D(speed * t, 0.0, turn * t),
                        duration=1.5)
    assert all(movers == [] for _, movers in found)


def test_the_clock_going_back_starts_the_tracking_over() -> None:
    tracker = MovingReturnTracker(CONFIG)
    pose = Pose2D(0.0, 0.0, 0.0)
    for index in range(10):
        tracker.update(World(pedestrians=[square(4.0, 0.12 * index)]).scan(pose, index / 10,
                                                                              CONFIG), pose)
    assert tracker.update(World(pedestrians=[square(4.0, 1.2)]).scan(pose, 1.0, CONFIG), pose)
    assert tracker.update(World(pedestrians=[square(4.0, 1.32)]).scan(pose, 0.05, CONFIG),
                          pose) == []


def test_predicted_ways_are_capsules_along_the_velocity() -> None:
    xs, ys = np.meshgrid(np.arange(0.05, 4.0, 0.1), np.arange(-2.0, 2.0, 0.1))
    mover = MovingReturn(2.0, -1.0, 0.0, 1.0, 0.2)
    marked = mark_predicted_ways(xs, ys, [mover], horizon=1.5)
    assert marked[np.argmin(np.abs(ys[:, 0] - 0.4)), np.argmin(np.abs(xs[0] - 2.0))]
    assert not marked[np.argmin(np.abs(ys[:, 0] - 0.8)), np.argmin(np.abs(xs[0] - 2.0))]
    assert not marked[np.argmin(np.abs(ys[:, 0] + 1.5)), np.argmin(np.abs(xs[0] - 2.0))]
    assert not marked[:, np.abs(xs[0] - 2.0) > 0.25].any()


# ------------------------------------------------------------------------- in the planner

def planner_to(x: float, y: float, **overrides) -> Planner:
    planner = Planner(PlannerConfig(**overrides))
    assert planner.set_goal(x, y, 'odom', now=0.0) is None
    return planner


@pytest.mark.parametrize('use_scan', [True, False])
def test_an_obstacle_perception_misses_is_passed_when_the_lidar_sees_it(use_scan) -> None:
    world = World(lidar_only=[Box(4.0, -0.6, 4.3, 0.1)])
    ticks = drive(planner_to(10.0, 0.0, use_scan=use_scan), world, Pose2D(0.0, 0.0, 0.0),
                  duration=25.0, lidar=True)
    clearance = min(world.lidar_only[0].distance(*_footprint_points(t.pose)).min()
                    for t in ticks)
    if use_scan:
        assert ticks[-1].output.state == 'arrived'
        assert clearance >= CONFIG.clearance_margin - 0.03
    else:
        assert clearance == 0.0, 'without the lidar layer the planner drives into it'


def _footprint_points(pose: Pose2D) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.linspace(-LENGTH / 2, LENGTH / 2, 15), np.linspace(-WIDTH / 2,
                                                                               WIDTH / 2, 12))
    cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
    return (pose.x + cos_yaw * u.ravel() - sin_yaw * v.ravel(),
            pose.y + sin_yaw * u.ravel() + cos_yaw * v.ravel())


@pytest.mark.parametrize('use_scan', [True, False])
def test_the_planner_yields_to_a_walker_stepping_in_from_outside_the_cameras_view(
        use_scan) -> None:
    """The walker is a lidar-only body (perception misses it); it crosses the path from the
    right at 1 m/s, timed to meet the robot. The planner must let it pass."""
    def walker_at(now: float) -> Box:
        return square(5.5, -5.0 + 1.0 * max(now - 100.0, 0.0), 0.25)

    def update(now: float, world: World) -> None:
        world.lidar_only[:] = [walker_at(now)]

    world = World(lidar_only=[walker_at(100.0)])
    ticks = drive(planner_to(10.0, 0.0, use_scan=use_scan), world, Pose2D(0.0, 0.0, 0.0),
                  duration=20.0, world_update=update, lidar=True)
    gaps = [walker_at(t.time).distance(*_footprint_points(t.pose)).min() for t in ticks]
    if not use_scan:
        assert min(gaps) == 0.0, 'the walker is timed to meet a robot that does not see it'
        return
    assert min(gaps) >= 0.3, f'came within {min(gaps):.2f} m of the walker'
    assert any(t.output.state == 'waiting' for t in ticks)
    assert ticks[-1].output.state == 'arrived'


def test_scan_input_checks() -> None:
    planner = planner_to(5.0, 0.0)
    assert planner.set_scan(Scan(float('nan'), np.zeros((0, 2))), now=1.0) == 'scan is not finite'
    assert 'future' in planner.set_scan(Scan(5.0, np.zeros((0, 2))), now=1.0)
    assert planner.set_scan(Scan(1.0, np.zeros((0, 2))), now=1.0) is None
    assert 'backwards' in planner.set_scan(Scan(0.5, np.zeros((0, 2))), now=1.0)


@pytest.mark.parametrize('body_return, drives', [((0.3, -0.2), True), ((0.45, 0.0), False)])
def test_returns_inside_the_footprint_are_the_robot_itself(body_return, drives) -> None:
    planner = planner_to(5.0, 0.0)
    pose = Pose2D(0.0, 0.0, 0.0)
    planner.set_odometry(Odometry(1.0, 'odom', pose, 0.0, 0.0), 1.0)
    obstacles, pedestrians = World().render(pose, 1.0)
    planner.set_obstacle_grid(obstacles, 1.0)
    planner.set_pedestrian_grid(pedestrians, 1.0)
    points = np.array([body_return, body_return, (2.0, 3.0)])
    assert planner.set_scan(Scan(1.0, points), now=1.0) is None
    output = planner.step(1.0)
    assert (output.linear > 0.0) == drives, output.reason

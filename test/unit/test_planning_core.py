"""Planner core pieces: configuration, grids, routes, input checks and command limits."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidewalk_robot.config import load_config, parameter_names
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import FootprintCircles, Pose2D
from sidewalk_robot.planning.grid import GridFields, LocalGrid
from sidewalk_robot.planning.local_planner import slowdown_speed, stopping_distance
from sidewalk_robot.planning.pedestrians import PedestrianTracker
from sidewalk_robot.planning.planner import Odometry, Planner
from sidewalk_robot.planning.route import Route, RouteProgress
from sidewalk_robot.planning.synthetic import Box, World

CONFIG = PlannerConfig()
YAML = Path(__file__).resolve().parents[2] / 'config' / 'planner.yaml'
ORIGIN = Pose2D(-1.0, -4.0, 0.0)


def test_yaml_sets_every_parameter_to_the_documented_defaults() -> None:
    text = YAML.read_text()
    # robot_model is the launch file's argument, the same for every node
    for name in set(parameter_names(PlannerConfig)) - {'robot_model'}:
        assert f'    {name}:' in text, f'{name} missing from planner.yaml'
    assert load_config(PlannerConfig, YAML) == CONFIG


def test_limits_match_the_safety_monitor_defaults() -> None:
    assert (CONFIG.max_linear_speed, CONFIG.max_reverse_speed, CONFIG.max_angular_speed,
            CONFIG.max_linear_accel) == (1.5, 0.3, 1.5, 1.0)
    speeds = np.linspace(0.05, CONFIG.cruise_speed, 24)
    # Stopping CONFIG.clearance_margin before an obstacle with the planner's own margins
    # leaves the monitor's v*0.3 + v^2/3 + 0.25 satisfied at every speed.
    monitor = speeds * 0.3 + speeds ** 2 / 3.0 + 0.25
    assert np.all(stopping_distance(speeds, CONFIG) + CONFIG.clearance_margin >= monitor)
    assert stopping_distance(np.array([0.0]), CONFIG)[0] == 0.0
    # The slow-down ramp too: monitor 1.5 m/s at 2.0 m down to 0 at 0.25 m from the return.
    arcs = np.linspace(0.0, 3.0, 61)
    monitor_ramp = 1.5 * np.clip((arcs + CONFIG.clearance_margin - 0.25) / 1.75, 0.0, 1.0)
    assert np.all(slowdown_speed(arcs, CONFIG) <= monitor_ramp + 1e-9)


def test_inconsistent_speeds_are_refused() -> None:
    with pytest.raises(ValueError, match='cruise_speed'):
        Planner(PlannerConfig(cruise_speed=1.4, max_linear_speed=1.0))
    with pytest.raises(ValueError, match='recovery_speed'):
        Planner(PlannerConfig(recovery_speed=0.3, max_reverse_speed=0.2))


@pytest.mark.parametrize('data, width, height, resolution, message', [
    ([0] * 10, 4, 4, 0.1, 'expected 4 x 4'),
    ([0, 101, 0, 0], 2, 2, 0.1, 'outside -1..100'),
    ([0] * 4, 2, 2, float('nan'), 'resolution'),
    ([], 0, 0, 0.1, 'empty'),
])
def test_bad_grids_are_rejected_with_a_reason(data, width, height, resolution, message) -> None:
    with pytest.raises(ValueError, match=message):
        LocalGrid.from_occupancy(data, width, height, resolution, ORIGIN, 1.0, 'base_link')


def test_geometry_is_read_from_the_grid_not_assumed() -> None:
    circles = FootprintCircles.covering(CONFIG.footprint_length, CONFIG.footprint_width)
    resolution, width, height = 0.05, 120, 200
    origin = Pose2D(-0.5, -5.0, 0.0)
    values = np.zeros((height, width), dtype=int)
    column = int((2.0 - origin.x) / resolution)
    values[:, column] = 100  # a wall across at x = 2.0 m
    grid = LocalGrid.from_occupancy(values.ravel(), width, height, resolution, origin, 1.0,
                                    'base_link')
    fields = GridFields(grid, None, CONFIG, circles)
    samples = fields.sample(np.array([0.0, 1.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    # The circles reach a little past the bumper (x + 0.35); the wall cell starts at 2.0 m.
    reach = float(np.max(circles.offsets_x)) + circles.radius
    assert 0.35 <= reach <= 0.45
    assert samples.obstacle_clearance[0] == pytest.approx(2.0 - reach, abs=0.06)
    assert samples.obstacle_clearance[1] == pytest.approx(1.0 - reach, abs=0.06)


def test_distance_to_a_line_through_the_grid() -> None:
    circles = FootprintCircles.covering(CONFIG.footprint_length, CONFIG.footprint_width)
    values = np.zeros((80, 80), dtype=int)
    grid = LocalGrid.from_occupancy(values.ravel(), 80, 80, 0.1, Pose2D(-1.0, -4.0, 0.0), 1.0,
                                    'base_link')
    fields = GridFields(grid, None, CONFIG, circles)
    # An L: along y = 1 from x = -5 to 3, then up x = 3 to y = 9 (off the grid both ways).
    distance = fields.distance_to_line(np.array([-5.0, 3.0, 3.0]), np.array([1.0, 1.0, 9.0]))
    rows, cols, _ = fields.cells_of(np.array([0.05, 0.05, 1.05, 5.05]),
                                    np.array([1.05, -2.05, 3.05, 1.05]))
    assert distance[rows, cols] == pytest.approx([0.0, 3.1, 1.95, 2.0], abs=0.06)
    far = fields.distance_to_line(np.array([20.0, 30.0]), np.array([20.0, 20.0]))
    assert np.all(far >= 100.0), 'a route that misses the grid leaves no corridor in it'


def test_footprint_circles_cover_the_rectangle_snugly() -> None:
    circles = FootprintCircles.covering(0.70, 0.55)
    xs, ys = np.meshgrid(np.linspace(-0.35, 0.35, 29), np.linspace(-0.275, 0.275, 23))
    inside_some = np.zeros(xs.shape, dtype=bool)
    for cx, cy in zip(circles.offsets_x, circles.offsets_y):
        inside_some |= np.hypot(xs - cx, ys - cy) <= circles.radius + 1e-6
    assert inside_some.all()
    assert np.max(np.abs(circles.offsets_y)) + circles.radius < 0.275 + 0.05


def test_route_offsets_to_the_right_and_tapers_into_the_goal() -> None:
    route = Route([(0.0, 0.0), (10.0, 0.0)])
    x, y, heading = route.points_at(np.array([5.0, 10.0]), right_offset=0.3, taper=2.0)
    assert (x[0], y[0], heading[0]) == pytest.approx((5.0, -0.3, 0.0))
    assert (x[1], y[1]) == pytest.approx((10.0, 0.0))


def test_route_progress_moves_forward_waypoint_by_waypoint() -> None:
    progress = RouteProgress(Route([(0.0, 0.0), (4.0, 0.0), (4.0, 4.0)]))
    assert progress.update(Pose2D(2.0, 0.3, 0.0)) == pytest.approx(2.0)
    assert progress.waypoints_passed == 0
    progress.update(Pose2D(4.2, 1.0, 1.57))
    assert progress.s == pytest.approx(5.0) and progress.waypoints_passed == 1
    progress.update(Pose2D(3.0, 0.0, 0.0))  # drifting back does not undo progress
    assert progress.s == pytest.approx(5.0)
    assert progress.remaining == pytest.approx(3.0)


def test_a_lone_goal_is_a_route() -> None:
    route = Route([(3.0, 4.0)])
    assert route.goal == (3.0, 4.0) and route.length == 0.0
    with pytest.raises(ValueError, match='not finite'):
        Route([(0.0, 0.0), (math.nan, 1.0)])
    with pytest.raises(ValueError, match='no waypoints'):
        Route([])


def feed(planner: Planner, world: World, pose: Pose2D, now: float, linear: float = 0.0,
         grid_time: float | None = None) -> None:
    planner.set_odometry(Odometry(now, 'odom', pose, linear, 0.0), now)
    obstacles, pedestrians = world.render(pose, now if grid_time is None else grid_time)
    planner.set_obstacle_grid(obstacles, now)
    planner.set_pedestrian_grid(pedestrians, now)


def ready_planner(**overrides) -> Planner:
    planner = Planner(PlannerConfig(**overrides))
    planner.set_goal(10.0, 0.0, 'odom', 0.0)
    return planner


def test_idle_without_a_goal_and_waiting_without_inputs() -> None:
    planner = Planner(CONFIG)
    output = planner.step(1.0)
    assert (output.state, output.linear, output.angular) == ('idle', 0.0, 0.0)
    planner.set_goal(5.0, 0.0, 'odom', 1.0)
    output = planner.step(1.1)
    assert output.state == 'waiting' and 'odometry' in output.reason
    planner.set_odometry(Odometry(1.2, 'odom', Pose2D(0.0, 0.0, 0.0), 0.0, 0.0), 1.2)
    output = planner.step(1.2)
    assert output.state == 'waiting' and 'obstacle grid' in output.reason


@pytest.mark.parametrize('stale', ['grid', 'odom'])
def test_stale_inputs_command_zero_and_say_why(stale: str) -> None:
    planner = ready_planner()
    world = World()
    for index in range(20):
        now = 1.0 + 0.1 * index
        feed(planner, world, Pose2D(0.0, 0.0, 0.0), now)
        output = planner.step(now)
    assert output.state == 'driving' and output.linear > 0.0
    later = now + 1.0
    if stale == 'grid':
        planner.set_odometry(Odometry(later, 'odom', Pose2D(0.0, 0.0, 0.0), 0.0, 0.0), later)
    else:
        obstacles, pedestrians = world.render(Pose2D(0.0, 0.0, 0.0), later)
        planner.set_obstacle_grid(obstacles, later)
        planner.set_pedestrian_grid(pedestrians, later)
    output = planner.step(later)
    assert (output.linear, output.angular, output.state) == (0.0, 0.0, 'waiting')
    assert 'stale' in output.reason and output.level == 'ERROR'


def test_missing_pedestrian_grid_stops_unless_not_required() -> None:
    for required in (True, False):
        planner = ready_planner(require_pedestrian_grid=required)
        obstacles, _ = World().render(Pose2D(0.0, 0.0, 0.0), 1.0)
        planner.set_odometry(Odometry(1.0, 'odom', Pose2D(0.0, 0.0, 0.0), 0.0, 0.0), 1.0)
        planner.set_obstacle_grid(obstacles, 1.0)
        output = planner.step(1.0)
        assert (output.state == 'driving') is not required, output


def test_bad_inputs_are_rejected_and_leave_the_robot_safe() -> None:
    planner = Planner(CONFIG)
    assert 'frame' in planner.set_goal(1.0, 2.0, 'map', 0.0)
    assert planner.step(0.1).state == 'idle' and 'frame' in planner.step(0.1).reason
    assert 'not finite' in planner.set_goal(math.nan, 2.0, 'odom', 0.0)
    assert 'no waypoints' in planner.set_route([], 'odom', 0.0)
    assert planner.set_goal(5.0, 0.0, 'odom', 0.0) is None
    pose = Pose2D(0.0, 0.0, 0.0)
    assert 'not finite' in planner.set_odometry(Odometry(1.0, 'odom', Pose2D(math.nan, 0, 0),
                                                         0.0, 0.0), 1.0)
    assert planner.set_odometry(Odometry(1.0, 'odom', pose, 0.0, 0.0), 1.0) is None
    assert 'backwards' in planner.set_odometry(Odometry(0.5, 'odom', pose, 0.0, 0.0), 1.0)
    assert 'future' in planner.set_odometry(Odometry(9.0, 'odom', pose, 0.0, 0.0), 1.0)
    obstacles, _ = World().render(pose, 1.0)
    wrong_frame = dataclasses.replace(obstacles, frame_id='camera_link')
    assert 'frame' in planner.set_obstacle_grid(wrong_frame, 1.0)
    odd_geometry = dataclasses.replace(obstacles, resolution=0.2)
    planner.set_obstacle_grid(obstacles, 1.0)
    planner.set_pedestrian_grid(odd_geometry, 1.0)
    output = planner.step(1.0)
    assert output.linear == 0.0 and 'geometry' in output.reason


def test_a_clock_that_jumps_back_does_not_lock_the_planner_out() -> None:
    planner = ready_planner()
    world = World()
    feed(planner, world, Pose2D(0.0, 0.0, 0.0), 50.0)
    assert planner.step(50.0).state == 'driving'
    feed(planner, world, Pose2D(0.0, 0.0, 0.0), 2.0)  # the simulation restarted
    output = planner.step(2.0)
    assert output.state == 'driving', output.reason
    assert 'last_input_error' not in output.values


def test_obstacle_suddenly_inside_the_stopping_distance_stops_at_once() -> None:
    planner = ready_planner()
    world = World()
    pose = Pose2D(0.0, 0.0, 0.0)
    for index in range(30):
        now = 1.0 + 0.1 * index
        feed(planner, world, pose, now, linear=planner.step(now - 0.1).linear if index else 0.0)
    speed = planner.step(now).linear
    assert speed >= 1.0
    world.obstacles.append(Box(1.0, -5.0, 1.3, 5.0))  # 0.65 m in front of the bumper
    feed(planner, world, pose, now + 0.1, linear=speed)
    output = planner.step(now + 0.1)
    assert (output.linear, output.angular, output.state) == (0.0, 0.0, 'blocked')
    assert 'stopping distance' in output.reason


def test_grid_latency_is_compensated_with_odometry() -> None:
    world = World(obstacles=[Box(3.0, -0.2, 3.4, 0.6)])
    moved = Pose2D(0.0, 0.0, 0.0)
    now = 2.0

    def plan(grid_pose: Pose2D, grid_time: float) -> tuple[float, float]:
        planner = ready_planner()
        planner.set_odometry(Odometry(grid_time, 'odom', grid_pose, 0.8, 0.0), grid_time)
        planner.set_odometry(Odometry(now, 'odom', moved, 0.8, 0.0), now)
        obstacles, pedestrians = world.render(grid_pose, grid_time)
        planner.set_obstacle_grid(obstacles, now)
        planner.set_pedestrian_grid(pedestrians, now)
        output = planner.step(now)
        return output.linear, output.angular

    fresh = plan(moved, now)
    late = plan(Pose2D(-0.25, 0.1, 0.1), now - 0.3)  # taken 0.3 s ago, a little behind
    assert late == pytest.approx(fresh, abs=0.16)
    assert fresh[1] != 0.0  # the box is not symmetric: the robot does steer


@settings(max_examples=25, deadline=None)
@given(boxes=st.lists(st.tuples(st.floats(0.5, 6.0), st.floats(-3.0, 3.0), st.floats(0.1, 1.5),
                                st.floats(0.1, 1.5)), max_size=6),
       speed=st.floats(0.0, 1.5), turn=st.floats(-1.5, 1.5),
       probability=st.integers(0, 100))
def test_every_command_is_within_the_limits(boxes, speed, turn, probability) -> None:
    world = World(obstacles=[Box(x, y, x + dx, y + dy) for x, y, dx, dy in boxes],
                  obstacle_probability=probability)
    planner = ready_planner(velocity_tracking_tolerance=0.0)  # plan from the measured speed
    pose = Pose2D(0.0, 0.0, 0.0)
    planner.set_odometry(Odometry(1.0, 'odom', pose, speed, turn), 1.0)
    obstacles, pedestrians = world.render(pose, 1.0)
    planner.set_obstacle_grid(obstacles, 1.0)
    planner.set_pedestrian_grid(pedestrians, 1.0)
    output = planner.step(1.0)
    v, w = output.linear, output.angular
    assert 0.0 <= v <= CONFIG.max_linear_speed and abs(w) <= CONFIG.max_angular_speed
    assert abs(v * w) <= CONFIG.max_lateral_accel + 1e-6
    if (v, w) != (0.0, 0.0):
        assert v - speed <= CONFIG.max_linear_accel / CONFIG.control_rate + 1e-9
        assert speed - v <= CONFIG.max_linear_accel / CONFIG.control_rate + 1e-9
        assert output.state == 'driving' and output.path


def _pedestrian_grid(robot: Pose2D, person: Box, stamp: float) -> LocalGrid:
    return World(pedestrians=[person]).render(robot, stamp)[1]


def test_a_pedestrian_blob_that_stays_put_in_odom_becomes_an_obstacle() -> None:
    tracker = PedestrianTracker(CONFIG)
    crate_corner = Box(5.0, -0.2, 5.3, 0.1)
    kept_out = []
    for step in range(40):  # 4 s while the robot drives towards it at 0.5 m/s
        now = 100.0 + 0.1 * step
        robot = Pose2D(0.05 * step, 0.0, 0.0)
        tracked = tracker.update(_pedestrian_grid(robot, crate_corner, now), robot)
        people = tracked.keep_out.probability > 0.0
        kept_out.append(bool(people.any()))
        assert not (people & tracked.static).any()
    # Yielding at first, as to a person standing there; static after most of 3 s.
    static_from = kept_out.index(False)
    assert 0.8 * CONFIG.pedestrian_static_time <= 0.1 * static_from <= CONFIG.pedestrian_static_time
    assert not any(kept_out[static_from:])
    assert tracked.static.sum() >= 6


def test_a_walking_pedestrian_stays_a_pedestrian_and_is_kept_out_of_its_way() -> None:
    tracker = PedestrianTracker(CONFIG)
    robot = Pose2D(0.0, 0.0, 0.0)
    for step in range(40):  # crossing from the left at 1 m/s, 4 m ahead
        now = 100.0 + 0.1 * step
        y = 2.0 - 0.1 * step
        tracked = tracker.update(_pedestrian_grid(robot, Box(3.8, y - 0.2, 4.2, y + 0.2), now),
                                 robot)
        assert not tracked.static.any()
    xs, ys = tracked.keep_out.cell_centres()
    kept = tracked.keep_out.probability > 0.0
    on_its_line = np.abs(xs - 4.0) < 0.15
    # Where the walker is now (y about -1.9) and up to 1.5 s further on, not behind it.
    assert kept[on_its_line & (np.abs(ys - (y - 1.0)) < 0.05)].all()
    assert kept[on_its_line & (np.abs(ys - (y - 1.4)) < 0.05)].all()
    assert not kept[on_its_line & (np.abs(ys - (y + 0.6)) < 0.05)].any()

"""Closed-loop planner behaviour on synthetic worlds (ideal unicycle, perfect perception)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D
from sidewalk_robot.planning.planner import RESUME_HOLD, Odometry, Planner
from sidewalk_robot.planning.synthetic import Box, Tick, World, drive

CONFIG = PlannerConfig()
LENGTH, WIDTH = CONFIG.footprint_length, CONFIG.footprint_width
START = Pose2D(0.0, 0.0, 0.0)


def planner_to(x: float, y: float, **overrides) -> Planner:
    planner = Planner(PlannerConfig(**overrides))
    assert planner.set_goal(x, y, 'odom', now=0.0) is None
    return planner


def closest_approach(world: World, ticks: list[Tick]) -> float:
    return min(world.footprint_clearance(t.pose, LENGTH, WIDTH) for t in ticks)


def monitor_allowed_speed(distance: float) -> float:
    """The safety monitor's cap: v*0.3 + v^2/(2*1.5) + 0.25 <= distance, and its slow-down
    ramp from 1.5 m/s at 2.0 m to 0 at 0.25 m."""
    room = distance - 0.25
    if room <= 0.0:
        return 0.0
    stopping = 1.5 * (math.sqrt(0.09 + 2.0 * room / 1.5) - 0.3)
    return min(stopping, 1.5 * room / 1.75)


def assert_commands_within_limits(ticks: list[Tick], config: PlannerConfig = CONFIG) -> None:
    step = config.max_linear_accel / config.control_rate + 1e-9
    turn_step = config.max_angular_accel / config.control_rate + 1e-9
    previous_v = previous_w = 0.0
    for tick in ticks:
        v, w = tick.output.linear, tick.output.angular
        assert 0.0 <= v <= config.max_linear_speed
        assert abs(w) <= config.max_angular_speed
        assert abs(v) * abs(w) <= config.max_lateral_accel + 1e-6
        stopping = v == 0.0 and w == 0.0
        if not stopping:
            assert abs(v - previous_v) <= step, (tick.time, previous_v, v)
            assert abs(w - previous_w) <= turn_step, (tick.time, previous_w, w)
        previous_v, previous_w = v, w


def test_reaches_a_goal_in_free_space_at_sidewalk_speed() -> None:
    world = World()
    ticks = drive(planner_to(12.0, 0.0), world, START, duration=30.0)
    final = ticks[-1]
    assert final.output.state == 'arrived'
    assert final.pose.distance_to(12.0, 0.0) <= CONFIG.goal_tolerance
    assert final.output.linear == 0.0 and final.output.angular == 0.0
    travelled = sum(t.output.linear for t in ticks) / CONFIG.control_rate
    mean_speed = travelled / (final.time - ticks[0].time)
    assert mean_speed >= 0.8, mean_speed
    assert max(t.output.linear for t in ticks) == pytest.approx(CONFIG.cruise_speed)
    assert_commands_within_limits(ticks)


def test_keeps_to_the_right_of_the_route_line() -> None:
    ticks = drive(planner_to(14.0, 0.0), World(), START, duration=30.0)
    mid_route = [t.pose.y for t in ticks if 5.0 <= t.pose.x <= 9.0]
    assert mid_route
    assert -0.45 <= float(np.mean(mid_route)) <= -0.15  # keep_right_offset is 0.3 m


def test_follows_a_route_waypoint_by_waypoint() -> None:
    planner = Planner(CONFIG)
    waypoints = [(0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0)]
    assert planner.set_route(waypoints, 'odom', now=0.0) is None
    ticks = drive(planner, World(), START, duration=60.0)
    assert ticks[-1].output.state == 'arrived'
    for x, y in waypoints[1:]:
        nearest = min(t.pose.distance_to(x, y) for t in ticks)
        assert nearest < 0.8, (x, y, nearest)
    passed = [t.output.values.get('waypoints_passed', 0) for t in ticks]
    assert passed == sorted(passed) and passed[-2] >= 2


def test_goes_around_a_box_on_the_route() -> None:
    world = World(obstacles=[Box(4.0, -0.6, 4.6, 0.6)])
    ticks = drive(planner_to(10.0, 0.0), world, START, duration=40.0)
    assert ticks[-1].output.state == 'arrived'
    assert closest_approach(world, ticks) >= 0.1
    assert_commands_within_limits(ticks)


def test_weaves_through_obstacles_on_a_two_metre_sidewalk() -> None:
    edges = [Box(-5.0, 1.0, 40.0, 1.3), Box(-5.0, -1.3, 40.0, -1.0)]
    # Each obstacle leaves a 0.9 m passage, on alternating sides.
    world = World(obstacles=edges + [Box(3.0, -1.0, 3.4, 0.1), Box(7.0, -0.1, 7.4, 1.0),
                                     Box(11.0, -1.0, 11.4, 0.1)])
    ticks = drive(planner_to(15.0, 0.0), world, START, duration=60.0)
    assert ticks[-1].output.state == 'arrived'
    assert closest_approach(world, ticks) > 0.0
    assert not any(t.output.assists for t in ticks)


def _wall_with_gap(gap: float) -> World:
    """A wall across the whole sidewalk at x = 4 with one opening of ``gap`` metres."""
    return World(obstacles=[Box(4.0, gap / 2.0, 4.3, 20.0), Box(4.0, -20.0, 4.3, -gap / 2.0)])


@pytest.mark.parametrize('gap', [0.9, 1.2])
def test_passes_through_a_gap_wider_than_the_robot(gap: float) -> None:
    world = _wall_with_gap(gap)
    ticks = drive(planner_to(9.0, 0.0), world, START, duration=40.0)
    assert ticks[-1].output.state == 'arrived'
    assert closest_approach(world, ticks) > 0.0


def test_refuses_a_gap_narrower_than_the_robot_and_asks_for_help() -> None:
    world = _wall_with_gap(0.5)
    ticks = drive(planner_to(9.0, 0.0, stuck_timeout=8.0), world, START, duration=20.0)
    assert all(t.pose.x < 4.0 - LENGTH / 2.0 for t in ticks)
    assert closest_approach(world, ticks) >= CONFIG.clearance_margin - 0.02
    states = [t.output.state for t in ticks]
    assert 'arrived' not in states
    requests = [request for t in ticks for request in t.output.assists]
    assert len(requests) == 1 and requests[0].status == 'requested'
    assert 'operator' in ticks[-1].output.reason and states[-1] == 'blocked'
    assert ticks[-1].output.linear == 0.0


def _crates_leaving_a_gap(gap: float) -> World:
    """Two 0.6 m deep crates across a 3.2 m sidewalk at x = 3.7 with ``gap`` between them."""
    half = gap / 2.0
    return World(obstacles=[Box(3.7, half, 4.3, half + 0.75), Box(3.7, -half - 0.75, 4.3, -half),
                            Box(-10.0, 1.6, 30.0, 3.0), Box(-10.0, -3.0, 30.0, -1.6)])


@pytest.mark.parametrize('recovery_distance', [0.5, 0.0])
def test_backs_up_to_line_up_with_a_gap_it_stopped_too_close_to(recovery_distance: float) -> None:
    # Stopped 0.55 m short of the crates and 0.5 m to the side of the gap: no forward rollout
    # fits through, so only room gained by reversing lets the robot line up with the gap.
    world = _crates_leaving_a_gap(1.0)
    planner = planner_to(9.0, 0.0, recovery_distance=recovery_distance)
    ticks = drive(planner, world, Pose2D(2.6, -0.5, 0.0), duration=40.0, lidar=True)
    states = [t.output.state for t in ticks]
    if recovery_distance == 0.0:
        assert 'arrived' not in states and 'backing_up' not in states
        return
    assert states[-1] == 'arrived'
    reversing = [t for t in ticks if t.output.linear < 0.0]
    assert reversing and all(t.output.state == 'backing_up' for t in reversing)
    assert min(t.output.linear for t in reversing) >= -CONFIG.recovery_speed - 1e-9
    assert all(t.output.angular == 0.0 for t in reversing)
    assert closest_approach(world, ticks) >= CONFIG.clearance_margin - 0.02


def test_never_backs_up_from_a_wall_without_a_way_round() -> None:
    world = _wall_with_gap(0.0)
    ticks = drive(planner_to(9.0, 0.0, stuck_timeout=8.0), world, START, duration=15.0,
                  lidar=True)
    assert all(t.output.linear >= 0.0 for t in ticks)
    assert ticks[-1].output.state == 'blocked'


@pytest.mark.parametrize('corridor', [1.5, 3.0])
def test_does_not_leave_the_route_corridor_to_get_round_a_barrier(corridor: float) -> None:
    # A barrier closing a 2.6 m sidewalk; beyond its ends is road, which the obstacle grid
    # shows as free. Only the corridor round the route keeps the robot off it.
    world = World(obstacles=[Box(4.0, -1.3, 4.3, 1.3)])
    planner = planner_to(9.0, 0.0, route_corridor=corridor, stuck_timeout=10.0)
    ticks = drive(planner, world, START, duration=30.0, lidar=True)
    widest = max(abs(t.pose.y) for t in ticks)
    if corridor > 2.0:
        assert ticks[-1].output.state == 'arrived' and widest > 1.6
        return
    assert widest <= corridor + 0.1
    assert ticks[-1].output.state == 'blocked' and 'operator' in ticks[-1].output.reason
    assert closest_approach(world, ticks) >= CONFIG.clearance_margin - 0.02


def test_stops_for_an_obstacle_that_appears_on_the_path() -> None:
    world = World()

    def box_appears(now: float, world: World) -> None:
        if now >= 104.0 and not world.obstacles:
            world.obstacles.append(Box(7.5, -20.0, 8.0, 20.0))  # about 2.5 m ahead by then

    ticks = drive(planner_to(15.0, 0.0), world, START, duration=15.0, world_update=box_appears)
    assert max(t.output.linear for t in ticks if t.time < 104.0) >= 1.0
    after = [t for t in ticks if t.time >= 104.0]
    assert closest_approach(world, after) >= CONFIG.clearance_margin - 0.02
    assert after[-1].output.linear == 0.0 and after[-1].output.state == 'blocked'
    for tick in after:
        front_gap = world.footprint_clearance(tick.pose, LENGTH, WIDTH)
        assert tick.output.linear <= monitor_allowed_speed(front_gap) + 1e-6, tick


def test_slows_down_near_unknown_cells_but_not_for_its_blind_spot() -> None:
    def speeds(world: World) -> list[tuple[float, float]]:
        ticks = drive(planner_to(12.0, 0.0), world, START, duration=12.0, until_arrived=False)
        return [(t.pose.x, t.output.linear) for t in ticks]

    clear = speeds(World(blind_x=0.6))  # the camera's blind spot around the robot
    fog = speeds(World(unknown=[Box(3.5, -20.0, 40.0, 20.0)]))
    assert all(v == pytest.approx(CONFIG.cruise_speed) for x, v in clear if 2.5 <= x <= 3.5)
    approaching = [v for x, v in fog if 2.5 <= x <= 3.5]
    assert approaching and max(approaching) < 0.9 * CONFIG.cruise_speed
    # Inside the fog only the blind spot (unknown_blind_distance) counts as seen: the robot
    # goes no faster than it could stop within it (about 0.5 m/s), but keeps going.
    inside = [v for x, v in fog if x > 4.0]
    assert inside and max(inside) <= 0.55 and min(inside) >= 0.2


def test_uncertain_obstacles_slow_the_robot_without_blocking_it() -> None:
    haze = World(obstacles=[Box(4.0, -20.0, 4.3, 20.0)], obstacle_probability=30)
    ticks = drive(planner_to(9.0, 0.0), haze, START, duration=40.0)
    assert ticks[-1].output.state == 'arrived'
    crossing = [t.output.linear for t in ticks if 3.3 <= t.pose.x <= 4.3]
    assert crossing and max(crossing) <= CONFIG.creep_speed + 1e-9


def test_yields_to_a_pedestrian_and_goes_on_when_they_leave() -> None:
    walls = [Box(-5.0, 0.75, 30.0, 1.0), Box(-5.0, -1.0, 30.0, -0.75)]  # a 1.5 m sidewalk
    world = World(obstacles=list(walls), pedestrians=[Box(5.0, -0.3, 5.4, 0.1)])

    def pedestrian_leaves(now: float, world: World) -> None:
        if now >= 115.0:
            world.pedestrians.clear()

    ticks = drive(planner_to(10.0, 0.0), world, START, duration=40.0,
                  world_update=pedestrian_leaves)
    waiting = [t for t in ticks if 110.0 <= t.time < 115.0]
    assert all(t.output.state == 'waiting' and t.output.linear == 0.0 for t in waiting)
    assert 'pedestrian' in waiting[-1].output.reason
    with_pedestrian = [t for t in ticks if t.time < 115.0]
    pedestrian = World(pedestrians=[Box(5.0, -0.3, 5.4, 0.1)])
    gap = min(pedestrian.footprint_clearance(t.pose, LENGTH, WIDTH) for t in with_pedestrian)
    assert gap >= CONFIG.pedestrian_keep_out - 0.1
    assert ticks[-1].output.state == 'arrived'


def test_asks_for_help_when_blocked_and_resumes_when_the_way_clears() -> None:
    world = World(obstacles=[Box(3.0, -20.0, 3.3, 20.0)])

    def wall_removed(now: float, world: World) -> None:
        if now >= 120.0:
            world.obstacles.clear()

    ticks = drive(planner_to(8.0, 0.0, stuck_timeout=10.0), world, START, duration=40.0,
                  world_update=wall_removed)
    requests = [(t.time, request) for t in ticks for request in t.output.assists]
    assert [r.status for _, r in requests] == ['requested', 'resolved']
    requested_at, request = requests[0]
    assert 108.0 < requested_at < 120.0
    assert request.reason == 'path blocked by an obstacle' and request.goal == (8.0, 0.0)
    assert all(t.output.state == 'blocked' and t.output.linear == 0.0
               for t in ticks if requested_at <= t.time < 120.0)
    assert ticks[-1].output.state == 'arrived'


def test_passes_a_gap_whose_edges_perception_mislabels_as_pedestrians() -> None:
    # As in the narrow_gap scenario: the learned model labels the crates' inner corners
    # pedestrian, which with the 0.5 m keep-out would close the 1.0 m gap for good.
    world = _wall_with_gap(1.0)
    world.pedestrians = [Box(4.0, 0.5, 4.3, 0.8), Box(4.0, -0.8, 4.3, -0.5)]
    ticks = drive(planner_to(9.0, 0.0), world, START, duration=40.0)
    assert ticks[-1].output.state == 'arrived'
    assert closest_approach(world, ticks) > 0.0
    assert not any(t.output.assists for t in ticks)
    # Were they taken for people standing in the gap, the robot would wait in front of them.
    polite = drive(planner_to(9.0, 0.0, pedestrian_static_time=1000.0), world, START,
                   duration=15.0)
    assert polite[-1].output.state == 'waiting'
    assert polite[-1].output.reason == 'yielding to a pedestrian'


@pytest.mark.parametrize('start_y', [5.5, 6.0])
def test_waits_for_a_walker_crossing_its_way_instead_of_cutting_in_front(start_y: float) -> None:
    # Timed to reach the robot's lane with the robot: from where the walker is now alone
    # (no prediction) the robot comes within 0.22 m (5.5) or touches them (6.0).
    crossing_x, speed = 6.0, 1.0

    def walker(now: float, world: World) -> None:
        y = start_y - speed * (now - 100.0)
        world.pedestrians = [Box(crossing_x - 0.2, y - 0.2, crossing_x + 0.2, y + 0.2)]

    world = World()
    ticks = drive(planner_to(12.0, 0.0), world, START, duration=40.0, world_update=walker)
    assert ticks[-1].output.state == 'arrived'
    gaps = []
    for tick in ticks:
        walker(tick.time, world)
        gaps.append(world.footprint_clearance(tick.pose, LENGTH, WIDTH, pedestrians=True))
    assert min(gaps) >= 0.4, min(gaps)


def test_circling_without_route_progress_stops_and_asks_for_help_at_once() -> None:
    # The base circles 2 m in front of a closed sidewalk (as when the camera, turned away
    # from a barrier, shows open ground): after stuck_wander_distance of driving without
    # route progress the planner stops and asks, long before stuck_timeout.
    from sidewalk_robot.planning.planner import Odometry
    planner = planner_to(12.0, 0.0)
    world = World(obstacles=[Box(3.0, -20.0, 3.3, 20.0)])
    requests, outputs = [], []
    for step in range(150):
        now = 100.0 + 0.1 * step
        angle = 0.5 * 0.1 * step  # 0.5 m/s on a circle of 1 m radius
        pose = Pose2D(1.0 + math.sin(angle), 1.0 - math.cos(angle), angle)
        planner.set_odometry(Odometry(now, 'odom', pose, 0.5, 0.5), now)
        obstacles, pedestrians = world.render(pose, now)
        planner.set_obstacle_grid(obstacles, now)
        planner.set_pedestrian_grid(pedestrians, now)
        output = planner.step(now)
        outputs.append(output)
        requests += [(now, request) for request in output.assists]
    assert [r.status for _, r in requests] == ['requested']
    requested_at = requests[0][0]
    # The first quarter turn (3.1 s) still gains route progress; 4 m more take 8 s.
    last_progress = 100.0 + math.pi / 2.0 / 0.5
    assert requested_at - last_progress <= CONFIG.stuck_wander_distance / 0.5 + 0.5
    assert requested_at - last_progress < CONFIG.stuck_timeout / 2.0
    after = outputs[int(round((requested_at - 100.0) * 10)):]
    assert all(o.linear == 0.0 and o.angular == 0.0 and o.state == 'blocked' for o in after)


def test_resumes_only_when_the_way_stays_open_and_in_view() -> None:
    world = World(obstacles=[Box(3.0, -20.0, 3.3, 20.0)])

    def wall_flickers_then_fog(now: float, world: World) -> None:
        # One grid without the wall (perception missed it), later the wall gone but the
        # way ahead unseen, and only from 125 s the open way in view.
        world.obstacles = [] if 116.0 <= now < 116.1 or now >= 118.0 else [
            Box(3.0, -20.0, 3.3, 20.0)]
        world.unknown = [Box(2.6, -20.0, 40.0, 20.0)] if 118.0 <= now < 125.0 else []

    ticks = drive(planner_to(8.0, 0.0, stuck_timeout=10.0), world, START, duration=40.0,
                  world_update=wall_flickers_then_fog)
    requests = [(t.time, request.status) for t in ticks for request in t.output.assists]
    assert [status for _, status in requests] == ['requested', 'resolved']
    assert requests[0][0] < 116.0 and 125.0 + RESUME_HOLD <= requests[1][0] < 127.0
    assert ticks[-1].output.state == 'arrived'


@pytest.mark.parametrize('slow_speed', [0.7, 1.2])
def test_passes_people_at_the_slow_speed(slow_speed: float) -> None:
    """A person standing beside the way: passed, but not faster than pedestrian_slow_speed
    while within pedestrian_slow_distance (with the cap at cruise speed it is not slowed)."""
    person = Box(6.0, 0.5, 6.4, 0.9)
    world = World(pedestrians=[person])
    ticks = drive(planner_to(14.0, 0.0, pedestrian_slow_speed=slow_speed), world, START,
                  duration=40.0)
    assert ticks[-1].output.state == 'arrived'
    # Braking from cruise speed to the cap at max_linear_accel takes about 0.5 m; once the
    # person is behind the robot (out of its grid) it speeds up again.
    near = [t for t in ticks if t.pose.x <= person.x_max
            and world.footprint_clearance(t.pose, LENGTH, WIDTH, pedestrians=True)
            < CONFIG.pedestrian_slow_distance - 0.5]
    assert near
    fastest = max(t.output.linear for t in near)
    if slow_speed < CONFIG.cruise_speed:
        assert fastest <= slow_speed + 1e-9
    else:
        assert fastest > 0.9


@pytest.mark.parametrize('blocker', ['pedestrians', 'obstacles'])
def test_waits_longer_for_people_than_for_a_wall_before_asking_for_help(blocker: str) -> None:
    sidewalk = [Box(-5.0, 1.0, 30.0, 1.3), Box(-5.0, -1.3, 30.0, -1.0)]
    world = World(obstacles=list(sidewalk))
    getattr(world, blocker).append(Box(3.0, -1.0, 3.4, 1.0))  # across the whole sidewalk
    planner = planner_to(8.0, 0.0, stuck_timeout=5.0, pedestrian_wait_timeout=15.0)
    ticks = drive(planner, world, START, duration=25.0)
    requested = [t.time for t in ticks for request in t.output.assists
                 if request.status == 'requested']
    assert len(requested) == 1
    # The clock starts at the last route progress, 3-5 s in, when the robot has stopped.
    if blocker == 'pedestrians':
        assert 115.0 < requested[0] < 121.0
        assert 'pedestrian' in ticks[-1].output.reason
    else:
        assert 105.0 < requested[0] < 111.0


def test_being_pushed_about_while_stopped_is_not_circling() -> None:
    """Walkers bump a robot that waits in front of a closed way; its odometry moves although it
    commands nothing. That must not count as 4 m of wandering (an immediate assist request)."""
    sidewalk = [Box(-5.0, 1.0, 30.0, 1.3), Box(-5.0, -1.3, 30.0, -1.0)]
    world = World(obstacles=sidewalk + [Box(0.5, -1.0, 0.9, 1.0)])  # 0.15 m ahead
    planner = planner_to(8.0, 0.0, stuck_timeout=30.0)
    outputs = []
    for index in range(100):  # 10 s
        now = 100.0 + index / CONFIG.control_rate
        pushed = Pose2D(0.0, 0.15 if index % 2 else -0.15, 0.0)
        planner.set_odometry(Odometry(now, 'odom', pushed, 0.0, 0.0), now)
        obstacles, pedestrians = world.render(pushed, now)
        planner.set_obstacle_grid(obstacles, now)
        planner.set_pedestrian_grid(pedestrians, now)
        outputs.append(planner.step(now))
    assert not any(output.assists for output in outputs), \
        [o.reason for o in outputs if o.assists][:1]
    assert all(output.linear == 0.0 for output in outputs[-50:])

"""Run metrics from ground truth: clearance geometry, collisions, vetoes, speeds, arrival."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidewalk_robot.system.metrics import (ROBOT_CIRCUMRADIUS_M, Obstacle, PoseSample,
                                           RunMonitor, convex_polygon_distance,
                                           footprint_clearance, rectangle_corners, reason_label)


def test_rectangle_corners_rotate_about_the_centre() -> None:
    corners = rectangle_corners(1.0, 2.0, math.pi / 2, 0.7, 0.55)
    assert np.allclose(sorted(corners[:, 0]), [0.725, 0.725, 1.275, 1.275])
    assert np.allclose(sorted(corners[:, 1]), [1.65, 1.65, 2.35, 2.35])


def test_polygon_distance_separated_touching_and_overlapping() -> None:
    a = rectangle_corners(0.0, 0.0, 0.0, 2.0, 2.0)
    assert convex_polygon_distance(a, rectangle_corners(4.0, 0.0, 0.0, 2.0, 2.0)) \
        == pytest.approx(2.0)
    assert convex_polygon_distance(a, rectangle_corners(2.0, 0.0, 0.0, 2.0, 2.0)) == 0.0
    assert convex_polygon_distance(a, rectangle_corners(0.5, 0.5, 0.3, 1.0, 1.0)) == 0.0
    diagonal = rectangle_corners(3.0, 3.0, 0.0, 2.0, 2.0)
    assert convex_polygon_distance(a, diagonal) == pytest.approx(math.sqrt(2.0))
    rotated = rectangle_corners(3.0, 0.0, math.pi / 4, math.sqrt(2), math.sqrt(2))
    assert convex_polygon_distance(a, rotated) == pytest.approx(1.0)


def test_footprint_clearance_to_circles_and_boxes() -> None:
    pose = PoseSample(0.0, 0.0, 0.0, 0.0)
    ahead = Obstacle('pole', 'obstacle', 1.35, 0.0, radius=0.1)
    assert footprint_clearance(pose, ahead) == pytest.approx(1.35 - 0.35 - 0.1)
    beside = Obstacle('pole', 'obstacle', 0.0, 1.0, radius=0.2)
    assert footprint_clearance(pose, beside) == pytest.approx(1.0 - 0.275 - 0.2)
    turned = PoseSample(0.0, 0.0, 0.0, math.pi / 2)
    assert footprint_clearance(turned, beside) == pytest.approx(1.0 - 0.35 - 0.2)
    corner = Obstacle('pole', 'obstacle', 0.35 + 0.3, 0.275 + 0.4, radius=0.0)
    assert footprint_clearance(pose, corner) == pytest.approx(0.5)
    inside = Obstacle('pole', 'obstacle', 0.1, 0.0, radius=0.1)
    assert footprint_clearance(pose, inside) == 0.0
    wall = Obstacle('wall', 'obstacle', 2.0, 0.0, length=0.3, width=3.0)
    assert footprint_clearance(pose, wall) == pytest.approx(2.0 - 0.15 - 0.35)


def monitor_with_straight_drive(speed: float = 1.0, seconds: float = 10.0,
                                goal: tuple[float, float] = (20.0, 0.0)) -> RunMonitor:
    monitor = RunMonitor(goal, goal_tolerance_m=0.5)
    monitor.on_pose(99.0, 0.0, 0.0, 0.0)
    monitor.start_mission(100.0)
    for step in range(int(seconds * 10) + 1):
        monitor.on_pose(100.0 + step * 0.1, speed * step * 0.1, 0.0, 0.0)
    return monitor


def test_distance_speed_and_no_arrival() -> None:
    monitor = monitor_with_straight_drive()
    summary = monitor.summary()
    assert not summary.arrived and summary.time_to_goal_s is None
    assert summary.distance_m == pytest.approx(10.0)
    assert summary.mission_time_s == pytest.approx(10.0)
    assert summary.mean_speed_mps == pytest.approx(1.0)
    assert summary.max_speed_mps == pytest.approx(1.0)
    assert summary.final_distance_to_goal_m == pytest.approx(10.0)
    times, speeds = monitor.speed_profile()
    assert times[0] == pytest.approx(0.25) and np.allclose(speeds, 1.0)


def test_arrival_freezes_the_mission_clock() -> None:
    monitor = monitor_with_straight_drive(speed=2.0, seconds=12.0)
    summary = monitor.summary()
    assert summary.arrived
    assert summary.time_to_goal_s == pytest.approx(9.8)  # 19.6 m is within 0.5 m of 20 m
    assert summary.distance_m == pytest.approx(19.6)


def test_min_clearance_uses_current_obstacles_and_ignores_ground_and_overhead() -> None:
    monitor = RunMonitor((50.0, 0.0), 0.5)
    monitor.on_obstacles(0.0, [Obstacle('pole', 'obstacle', 5.0, 1.0, radius=0.1),
                               Obstacle('lawn', 'not_drivable', 5.0, 0.0, length=9, width=9),
                               Obstacle('lamp_head', 'obstacle', 5.0, 0.3, radius=0.2,
                                        bottom_z=3.9)])
    monitor.start_mission(0.0)
    for x in np.arange(0.0, 10.0, 0.1):
        monitor.on_pose(float(x), float(x), 0.0, 0.0)
    summary = monitor.summary()
    assert summary.min_clearance_m == pytest.approx(1.0 - 0.275 - 0.1, abs=1e-6)
    assert summary.min_clearance_obstacle == 'pole'


def test_pedestrian_tracks_are_kept_during_the_mission() -> None:
    monitor = RunMonitor((50.0, 0.0), 0.5)
    monitor.on_obstacles(0.0, [Obstacle('ped', 'pedestrian', 1.0, 1.0, radius=0.25)])
    monitor.start_mission(1.0)
    monitor.on_obstacles(1.5, [Obstacle('ped', 'pedestrian', 1.0, 1.5, radius=0.25)])
    assert monitor.obstacle_history == {'ped': [(1.0, 1.5)]}


def test_each_new_contact_is_one_collision_until_it_separates() -> None:
    monitor = RunMonitor((50.0, 0.0), 0.5)
    monitor.on_contacts(0.9, ['hedge'])  # began before the mission: not a collision of the run
    monitor.start_mission(1.0)
    monitor.on_pose(1.0, 2.0, 0.0, 0.0)
    # reported every 20 ms while touching, nothing in between
    for step, bodies in enumerate([['hedge'], ['pole'], ['pole'], ['pole', 'ped'], ['ped']]):
        monitor.on_contacts(1.0 + step * 0.02, bodies)
    monitor.on_contacts(3.0, ['pole'])  # apart for longer than CONTACT_GAP_S: touches again
    assert [c.body for c in monitor.collisions] == ['pole', 'ped', 'pole']
    summary = monitor.summary()
    assert summary.collisions == 0, 'the robot never moved: it hit nothing'
    assert summary.contacts_by_others == 3
    assert summary.touched_by == ['ped', 'pole']


def test_driving_into_a_body_is_a_collision_being_overtaken_is_not() -> None:
    monitor = monitor_with_straight_drive(speed=0.8, seconds=3.0)  # at x = 2.4, moving +x
    monitor.on_obstacles(3.0, [Obstacle('pole', 'obstacle', 2.8, 0.0, radius=0.1),
                               Obstacle('jogger', 'pedestrian', 1.9, 0.0, radius=0.25)])
    monitor.on_contacts(3.0, ['pole', 'jogger', 'mystery'])
    by_body = {c.body: c for c in monitor.collisions}
    assert by_body['pole'].robot_drove_into and by_body['mystery'].robot_drove_into
    assert not by_body['jogger'].robot_drove_into, 'it came from behind'
    assert by_body['pole'].robot_speed_mps == pytest.approx(0.8)
    summary = monitor.summary()
    assert (summary.collisions, summary.contacts_by_others) == (2, 1)
    assert summary.collided_with == ['mystery', 'pole'] and summary.touched_by == ['jogger']


def test_vetoes_count_entries_into_stop_by_reason_and_limits_separately() -> None:
    monitor = RunMonitor((50.0, 0.0), 0.5)
    monitor.on_safety_state(0.0, 'STOP', 'waiting_for_inputs', 0.0)
    monitor.start_mission(1.0)
    monitor.on_pose(1.0, 3.0, 0.5, 0.0)
    monitor.on_safety_state(1.1, 'STOP', 'waiting_for_inputs', 0.0)  # unchanged: not a veto
    for time, state, reason in [(2.0, 'CLEAR', 'clear'), (2.1, 'STOP', 'obstacle_stop'),
                                (2.2, 'STOP', 'obstacle_stop'), (2.3, 'STOP', 'scan_stale'),
                                (2.4, 'CLEAR', 'clear'), (2.5, 'LIMIT', 'obstacle_slowdown'),
                                (2.6, 'CLEAR', 'speed_cap'),
                                (3.0, 'STOP', 'obstacle_stop'),  # flicker: same episode
                                (3.1, 'LIMIT', 'obstacle_slowdown'),  # flicker too
                                (6.0, 'STOP', 'obstacle_stop'),  # a new episode
                                (6.1, 'ESTOP', 'estop_pressed')]:
        monitor.on_safety_state(time, state, reason, 0.0)
    summary = monitor.summary()
    assert summary.vetoes == 4
    assert summary.vetoes_by_reason == {'estop_pressed': 1, 'obstacle_stop': 2, 'scan_stale': 1}
    assert summary.limits_by_reason == {'obstacle_slowdown': 1}
    assert (monitor.vetoes[0].x, monitor.vetoes[0].y) == (3.0, 0.5)
    assert summary.vetoes_per_100m is None, 'undefined before the robot has moved a metre'


def test_reason_label_drops_details() -> None:
    assert reason_label('scan_stale: last stamp 0.4 s old') == 'scan_stale'
    assert reason_label('') == 'unspecified'


def test_summary_is_json_ready() -> None:
    import json
    text = json.dumps(monitor_with_straight_drive().summary().to_dict())
    assert '"arrived": false' in text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-6, 6), st.floats(-3, 3), st.floats(-math.pi, math.pi),
                          st.floats(0.05, 8.0), st.floats(0.05, 1.5), st.booleans()),
                min_size=1, max_size=8),
       st.lists(st.tuples(st.floats(-6, 6), st.floats(-3, 3), st.floats(-math.pi, math.pi)),
                min_size=1, max_size=12))
def test_min_clearance_skips_only_obstacles_that_cannot_be_the_nearest(bodies, poses) -> None:
    obstacles = [Obstacle(f'body{index}', 'obstacle', x, y, yaw, radius=width / 2)
                 if round_ else Obstacle(f'body{index}', 'obstacle', x, y, yaw, length=length,
                                         width=width)
                 for index, (x, y, yaw, length, width, round_) in enumerate(bodies)]
    monitor = RunMonitor(goal_xy=(100.0, 100.0), goal_tolerance_m=0.1)
    monitor.on_obstacles(0.0, obstacles)
    monitor.start_mission(0.0)
    for step, (x, y, yaw) in enumerate(poses):
        monitor.on_pose(0.1 * step, x, y, yaw)
    nearest = min(footprint_clearance(PoseSample(0.0, x, y, yaw), obstacle)
                  for x, y, yaw in poses for obstacle in obstacles)
    assert monitor.min_clearance == pytest.approx(nearest, abs=1e-9)
    for obstacle in obstacles:  # the cheap bound never exceeds the true distance
        for x, y, yaw in poses:
            assert obstacle.distance_from(x, y) <= footprint_clearance(
                PoseSample(0.0, x, y, yaw), obstacle) + ROBOT_CIRCUMRADIUS_M + 1e-9

"""The shipped model's health on the training worlds and on a world of unseen ground colours,
from frames the headless simulator renders along each world's route: its camera through the
real perception pipeline (models/sidewalk_seg_v5), its lidar into the health core. The
planner fed the resulting figure caps its speed on the unseen world only.

(test/system/test_operator_missions.py runs the same comparison as real processes.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.monitoring.health import (ERROR, OK, Comparison, LaserScanData,
                                              ModelHealthMonitor, compare)
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D
from sidewalk_robot.planning.grid import LocalGrid
from sidewalk_robot.planning.planner import Planner
from sidewalk_robot.planning.synthetic import World, drive

CONFIG = HealthMonitorConfig()
FRAMES = 10
"""Poses sampled along each route (the default window holds 5 s of grids at 10 Hz)."""

TRAINING_WORLDS = ('sidewalk_straight', 'busy_sidewalk', 'street_corner')
UNSEEN_COLOURS_WORLD = 'tiled_street'
"""Held out of training (perception/generation.py): ground colours and patterns no training
scene has."""


@pytest.fixture(scope='module')
def pipeline():
    from sidewalk_robot.perception.config import PerceptionConfig
    from sidewalk_robot.perception.pipeline import PerceptionPipeline

    config = PerceptionConfig()
    loaded = PerceptionPipeline.from_config(config)
    assert loaded.model is not None, loaded.model_error
    return loaded, config


def poses_along(route: tuple[tuple[float, float], ...], count: int) -> list[Pose2D]:
    """``count`` poses spread along the route (from 1 m in to 3 m before its end), keeping
    right of the centre line as the planner does."""
    points = np.asarray(route, dtype=float)
    lengths = np.hypot(*np.diff(points, axis=0).T)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    poses = []
    for s in np.linspace(1.0, cumulative[-1] - 3.0, count):
        segment = min(int(np.searchsorted(cumulative, s, side='right')) - 1, len(lengths) - 1)
        direction = (points[segment + 1] - points[segment]) / lengths[segment]
        x, y = points[segment] + direction * (s - cumulative[segment])
        yaw = math.atan2(direction[1], direction[0])
        poses.append(Pose2D(x + 0.3 * direction[1], y - 0.3 * direction[0], yaw))
    return poses


def world_health(world_name: str, pipeline) -> tuple[float, str, dict[str, object]]:
    from sidewalk_robot.perception.bev import probability_to_occupancy
    from sidewalk_robot.simulation.headless import HeadlessSimulator

    perception, perception_config = pipeline
    simulator = HeadlessSimulator(world_name, seed=3)
    try:
        lidar = simulator.robot.lidar
        geometry = perception_config.grid()
        origin = Pose2D(geometry.origin_x, geometry.origin_y, 0.0)
        intrinsics = perception_config.default_intrinsics()
        monitor = ModelHealthMonitor(CONFIG)
        for index, pose in enumerate(poses_along(simulator.base_world.route, FRAMES)):
            now = 0.1 * index
            simulator.set_robot_pose(pose.x, pose.y, pose.yaw)
            result = perception.process(simulator.render_camera().rgb, intrinsics)
            assert result.ok, result.error
            grids = [LocalGrid.from_occupancy(probability_to_occupancy(values).ravel(),
                                              geometry.width, geometry.height,
                                              geometry.resolution, origin, now, 'base_link')
                     for values in (result.grids.obstacle, result.grids.pedestrian)]
            ranges = simulator.scan()
            scan = LaserScanData(now, lidar.angles(),
                                 np.where(ranges > lidar.range_max, np.inf, ranges),
                                 lidar.range_max)
            laser = Pose2D(lidar.pose.x, lidar.pose.y, lidar.pose.yaw)
            comparison: Comparison = compare(grids[0], grids[1], scan, laser, CONFIG)
            monitor.saw_grid(now)
            monitor.saw_scan(now)
            monitor.add_comparison(comparison, now)
            monitor.add_perception_statistics(result.mean_confidence,
                                              result.statistics.brightness, now)
        report = monitor.report(0.1 * (FRAMES - 1))
        return report.health, report.level, report.values
    finally:
        simulator.close()


@pytest.mark.parametrize('world_name', TRAINING_WORLDS)
def test_the_model_is_healthy_on_the_worlds_it_was_trained_on(world_name: str,
                                                               pipeline) -> None:
    health, level, values = world_health(world_name, pipeline)
    assert level == OK and health >= CONFIG.warn_below + CONFIG.hysteresis, values


def test_unseen_ground_colours_make_the_health_drop_and_the_planner_slow_down(
        pipeline) -> None:
    health, level, values = world_health(UNSEEN_COLOURS_WORLD, pipeline)
    planner_config = PlannerConfig()
    assert level == ERROR and health < planner_config.degraded_health, values
    # The model is unsure and leaves most of its view unknown (what little it calls an
    # obstacle the lidar mostly sees through, but ten frames hold too few such cells to judge).
    assert values['mean_confidence'] < CONFIG.confidence_ok
    assert values['unknown_share'] > CONFIG.unknown_share_bad

    planner = Planner(planner_config)
    planner.set_goal(20.0, 0.0, 'odom', now=0.0)

    def health_monitor(now: float, _world: World) -> None:
        planner.set_model_health(health, 'unseen colours', now)

    ticks = drive(planner, World(), Pose2D(0.0, 0.0, 0.0), duration=8.0,
                  world_update=health_monitor)
    assert max(t.output.linear for t in ticks) <= planner_config.degraded_speed_cap + 1e-9
    assert max(t.output.linear for t in ticks) > 0.0

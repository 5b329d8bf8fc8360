"""Scenario overlays: obstacles and walkers added to a world, start/goal overrides, errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.headless import HeadlessSimulator
from sidewalk_robot.simulation.scenario import (ScenarioError, apply_scenario, load_scenario,
                                                scenario_from_dict)
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import Pose2D, load_world

EXAMPLE = """
name: pole_in_path
world: sidewalk_straight
seed: 3
start: {x: 0.0, y: 0.0, yaw: 0.0}
goal: {x: 20.0, y: 0.0, yaw: 0.0}
obstacles:
  - {name: pole, shape: cylinder, radius: 0.1, length: 1.5, x: 8.0, y: 0.0, semantic: obstacle}
  - {name: crate, shape: box, size: [0.5, 0.5, 1.0], x: 12.0, y: -0.5, yaw: 0.3, semantic: obstacle}
pedestrians:
  - {name: ped1, radius: 0.25, height: 1.7, speed: 1.2, start_time: 5.0,
     waypoints: [[10.0, -2.0], [10.0, 2.0]], loop: false}
faults: [{type: camera_frozen, at: 3.0}]
success: {arrive: true}
timeout: 60
"""


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / 'pole_in_path.yaml'
    path.write_text(EXAMPLE)
    return path


def test_example_overlay_loads_and_ignores_system_keys(example: Path) -> None:
    scenario = load_scenario(example)
    assert (scenario.name, scenario.world, scenario.seed) == ('pole_in_path', 'sidewalk_straight', 3)
    assert scenario.goal == Pose2D(20.0, 0.0, 0.0)
    pole, crate = scenario.obstacles
    assert pole.geometry.kind == 'cylinder' and pole.pose.z == pytest.approx(0.75)
    assert crate.geometry.size == (0.5, 0.5, 1.0) and crate.pose.yaw == pytest.approx(0.3)
    walker = scenario.pedestrians[0]
    assert walker.delay_start == 5.0 and not walker.loop
    assert walker.waypoints[-1].time == pytest.approx(4.0 / 1.2)
    assert walker.waypoints[0].yaw == pytest.approx(math.pi / 2)


def test_simulator_applies_the_overlay_with_its_world_and_seed(example: Path) -> None:
    with HeadlessSimulator(config=SimConfig(world='street_corner', scenario_file=str(example),
                                            sensor_noise=False)) as sim:
        assert sim.world.name == 'sidewalk_straight' and sim.seed == 3
        assert sim.world.goal_pose == Pose2D(20.0, 0.0, 0.0)
        assert sim.world.route == ((0.0, 0.0), (20.0, 0.0))
        # The pole (radius 0.1 at x = 8) is straight ahead of the laser at x = 0.30.
        assert sim.scan()[180] == pytest.approx(8.0 - 0.1 - 0.30, abs=0.01)
        names = {t.name: t.semantic for t in sim.obstacles()}
        assert names['pole'] == SemanticClass.OBSTACLE and names['ped1'] == SemanticClass.PEDESTRIAN


def test_walker_waits_for_its_start_time_then_walks_at_its_speed_and_stays(example: Path) -> None:
    walker = load_scenario(example).pedestrians[0]
    assert walker.pose_at(4.9)[:2] == (10.0, -2.0)
    assert walker.pose_at(5.0 + 1.0)[:2] == pytest.approx((10.0, -2.0 + 1.2))
    assert walker.pose_at(100.0)[:2] == (10.0, 2.0)
    looping = scenario_from_dict({'pedestrians': [
        {'name': 'p', 'speed': 1.0, 'waypoints': [[0, 0], [2, 0]], 'loop': True}]}).pedestrians[0]
    assert looping.pose_at(3.0)[:2] == pytest.approx((1.0, 0.0))  # walking back
    assert looping.pose_at(4.0)[:2] == pytest.approx((0.0, 0.0))


@pytest.mark.parametrize('document, message', [
    ({'obstacles': [{'name': 'a', 'shape': 'cone', 'radius': 1, 'x': 0, 'y': 0}]}, "unknown shape 'cone'"),
    ({'obstacles': [{'shape': 'box', 'size': [1, 1, 1], 'x': 0, 'y': 0}]}, 'needs a "name"'),
    ({'obstacles': [{'name': 'a', 'shape': 'box', 'size': [1, 1], 'x': 0, 'y': 0}]}, 'needs "size"'),
    ({'obstacles': [{'name': 'a', 'shape': 'sphere', 'radius': -1, 'x': 0, 'y': 0}]}, '"radius" must be positive'),
    ({'obstacles': [{'name': 'a', 'shape': 'sphere', 'radius': 1, 'x': float('nan'), 'y': 0}]}, 'finite'),
    ({'obstacles': [{'name': 'a', 'shape': 'sphere', 'radius': 1, 'x': 0, 'y': 0, 'colour': 1}]}, 'unknown keys colour'),
    ({'obstacles': [{'name': 'a', 'shape': 'sphere', 'radius': 1, 'x': 0, 'y': 0, 'semantic': 'lava'}]}, 'unknown semantic class'),
    ({'pedestrians': [{'name': 'p', 'waypoints': [[0, 0], [0, 0]]}]}, 'consecutive waypoints must differ'),
    ({'pedestrians': [{'name': 'p', 'waypoints': [0, 1]}]}, 'list of \\[x, y\\] pairs'),
    ({'seed': -1}, '"seed" must be a non-negative integer'),
    ({'start': [0, 0]}, 'expected {x, y, yaw}'),
])
def test_bad_entries_name_the_entry(document: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(document, source='s.yaml')


def test_bad_files_and_name_clashes_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='scenario file not found'):
        load_scenario(tmp_path / 'absent.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('obstacles: [unclosed\n')
    with pytest.raises(ScenarioError, match='broken.yaml: not valid YAML'):
        load_scenario(broken)
    clash = scenario_from_dict({'obstacles': [{'name': 'bin_0', 'shape': 'sphere', 'radius': 1,
                                               'x': 0, 'y': 0}]})
    with pytest.raises(ScenarioError, match="name 'bin_0' is already used"):
        apply_scenario(load_world('sidewalk_straight'), clash)


def test_overlay_obstacle_in_the_path_stops_the_robot() -> None:
    scenario = scenario_from_dict({'world': 'sidewalk_straight', 'obstacles': [
        {'name': 'barrier', 'shape': 'box', 'size': [0.2, 2.0, 1.0], 'x': 2.0, 'y': 0.0}]})
    with HeadlessSimulator(scenario=scenario, config=SimConfig(sensor_noise=False)) as sim:
        touched: set[str] = set()
        for _ in range(200):
            touched.update(sim.step(1.0, 0.0, 0.02))
        assert touched == {'barrier'}
        assert sim.robot_pose().x + 0.35 <= 1.9 + 1e-6
        assert np.isneginf(sim.scan()[180])  # the barrier is closer than range_min

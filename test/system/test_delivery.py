"""End to end with the real processes of launch/sim.launch.xml: one short delivery and two
fault scenarios (blind perception; the planner commanding full speed at a wall).

Each run starts the simulator, perception, planner and safety monitor (and the fault injector)
as separate processes, exactly as the launch file names them, and judges the outcome from the
simulator's ground truth.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_scenario

# Faster than real time where the nodes keep up; the stack runs on simulated time throughout.
REAL_TIME_FACTOR = 1.5


def scenario_file(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / f'{document["name"]}.yaml'
    path.write_text(yaml.safe_dump(document), encoding='utf-8')
    return path


def run(tmp_path: Path, document: dict, record_bag: bool = False):
    scenario = load_scenario(scenario_file(tmp_path, document))
    base = RunOptions(real_time_factor=REAL_TIME_FACTOR, record_bag=record_bag,
                      write_report=record_bag, startup_timeout_s=150.0)
    result = run_scenario(scenario, base, tmp_path / 'runs')
    run_dir = Path(result.run_dir)
    logs = '\n'.join(f'--- {log.name}\n{log.read_text(errors="replace")[-2500:]}'
                     for log in sorted((run_dir / 'logs').glob('*.log')))
    assert result.error is None, f'{result.error}\n{logs}'
    assert result.summary is not None
    return result, run_dir, logs


def test_short_delivery_arrives_without_collision(tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'short_delivery', 'world': 'sidewalk_straight', 'seed': 1,
        'goal': {'x': 8.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 60,
        'success': {'arrive': True, 'max_collisions': 0}}, record_bag=True)
    summary = result.summary
    assert summary.collisions == 0, logs
    assert summary.arrived, f'{result.failures}\n{logs}'
    assert result.passed, result.failures
    assert summary.distance_m > 7.0 and summary.mean_speed_mps > 0.2
    assert summary.min_clearance_m is not None and summary.min_clearance_m > 0.0
    assert (run_dir / 'report.png').stat().st_size > 10_000
    saved = json.loads((run_dir / 'summary.json').read_text())
    assert saved['summary']['arrived'] is True
    bag_files = list((run_dir / 'bag').glob('*.mcap'))
    assert bag_files and bag_files[0].stat().st_size > 0


def test_blind_perception_stops_at_the_pole(tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'blind_pole', 'world': 'sidewalk_straight', 'seed': 2,
        'goal': {'x': 12.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 20,
        # in the planner's keep-right lane (0.3 m right of the route): straight ahead
        'obstacles': [{'name': 'pole', 'shape': 'cylinder', 'radius': 0.1, 'length': 1.5,
                       'x': 5.0, 'y': -0.3, 'semantic': 'obstacle'}],
        'faults': [{'type': 'perception_blind', 'start': 0.0}],
        # The planner's own lidar layer would steer round the pole: without it, the planner
        # knows only what perception says, and the monitor alone stands between it and the pole.
        'parameters': {'planner': {'use_scan': False}},
        'success': {'arrive': None, 'max_collisions': 0}})
    graph = json.loads((run_dir / 'graph.json').read_text())
    assert graph['/perception/obstacle_grid']['publishers'] == ['fault_injector']
    assert graph['/fault_injector/in/perception/obstacle_grid']['publishers'] == ['perception']
    assert 'planner' not in graph['/scan']['subscribers'], graph['/scan']
    summary = result.summary
    assert summary.collisions == 0, logs
    assert summary.min_clearance_m > 0.0
    assert any('obstacle' in reason for reason in summary.vetoes_by_reason), \
        f'the blind planner drove at the pole, so the monitor must have stepped in: ' \
        f'{summary.vetoes_by_reason}, limits {summary.limits_by_reason}\n{logs}'


def test_planner_full_speed_at_a_wall_is_held_back_by_the_monitor(tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'full_speed_wall', 'world': 'sidewalk_straight', 'seed': 3,
        'goal': {'x': 12.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 14,
        'obstacles': [{'name': 'wall', 'shape': 'box', 'size': [0.3, 2.7, 1.2], 'x': 5.0,
                       'y': 0.0, 'semantic': 'obstacle'}],
        'faults': [{'type': 'planner_full_speed', 'start': 0.0}],
        'success': {'arrive': False, 'max_collisions': 0}})
    graph = json.loads((run_dir / 'graph.json').read_text())
    assert graph['/cmd_vel_nav']['publishers'] == ['fault_injector']
    summary = result.summary
    assert summary.collisions == 0, logs
    assert not summary.arrived
    assert summary.distance_m > 1.0, 'the robot did move towards the wall'
    # Depending on timing the monitor either stops the robot outright (a veto) or ramps the
    # allowed speed down to zero as the wall nears (a limit); either way it says why.
    reasons = {**summary.vetoes_by_reason, **summary.limits_by_reason}
    assert any('obstacle' in reason for reason in reasons), f'reasons: {reasons}\n{logs}'
    assert summary.min_clearance_m is not None and summary.min_clearance_m > 0.1, logs


pytestmark = pytest.mark.timeout(400)

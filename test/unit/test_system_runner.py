"""The pure parts of a run: frames, launch arguments for faults, parameter files, summaries."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.config import read_parameter_file
from sidewalk_robot.lockstep import (COMPUTE_TIMES_FILE, LOCKSTEP_SUMMARY_FILE, ComputeSample,
                                     compute_sample_lines)
from sidewalk_robot.simulation.world import Pose2D, load_world
from sidewalk_robot.system.faults import parse_faults
from sidewalk_robot.system.metrics import RunMonitor
from sidewalk_robot.system.runner import (RunOptions, RunResult, format_summary, goal_in_odom,
                                          ground_surfaces, launch_arguments_for, mission_world,
                                          new_run_directory, summarise_compute_times,
                                          world_to_odom, write_fault_injector_parameters)


def test_goal_in_the_start_frame() -> None:
    start = Pose2D(2.0, 1.0, math.pi / 2)
    x, y, yaw = goal_in_odom(start, Pose2D(2.0, 6.0, math.pi))
    assert (x, y, yaw) == pytest.approx((5.0, 0.0, math.pi / 2))
    assert world_to_odom(start, 1.0, 1.0) == pytest.approx((0.0, 1.0))
    assert goal_in_odom(Pose2D(0, 0, 0), Pose2D(3, 4, 0)) == pytest.approx((3.0, 4.0, 0.0))


def test_healthy_run_arguments_leave_every_link_alone(tmp_path: Path) -> None:
    arguments = launch_arguments_for(RunOptions(world='street_corner', seed=7,
                                                real_time_factor=2), tmp_path)
    assert arguments == {'world': 'street_corner', 'seed': '7', 'real_time_factor': '2.0',
                         'scenario_file': '', 'namespace': '', 'operator_console': 'false',
                         'incident_recorder': 'false'}
    assert not (tmp_path / 'fault_injector.yaml').exists()


def test_fault_run_arguments_reroute_the_links_and_write_the_injector_file(tmp_path: Path) -> None:
    faults = parse_faults([{'type': 'lidar_dropout', 'start': 3.0}, {'type': 'perception_killed'}])
    arguments = launch_arguments_for(RunOptions(faults=faults, seed=5), tmp_path)
    assert arguments['inject_faults'] == 'true'
    assert arguments['scan_output'] == 'fault_injector/in/scan'  # relative: in the namespace
    assert 'odom_output' not in arguments and 'obstacle_grid_output' not in arguments
    parameters = read_parameter_file(arguments['fault_injector_params_file'])
    assert parameters['seed'] == 5
    assert json.loads(parameters['faults']) == [
        {'type': 'lidar_dropout', 'start': 3.0, 'duration': 1.0},
        {'type': 'perception_killed', 'start': 0.0, 'duration': None}]
    assert parameters['full_speed_mps'] == 1.5, 'defaults come from config/fault_injector.yaml'


def test_process_only_faults_need_no_injector(tmp_path: Path) -> None:
    arguments = launch_arguments_for(
        RunOptions(faults=parse_faults([{'type': 'perception_killed'}])), tmp_path)
    assert 'inject_faults' not in arguments


def test_injector_file_round_trips_through_yaml(tmp_path: Path) -> None:
    path = write_fault_injector_parameters(tmp_path / 'f.yaml',
                                           parse_faults([{'type': 'perception_blind'}]), 1)
    document = yaml.safe_load(path.read_text())
    assert isinstance(document['/**']['ros__parameters']['faults'], str)


def test_mission_world_applies_the_scenario_overrides(tmp_path: Path) -> None:
    scenario = tmp_path / 's.yaml'
    scenario.write_text('name: s\nworld: street_corner\ngoal: {x: 5.0, y: 0.0, yaw: 0.0}\n')
    world = mission_world(RunOptions(world='sidewalk_straight', scenario_file=scenario))
    assert world.name == 'street_corner'
    assert world.goal_pose == Pose2D(5.0, 0.0, 0.0)
    assert mission_world(RunOptions()).goal_pose == load_world('sidewalk_straight').goal_pose


def test_ground_surfaces_are_the_walkable_and_forbidden_ground() -> None:
    surfaces = ground_surfaces(load_world('sidewalk_straight'))
    assert {s.semantic for s in surfaces} == {'sidewalk', 'not_drivable'}
    sidewalk = next(s for s in surfaces if s.name.startswith('sidewalk/'))
    assert sidewalk.width == pytest.approx(2.5)


def test_run_directories_never_collide(tmp_path: Path) -> None:
    first, second = new_run_directory(tmp_path, 'demo'), new_run_directory(tmp_path, 'demo')
    assert first != second and first.is_dir() and second.is_dir()


def test_summary_text_names_every_figure(tmp_path: Path) -> None:
    monitor = RunMonitor((10.0, 0.0), 0.5)
    monitor.start_mission(0.0)
    for step in range(101):
        monitor.on_pose(step * 0.1, step * 0.1, 0.0, 0.0)
        if step == 50:
            monitor.on_safety_state(5.0, 'STOP', 'obstacle_stop', 0.0)
    result = RunResult(tmp_path, monitor.summary(['a note']), None, 42.0, {})
    text = format_summary(result)
    for expected in ('arrived:            yes', 'distance:           9.5 m',
                     'safety vetoes:      1 (obstacle_stop x1)', 'collisions:         0',
                     'note:               a note', 'wall time:          42.0 s'):
        assert expected in text
    failed = format_summary(RunResult(tmp_path, None, 'sim crashed', 1.0, {}))
    assert 'sim crashed' in failed


def test_a_lockstep_run_tells_the_simulator_where_to_record_compute_times(tmp_path: Path) -> None:
    arguments = launch_arguments_for(RunOptions(lockstep=True), tmp_path)
    sim = read_parameter_file(Path(arguments['sim_params_file']), 'sim')
    assert sim['lockstep_compute_log'] == str(tmp_path / COMPUTE_TIMES_FILE)
    assert 'sim_params_file' not in launch_arguments_for(RunOptions(), tmp_path)


def test_compute_times_become_statistics_and_notes_for_the_robots_slow_nodes(
        tmp_path: Path) -> None:
    ms = 1_000_000
    samples = ([ComputeSample('perception', i * 100 * ms, 0.030, 0.031) for i in range(4)]
               + [ComputeSample('planner', i * 100 * ms, 0.004, 0.005) for i in range(4)]
               + [ComputeSample('mission_supervisor', i * 50 * ms, 0.002, 0.002)
                  for i in range(8)])
    (tmp_path / COMPUTE_TIMES_FILE).write_text(compute_sample_lines(samples), encoding='utf-8')
    options = RunOptions(lockstep=True, latencies=(('planner', 0.003),))
    notes = summarise_compute_times(options, tmp_path)
    # Perception took 30 ms against its 15 ms budget, the planner 4 ms against the 3 ms this
    # run declared; the supervisor passes things on at the next step and has no budget.
    assert len(notes) == 2, notes
    assert 'perception' in notes[0] and '4 of 4' in notes[0] and '15.0 ms' in notes[0]
    assert 'planner' in notes[1] and '(3.0 ms)' in notes[1]
    saved = json.loads((tmp_path / LOCKSTEP_SUMMARY_FILE).read_text(encoding='utf-8'))
    assert saved['compute']['perception']['compute_median_ms'] == 30.0
    assert saved['compute']['mission_supervisor']['steps_over_declared'] is None
    assert saved['declared_latency_s']['planner'] == 0.003
    assert saved['measured_latency'] is False


def test_missing_or_broken_compute_times_are_said_not_fatal(tmp_path: Path) -> None:
    options = RunOptions(lockstep=True)
    assert 'never started stepping' in summarise_compute_times(options, tmp_path)[0]
    (tmp_path / COMPUTE_TIMES_FILE).write_text('{"node": "planner"}\n', encoding='utf-8')
    notes = summarise_compute_times(options, tmp_path)
    assert len(notes) == 1 and 'unreadable' in notes[0] and 'line 1' in notes[0]
    assert not (tmp_path / LOCKSTEP_SUMMARY_FILE).exists()

"""Lockstep gives the same answer every time: a bag and a scenario, three runs each, one of them
with both cores kept busy by other processes (docs/system.md, "Lockstep").

What must not change: for a bag, every line of result.jsonl (per frame the safety state, the
allowed and the commanded speeds, the grid, the latencies the nodes declared); for a scenario,
the mission's outcome (arrival, time, distance, clearance, vetoes, collisions, speeds).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_scenario

REPO = Path(__file__).resolve().parents[2]
SHORT_BAG = REPO / 'test' / 'data' / 'estop_clear'
OUTCOME = ('arrived', 'time_to_goal_s', 'mission_time_s', 'distance_m', 'min_clearance_m',
           'min_clearance_obstacle', 'vetoes', 'vetoes_by_reason', 'limits', 'limits_by_reason',
           'collisions', 'contacts_by_others', 'max_speed_mps', 'mean_speed_mps',
           'final_distance_to_goal_m')


@contextmanager
def both_cores_busy() -> Iterator[None]:
    """Two processes spinning as fast as they can for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
                for _ in range(2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait(timeout=10)


def replay(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / 'sidewalk-robot'), 'replay',
                           '--startup-timeout', '120', *arguments], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def test_a_bag_replays_to_the_same_frames_on_a_quiet_and_on_a_busy_machine(
        tmp_path: Path) -> None:
    copies = []
    for name in ('first', 'second', 'busy'):
        copies.append(tmp_path / 'bags' / name)
        shutil.copytree(SHORT_BAG, copies[-1])
    # The first two on one set of nodes (the second after they reset), the third on new
    # nodes while two other processes keep both cores busy.
    quiet = replay(str(copies[0]), str(copies[1]), '-o', str(tmp_path / 'quiet'))
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    with both_cores_busy():
        busy = replay(str(copies[2]), '-o', str(tmp_path / 'busy'))
    assert busy.returncode == 0, busy.stdout + busy.stderr
    frames = [(tmp_path / report / name / 'result.jsonl').read_text()
              for report, name in (('quiet', 'first'), ('quiet', 'second'), ('busy', 'busy'))]
    assert len(frames[0].splitlines()) > 40
    assert frames[1] == frames[0]
    assert frames[2] == frames[0]
    # The declared latencies are what a replay reports, not what the machine managed.
    assert '"sensor_to_grid_s": 0.02' in frames[0]


def short_scenario(tmp_path: Path) -> Path:
    """A pole on the way and a walker crossing in front of it, 9 m to the goal."""
    document = {
        'name': 'lockstep_short', 'world': 'sidewalk_straight', 'seed': 3,
        'goal': {'x': 9.0, 'y': 0.0, 'yaw': 0.0},
        'obstacles': [{'name': 'pole', 'shape': 'cylinder', 'radius': 0.1, 'length': 1.5,
                       'x': 4.0, 'y': -0.3, 'semantic': 'obstacle'}],
        'pedestrians': [{'name': 'crosser', 'radius': 0.25, 'height': 1.7, 'speed': 1.0,
                         'start_time': 0.0, 'waypoints': [[6.5, -1.6], [6.5, 1.6]],
                         'loop': True}],
        'timeout': 40, 'success': {'arrive': True, 'max_collisions': 0},
    }
    path = tmp_path / 'lockstep_short.yaml'
    path.write_text(yaml.safe_dump(document), encoding='utf-8')
    return path


def mission_outcome(tmp_path: Path, scenario_path: Path, label: str) -> dict[str, object]:
    result = run_scenario(load_scenario(scenario_path),
                          RunOptions(lockstep=True, record_bag=False, write_report=False,
                                     startup_timeout_s=150.0), tmp_path / label)
    assert result.error is None, result.failures
    return {key: getattr(result.summary, key) for key in OUTCOME}


def test_a_scenario_has_the_same_outcome_on_a_quiet_and_on_a_busy_machine(
        tmp_path: Path) -> None:
    scenario = short_scenario(tmp_path)
    first = mission_outcome(tmp_path, scenario, 'first')
    assert first['arrived'] and first['collisions'] == 0
    assert mission_outcome(tmp_path, scenario, 'second') == first
    with both_cores_busy():
        assert mission_outcome(tmp_path, scenario, 'busy') == first


@pytest.mark.slow
def test_a_full_scenario_of_the_suite_has_the_same_outcome_under_load(tmp_path: Path) -> None:
    scenario = REPO / 'config' / 'scenarios' / '04_pedestrian_crossing.yaml'
    first = mission_outcome(tmp_path, scenario, 'first')
    with both_cores_busy():
        assert mission_outcome(tmp_path, scenario, 'busy') == first
    assert mission_outcome(tmp_path, scenario, 'third') == first

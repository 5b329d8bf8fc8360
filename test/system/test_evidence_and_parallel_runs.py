"""Evaluation at scale with the real stack: a failed scenario keeps its evidence without having
recorded a bag, bags replayed as tasks of a local Ray instance come back into one report, and
(slow) a small sweep on two local workers, resumed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.replay.bag_io import iter_messages, open_reader
from sidewalk_robot.replay.runner import ReplayOptions, run_replay_command
from sidewalk_robot.system.evidence import read_planner_transitions
from sidewalk_robot.system.parallel import Parallelism
from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_suite
from sidewalk_robot.system.suite_report import write_suite_outputs
from sidewalk_robot.system.sweep import SweepPlan, load_outcomes, run_sweep, save_plan

REPO = Path(__file__).resolve().parents[2]
KEEP_LAST_S = 2.0


def scenario_file(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / f'{document["name"]}.yaml'
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding='utf-8')
    return path


def test_a_failed_run_keeps_its_last_seconds_logs_and_planner_transitions(
        tmp_path: Path) -> None:
    scenario = load_scenario(scenario_file(tmp_path, {
        'name': 'too_little_time', 'world': 'sidewalk_straight', 'seed': 1,
        'goal': {'x': 12.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 6,
        'success': {'arrive': True, 'max_collisions': 0}}))
    base = RunOptions(real_time_factor=1.5, record_bag=False, keep_last_s=KEEP_LAST_S,
                      write_report=False, startup_timeout_s=150.0)
    suite_dir = tmp_path / 'suite'
    [result] = run_suite([scenario], base, suite_dir)
    run_dir = Path(result.run_dir)
    assert result.summary is not None, result.failures
    assert not result.passed and 'did not arrive' in result.failures[0]
    reader = open_reader(run_dir / 'bag')
    try:
        times = {}
        for connection, stamp, _ in iter_messages(reader):
            times.setdefault(connection.topic, []).append(stamp * 1e-9)
    finally:
        reader.close()
    assert '/goal_pose' in times, 'the goal, older than the window, is kept all the same'
    scans = times['/scan']
    assert len(scans) > 5 and scans[-1] - scans[0] <= KEEP_LAST_S + 0.2
    transitions = read_planner_transitions(run_dir / 'planner_transitions.jsonl')
    assert any(line['mission_time_s'] is not None and line['mission_time_s'] >= 0
               for line in transitions), transitions
    assert (run_dir / 'logs' / 'planner.log').is_file()
    assert (run_dir / 'scenario.yaml').read_text() == scenario.path.read_text()
    paths = write_suite_outputs([result], suite_dir)
    report = paths['report'].read_text()
    assert f'[bag]({run_dir.name}/bag)' in report
    assert f'[planner transitions]({run_dir.name}/planner_transitions.jsonl)' in report


def test_bags_replayed_on_a_local_ray_instance_come_back_into_one_report(
        tmp_path: Path) -> None:
    ray = pytest.importorskip('ray', reason='Ray is optional: pip install -r requirements-ray.txt')
    bags = [REPO / 'test' / 'data' / 'pole_ahead', REPO / 'test' / 'data' / 'estop_clear']
    output = tmp_path / 'replay'
    status = run_replay_command(
        bags, output, ReplayOptions(rate=2.0, nodes=('safety_monitor',)),
        parallelism=Parallelism(ray_address='local', cpus_per_run=1))
    assert not ray.is_initialized(), 'the instance started for the runs is shut down'
    summary = json.loads((output / 'summary.json').read_text())
    assert [Path(entry['bag']).name for entry in summary['bags']] == ['pole_ahead',
                                                                      'estop_clear']
    assert status == 0, summary
    for entry in summary['bags']:
        assert entry['status'] == 'passed'
        report_dir = Path(entry['report'])
        assert report_dir.parent == output, 'the folder travelled back from the Ray worker'
        assert (report_dir / 'outputs' / 'metadata.yaml').is_file()
        assert (report_dir / 'logs' / 'safety_monitor.log').is_file()
        per_bag = json.loads((report_dir / 'summary.json').read_text())
        assert Path(per_bag['bag']).name == report_dir.name, 'names the bag, not a copy'


@pytest.mark.slow
def test_a_small_sweep_on_two_workers_is_resumed_and_extended(tmp_path: Path) -> None:
    text = yaml.safe_dump({
        'name': 'short_pole', 'world': 'sidewalk_straight', 'seed': 0,
        'goal': {'x': 8.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 40,
        'obstacles': [{'name': 'pole', 'shape': 'cylinder', 'radius': 0.1, 'length': 1.5,
                       'x': 4.0, 'y': 0.8}],
        'success': {'arrive': True, 'max_collisions': 0},
        'sweep': {'obstacles.pole.x': {'uniform': [3.0, 6.0]}}}, sort_keys=False)
    plan = SweepPlan(text, 'short_pole.yaml', seed=7, samples=2, real_time_factor=1.5,
                     keep_last_s=KEEP_LAST_S, startup_timeout_s=150.0)
    directory = tmp_path / 'sweep'
    directory.mkdir()
    save_plan(directory, plan)
    first = run_sweep(plan, directory, Parallelism(workers=2))
    assert [outcome.index for outcome in first] == [0, 1]
    assert all(outcome.judged for outcome in first), [o.result.failures for o in first]
    extended = run_sweep(SweepPlan(**{**plan.__dict__, 'samples': 3}), directory)
    assert [outcome.index for outcome in extended] == [0, 1, 2]
    assert load_outcomes(directory)[0] == first[0], 'finished variants are not run again'
    report = json.loads((directory / 'sweep_report.json').read_text())
    assert report['figures']['judged'] == 3
    assert (directory / 'sweep_report.md').read_text().startswith('# Sweep: short_pole')


pytestmark = pytest.mark.timeout(600)

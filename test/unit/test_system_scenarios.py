"""Scenario files, success criteria and the suite's outputs (table, result.json, JUnit)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from pathlib import Path

import pytest

from sidewalk_robot import share_directory
from sidewalk_robot.config import read_parameter_file
from sidewalk_robot.simulation.scenario import apply_scenario
from sidewalk_robot.simulation.scenario import load_scenario as load_overlay
from sidewalk_robot.simulation.world import available_worlds, load_world
from sidewalk_robot.system.faults import FAULT_TYPES
from sidewalk_robot.system.metrics import RunSummary
from sidewalk_robot.system.runner import RunOptions, launch_arguments_for
from sidewalk_robot.system.scenarios import (SuccessCriteria, load_scenario, load_suite,
                                             parse_success)
from sidewalk_robot.system.suite import execute_scenario_task, scenario_options, scenario_task
from sidewalk_robot.system.suite_report import (ScenarioResult, group_figures, junit_xml,
                                                results_table, system_report_markdown,
                                                write_suite_outputs)
from helpers.summaries import delivered_summary


def summary(**changes) -> RunSummary:
    return delivered_summary(30.0, **changes)


def test_the_suite_has_at_least_12_valid_scenarios_covering_every_fault() -> None:
    suite = load_suite()
    assert len(suite) >= 12
    faults_covered = {fault.type for scenario in suite for fault in scenario.faults}
    assert faults_covered == set(FAULT_TYPES)
    assert sum(scenario.fault_group == 'healthy' for scenario in suite) >= 6
    worlds = set(available_worlds())
    for scenario in suite:
        assert scenario.world in worlds, scenario.name
        assert scenario.success.max_collisions == 0, f'{scenario.name}: every run must be safe'
        overlay = load_overlay(scenario.path)  # the simulator accepts the same file
        apply_scenario(load_world(overlay.world), overlay)


def test_load_suite_selects_by_name_and_rejects_unknown_names() -> None:
    assert [s.name for s in load_suite(only=['pole_in_path'])] == ['pole_in_path']
    with pytest.raises(ValueError, match='unknown scenario'):
        load_suite(only=['no_such_scenario'])


def write_scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'scenario.yaml'
    path.write_text(text, encoding='utf-8')
    return path


@pytest.mark.parametrize('text, message', [
    ('name: a\nworld: w\ncolour: red\n', 'unknown keys'),
    ('world: w\n', '"name"'),
    ('name: a\nworld: w\nseed: x\n', 'seed'),
    ('name: a\nworld: w\ntimeout: -3\n', 'positive'),
    ('name: a\nworld: w\nfaults: [{type: meteor}]\n', 'unknown fault type'),
    ('name: a\nworld: w\nsuccess: {arrive: maybe}\n', 'arrive'),
    ('name: a\nworld: w\nsuccess: {speedy: true}\n', 'unknown success keys'),
    ('name: a\nworld: w\nsuccess: {max_collisions: -1}\n', 'max_collisions'),
    ('- just a list\n', 'mapping'),
    ('name: [unclosed\n', 'not valid YAML'),
    ('name: a\nworld: w\nparameters: [use_scan]\n', 'map node names'),
    ('name: a\nworld: w\nparameters: {sim: {seed: 3}}\n', 'unknown node'),
    ('name: a\nworld: w\nparameters: {planner: {warp_drive: true}}\n', 'no parameter'),
    ('name: a\nworld: w\nparameters: {planner: {}}\n', 'parameters.planner'),
])
def test_bad_scenarios_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_scenario(write_scenario(tmp_path, text))


def test_parameter_changes_reach_the_launch_arguments(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(
        tmp_path, 'name: a\nworld: sidewalk_straight\nparameters: {planner: {use_scan: false}}\n'))
    assert scenario.parameters == {'planner': {'use_scan': False}}
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    arguments = launch_arguments_for(scenario_options(scenario, RunOptions()), run_dir)
    written = read_parameter_file(arguments['planner_params_file'])
    defaults = read_parameter_file(share_directory() / 'config' / 'planner.yaml')
    assert written == {**defaults, 'use_scan': False}
    assert 'safety_monitor_params_file' not in arguments


def test_missing_scenario_file() -> None:
    with pytest.raises(FileNotFoundError):
        load_scenario('/no/such/scenario.yaml')


def test_success_criteria() -> None:
    default = SuccessCriteria()
    assert default.failures(summary()) == []
    assert 'did not arrive (4.0 m from the goal)' in default.failures(
        summary(arrived=False, final_distance_to_goal_m=4.0))
    assert default.failures(summary(collisions=1, collided_with=['pole'])) == [
        '1 collision(s) with pole (allowed 0)']
    blocked = parse_success({'arrive': False}, Path('x'))
    assert blocked.failures(summary(arrived=False)) == []
    assert blocked.failures(summary()) == ['arrived although the goal should be unreachable']
    either = parse_success({'arrive': None, 'expect_veto_reasons': ['obstacle']}, Path('x'))
    assert either.failures(summary(arrived=False, vetoes_by_reason={'obstacle_stop': 2})) == []
    assert 'no safety veto' in either.failures(summary(vetoes_by_reason={'scan_stale': 1}))[0]
    strict = parse_success({'min_clearance_m': 0.5, 'max_time_s': 20,
                            'max_vetoes_per_100m': 1.0}, Path('x'))
    assert len(strict.failures(summary(vetoes_per_100m=3.0))) == 3


def results() -> list[ScenarioResult]:
    return [
        ScenarioResult('clear', 'healthy', 'd', True, [], summary(), 'runs/a', 50.0),
        ScenarioResult('pole', 'healthy', 'd', False, ['did not arrive'],
                       summary(arrived=False, time_to_goal_s=None, distance_m=10.0,
                               mission_time_s=20.0, vetoes=2), 'runs/b', 60.0),
        ScenarioResult('barrier', 'healthy', 'd', True, [],
                       summary(arrived=False, time_to_goal_s=None, distance_m=5.0,
                               mission_time_s=45.0, vetoes=0), 'runs/e', 50.0,
                       must_arrive=False),
        ScenarioResult('blind', 'perception_blind', 'd', True, [],
                       summary(arrived=False, time_to_goal_s=None, distance_m=8.0,
                               mission_time_s=40.0, vetoes=1), 'runs/c', 70.0,
                       must_arrive=False),
        ScenarioResult('broken', 'camera_frozen', 'd', False, ['sim died'], None, 'runs/d', 5.0,
                       error='sim died'),
    ]


def test_group_figures_per_fault() -> None:
    healthy, blind, frozen = sorted(group_figures(results()),
                                    key=lambda f: ['healthy', 'perception_blind',
                                                   'camera_frozen'].index(f.group))
    assert healthy.group == 'healthy' and healthy.runs == 3
    assert healthy.success_rate == pytest.approx(2 / 3) and healthy.arrival_rate == 0.5
    assert healthy.vetoes_per_100m == pytest.approx(100 * 2 / 45)
    assert healthy.mean_speed_mps == pytest.approx(45 / 95), 'every run, standing time included'
    assert healthy.delivery_speed_mps == pytest.approx(40 / 50), 'deliveries, failed one included'
    assert healthy.mean_time_to_goal_s == pytest.approx(30.0)
    assert blind.mean_time_to_goal_s is None and blind.collisions == 0
    assert blind.arrival_rate is None, 'no delivery in the group: no arrival rate'
    assert frozen.arrival_rate == 0.0
    assert frozen.runs == 1 and frozen.success_rate == 0.0 and frozen.mean_speed_mps is None
    assert blind.delivery_speed_mps is None
    assert group_figures(results())[0].group == 'healthy'


def test_table_markdown_and_junit() -> None:
    table = results_table(results())
    assert 'clear' in table and 'FAIL' in table and '- did not arrive' in table
    markdown = system_report_markdown(group_figures(results()))
    assert markdown.count('\n') == 4 and '| healthy | 3 | 67% |' in markdown
    suite = ElementTree.fromstring(junit_xml(results()))
    assert suite.get('tests') == '5' and suite.get('failures') == '1' and suite.get('errors') == '1'
    cases = {case.get('name'): case for case in suite.iter('testcase')}
    assert cases['pole'].find('failure').get('message') == 'did not arrive'
    assert cases['broken'].find('error') is not None
    assert cases['clear'].find('failure') is None


def test_suite_outputs_are_written(tmp_path: Path) -> None:
    paths = write_suite_outputs(results(), tmp_path / 'suite')
    data = json.loads(paths['result'].read_text())
    assert data['passed'] == 3 and data['total'] == 5
    assert data['scenarios'][0]['summary']['arrived'] is True
    assert data['system_report'][0]['group'] == 'healthy'
    assert all(path.is_file() for path in paths.values())


def test_failed_runs_are_reported_with_their_evidence(tmp_path: Path) -> None:
    suite_dir = tmp_path / 'suite'
    run_dir = suite_dir / '20261202-000000-pole'
    (run_dir / 'bag').mkdir(parents=True)
    (run_dir / 'bag' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    (run_dir / 'logs').mkdir()
    (run_dir / 'logs' / 'planner.log').write_text('new goal\n')
    (run_dir / 'planner_transitions.jsonl').write_text('\n'.join(json.dumps(line) for line in [
        {'time_s': 3.0, 'state': 'idle', 'reason': 'no goal', 'mission_time_s': None},
        {'time_s': 5.0, 'state': 'driving', 'reason': 'new goal', 'mission_time_s': 0.0},
        {'time_s': 11.5, 'state': 'waiting', 'reason': 'scan stale', 'mission_time_s': 6.5},
    ]) + '\n')
    runs = results()
    runs[1].run_dir = str(run_dir)
    paths = write_suite_outputs(runs, suite_dir)
    report = paths['report'].read_text()
    assert report.startswith('| stack |'), 'the figures stay first'
    assert '## Failed runs' in report and '### pole (healthy)' in report
    assert '[bag](20261202-000000-pole/bag)' in report
    assert '[planner.log](20261202-000000-pole/logs/planner.log)' in report
    assert '  - 6.5 s: waiting (scan stale)' in report and '  - -: idle (no goal)' in report
    assert '### broken (camera_frozen)' in report and '### clear' not in report
    data = json.loads(paths['result'].read_text())
    assert data['scenarios'][1]['evidence']['bag'] == '20261202-000000-pole/bag'
    assert data['scenarios'][0]['evidence'] == {}
    assert f'evidence in {run_dir}: bag, logs, planner_transitions' in paths['table'].read_text()


def test_each_lockstep_runs_compute_per_node_is_reported(tmp_path: Path) -> None:
    suite_dir = tmp_path / 'suite'
    runs = results()
    for result, compute in ((runs[0], {
            'perception': {'busy_steps': 393, 'compute_median_ms': 14.336,
                           'compute_p95_ms': 18.405, 'declared_latency_ms': 15.0,
                           'steps_over_declared': 155},
            'planner': {'busy_steps': 358, 'compute_median_ms': 7.2, 'compute_p95_ms': 9.61,
                        'declared_latency_ms': 10.0, 'steps_over_declared': 0}}),
            (runs[1], None)):
        run_dir = suite_dir / result.name
        run_dir.mkdir(parents=True)
        result.run_dir = str(run_dir)
        if compute is not None:
            (run_dir / 'lockstep.json').write_text(json.dumps({'compute': compute}))
    (suite_dir / 'pole' / 'lockstep.json').write_text('{"compute": ')  # cut short
    report = write_suite_outputs(runs, suite_dir)['report'].read_text()
    assert '## Compute per busy step' in report
    rows = [line for line in report.splitlines() if line.startswith('| clear |')]
    assert rows == ['| clear | 14.3 / 18.4 (155 of 393 over 15) | 7.2 / 9.6 | - | - |'], rows
    assert '| pole |' not in report, 'an unreadable lockstep.json shows no row'
    assert report.index('## Failed runs') < report.index('## Compute per busy step')
    (suite_dir / 'clear' / 'lockstep.json').unlink()  # a realtime suite: no section
    assert 'Compute' not in write_suite_outputs(runs, suite_dir)['report'].read_text()


def test_results_round_trip_through_json() -> None:
    for result in results():
        assert ScenarioResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_task_carries_the_scenario_file_content(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, 'name: a\nworld: sidewalk_straight\ntimeout: 5\n'
                                    'success: {arrive: false}\n')
    task = scenario_task(load_scenario(path), RunOptions(record_bag=False))
    assert task.document_text == path.read_text() and task.label == 'a'
    assert not task.must_arrive and task.fault_group == 'healthy'
    broken = replace(task, document_text='name: a\nworld: sidewalk_straight\ntimeout: -1\n')
    result = execute_scenario_task(broken, tmp_path / 'runs')
    assert not result.passed and 'timeout must be positive' in result.error
    assert (Path(result.run_dir) / 'scenario.yaml').read_text() == broken.document_text

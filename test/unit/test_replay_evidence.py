"""A replayed bag's evidence: the planner's transitions read from the recorded /diagnostics,
and the links summary.json gives to everything that explains the replay."""
from __future__ import annotations

import json
from pathlib import Path

from sidewalk_robot.replay.bag_io import BagWriter, base_typestore
from sidewalk_robot.replay.report import bag_evidence, write_planner_transitions, write_run_summary
from sidewalk_robot.replay.runner import BagOutcome
from sidewalk_robot.system.evidence import read_planner_transitions

STORE = base_typestore()
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'


def diagnostics(seconds: float, statuses: dict[str, tuple[str, str]]) -> bytes:
    types = STORE.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(seconds),
                                                 nanosec=round(seconds % 1 * 1e9))
    header = types['std_msgs/msg/Header'](stamp=stamp, frame_id='')
    status = [types['diagnostic_msgs/msg/DiagnosticStatus'](
        level=0, name=name, message='', hardware_id=name,
        values=[types['diagnostic_msgs/msg/KeyValue'](key='state', value=state),
                types['diagnostic_msgs/msg/KeyValue'](key='reason', value=reason)])
        for name, (state, reason) in statuses.items()]
    message = types[DIAGNOSTICS](header=header, status=status)
    return bytes(STORE.serialize_cdr(message, DIAGNOSTICS))


def outputs_bag(report_dir: Path, messages: list[bytes]) -> None:
    writer = BagWriter(report_dir / 'outputs')
    writer.add_topic('/diagnostics', DIAGNOSTICS)
    for index, data in enumerate(messages):
        writer.write('/diagnostics', (index + 1) * 1_000_000_000, data)
    writer.close()


def test_planner_transitions_come_from_the_recorded_diagnostics(tmp_path: Path) -> None:
    outputs_bag(tmp_path, [
        diagnostics(4.0, {'planner': ('idle', 'no goal'), 'safety_monitor': ('STOP', 'x')}),
        diagnostics(5.0, {'planner': ('idle', 'no goal')}),
        diagnostics(6.25, {'planner': ('driving', 'new goal')}),
        diagnostics(9.5, {'safety_monitor': ('CLEAR', 'clear')}),
        diagnostics(10.0, {'planner': ('waiting', 'odometry stale')}),
    ])
    path = write_planner_transitions(tmp_path)
    assert [(line['time_s'], line['state'], line['reason'])
            for line in read_planner_transitions(path)] == [
        (4.0, 'idle', 'no goal'), (6.25, 'driving', 'new goal'),
        (10.0, 'waiting', 'odometry stale')]


def test_no_transitions_file_without_a_planner_or_an_outputs_bag(tmp_path: Path) -> None:
    assert write_planner_transitions(tmp_path) is None
    outputs_bag(tmp_path, [diagnostics(4.0, {'safety_monitor': ('STOP', 'x')})])
    assert write_planner_transitions(tmp_path) is None
    assert not (tmp_path / 'planner_transitions.jsonl').exists()


def test_the_run_summary_links_each_bags_evidence(tmp_path: Path) -> None:
    report_dir = tmp_path / 'pole_ahead'
    outputs_bag(report_dir, [diagnostics(4.0, {'planner': ('idle', 'no goal')})])
    write_planner_transitions(report_dir)
    (report_dir / 'logs').mkdir()
    (report_dir / 'logs' / 'planner.log').write_text('new goal\n')
    failed = BagOutcome(Path('test/data/pole_ahead'), 'failed', report_dir=report_dir)
    skipped = BagOutcome(Path('broken'), 'skipped', 'metadata.yaml is missing')
    assert bag_evidence(failed, tmp_path) == {
        'bag': 'test/data/pole_ahead', 'outputs': 'pole_ahead/outputs',
        'logs': ['pole_ahead/logs/planner.log'],
        'planner_transitions': 'pole_ahead/planner_transitions.jsonl'}
    write_run_summary(tmp_path, [failed, skipped], None)
    bags = json.loads((tmp_path / 'summary.json').read_text())['bags']
    assert bags[0]['evidence']['outputs'] == 'pole_ahead/outputs'
    assert bags[1]['evidence'] == {'bag': 'broken'}

"""Replay reports: per-frame JSON lines, summaries, JUnit XML, timeline and A/B comparison."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from sidewalk_robot.replay.criteria import ReplayCriteria
from sidewalk_robot.replay.evaluation import evaluate
from sidewalk_robot.replay.report import (write_bag_report, write_comparison, write_junit,
                                          write_run_summary)
from sidewalk_robot.replay.runner import BagOutcome, exit_status

from test_replay_evaluation import record_with  # noqa: I001 - sibling test module


def outcome(tmp_path: Path, name: str, speeds: list[float]) -> BagOutcome:
    record = record_with(speeds, distance=1.0)
    record.bag = name
    evaluation = evaluate(record, ReplayCriteria(), running_nodes=('safety_monitor',))
    write_bag_report(tmp_path / name, evaluation, record)
    return BagOutcome(Path(name), 'passed' if evaluation.passed else 'failed',
                      evaluation=evaluation, report_dir=tmp_path / name)


def test_bag_report_files(tmp_path: Path) -> None:
    result = outcome(tmp_path, 'good', [0.5] * 40)
    lines = (tmp_path / 'good' / 'result.jsonl').read_text().splitlines()
    assert len(lines) == 20
    first = json.loads(lines[0])
    assert {'frame', 'time', 'nearest_obstacle_m', 'speed_limit_mps', 'passed'} <= set(first)
    summary = json.loads((tmp_path / 'good' / 'summary.json').read_text())
    assert summary['passed'] is True and summary['metrics']['frames'] == 20
    png = (tmp_path / 'good' / 'timeline.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    assert result.status == 'passed'


def test_junit_and_run_summary_count_failures_and_skips(tmp_path: Path) -> None:
    outcomes = [outcome(tmp_path, 'good', [0.5] * 40), outcome(tmp_path, 'bad', [1.5] * 40),
                BagOutcome(Path('broken'), 'skipped', 'metadata.yaml is missing')]
    write_junit(tmp_path / 'junit.xml', outcomes)
    suites = ElementTree.parse(tmp_path / 'junit.xml').getroot()
    by_name = {suite.get('name'): suite for suite in suites}
    assert by_name['good'].get('failures') == '0'
    assert by_name['bad'].get('failures') == '1'
    failure = by_name['bad'].find("testcase[@name='stopping_distance']/failure")
    assert 'too fast' in failure.get('message')
    assert by_name['broken'].find('testcase/skipped').get('message') == 'metadata.yaml is missing'
    summary = write_run_summary(tmp_path, outcomes, None)
    assert summary['counts'] == {'passed': 1, 'failed': 1, 'skipped': 1}
    assert json.loads((tmp_path / 'summary.json').read_text())['passed'] is False
    assert exit_status(outcomes) == 1
    assert exit_status(outcomes[:1]) == 0
    assert exit_status([outcomes[0], outcomes[2]]) == 2


def test_comparison_shows_both_variants_and_the_difference(tmp_path: Path) -> None:
    variants = {'A (slow.yaml)': [outcome(tmp_path / 'a', 'drive', [0.4] * 40)],
                'B (fast.yaml)': [outcome(tmp_path / 'b', 'drive', [1.5] * 40)]}
    text = write_comparison(tmp_path, variants)
    assert '| mean gated speed [m/s] | 0.400 | 1.500 | +1.100 |' in text
    assert '| result | passed | failed | |' in text
    table = json.loads((tmp_path / 'compare.json').read_text())
    assert table['drive']['metrics']['stopping_violations']['delta'] == 40

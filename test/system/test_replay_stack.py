"""`sidewalk-robot replay` end to end: the recorded bags in test/data through the real nodes."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'test' / 'data'
RECORDED_BAGS = sorted(p for p in DATA.iterdir() if (p / 'metadata.yaml').is_file())


def replay(*arguments: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / 'sidewalk-robot'), 'replay',
                           '--startup-timeout', '120', *arguments], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_recorded_bags_pass_their_criteria_through_the_full_stack(tmp_path: Path) -> None:
    assert len(RECORDED_BAGS) >= 3
    result = replay(*map(str, RECORDED_BAGS), '-o', str(tmp_path))  # lockstep, one stack
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary['counts'] == {'passed': len(RECORDED_BAGS), 'failed': 0, 'skipped': 0}
    assert summary['criteria'].endswith('replay_criteria.yaml')
    for bag in summary['bags']:
        report = Path(bag['report'])
        frames = (report / 'result.jsonl').read_text().splitlines()
        assert len(frames) == bag['metrics']['frames'] > 40
        assert (report / 'timeline.png').stat().st_size > 10_000
        assert bag['metrics']['frames_without_grid'] == 0  # lockstep: nothing is dropped
    estop = next(b for b in summary['bags'] if b['bag'].endswith('estop_clear'))
    estop_check = next(c for c in estop['checks'] if c['name'] == 'estop_honoured')
    assert 'e-stop at' in estop_check['detail']
    suites = ElementTree.parse(tmp_path / 'junit.xml').getroot()
    assert len(suites) == len(RECORDED_BAGS)


def test_bad_bags_are_reported_without_a_traceback(tmp_path: Path) -> None:
    good = DATA / 'estop_clear'
    truncated = tmp_path / 'truncated'
    shutil.copytree(good, truncated)
    mcap_file = truncated / 'estop_clear.mcap'
    mcap_file.write_bytes(mcap_file.read_bytes()[:50_000])
    no_metadata = tmp_path / 'no_metadata'
    shutil.copytree(good, no_metadata)
    (no_metadata / 'metadata.yaml').unlink()
    result = replay(str(truncated), str(no_metadata), str(tmp_path / 'missing'),
                    '-o', str(tmp_path / 'out'), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert 'Traceback' not in output
    assert 'truncated: SKIPPED (' in output and 'cannot read bag' in output
    assert 'metadata.yaml is missing' in output and '--repair' in output
    assert 'missing: SKIPPED' in output and 'no such bag' in output
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['counts']['skipped'] == 3


def test_compare_two_parameter_sets_side_by_side(tmp_path: Path) -> None:
    slow = tmp_path / 'slow.yaml'
    slow.write_text('safety_monitor:\n  ros__parameters:\n    max_linear_speed: 0.15\n')
    default = tmp_path / 'default.yaml'
    default.write_text('safety_monitor:\n  ros__parameters:\n    max_linear_speed: 1.5\n')
    result = replay(str(DATA / 'estop_clear'), '--compare', str(default), str(slow), '-o',
                    str(tmp_path / 'out'))
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads((tmp_path / 'out' / 'compare.json').read_text())
    metrics = next(iter(table.values()))['metrics']
    top_speeds = metrics['max_gated_speed_mps']
    default_top, slow_top = (top_speeds['values'][key] for key in ('A (default.yaml)',
                                                                   'B (slow.yaml)'))
    assert slow_top <= 0.15 + 1e-6  # the cap of variant B
    assert default_top > 0.2  # well above B's cap: A ran uncapped
    assert top_speeds['delta'] == pytest.approx(slow_top - default_top)
    assert metrics['stopping_violations']['delta'] == 0
    assert '| mean gated speed [m/s] |' in (tmp_path / 'out' / 'compare.md').read_text()


def test_replaying_faster_than_perception_keeps_up_is_reported(tmp_path: Path) -> None:
    # Realtime (lockstep waits for perception instead). Perception needs at least 5 ms a frame even on an idle machine (20-60 ms when busy);
    # at 50x a camera frame arrives every 2 ms, so most frames cannot get a grid.
    result = replay(str(DATA / 'pole_ahead'), '--realtime', '--rate', '50', '-o', str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert '[FAIL] grid_per_frame' in output
    rows = [json.loads(line) for line in
            (tmp_path / 'pole_ahead' / 'result.jsonl').read_text().splitlines()]
    assert sum(1 for row in rows if not row['grid']) > 0.1 * len(rows)

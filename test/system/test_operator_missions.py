"""Deliveries with the operator in the loop, as real processes (launch/sim.launch.xml):

- over a street crossing: the planner stops at the kerb, asks, and drives on only after the
  scripted operator of the mission supervisor ("mission-script") approves;
- (slow, in lockstep) on a world of unseen ground colours, where the health monitor finds the
  learned model degraded and the planner caps its speed, against the same delivery on a
  training world, where neither happens. test/unit/test_monitoring_worlds.py checks the same
  in seconds from rendered frames.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.system.evidence import PLANNER_TRANSITIONS_FILE, read_planner_transitions
from sidewalk_robot.system.runner import RunOptions, ScriptedOperator
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_scenario

REAL_TIME_FACTOR = 0.5
"""Slower than real time: on a busy machine a faster run starves the stack (the simulator then
stops the wheels for stale commands and the robot crawls), and these runs judge what the
planner decides, not how fast the machine is."""


def run(tmp_path: Path, document: dict, lockstep: bool = False):
    path = tmp_path / f'{document["name"]}.yaml'
    path.write_text(yaml.safe_dump(document), encoding='utf-8')
    base = RunOptions(real_time_factor=REAL_TIME_FACTOR, record_bag=False, write_report=False,
                      startup_timeout_s=150.0, lockstep=lockstep)
    result = run_scenario(load_scenario(path), base, tmp_path / 'runs')
    run_dir = Path(result.run_dir)
    logs = {log.stem: log.read_text(errors='replace') for log in (run_dir / 'logs').glob('*.log')}
    tails = '\n'.join(f'--- {name}\n{text[-2500:]}' for name, text in sorted(logs.items()))
    assert result.error is None, f'{result.error}\n{tails}'
    assert result.summary is not None
    return result, logs, tails


def test_the_robot_waits_at_the_kerb_and_drives_on_only_after_the_approval(
        tmp_path: Path) -> None:
    # Straight over street_corner's zebra crossing (x = 20.0 .. 27.3 m). The shipped model
    # sees phantom obstacles along the kerb edge (docs/operations.md), so neither arriving nor
    # entering the crossing in time is asked for: the protocol is.
    result, logs, tails = run(tmp_path, {
        'name': 'street_crossing', 'world': 'street_corner', 'seed': 17,
        'goal': {'x': 35.0, 'y': 0.0, 'yaw': 0.0}, 'route': [[0.0, 0.0], [35.0, 0.0]],
        'timeout': 40, 'success': {'arrive': None, 'max_collisions': 0}})
    summary = result.summary
    assert summary.collisions == 0, tails
    notes = '\n'.join(summary.notes)
    requested = re.search(r'\[\s*([\d.]+) s\] planner: crossing requested', notes)
    approved = re.search(r'\[\s*([\d.]+) s\] planner: crossing approved', notes)
    assert requested and approved, f'{notes}\n{tails}'
    asked_at, approved_at = float(requested.group(1)), float(approved.group(1))
    assert approved_at - asked_at >= ScriptedOperator().delay_s - 0.2
    assert 'mission-script: approved crossing-' in notes and \
        'approve by mission-script' in logs['planner'], tails

    transitions = read_planner_transitions(Path(result.run_dir) / PLANNER_TRANSITIONS_FILE)
    at_kerb = [t for t in transitions if 'kerb' in t['reason']]
    assert at_kerb and all(float(t['values']['crossing_ahead_m']) > 0.0 for t in at_kerb), \
        transitions
    before = [t for t in transitions if 'crossing_ahead_m' in t['values']
              and t.get('mission_time_s', -1.0) < approved_at - 0.2]
    assert all(float(t['values']['crossing_ahead_m']) > 0.0 for t in before), before
    # With the approval the planner drives on towards the crossing (whether the model's
    # phantoms at the kerb let it in before the timeout varies from run to run).
    going = [t for t in transitions if t.get('mission_time_s', -1.0) >= approved_at - 0.2
             and t['state'] == 'driving'
             and t['values'].get('crossing') in ('approved', 'crossing')]
    assert going, transitions


@pytest.mark.slow
@pytest.mark.parametrize('world, degraded', [('tiled_street', True),
                                             ('sidewalk_straight', False)])
def test_unseen_ground_colours_degrade_the_model_health_and_cap_the_speed(
        tmp_path: Path, world: str, degraded: bool) -> None:
    # In lockstep, so that the outcome does not depend on the machine: in real time one run in
    # three on the training world showed phantom obstacles for a few seconds (health WARN and
    # ERROR, speed capped) where the others did not.
    result, logs, tails = run(tmp_path, {
        'name': f'health_{world}', 'world': world, 'seed': 5,
        'goal': {'x': 20.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 40,
        'success': {'arrive': None, 'max_collisions': 0}}, lockstep=True)
    summary = result.summary
    assert summary.collisions == 0, tails
    health_log, planner_log = logs['health_monitor'], logs['planner']
    if degraded:
        assert re.search(r'model health (WARN|ERROR)', health_log), tails
        assert 'speed capped at 0.5' in planner_log, tails
        # Capped from early on (and stopped to ask after model_health_assist_delay, which
        # nobody answers in this run): far below the healthy delivery's speed.
        assert summary.mean_speed_mps < 0.6, summary
    else:
        assert not re.search(r'model health (WARN|ERROR) \(', health_log.split(
            'model health OK', 1)[-1]), tails
        assert 'speed capped' not in planner_log, tails
        assert summary.arrived, summary


pytestmark = pytest.mark.timeout(400)

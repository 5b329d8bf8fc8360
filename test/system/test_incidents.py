"""Incidents become data, end to end: a veto in a simulated scenario becomes an incident
(bag + incident.json), its frames come out of `sidewalk-robot incidents export` in the
training format, a tiny training run takes them in, and the promotion gate refuses the tiny
(much worse) model against the shipped one and promotes one no worse after its replay and
scenario stages."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT, console_script
from sidewalk_robot.operations.incidents import list_incidents
from sidewalk_robot.perception.dataset import load_split, verify
from sidewalk_robot.perception.labels import IGNORE_LABEL, NOT_DRIVABLE, OBSTACLE, SIDEWALK
from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_scenario

SHIPPED_MODEL = REPO_ROOT / 'models' / 'sidewalk_seg_v5'
WALL_AHEAD = {
    'name': 'incident_wall', 'world': 'sidewalk_straight', 'seed': 5,
    'description': 'the planner commands full speed at a wall 3 m ahead: the monitor vetoes',
    'obstacles': [{'name': 'wall', 'shape': 'box', 'size': [0.3, 2.7, 1.2], 'x': 3.0, 'y': 0.0,
                   'semantic': 'obstacle'}],
    'timeout': 12, 'faults': [{'type': 'planner_full_speed', 'start': 0.0}],
    'success': {'arrive': False, 'max_collisions': 0}}


def sidewalk_robot(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([console_script('sidewalk-robot'), *arguments], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('incidents')


@pytest.fixture(scope='module')
def incident_folder(folder: Path) -> Path:
    path = folder / 'incident_wall.yaml'
    path.write_text(yaml.safe_dump(WALL_AHEAD), encoding='utf-8')
    # In lockstep, so that the veto does not depend on how busy the machine is (realtime, a
    # loaded machine let the robot creep up to the wall under LIMIT without a STOP).
    base = RunOptions(lockstep=True, record_bag=False, write_report=False,
                      startup_timeout_s=150.0, record_incidents=True)
    result = run_scenario(load_scenario(path), base, folder / 'runs')
    run_dir = Path(result.run_dir)
    logs = '\n'.join(f'--- {log.name}\n{log.read_text(errors="replace")[-2000:]}'
                     for log in sorted((run_dir / 'logs').glob('*.log')))
    assert result.error is None, f'{result.error}\n{logs}'
    assert result.summary.vetoes >= 1, f'no veto in the scenario\n{logs}'
    assert result.summary.collisions == 0
    return run_dir / 'incidents'


@pytest.fixture(scope='module')
def exported(incident_folder: Path, folder: Path) -> Path:
    (incident,) = [i for i in list_incidents(incident_folder) if i.record['trigger']['kind']
                   == 'veto']
    output = folder / 'exported'
    result = sidewalk_robot('incidents', '--folder', str(incident_folder), 'export',
                            incident.name, '--output', str(output))
    assert result.returncode == 0, result.stderr
    return output


def test_a_veto_becomes_one_incident_with_its_context(incident_folder: Path) -> None:
    incidents = list_incidents(incident_folder)
    vetoes = [i for i in incidents if i.record['trigger']['kind'] == 'veto']
    assert len(vetoes) == 1, [i.record['why'] for i in incidents]  # the cooldown joins repeats
    record = vetoes[0].record
    assert record['trigger']['topic'] == '/safety/state'
    assert record['trigger']['message']['state'] == 'STOP'
    assert record['trigger']['message']['reason'] in ('obstacle_stop', 'coverage_stop',
                                                      'approach_stop')
    assert record['world'] == 'sidewalk_straight'
    assert record['model']['version'] == 'sidewalk_seg_v5'
    assert record['model']['source'] == '/diagnostics'
    assert 0.0 < record['pose']['world']['x'] < 3.0 and record['pose']['odom']['frame_id']
    assert record['time']['window_start'] <= record['time']['event'] <= record['time']['window_end']
    for topic in ('/camera/image_raw', '/scan', '/odom', '/cmd_vel', '/cmd_vel_nav',
                  '/safety/state', '/perception/obstacle_grid', '/clock',
                  '/sim/ground_truth/robot_pose', '/sim/ground_truth/obstacles',
                  '/tf', '/tf_static', '/robot_description'):
        assert record['topics'].get(topic, 0) > 0, topic
    bag_mb = record['bag_bytes'] / 1e6
    seconds = record['time']['window_end'] - record['time']['window_start']
    print(f'incident bag: {bag_mb:.1f} MB for {seconds:.1f} s = '
          f'{60 * bag_mb / seconds:.0f} MB per minute')


def test_incidents_list_and_show(incident_folder: Path) -> None:
    listed = sidewalk_robot('incidents', '--folder', str(incident_folder), 'list')
    assert listed.returncode == 0 and 'veto' in listed.stdout and 'STOP' in listed.stdout
    name = list_incidents(incident_folder)[0].name
    shown = sidewalk_robot('incidents', '--folder', str(incident_folder), 'show', name)
    assert shown.returncode == 0
    details = json.loads(shown.stdout)
    assert details['bag_contents']['topics']['/camera/image_raw']['count'] > 0
    missing = sidewalk_robot('incidents', '--folder', str(incident_folder), 'show', 'nope')
    assert missing.returncode == 2 and 'no incident' in missing.stderr


def test_exported_frames_are_a_training_dataset_labelled_from_ground_truth(exported: Path
                                                                           ) -> None:
    card = verify(exported)
    frames = load_split(exported, 'train')
    assert len(frames) >= 5 and card['incident_labels']['ground_truth'] == len(frames)
    assert frames.image.shape[1:] == (120, 160, 3) and frames.label.shape[1:] == (120, 160)
    last = frames.label[-1]  # the wall stands in front of the stopped robot
    assert (last == OBSTACLE).mean() > 0.05
    assert {SIDEWALK, NOT_DRIVABLE} <= set(np.unique(frames.label))
    assert frames.footprint[-1].any() and len(frames.layout_of(len(frames) - 1))
    assert np.isfinite(frames.depth[-1]).any()


def test_lidar_labels_mark_the_wall_and_leave_the_rest_unknown(incident_folder: Path,
                                                               folder: Path) -> None:
    veto = next(i for i in list_incidents(incident_folder)
                if i.record['trigger']['kind'] == 'veto')
    output = folder / 'lidar_labels'
    result = sidewalk_robot('incidents', '--folder', str(incident_folder), 'export', veto.name,
                            '--output', str(output), '--labels', 'lidar')
    assert result.returncode == 0, result.stderr
    frames = load_split(output, 'train')
    last = frames.label[-1]
    assert set(np.unique(last)) <= {OBSTACLE, IGNORE_LABEL}
    assert (last == OBSTACLE).sum() > 50
    rows, _ = np.nonzero(last == OBSTACLE)
    assert rows.mean() > 40  # the wall's lower part, below the horizon, not the sky


@pytest.fixture(scope='module')
def tiny_dataset(folder: Path) -> Path:
    output = folder / 'tiny'
    result = sidewalk_robot('dataset', '--output', str(output), '--train-worlds', 'street_corner',
                            '--held-out-worlds', 'construction_narrow', '--episodes', '2',
                            '--held-out-episodes', '1', '--frames-per-episode', '4',
                            '--validation-every', '2', '--seed', '3', '--quiet')
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope='module')
def tiny_model(tiny_dataset: Path, exported: Path, folder: Path) -> Path:
    output = folder / 'candidate'
    result = sidewalk_robot('train', '--preset', 'tiny', '--dataset', str(tiny_dataset),
                            '--add-dataset', str(exported), '--output', str(output),
                            '--run-dir', str(folder / 'run'), '--quiet')
    assert result.returncode == 0, result.stderr
    return output


def test_training_takes_the_incident_frames(tiny_model: Path, tiny_dataset: Path,
                                           exported: Path) -> None:
    card = json.loads((tiny_model / 'card.json').read_text())
    (added,) = card['dataset']['added']
    assert added['content_hash'] == verify(exported)['content_hash']
    main = sum(verify(tiny_dataset)['frames']['train'].values())
    assert added['train_frames'] == len(load_split(exported, 'train'))
    assert card['dataset']['train_frames'] == min(32, main) + added['train_frames']


def test_the_gate_refuses_a_worse_model_and_says_so_in_its_card(tiny_model: Path,
                                                               tiny_dataset: Path,
                                                               folder: Path) -> None:
    result = sidewalk_robot('promote', str(tiny_model), '--current', str(SHIPPED_MODEL),
                            '--dataset', str(tiny_dataset), '--quick', '--output',
                            str(folder / 'promotion'))
    assert result.returncode == 1, result.stdout + result.stderr
    card = json.loads((tiny_model / 'card.json').read_text())
    decision = card['promotion'][-1]
    assert decision['decision'] == 'refused'
    assert decision['against']['version'] == 'sidewalk_seg_v5'
    stages = {stage['stage']: stage for stage in decision['stages']}
    assert stages['held_out_metrics']['passed'] is False
    assert stages['replay']['passed'] is None and stages['scenarios']['passed'] is None
    assert 'held-out' in decision['reason']


def test_the_gate_promotes_a_model_no_worse_only_after_its_replay_and_scenarios(
        tiny_dataset: Path, folder: Path) -> None:
    candidate = folder / 'same_weights'
    shutil.copytree(SHIPPED_MODEL, candidate)
    card_path = candidate / 'card.json'
    card = json.loads(card_path.read_text())
    card['version'] = 'sidewalk_seg_v5_copy'
    card.pop('promotion', None)
    card_path.write_text(json.dumps(card, indent=2), encoding='utf-8')
    result = sidewalk_robot('promote', str(candidate), '--current', str(SHIPPED_MODEL),
                            '--dataset', str(tiny_dataset), '--quick', '--output',
                            str(folder / 'promotion_same'))
    assert result.returncode == 0, result.stdout + result.stderr
    decision = json.loads(card_path.read_text())['promotion'][-1]
    assert decision['decision'] == 'promoted', decision['reason']
    stages = {stage['stage']: stage for stage in decision['stages']}
    assert [stage['stage'] for stage in decision['stages']] == ['held_out_metrics', 'replay',
                                                                 'scenarios']
    assert all(stage['passed'] is True for stage in stages.values()), stages
    replayed = stages['replay']
    assert len(replayed['bags']) == 1 and replayed['exit_status'] == 0
    (bag_summary,) = replayed['summary']
    assert bag_summary['status'] == 'passed'
    assert (Path(replayed['report']) / 'summary.json').is_file()
    assert set(stages['scenarios']['scenarios']) == {'pole_in_path'}
    assert stages['scenarios']['scenarios']['pole_in_path']['passed'] is True
    assert (Path(decision['report']) / 'decision.json').is_file()

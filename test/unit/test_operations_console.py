"""The console core: permissions, command decisions and caps, the audit trail, the token file
and the camera overlay, without ROS or HTTP."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot.config import load_config
from sidewalk_robot.operations.config import OperatorConfig
from sidewalk_robot.operations.console import AuditLog, ConsoleCore, Requester
from sidewalk_robot.operations.overlay import GridLayer, cell_polygons, draw_overlay
from sidewalk_robot.operations.security import (TokenError, create_token, load_token_digest,
                                                token_digest)
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry

REPO = Path(__file__).resolve().parents[2]
LOCAL = Requester('127.0.0.1', host_header='127.0.0.1:8080')


@pytest.fixture
def core(tmp_path: Path) -> ConsoleCore:
    return ConsoleCore(OperatorConfig(), AuditLog(tmp_path / 'audit.jsonl', keep=10))


def test_localhost_refuses_foreign_hosts_and_cross_site_commands(core: ConsoleCore) -> None:
    assert core.authorize(LOCAL, command=True) is None
    assert core.authorize(replace(LOCAL, host_header='localhost:8080',
                                  origin='http://localhost:8080'), command=True) is None
    rebinding = core.authorize(replace(LOCAL, host_header='evil.example:8080'), command=False)
    assert rebinding is not None and rebinding.status == 403
    cross_site = core.authorize(replace(LOCAL, origin='https://evil.example'), command=True)
    assert cross_site is not None and cross_site.status == 403
    assert core.authorize(replace(LOCAL, host_header='127.0.0.1:9999'), command=False).status == 403


def test_beyond_localhost_every_request_needs_the_token(tmp_path: Path) -> None:
    config = OperatorConfig(host='0.0.0.0')
    with pytest.raises(ValueError, match='token'):
        ConsoleCore(config, AuditLog(tmp_path / 'a.jsonl', keep=5))
    core = ConsoleCore(config, AuditLog(tmp_path / 'a.jsonl', keep=5), token_digest('s3cret'))
    remote = Requester('10.0.0.7', host_header='robot.local:8080')
    assert core.authorize(remote, command=False).status == 401
    assert core.authorize(replace(remote, authorization='Bearer nope'), command=True).status == 403
    assert core.authorize(replace(remote, authorization='Basic s3cret'), command=True).status == 401
    assert core.authorize(replace(remote, authorization='Bearer s3cret'), command=True) is None


def test_estop_needs_no_name_but_every_other_command_does(core: ConsoleCore) -> None:
    estop = core.command({'action': 'estop'}, LOCAL, 1.0)
    assert estop.status == 200 and [(e.kind, e.value) for e in estop.effects] == [('estop', True)]
    release = core.command({'action': 'release_estop'}, LOCAL, 2.0)
    assert release.status == 400 and not release.effects
    release = core.command({'action': 'release_estop', 'operator': 'kim'}, LOCAL, 2.0)
    assert [(e.kind, e.value) for e in release.effects] == [('estop', False)]
    assert core.command({'action': 'drive_to_moon', 'operator': 'kim'}, LOCAL, 3.0).status == 400
    assert core.command('not an object', LOCAL, 3.0).status == 400


def test_answers_only_to_the_open_request_by_id(core: ConsoleCore) -> None:
    ask = {'action': 'assist_response', 'operator': 'kim', 'note': 'ok', 'decision': 'approve'}
    assert core.command({**ask, 'id': 'r1'}, LOCAL, 1.0).status == 409  # nothing open
    core.on_assist_request(json.dumps({'id': 'r1', 'status': 'requested', 'kind': 'crossing',
                                       'expires_at': 50.0}), 1.0)
    assert core.command({**ask, 'id': 'r2'}, LOCAL, 2.0).status == 409
    assert core.command({**ask, 'id': 'r1', 'decision': 'maybe'}, LOCAL, 2.0).status == 400
    answer = core.command({**ask, 'id': 'r1'}, LOCAL, 2.0)
    assert answer.status == 200
    assert answer.effects[0].value == {'id': 'r1', 'decision': 'approve', 'operator': 'kim',
                                       'note': 'ok'}
    assert core.command({**ask, 'id': 'r1'}, LOCAL, 60.0).status == 409  # expired
    core.on_assist_request(json.dumps({'id': 'r1', 'status': 'expired'}), 61.0)
    assert core.open_request(10.0) is None
    assert core.on_assist_request('{broken', 62.0) is None and core.request_problem


def test_manual_commands_need_manual_mode_and_are_capped(core: ConsoleCore) -> None:
    drive = {'action': 'manual_cmd', 'operator': 'kim', 'linear': 5.0, 'angular': -9.0}
    assert core.command(drive, LOCAL, 1.0).status == 409
    assert core.command({'action': 'manual_mode', 'operator': 'kim', 'enabled': 'yes'},
                        LOCAL, 1.0).status == 400
    core.command({'action': 'manual_mode', 'operator': 'kim', 'enabled': True}, LOCAL, 1.0)
    first = core.command(drive, LOCAL, 1.1)
    assert first.effects[0].value == (0.3, -0.6) and first.record is not None
    assert core.command({**drive, 'linear': -5.0}, LOCAL, 1.2).effects[0].value == (-0.15, -0.6)
    repeated = core.command({**drive, 'linear': -5.0}, LOCAL, 1.3)
    assert repeated.status == 200 and repeated.record is None  # a held key is logged once
    assert core.command({**drive, 'linear': float('nan')}, LOCAL, 1.4).status == 400
    off = core.command({'action': 'manual_mode', 'operator': 'kim', 'enabled': False}, LOCAL, 2.0)
    assert [(e.kind, e.value) for e in off.effects] == [('manual_cmd', (0.0, 0.0)),
                                                         ('manual_mode', False)]


def test_every_command_accepted_or_refused_is_a_private_json_line(tmp_path: Path) -> None:
    published: list[str] = []
    audit = AuditLog(tmp_path / 'logs' / 'audit.jsonl', keep=2, listener=published.append)
    core = ConsoleCore(OperatorConfig(), audit)
    core.command({'action': 'estop', 'operator': 'kim', 'note': 'dog'}, LOCAL, 1.0)
    core.command({'action': 'reset'}, LOCAL, 2.0)
    core.refuse(LOCAL, 'command', core.authorize(replace(LOCAL, origin='http://x'),
                                                  command=True), 3.0)
    lines = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [(r['action'], r['result'], r['who'], r['why']) for r in lines] == [
        ('estop', 'accepted', 'kim', 'dog'), ('reset', 'refused', '', ''),
        ('command', 'refused', '', '')]
    assert all({'time', 'stamp', 'from', 'status', 'message'} <= set(r) for r in lines)
    assert [json.loads(line) for line in published] == lines
    assert len(core.snapshot(4.0)['actions']) == 2
    assert oct(audit.path.stat().st_mode & 0o777) == '0o600'


def test_token_file_holds_a_hash_and_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / 'cfg' / 'token'
    token = create_token(path)
    assert load_token_digest(path) == token_digest(token)
    assert token not in path.read_text()
    with pytest.raises(TokenError, match='exists already'):
        create_token(path)
    os.chmod(path, 0o640)
    with pytest.raises(TokenError, match='readable by others'):
        load_token_digest(path)
    with pytest.raises(TokenError, match='no operator token'):
        load_token_digest(tmp_path / 'missing')


def test_overlay_camera_is_the_perception_nodes() -> None:
    operator = load_config(OperatorConfig, REPO / 'config' / 'operator.yaml')
    perception = load_config(PerceptionConfig, REPO / 'config' / 'perception.yaml')
    assert operator.extrinsics() == perception.extrinsics()
    assert operator.default_intrinsics() == perception.default_intrinsics()


def test_cells_are_drawn_where_the_camera_sees_their_ground() -> None:
    config = OperatorConfig()
    camera = CameraModel(config.default_intrinsics(), config.extrinsics())
    grid = GridGeometry(0.1, 80, 80, -1.0, -4.0)
    ahead = 40 * 80 + 30  # the cell at x 2.0-2.1 m, y 0-0.1 m
    behind = 40 * 80 + 2  # x -0.8 m: behind the camera
    (polygon,) = cell_polygons(camera, grid, np.array([ahead, behind]))
    u, v = polygon[:, 0].mean(), polygon[:, 1].mean()
    # Just left of the centre column; between the horizon (v = 120 - 160 tan 0.35 = 62) and the
    # centre row, which looks at the ground 1.67 m ahead.
    assert 150 < u < 160 and 62 < v < 120
    image = np.full((240, 320, 3), 100, dtype=np.uint8)
    values = np.zeros(6400, dtype=np.int16)
    values[ahead] = 80
    drawn = draw_overlay(image, camera, GridLayer(grid, values, 'base_link'), None, 50)
    changed = np.argwhere((drawn != image).any(axis=2))
    assert len(changed) and abs(changed[:, 0].mean() - v) < 3 and abs(changed[:, 1].mean() - u) < 3
    nothing = draw_overlay(image, camera, GridLayer(grid, values, 'base_link'), None, 90)
    assert (nothing == image).all()

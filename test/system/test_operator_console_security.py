"""The console bound beyond localhost (a loopback alias, 127.0.0.2, stands for a robot's
network address; nothing is exposed to other machines): every request needs the token,
refusals are logged, and the page works once the operator enters the token."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, console_script, ros_arguments
from helpers.console import headless_browser, operator_console
from helpers.fake_robot import FakeRobot

ALIAS = '127.0.0.2'


def _request(url: str, *, token: str | None = None, body: dict | None = None
             ) -> tuple[int, dict]:
    headers = {'Content-Type': 'application/json'} if body is not None else {}
    if token is not None:
        headers['Authorization'] = f'Bearer {token}'
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers,
                                     method='POST' if body is not None else 'GET')
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def token(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / 'config' / 'operator_token'
    result = subprocess.run([console_script('sidewalk-robot'), 'console-token', '--file',
                             str(path)], capture_output=True, text=True, timeout=120, check=True)
    secret = result.stdout.strip().splitlines()[-1]
    return path, secret


def test_token_file_is_private_and_holds_no_token(token) -> None:
    path, secret = token
    assert oct(path.stat().st_mode & 0o777) == '0o600'
    assert secret not in path.read_text()


def test_console_off_localhost_will_not_start_without_a_private_token(tmp_path: Path,
                                                                      token) -> None:
    path, _ = token
    for token_file in (tmp_path / 'missing', path):
        if token_file == path:
            os.chmod(path, 0o644)
        result = subprocess.run(
            [console_script('operator_node'),
             *ros_arguments([REPO_ROOT / 'config' / 'operator.yaml'],
                            {'host': ALIAS, 'port': 0, 'token_file': str(token_file),
                             'audit_log': str(tmp_path / 'audit.jsonl')})],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert 'configuration error' in result.stderr and str(token_file) in result.stderr


def test_every_request_without_the_token_is_refused_and_logged(tmp_path: Path, token) -> None:
    path, secret = token
    robot = FakeRobot(drive_planner=False, camera=False)
    try:
        with operator_console(tmp_path, host=ALIAS, token_file=str(path)) as console:
            assert console.url.startswith(f'http://{ALIAS}:')
            api = console.url + 'api/'
            assert _request(api + 'state')[0] == 401
            assert _request(api + 'state', token='guess')[0] == 403
            estop = {'action': 'estop', 'operator': 'mallory', 'note': 'hello'}
            assert _request(api + 'command', body=estop)[0] == 401
            assert _request(api + 'command', body=estop, token='guess')[0] == 403
            assert not robot.wait_for(lambda: robot.heard.estop, timeout=1.0)
            refused = [a for a in console.audit() if a['result'] == 'refused']
            assert [a['status'] for a in refused] == [401, 403, 401, 403]
            assert all(a['from'] == '127.0.0.1' or a['from'].startswith('127.') for a in refused)

            status, reply = _request(api + 'command', token=secret,
                                     body={'action': 'estop', 'operator': 'alex', 'note': 'test'})
            assert status == 200, reply
            assert robot.wait_for(lambda: robot.heard.estop == [True])
            assert _request(api + 'state', token=secret)[0] == 200
    finally:
        robot.close()


def test_the_page_asks_for_the_token_and_then_works(tmp_path: Path, token) -> None:
    path, secret = token
    robot = FakeRobot(drive_planner=False)
    try:
        with operator_console(tmp_path, host=ALIAS, token_file=str(path)) as console, \
                headless_browser() as browser:
            page = browser.new_page()
            page.goto(console.url)
            page.wait_for_function("() => document.querySelector('#connection').textContent "
                                   "=== 'token required'", timeout=30000)
            assert page.is_visible('#token')
            page.fill('#token', secret)
            page.dispatch_event('#token', 'change')
            page.wait_for_function('() => window.consoleStats.frames >= 3', timeout=30000)
            page.fill('#operator', 'alex')
            page.click('#estop')
            assert robot.wait_for(lambda: robot.heard.estop == [True])
    finally:
        robot.close()

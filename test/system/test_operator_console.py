"""The operator console in a real headless browser, with a real safety_monitor_node.

A fake robot (test/helpers/fake_robot.py) publishes the sensors and plays a planner that always
drives at 0.5 m/s; what the operator clicks in Chromium must reach the robot: e-stop -> /cmd_vel
zero, reset refused while pressed and accepted once released, answers to assistance requests,
manual commands capped. The camera-to-browser latency is measured here (printed, and in the
screenshot run kept in docs/operations.md).
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from helpers.console import connected_page, headless_browser, node_process, operator_console
from helpers.fake_robot import FakeRobot
from sidewalk_robot.operations.incident_export import nearest, read_recording, scan_points
from sidewalk_robot.perception.geometry import GridGeometry

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / 'docs' / 'images' / 'operator_console.png'
POLE_AHEAD = REPO / 'test' / 'data' / 'pole_ahead'
UPDATE_DOCS = os.environ.get('SIDEWALK_ROBOT_UPDATE_DOCS') == '1'
"""Set to 1 to write the screenshot into docs/images (otherwise it stays in the test's folder)."""
OPERATOR = 'Alex (test)'


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('console')


def recorded_view() -> tuple[np.ndarray, np.ndarray]:
    """A camera frame of a recorded drive (test/data/pole_ahead) and, as the grid to draw on
    it, the cells its lidar hits at that moment (a stand-in for perception's grid)."""
    recording = read_recording(POLE_AHEAD)
    stamp, picture = recording.images[len(recording.images) // 2]
    scan = nearest(recording.scans, stamp, 0.15)
    points, _, _ = scan_points(scan, laser_x=0.30, laser_yaw=0.0)
    cells = GridGeometry(0.1, 80, 80, -1.0, -4.0).cell_index(points)
    return picture, np.unique(cells[cells >= 0])


@pytest.fixture(scope='module')
def robot(folder):
    with node_process(folder, 'safety_monitor_node', 'safety_monitor'):
        picture, cells = recorded_view()
        robot = FakeRobot(picture=picture, obstacle_cells=cells)
        try:
            assert robot.wait_for(lambda: any(v > 0.1 for _, v, _ in robot.heard.cmd_vel), 60), \
                'the safety monitor never let the fake planner drive'
            yield robot
        finally:
            robot.close()


@pytest.fixture(scope='module')
def console(folder, robot):
    with operator_console(folder) as process:
        yield process


@pytest.fixture(scope='module')
def page(console):
    with headless_browser() as browser:
        yield connected_page(browser, console.url, OPERATOR)


def _moving(robot: FakeRobot, since: float) -> bool:
    return any(t > since and v > 0.1 for t, v, _ in robot.heard.cmd_vel)


def _last_speed(robot: FakeRobot) -> float:
    return robot.heard.cmd_vel[-1][1]


def test_page_shows_camera_with_overlay_safety_state_and_map(page, robot, folder) -> None:
    robot.publish_route([(0.0, 0.0), (10.0, 0.0), (15.0, 5.0)])
    robot.report_health(DiagnosticStatus.WARN, 'mean confidence 0.52 below 0.6')
    page.wait_for_function('() => window.consoleStats.frames >= 5', timeout=30000)
    page.wait_for_function("() => ['CLEAR', 'LIMIT'].includes("
                           "document.querySelector('#safety-state').textContent)", timeout=20000)
    assert page.inner_text('#health-level') == 'WARN'
    # Latency: header stamp of each frame to the browser's receipt, over a few seconds.
    page.wait_for_function('() => window.consoleStats.latencies.length >= 50', timeout=60000)
    latencies = page.evaluate('window.consoleStats.latencies')
    median_ms = 1000 * statistics.median(latencies)
    print(f'camera -> browser latency: median {median_ms:.0f} ms over {len(latencies)} frames '
          f'(max {1000 * max(latencies):.0f} ms)')
    assert median_ms < 5000, 'frames are not live'


def test_estop_in_the_browser_stops_the_robot_and_is_audited(page, robot, console) -> None:
    page.fill('#note', 'child near the kerb')
    pressed = time.time()
    page.click('#estop')
    assert robot.wait_for(lambda: robot.heard.estop and robot.heard.estop[-1] is True)
    assert robot.wait_for(lambda: robot.heard.safety_state() == 'ESTOP')
    assert robot.wait_for(lambda: robot.heard.cmd_vel[-1][0] > pressed
                          and _last_speed(robot) == 0.0)
    stopped = len(robot.heard.cmd_vel)
    # The fake planner still asks for 0.5 m/s: after the first zero nothing may get through
    # (one topic, delivered in order, so everything later was sent later).
    assert robot.wait_for(lambda: len(robot.heard.cmd_vel) > stopped + 10)
    assert all(v == 0.0 for _, v, _ in robot.heard.cmd_vel[stopped:])
    page.wait_for_function("() => document.querySelector('#safety-state').textContent === 'ESTOP'")
    record = next(a for a in reversed(console.audit()) if a['action'] == 'estop')
    assert (record['who'], record['why'], record['result']) == (OPERATOR, 'child near the kerb',
                                                                'accepted')
    assert robot.wait_for(lambda: any(a['action'] == 'estop' and a['who'] == OPERATOR
                                      for a in robot.heard.actions))


def test_reset_is_refused_while_pressed_and_works_after_release(page, robot, console) -> None:
    page.fill('#note', 'checking')
    page.click('#reset')
    page.wait_for_function('() => window.consoleStats.lastState.last_reset && '
                           'window.consoleStats.lastState.last_reset.success === false',
                           timeout=10000)
    refused = page.inner_text('#reset-result')
    assert 'e-stop' in refused.lower(), refused
    assert _last_speed(robot) == 0.0
    page.fill('#note', 'area clear again')
    page.click('#release')
    assert robot.wait_for(lambda: robot.heard.estop[-1] is False)
    released = time.time()
    page.click('#reset')
    page.wait_for_function('() => window.consoleStats.lastState.last_reset.success === true',
                           timeout=10000)
    assert robot.wait_for(lambda: _moving(robot, released), 20), 'the robot did not drive again'
    actions = [(a['action'], a['result']) for a in console.audit()]
    assert ('reset_result', 'refused') in actions and ('reset_result', 'accepted') in actions


def test_answers_to_assistance_requests_reach_the_planner_side(page, robot, folder) -> None:
    robot.request_help({'id': 'req-1', 'kind': 'crossing', 'status': 'requested',
                        'question': 'Cross the street at the lights?', 'reason': 'crossing ahead',
                        'time': 0.0, 'expires_at': None})
    page.wait_for_function("() => document.querySelector('#request').textContent.includes('req-1')")
    page.fill('#note', 'lights are green')
    shot = folder / 'operator_console.png'
    page.screenshot(path=str(shot), full_page=True)
    if UPDATE_DOCS:
        shutil.copyfile(shot, SCREENSHOT)
    page.click('#approve')
    assert robot.wait_for(lambda: robot.heard.answers)
    assert robot.heard.answers[-1] == {'id': 'req-1', 'decision': 'approve',
                                       'operator': OPERATOR, 'note': 'lights are green'}
    robot.request_help({'id': 'req-1', 'kind': 'crossing', 'status': 'approved'})
    robot.request_help({'id': 'req-2', 'kind': 'blocked', 'status': 'requested',
                        'question': 'Take the detour over the grass?', 'reason': 'sidewalk closed',
                        'time': 0.0, 'expires_at': None})
    page.wait_for_function("() => document.querySelector('#request').textContent.includes('req-2')")
    page.fill('#note', 'grass is private property')
    page.click('#decline')
    assert robot.wait_for(lambda: len(robot.heard.answers) == 2)
    assert robot.heard.answers[-1]['id'] == 'req-2'
    assert robot.heard.answers[-1]['decision'] == 'decline'


def test_manual_driving_is_capped_in_the_console(page, robot, console) -> None:
    page.fill('#note', 'backing out of the driveway')
    page.check('#manual-toggle')
    assert robot.wait_for(lambda: robot.heard.manual_mode and robot.heard.manual_mode[-1])
    forward = page.locator('[data-drive=forward]')
    forward.dispatch_event('pointerdown')
    assert robot.wait_for(lambda: any(v > 0 for v, _ in robot.heard.manual_cmd))
    forward.dispatch_event('pointerup')
    assert robot.wait_for(lambda: robot.heard.manual_cmd[-1] == (0.0, 0.0))
    assert max(v for v, _ in robot.heard.manual_cmd) == pytest.approx(0.3)
    page.uncheck('#manual-toggle')
    assert robot.wait_for(lambda: robot.heard.manual_mode[-1] is False)
    manual = [a for a in console.audit() if a['action'] == 'manual_cmd']
    assert manual and all(a['who'] == OPERATOR for a in manual)

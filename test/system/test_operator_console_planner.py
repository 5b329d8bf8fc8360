"""The console with the real planner and safety monitor: a street crossing on the route makes
the planner stop at the kerb and ask; nobody answering keeps the robot standing, an approval
in the browser lets it cross, a decline keeps it on the kerb; driving by hand goes through the
safety monitor like every other command, so a wall ahead stops it.

The fake robot (test/helpers/fake_robot.py) stands in for the sensors and the base: a clear
lidar, free grids and odometry that follows /cmd_vel, which only the safety monitor sends.
"""
from __future__ import annotations

import time

import pytest

from helpers.console import connected_page, headless_browser, node_process, operator_console
from helpers.fake_robot import FakeRobot

OPERATOR = 'Sam (test)'
UNANSWERED_S = 5.0


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('console_planner')


@pytest.fixture(scope='module')
def stack(folder):
    with node_process(folder, 'safety_monitor_node', 'safety_monitor'), \
            node_process(folder, 'planner_node', 'planner'):
        robot = FakeRobot(drive_planner=False, camera=True, free_grids=True)
        try:
            yield robot
        finally:
            robot.close()


@pytest.fixture(scope='module')
def page(folder, stack):
    with operator_console(folder) as console, headless_browser() as browser:
        yield connected_page(browser, console.url, OPERATOR)


def _open_request(page) -> dict | None:
    return page.evaluate('() => window.consoleStats.lastState && '
                         'window.consoleStats.lastState.request')


def _wait_for_crossing_question(page, robot: FakeRobot) -> dict:
    page.wait_for_function("() => { const s = window.consoleStats.lastState; return s && "
                           "s.request && s.request.kind === 'crossing'; }", timeout=90000)
    return _open_request(page)


def test_an_unanswered_crossing_keeps_the_robot_at_the_kerb_and_approval_lets_it_cross(
        page, stack: FakeRobot) -> None:
    robot = stack
    robot.publish_route([(0.0, 0.0), (12.0, 0.0)], crossings=[(4.0, 7.0)])
    request = _wait_for_crossing_question(page, robot)
    assert request['status'] == 'requested'
    assert robot.wait_for(lambda: robot.heard.cmd_vel and robot.heard.cmd_vel[-1][1] == 0.0)
    at_kerb, asked = robot.x, time.time()
    assert at_kerb < 4.0, 'the robot drove onto the crossing without asking'
    time.sleep(UNANSWERED_S)  # nobody answers
    assert robot.x - at_kerb < 0.05
    assert all(v == 0.0 for t, v, _ in robot.heard.cmd_vel if t > asked + 0.5)
    assert _open_request(page)['id'] == request['id']
    page.fill('#note', 'lights are green')
    page.click('#approve')
    assert robot.wait_for(lambda: robot.x > 7.2, timeout=60), \
        f'the robot did not cross after the approval (x = {robot.x:.2f})'


def test_a_declined_crossing_keeps_the_robot_on_the_kerb(page, stack: FakeRobot) -> None:
    robot = stack
    start = robot.x
    robot.publish_route([(start, 0.0), (start + 12.0, 0.0)],
                        crossings=[(start + 4.0, start + 7.0)])
    request = _wait_for_crossing_question(page, robot)
    assert robot.wait_for(lambda: robot.heard.cmd_vel[-1][1] == 0.0)
    page.fill('#note', 'too much traffic')
    page.click('#decline')
    assert robot.wait_for(lambda: robot.heard.answers
                          and robot.heard.answers[-1]['id'] == request['id'])
    declined_at = robot.x
    time.sleep(UNANSWERED_S)
    assert robot.x - declined_at < 0.05 and robot.x < start + 4.0


def test_driving_by_hand_towards_a_wall_is_vetoed_by_the_safety_monitor(page,
                                                                        stack: FakeRobot) -> None:
    robot = stack
    page.fill('#note', 'nudging it off the kerb')
    page.check('#manual-toggle')
    assert robot.wait_for(lambda: robot.heard.manual_mode and robot.heard.manual_mode[-1])
    forward = page.locator('[data-drive=forward]')
    pressed = time.time()
    forward.dispatch_event('pointerdown')
    try:
        assert robot.wait_for(lambda: any(v > 0.05 for t, v, _ in robot.heard.cmd_vel
                                          if t > pressed)), 'manual driving did not move it'
        robot.wall_ahead_m = 0.35  # just ahead of the bumper, inside the stop margin
        walled = time.time()
        assert robot.wait_for(lambda: robot.heard.safety_state() == 'STOP'
                              and any(v == 0.0 for t, v, _ in robot.heard.cmd_vel
                                      if t > walled))
        vetoed = time.time()
        time.sleep(1.0)  # the operator keeps the button pressed
        assert all(v == 0.0 for t, v, _ in robot.heard.cmd_vel if t > vetoed)
        # What the lidar shows stops it (the wall, or the path behind it it hides).
        assert robot.heard.safety[-1]['reason'] in ('obstacle_stop', 'approach_stop',
                                                    'coverage_stop')
    finally:
        forward.dispatch_event('pointerup')
        robot.wall_ahead_m = None
        page.uncheck('#manual-toggle')
    assert robot.wait_for(lambda: robot.heard.manual_mode[-1] is False)

"""`sidewalk-robot status --once` against real nodes: their levels and states, the safety
state, the model's health and a topic rate, as plain text."""
from __future__ import annotations

import math
import subprocess
from collections.abc import Callable

import numpy as np
from sensor_msgs.msg import LaserScan

from sidewalk_robot.ros_common import SENSOR_QOS
from conftest import REPO_ROOT, console_script


def test_status_once_shows_each_nodes_level_and_state(ros_process, make_node,
                                                      spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    safety = ros_process('safety_monitor_node', config='safety_monitor')
    health = ros_process('health_monitor_node', config='health_monitor')
    node = make_node('status_test_lidar')
    scans = node.create_publisher(LaserScan, '/scan', SENSOR_QOS)

    def publish_scan() -> None:
        scan = LaserScan()
        scan.header.stamp = node.get_clock().now().to_msg()
        scan.header.frame_id = 'laser_link'
        scan.angle_min, scan.angle_increment = -math.pi, math.radians(1.0)
        scan.angle_max = scan.angle_min + 359 * scan.angle_increment
        scan.range_min, scan.range_max = 0.1, 10.0
        scan.ranges = np.full(360, np.inf, dtype=np.float32).tolist()
        scans.publish(scan)

    node.create_timer(0.1, publish_scan)
    # Let every node come up before listening (each publishes its diagnostics at 1 Hz).
    assert spin_until(node, lambda: all(len(n.output()) > 0 for n in (planner, safety, health)),
                      timeout=20.0)
    spin_until(node, lambda: False, timeout=3.0)

    viewer = subprocess.Popen([console_script('sidewalk-robot'), 'status', '--once',
                               '--window', '4'], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
    assert spin_until(node, lambda: viewer.poll() is not None, timeout=60.0)
    output = viewer.stdout.read()
    assert viewer.returncode == 0, output

    lines = output.splitlines()

    def row(found: Callable[[str], bool]) -> str:
        matching = [line for line in lines if found(line)]
        assert matching, output
        return matching[0]

    planner_row = row(lambda line: line.strip().startswith('planner '))
    assert ' OK ' in planner_row and 'idle' in planner_row, output
    assert any(line.strip().startswith('safety_monitor') for line in lines), output
    health_row = row(lambda line: 'health_monitor: model health' in line)
    assert ' WARN ' in health_row and 'cannot judge' in health_row, output  # no grid yet
    section = lines[lines.index('PLANNER') + 1]
    assert section.strip().startswith('idle: no goal'), output
    safety_section = lines[lines.index('SAFETY') + 1]
    assert safety_section.strip().startswith('STOP'), output  # no odometry, no commands
    scan_rate = row(lambda line: line.strip().startswith('scan '))
    assert float(scan_rate.split()[1]) > 0.0, output
    assert all(process.alive() for process in (planner, safety, health))

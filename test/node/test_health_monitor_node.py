"""health_monitor_node over real DDS: a grid whose obstacle the lidar sees through drives the
model health to ERROR on monitoring/model_health and /diagnostics; once the lidar agrees it
recovers to OK, whatever another robot's perception reports on the shared /diagnostics."""
from __future__ import annotations

import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import LaserScan

from sidewalk_robot.ros_common import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, diagnostic_array, \
    diagnostic_status

WALL_X = 3.0
"""A wall across the way (in the grid), 2.7 m beyond the laser."""


def grid_message(stamp) -> OccupancyGrid:
    xs = -1.0 + 0.1 * (np.arange(80) + 0.5)
    values = np.zeros((80, 80), dtype=np.int8)
    values[:, (xs >= WALL_X) & (xs <= WALL_X + 0.3)] = 100
    values[:, xs < 0.9] = -1  # the camera's blind spot
    grid = OccupancyGrid()
    grid.header.stamp, grid.header.frame_id = stamp, 'base_link'
    grid.info.width = grid.info.height = 80
    grid.info.resolution = 0.1
    grid.info.origin.position.x, grid.info.origin.position.y = -1.0, -4.0
    grid.info.origin.orientation.w = 1.0
    grid.data = values.ravel().tolist()
    return grid


def scan_message(stamp, wall: bool) -> LaserScan:
    scan = LaserScan()
    scan.header.stamp, scan.header.frame_id = stamp, 'laser_link'
    scan.angle_min, scan.angle_increment = -math.pi, math.radians(1.0)
    scan.angle_max = scan.angle_min + 359 * scan.angle_increment
    scan.range_min, scan.range_max = 0.1, 10.0
    angles = scan.angle_min + scan.angle_increment * np.arange(360)
    with np.errstate(divide='ignore'):
        ranges = (WALL_X - 0.3) / np.cos(angles)
    hits = wall & (np.cos(angles) > 0.05) & (ranges <= 10.0)
    scan.ranges = np.where(hits, ranges, np.inf).astype(np.float32).tolist()
    return scan


def test_phantom_obstacles_make_the_health_an_error_and_agreement_makes_it_ok(
        ros_process, make_node, spin_until) -> None:
    monitor = ros_process('health_monitor_node', config='health_monitor')
    node = make_node('health_test_robot')
    grids = node.create_publisher(OccupancyGrid, '/perception/obstacle_grid', COMMAND_QOS)
    scans = node.create_publisher(LaserScan, '/scan', SENSOR_QOS)
    odometry = node.create_publisher(Odometry, '/odom', SENSOR_QOS)
    diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    reports: list[DiagnosticStatus] = []
    on_diagnostics: list[DiagnosticStatus] = []
    node.create_subscription(DiagnosticStatus, '/monitoring/model_health', reports.append,
                             LATCHED_QOS)
    node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: on_diagnostics.extend(s for s in m.status if 'model health' in s.name), 50)
    lidar = {'sees_the_wall': False}

    def sensors() -> None:
        stamp = node.get_clock().now().to_msg()
        pose = Odometry()
        pose.header.stamp, pose.header.frame_id = stamp, 'odom'
        pose.pose.pose.orientation.w = 1.0
        odometry.publish(pose)
        scans.publish(scan_message(stamp, lidar['sees_the_wall']))
        grids.publish(grid_message(stamp))

    def perception_report() -> None:
        status = diagnostic_status('perception: learned perception', 'camera', 'OK', 'ok',
                                   {'mean_confidence': 0.97, 'brightness': 0.65,
                                    'uncertainty': 0.05})
        # Another robot's stack in its namespace shares /diagnostics: not this robot's model.
        other_robot = diagnostic_status('robot2/perception: learned perception', 'camera',
                                        'WARN', 'unsure', {'mean_confidence': 0.3,
                                                           'brightness': 0.1,
                                                           'uncertainty': 0.9})
        diagnostics.publish(diagnostic_array(node.get_clock().now().to_msg(), status,
                                             other_robot))

    node.create_timer(0.1, sensors)
    node.create_timer(1.0, perception_report)

    def level_of(status: DiagnosticStatus) -> int:
        return status.level[0] if isinstance(status.level, bytes) else int(status.level)

    def values(status: DiagnosticStatus) -> dict[str, str]:
        return {kv.key: kv.value for kv in status.values}

    assert spin_until(node, lambda: bool(reports) and level_of(reports[-1]) == 2,
                      timeout=30.0), f'{[values(r) for r in reports[-2:]]}\n{monitor.output()}'
    report = values(reports[-1])
    assert float(report['health']) < 0.4 and float(report['phantom_obstacle_rate']) > 0.95
    assert 'phantom' in reports[-1].message
    assert spin_until(node, lambda: bool(on_diagnostics), timeout=5.0)
    assert on_diagnostics[-1].name == 'health_monitor: model health'

    lidar['sees_the_wall'] = True
    assert spin_until(node, lambda: level_of(reports[-1]) == 0, timeout=30.0), \
        f'{[values(r) for r in reports[-2:]]}\n{monitor.output()}'
    report = values(reports[-1])
    assert float(report['health']) >= 0.8  # warn_below + hysteresis: back to OK
    assert float(report['uncertainty']) == pytest.approx(0.05)  # this robot's perception's
    assert monitor.alive(), monitor.output()

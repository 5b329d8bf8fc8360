"""The fault injector node between a producer and a consumer, over real DDS."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import LaserScan

from sidewalk_robot.ros_common import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS

FAULTS = [{'type': 'perception_blind', 'start': 0.0},
          {'type': 'lidar_dropout', 'start': 0.0, 'duration': 1.0},
          {'type': 'planner_full_speed', 'start': 0.0, 'duration': 1.5}]


def test_injector_corrupts_grids_drops_scans_and_overrides_commands(
        ros_process, make_node, spin_until) -> None:
    injector = ros_process('fault_injector', command=[
        str(Path(sys.executable).parent / 'fault_injector_node'), '--ros-args',
        '--params-file', 'config/fault_injector.yaml', '-p', f"faults:='{json.dumps(FAULTS)}'"])
    node = make_node('fault_injector_test')
    grid_in = node.create_publisher(OccupancyGrid, '/fault_injector/in/perception/obstacle_grid',
                                    COMMAND_QOS)
    scan_in = node.create_publisher(LaserScan, '/fault_injector/in/scan', SENSOR_QOS)
    goal = node.create_publisher(PoseStamped, '/goal_pose', LATCHED_QOS)
    grids: list[list[int]] = []
    scans: list[float] = []
    commands: list[float] = []
    node.create_subscription(OccupancyGrid, '/perception/obstacle_grid',
                             lambda m: grids.append(list(m.data)), COMMAND_QOS)
    node.create_subscription(LaserScan, '/scan', lambda m: scans.append(time.monotonic()),
                             SENSOR_QOS)
    node.create_subscription(TwistStamped, '/cmd_vel_nav',
                             lambda m: commands.append(m.twist.linear.x), COMMAND_QOS)

    grid = OccupancyGrid()
    grid.info.width, grid.info.height = 4, 4
    grid.data = [100] * 16

    def publish_inputs() -> None:
        grid_in.publish(grid)
        scan_in.publish(LaserScan())

    node.create_timer(0.05, publish_inputs)
    assert spin_until(node, lambda: len(grids) >= 3 and len(scans) >= 3, timeout=20.0), \
        injector.output()
    assert grids[-1] == [100] * 16, 'before the mission the injector passes everything'
    assert not commands, 'no override before the mission'

    goal_message = PoseStamped()
    goal_message.header.frame_id = 'odom'
    goal.publish(goal_message)
    assert spin_until(node, lambda: grids and grids[-1] == [0] * 16, timeout=5.0)
    scans_before = len(scans)
    goal_seen = time.monotonic()
    spin_until(node, lambda: False, timeout=0.6)
    assert len(scans) - scans_before <= 2, 'scans are dropped during the dropout'
    assert commands and max(commands) == 1.5, 'full speed is commanded while active'
    assert spin_until(node, lambda: len(scans) - scans_before >= 5, timeout=5.0), \
        'scans come back after the dropout second'
    assert scans[-1] - goal_seen > 0.8
    assert grids[-1] == [0] * 16, 'the blind fault has no end'
    spin_until(node, lambda: time.monotonic() > goal_seen + 1.7, timeout=3.0)
    commands.clear()
    spin_until(node, lambda: False, timeout=1.0)
    assert not commands, 'the planner override ended after its duration'
    assert injector.alive()

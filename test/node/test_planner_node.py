"""planner_node over real DDS: goal + odometry + grids in, TwistStamped and reports out."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from sidewalk_robot.ros_common import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS

WIDTH = HEIGHT = 80
RESOLUTION = 0.1


def occupancy(node, values: np.ndarray) -> OccupancyGrid:
    grid = OccupancyGrid()
    grid.header.stamp = node.get_clock().now().to_msg()
    grid.header.frame_id = 'base_link'
    grid.info.width, grid.info.height, grid.info.resolution = WIDTH, HEIGHT, RESOLUTION
    grid.info.origin.position.x, grid.info.origin.position.y = -1.0, -4.0
    grid.info.origin.orientation.w = 1.0
    grid.data = values.astype(np.int8).ravel().tolist()
    return grid


class FakeRobot:
    """Publishes what the planner needs, standing still at the odom origin, and records replies."""

    def __init__(self, node, obstacles: np.ndarray, goal_qos: QoSProfile = LATCHED_QOS,
                 route_qos: QoSProfile = LATCHED_QOS) -> None:
        self.node = node
        self.obstacles = obstacles
        self.send_grids = True
        self.commands: list[TwistStamped] = []
        self.statuses: list[dict[str, str]] = []
        self.assist: list[dict] = []
        self.paths: list[Path] = []
        self.odom = node.create_publisher(Odometry, '/odom', SENSOR_QOS)
        self.obstacle_grid = node.create_publisher(OccupancyGrid, '/perception/obstacle_grid',
                                                   COMMAND_QOS)
        self.pedestrian_grid = node.create_publisher(OccupancyGrid, '/perception/pedestrian_grid',
                                                     COMMAND_QOS)
        self.goal = node.create_publisher(PoseStamped, '/goal_pose', goal_qos)
        self.route = node.create_publisher(Path, '/route', route_qos)
        node.create_subscription(TwistStamped, '/cmd_vel_nav', self.commands.append, COMMAND_QOS)
        node.create_subscription(Path, '/planning/path', self.paths.append, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 10)
        node.create_subscription(String, '/operator/assist_request',
                                 lambda m: self.assist.append(json.loads(m.data)), LATCHED_QOS)
        node.create_timer(0.05, self.tick)

    def on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name == 'planner':
                self.statuses.append({kv.key: kv.value for kv in status.values})

    def tick(self) -> None:
        odometry = Odometry()
        odometry.header.stamp = self.node.get_clock().now().to_msg()
        odometry.header.frame_id = 'odom'
        odometry.child_frame_id = 'base_link'
        odometry.pose.pose.orientation.w = 1.0
        self.odom.publish(odometry)
        if self.send_grids:
            self.obstacle_grid.publish(occupancy(self.node, self.obstacles))
            self.pedestrian_grid.publish(occupancy(self.node, np.zeros((HEIGHT, WIDTH))))

    def send_goal(self, x: float, y: float) -> None:
        goal = PoseStamped()
        goal.header.stamp = self.node.get_clock().now().to_msg()
        goal.header.frame_id = 'odom'
        goal.pose.position.x, goal.pose.position.y = x, y
        goal.pose.orientation.w = 1.0
        self.goal.publish(goal)

    def send_route(self, waypoints: list[tuple[float, float]], stamp=None) -> None:
        route = Path()
        route.header.stamp = stamp or self.node.get_clock().now().to_msg()
        route.header.frame_id = 'odom'
        for x, y in waypoints:
            waypoint = PoseStamped()
            waypoint.header = route.header
            waypoint.pose.position.x, waypoint.pose.position.y = x, y
            waypoint.pose.orientation.w = 1.0
            route.poses.append(waypoint)
        self.route.publish(route)

    def last_state(self) -> str | None:
        return self.statuses[-1]['state'] if self.statuses else None


def test_goal_odometry_and_grid_give_a_forward_command_and_stale_grid_stops(
        ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    node = make_node('planner_test_robot')
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)))
    robot.send_goal(5.0, 0.0)

    def driving_forward() -> bool:
        return any(c.twist.linear.x > 0.05 for c in robot.commands)

    assert spin_until(node, driving_forward, timeout=20.0), (
        f'no forward command; last states {robot.statuses[-3:]}\n{planner.output()}')
    moving = [c for c in robot.commands if c.twist.linear.x > 0.0]
    assert all(c.header.frame_id == 'base_link' for c in moving)
    assert all(c.twist.linear.x <= 1.5 and abs(c.twist.angular.z) <= 1.5 for c in robot.commands)
    assert spin_until(node, lambda: robot.last_state() == 'driving', timeout=5.0)
    assert spin_until(node, lambda: len(robot.paths) > 0 and len(robot.paths[-1].poses) > 0,
                      timeout=5.0)
    assert robot.paths[-1].header.frame_id == 'odom'

    robot.send_grids = False
    assert spin_until(node, lambda: robot.last_state() == 'waiting', timeout=5.0)
    assert 'stale' in robot.statuses[-1]['reason']
    robot.commands.clear()
    assert spin_until(node, lambda: len(robot.commands) >= 3, timeout=5.0)
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in robot.commands[-3:])
    assert planner.alive(), planner.output()


# What the tools people send goals with use: RViz's 2D Goal Pose, Foxglove and `ros2 topic pub`
# publish reliable + volatile (depth 10 / 1); many drivers and bridges publish best effort.
GOAL_PUBLISHERS = {
    'rviz_ros2_topic_pub_foxglove': QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                               durability=DurabilityPolicy.VOLATILE),
    'best_effort': QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE),
}


@pytest.mark.parametrize('publisher', sorted(GOAL_PUBLISHERS))
@pytest.mark.parametrize('mission', ['goal', 'route'])
def test_a_goal_or_route_sent_once_by_a_volatile_publisher_reaches_the_planner(
        mission, publisher, ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    node = make_node('planner_test_goal_tool')
    qos = GOAL_PUBLISHERS[publisher]
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)), goal_qos=qos, route_qos=qos)
    # A volatile message reaches only subscribers already matched: wait as a user at RViz would.
    assert spin_until(node, lambda: robot.last_state() is not None, timeout=20.0), planner.output()
    spin_until(node, lambda: False, timeout=0.5)
    if mission == 'goal':
        robot.send_goal(5.0, 0.0)
    else:
        robot.send_route([(0.0, 0.0), (5.0, 0.0)])

    assert spin_until(node, lambda: any(c.twist.linear.x > 0.05 for c in robot.commands),
                      timeout=10.0), f'{robot.statuses[-3:]}\n{planner.output()}'
    assert planner.output().count(f'new {mission}') == 1, planner.output()


def test_a_goal_latched_before_the_planner_started_still_reaches_it(
        ros_process, make_node, spin_until) -> None:
    node = make_node('planner_test_mission')
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)))
    robot.send_goal(5.0, 0.0)
    planner = ros_process('planner_node', config='planner')

    assert spin_until(node, lambda: any(c.twist.linear.x > 0.05 for c in robot.commands),
                      timeout=20.0), f'{robot.statuses[-3:]}\n{planner.output()}'
    assert planner.output().count('new goal') == 1, planner.output()


def test_robot_blocked_on_its_route_asks_an_operator_for_help(ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner', parameters={'stuck_timeout': 1.0})
    wall = np.zeros((HEIGHT, WIDTH))
    wall[:, 16:20] = 100  # a wall across the whole grid 0.6 m ahead of base_link
    node = make_node('planner_test_robot')
    robot = FakeRobot(node, wall)
    robot.send_route([(0.0, 0.0), (3.0, 0.0), (3.0, 2.0)])

    assert spin_until(node, lambda: len(robot.assist) > 0, timeout=20.0), (
        f'no assist request; last states {robot.statuses[-3:]}\n{planner.output()}')
    request = robot.assist[-1]
    assert request['status'] == 'requested'
    assert request['reason'] and request['pose']['frame_id'] == 'odom'
    assert abs(request['pose']['x']) < 1e-6 and request['time'] > 0.0
    assert request['goal'] == {'frame_id': 'odom', 'x': 3.0, 'y': 2.0}
    assert request['kind'] == 'blocked' and request['question'] == 'blocked: take the detour?'
    assert request['id'] and request['expires_at'] is None
    assert spin_until(node, lambda: robot.last_state() == 'blocked', timeout=5.0)
    assert robot.statuses[-1]['waypoints_total'] == '3'
    assert robot.commands and all(c.twist.linear.x == 0.0 for c in robot.commands)
    assert planner.alive(), planner.output()


def test_a_wall_only_the_lidar_sees_stops_the_robot_and_a_wrong_frame_is_refused(
        ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    node = make_node('planner_test_robot')
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)))  # perception sees nothing at all
    scans = node.create_publisher(LaserScan, '/scan', SENSOR_QOS)
    frame = {'id': 'laser_link'}
    sent_to_the_planner = []

    def publish_scan() -> None:
        scan = LaserScan()
        scan.header.stamp = node.get_clock().now().to_msg()
        scan.header.frame_id = frame['id']
        scan.angle_min, scan.angle_increment = -math.pi, math.radians(1.0)
        scan.angle_max = scan.angle_min + 359 * scan.angle_increment
        scan.range_min, scan.range_max = 0.1, 10.0
        angles = scan.angle_min + scan.angle_increment * np.arange(360)
        with np.errstate(divide='ignore'):
            ahead = 0.45 / np.cos(angles)  # a wall across the way 0.45 m beyond the laser
        scan.ranges = np.where((np.cos(angles) > 0.1) & (ahead <= 10.0), ahead,
                               np.inf).astype(np.float32).tolist()
        scans.publish(scan)
        if scans.get_subscription_count() > 0:
            sent_to_the_planner.append(scan.header.stamp)

    node.create_timer(0.1, publish_scan)
    # The wall in view before the goal: a planner that began driving on the empty grid before
    # its first scan keeps turning in place towards a way round (this robot never turns) until
    # stuck_timeout, 20 s, which a loaded machine's discovery made happen once.
    assert spin_until(node, lambda: len(sent_to_the_planner) >= 3, timeout=10.0)
    robot.send_goal(5.0, 0.0)

    def blocked_by_the_scan() -> bool:
        return bool(robot.statuses) and robot.statuses[-1].get('scan_in_use') == 'True' \
            and robot.last_state() in ('blocked', 'waiting')

    assert spin_until(node, blocked_by_the_scan, timeout=20.0), (
        f'last states {robot.statuses[-3:]}\n{planner.output()}')
    robot.commands.clear()
    assert spin_until(node, lambda: len(robot.commands) >= 5, timeout=5.0)
    assert all(c.twist.linear.x == 0.0 for c in robot.commands)

    frame['id'] = 'base_footprint'
    assert spin_until(node, lambda: 'frame' in robot.statuses[-1].get('last_input_error', ''),
                      timeout=10.0), robot.statuses[-3:]
    assert planner.alive(), planner.output()


def test_a_crossing_is_entered_only_after_the_operator_approves_it(
        ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    node = make_node('planner_test_crossing')
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)))
    crossings = node.create_publisher(String, '/route_crossings', LATCHED_QOS)
    answers = node.create_publisher(String, '/operator/assist_response', 10)
    route_stamp = node.get_clock().now()
    # The near kerb 0.8 m ahead: the robot standing at the origin is already at its stop.
    crossings.publish(String(data=json.dumps({
        'frame_id': 'odom', 'route_stamp': route_stamp.nanoseconds * 1e-9,
        'crossings': [{'start': {'x': 0.8, 'y': 0.0}, 'end': {'x': 3.0, 'y': 0.0}}]})))
    robot.send_route([(0.0, 0.0), (5.0, 0.0)], stamp=route_stamp.to_msg())

    assert spin_until(node, lambda: any(r['kind'] == 'crossing' for r in robot.assist),
                      timeout=20.0), f'{robot.statuses[-3:]}\n{planner.output()}'
    request = next(r for r in robot.assist if r['kind'] == 'crossing')
    assert request['status'] == 'requested' and request['question'] == 'crossing: go?'
    def at_the_kerb() -> bool:
        return bool(robot.statuses) and 'kerb' in robot.statuses[-1]['reason']

    assert spin_until(node, at_the_kerb, timeout=5.0), robot.statuses[-3:]
    assert robot.last_state() == 'waiting'
    robot.commands.clear()
    answers.publish(String(data=json.dumps({'id': 'crossing-unknown', 'decision': 'approve',
                                            'operator': 'test'})))
    assert spin_until(node, lambda: len(robot.commands) >= 10, timeout=5.0)
    assert all(c.twist.linear.x == 0.0 for c in robot.commands), 'crossed without approval'

    answers.publish(String(data=json.dumps({'id': request['id'], 'decision': 'approve',
                                            'operator': 'test', 'note': 'road clear'})))
    assert spin_until(node, lambda: any(c.twist.linear.x > 0.05 for c in robot.commands),
                      timeout=10.0), f'{robot.statuses[-3:]}\n{planner.output()}'
    def approved() -> list[dict]:
        return [r for r in robot.assist if r['id'] == request['id'] and r['status'] == 'approved']

    assert spin_until(node, lambda: bool(approved()), timeout=5.0), robot.assist
    assert approved()[0]['operator'] == 'test' and approved()[0]['expires_at'] > 0.0
    assert 'crossing-unknown' in planner.output()  # the stray answer was logged
    assert planner.alive(), planner.output()


def test_manual_mode_forwards_the_operators_commands_capped_and_stops_when_they_stop(
        ros_process, make_node, spin_until) -> None:
    planner = ros_process('planner_node', config='planner')
    node = make_node('planner_test_manual')
    robot = FakeRobot(node, np.zeros((HEIGHT, WIDTH)))
    mode = node.create_publisher(Bool, '/operator/manual_mode', LATCHED_QOS)
    manual = node.create_publisher(TwistStamped, '/operator/manual_cmd', COMMAND_QOS)
    sending = {'on': True}

    def joystick() -> None:
        if sending['on']:
            command = TwistStamped()
            command.header.stamp = node.get_clock().now().to_msg()
            command.header.frame_id = 'base_link'
            command.twist.linear.x, command.twist.angular.z = 3.0, 0.4
            manual.publish(command)

    node.create_timer(0.05, joystick)
    mode.publish(Bool(data=True))
    assert spin_until(node, lambda: any(c.twist.linear.x > 0.0 for c in robot.commands),
                      timeout=20.0), f'{robot.statuses[-3:]}\n{planner.output()}'
    forwarded = [c for c in robot.commands if c.twist.linear.x > 0.0]
    assert all(c.twist.linear.x == pytest.approx(0.8) for c in forwarded)  # manual_max_linear_speed
    assert all(c.twist.angular.z == pytest.approx(0.4) for c in forwarded)
    assert spin_until(node, lambda: robot.last_state() == 'manual', timeout=5.0)

    sending['on'] = False
    assert spin_until(node, lambda: 'stale' in robot.statuses[-1].get('reason', ''),
                      timeout=5.0), robot.statuses[-3:]
    robot.commands.clear()
    assert spin_until(node, lambda: len(robot.commands) >= 3, timeout=5.0)
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in robot.commands)

    mode.publish(Bool(data=False))
    assert spin_until(node, lambda: robot.last_state() == 'idle', timeout=5.0)
    assert planner.alive(), planner.output()

"""Record a short simulated drive as a replay test bag (how test/data/*.bag folders are made).

Starts sim_node (optionally with a scenario overlay) and the full stack, sends a goal straight
ahead, optionally presses the e-stop, and records the topics a replay needs (plus the stack's
own outputs, for reference) for a few simulated seconds:

    python -m sidewalk_robot.replay.capture -o test/data/pole_ahead --duration 5 \\
        --scenario test/data/scenarios/pole_ahead.yaml
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

CAPTURED_TOPICS = ('/camera/image_raw', '/camera/camera_info', '/scan', '/odom', '/goal_pose',
                   '/safety/estop', '/cmd_vel', '/cmd_vel_nav', '/safety/state')


def capture(output: Path, *, duration_s: float, goal_x_m: float, scenario: Path | None,
            world: str | None, estop_at_s: float | None, startup_timeout_s: float) -> int:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from sidewalk_robot.replay.recorder import BagRecorder
    from sidewalk_robot.replay.runner import STACK, ReplayOptions, Stack, StackNode
    from sidewalk_robot.ros_common import LATCHED_QOS
    from sidewalk_robot.ros_env import confine_this_run, loopback_environment

    print(f'ROS domain {confine_this_run()}')
    sim = StackNode('sim_node', 'sim', (), ('/clock', '/scan'))
    # Noise-free pixels compress several times better (MCAP zstd chunks): small test bags.
    sim_parameters = ['sensor_noise:=false']
    if scenario is not None:
        sim_parameters.append(f'scenario_file:={scenario.resolve()}')
    if world is not None:
        sim_parameters.append(f'world:={world}')
    output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix=f'capture-{output.name}-'))
    print(f'node logs in {log_dir}')
    stack = Stack([sim, *STACK], ReplayOptions(), log_dir,
                  loopback_environment(), extra_parameters={'sim': sim_parameters},
                  sim_time_nodes={'perception', 'planner', 'safety_monitor'})
    context = Context()
    rclpy.init(args=[], context=context)
    node = Node('capture', context=context,
                parameter_overrides=[Parameter('use_sim_time', Parameter.Type.BOOL, True)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    goal_publisher = node.create_publisher(PoseStamped, '/goal_pose', LATCHED_QOS)
    estop_publisher = node.create_publisher(Bool, '/safety/estop', LATCHED_QOS)
    recorder = None
    try:
        deadline = time.monotonic() + startup_timeout_s
        while node.count_subscribers('/cmd_vel') == 0 or \
                node.count_publishers('/perception/obstacle_grid') == 0 or \
                node.count_publishers('/cmd_vel_nav') == 0 or \
                node.get_clock().now().nanoseconds == 0:
            executor.spin_once(timeout_sec=0.1)
            if stack.dead() or time.monotonic() > deadline:
                print(f'capture: stack did not come up: {stack.dead()}', file=sys.stderr)
                return 2
        recorder = BagRecorder(node, output, CAPTURED_TOPICS)
        _spin(executor, 1.0)
        start = node.get_clock().now()
        goal = PoseStamped()
        goal.header.stamp, goal.header.frame_id = start.to_msg(), 'odom'
        goal.pose.position.x, goal.pose.orientation.w = goal_x_m, 1.0
        goal_publisher.publish(goal)
        estop_sent = False
        while (node.get_clock().now() - start).nanoseconds < duration_s * 1e9:
            executor.spin_once(timeout_sec=0.02)
            elapsed = (node.get_clock().now() - start).nanoseconds * 1e-9
            if estop_at_s is not None and not estop_sent and elapsed >= estop_at_s:
                estop_publisher.publish(Bool(data=True))
                estop_sent = True
            if stack.dead():
                print(f'capture: a process died: {stack.dead()}', file=sys.stderr)
                return 2
        _spin(executor, 0.3)
    finally:
        if recorder is not None:
            recorder.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        stack.stop()
    counts = recorder.message_counts
    print(f'{output}: ' + ', '.join(f'{t} {n}' for t, n in sorted(counts.items())))
    return 0


def _spin(executor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-o', '--output', type=Path, required=True, help='bag folder to create')
    parser.add_argument('--duration', type=float, default=4.0, help='simulated seconds')
    parser.add_argument('--goal-x', type=float, default=30.0, help='goal ahead, odom x [m]')
    parser.add_argument('--scenario', type=Path, help='simulator scenario overlay YAML')
    parser.add_argument('--world', help='world name')
    parser.add_argument('--estop-at', type=float, help='press the e-stop after this many s')
    parser.add_argument('--startup-timeout', type=float, default=120.0)
    arguments = parser.parse_args(argv)
    return capture(arguments.output, duration_s=arguments.duration, goal_x_m=arguments.goal_x,
                   scenario=arguments.scenario, world=arguments.world,
                   estop_at_s=arguments.estop_at, startup_timeout_s=arguments.startup_timeout)


if __name__ == '__main__':
    sys.exit(main())

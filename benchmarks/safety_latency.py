"""Safety monitor timings: core decision time and end-to-end veto latency over DDS.

    .venv/bin/python benchmarks/safety_latency.py [--decisions N] [--vetoes N]

1. Core: SafetyMonitor.update_scan + decide for a 360-beam scan (docs/interfaces.md geometry),
   in a sidewalk scene (also with its pedestrian walking head-on), in a cluttered one and with
   the path ahead unobserved (NaN beams, rule 10's slowest case), median and p99, as wall time
   and as this thread's CPU time (on a busy shared machine the wall-time tail is mostly time
   spent descheduled). Each decision is made twice on the same inputs, with rule 10 (path
   coverage, the default min_path_coverage) and with the previous rule set (min_path_coverage
   0), alternating which goes first, so both see the same machine load; the ratio is reported.
   The acceleration cap is lifted, so every decision judges the commanded speed (a monitor
   that has just stopped would otherwise judge only the next crawl step).
2. End to end: safety_monitor_node runs as its own process; this process streams scan, odom and
   a slow command, then publishes a scan with an obstacle inside stop_margin and times the
   arrival of the first zero /cmd_vel (the veto is published from the scan callback).
   The slow command (one acceleration step) lets the robot "drive" again one tick after the
   obstacle is removed, so many vetoes fit in a short run.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sidewalk_robot.ros_env import confine_this_run, loopback_environment
from sidewalk_robot.safety_monitor import (LaserScanData, OdometrySample, SafetyConfig,
                                           SafetyMonitor, VelocityCommand)

REPO_ROOT = Path(__file__).resolve().parent.parent
BEAMS = 360
ANGLES = -math.pi + 2 * math.pi / BEAMS * np.arange(BEAMS)
CRAWL_SPEED = 0.05
"""One acceleration step at the default max_linear_accel and publish_rate [m/s]."""
HAZARD_FROM_LASER = 0.2


def sidewalk_ranges(rng: np.random.Generator) -> np.ndarray:
    """Building wall 1.2 m to the left, kerb 1.0 m to the right, a pedestrian 1.5 m ahead."""
    with np.errstate(divide='ignore'):
        left = np.where(np.sin(ANGLES) > 0, 1.2 / np.sin(ANGLES), np.inf)
        right = np.where(np.sin(ANGLES) < 0, -1.0 / np.sin(ANGLES), np.inf)
    ranges = np.minimum(left, right)
    ranges[np.abs(ANGLES) < math.radians(6)] = 1.5
    ranges = ranges + rng.normal(0.0, 0.01, BEAMS)
    ranges[ranges > 10.0] = np.inf
    ranges[rng.integers(0, BEAMS, 5)] = np.nan
    return ranges


def cluttered_ranges(rng: np.random.Generator) -> np.ndarray:
    """A new random scene every scan: most sectors show a (clamped) closing speed, rule 9's
    slowest case."""
    return rng.uniform(0.6, 2.0, BEAMS)


def walker_scans(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """The sidewalk with its pedestrian walking head-on at 1.1 m/s, from 3.5 m to 0.8 m."""
    scans = []
    for index in range(count):
        ranges = sidewalk_ranges(rng)
        ranges[np.abs(ANGLES) < math.radians(6)] = 3.5 - 1.1 * 0.05 * index
        scans.append(ranges)
    return scans


def percentiles_ms(samples: list[float]) -> str:
    values = np.array(samples) * 1e3
    return (f'median {np.median(values):.3f} ms  p99 {np.percentile(values, 99):.3f} ms  '
            f'max {values.max():.3f} ms  (n={len(values)})')


def unobserved_front_ranges(rng: np.random.Generator) -> np.ndarray:
    """The sidewalk with the beams ahead NaN (a wall the sensor fails to measure): coverage is
    too low on every decision, so the first unobserved point is looked for each time."""
    ranges = sidewalk_ranges(rng)
    ranges[np.abs(ANGLES) < math.radians(30)] = np.nan
    return ranges


UNBOUNDED_ACCEL = 1e6
"""[m/s^2]: with the default acceleration cap, a monitor that has just stopped judges only the
crawl it may speed up to next (0.05 m/s, a path of a few centimetres); without it every
decision judges the commanded speed's full stopping path, the costly case being timed."""
RULE_SETS = (('coverage', SafetyConfig(max_linear_accel=UNBOUNDED_ACCEL)),
             ('previous', SafetyConfig(max_linear_accel=UNBOUNDED_ACCEL, min_path_coverage=0.0)))
"""Rule 10 on (the default) and off (the rule set before it), timed side by side, each judging
the commanded speed."""


def benchmark_core(decisions: int) -> None:
    rng = np.random.default_rng(7)
    print('core decision time (update_scan + decide, 360 beams); "coverage": rule 10 on, '
          '"previous": min_path_coverage 0')
    scenes = (('sidewalk', lambda: [sidewalk_ranges(rng) for _ in range(50)]),
              ('walker', lambda: walker_scans(rng, 50)),
              ('cluttered', lambda: [cluttered_ranges(rng) for _ in range(50)]),
              ('unobserved', lambda: [unobserved_front_ranges(rng) for _ in range(50)]))
    pooled: dict[str, list[float]] = {name: [] for name, _ in RULE_SETS}
    for scene, make_scans in scenes:
        for linear, angular in ((1.0, 0.0), (1.0, 0.4), (0.0, 1.0)):
            monitors = {name: SafetyMonitor(config) for name, config in RULE_SETS}
            scans = make_scans()
            timings = {name: [] for name in monitors}
            cpu_timings = {name: [] for name in monitors}
            now = 0.0
            for index in range(decisions):
                now += 0.05
                scan = LaserScanData(now, 'laser_link', -math.pi, math.pi - 2 * math.pi / BEAMS,
                                     2 * math.pi / BEAMS, 0.1, 10.0,
                                     scans[index % len(scans)])
                order = list(monitors) if index % 2 == 0 else list(reversed(monitors))
                for name in order:
                    monitor = monitors[name]
                    monitor.update_command(VelocityCommand(now, linear, angular), now)
                    monitor.update_odometry(OdometrySample(now, 0.0, 0.0), now)
                    start, cpu_start = time.perf_counter(), time.thread_time()
                    monitor.update_scan(scan, now)
                    monitor.decide(now)
                    timings[name].append(time.perf_counter() - start)
                    cpu_timings[name].append(time.thread_time() - cpu_start)
            warm = decisions // 10
            print(f'  {scene:10s} cmd ({linear:.1f} m/s, {angular:.1f} rad/s)')
            for name in monitors:
                pooled[name].extend(cpu_timings[name][warm:])
                print(f'    {name:8s} wall: {percentiles_ms(timings[name][warm:])}\n'
                      f'    {name:8s} cpu:  {percentiles_ms(cpu_timings[name][warm:])}')
            print(f'    cpu ratio coverage/previous: {ratios(cpu_timings, warm)}')
    print(f'all cases, cpu:\n  coverage: {percentiles_ms(pooled["coverage"])}\n'
          f'  previous: {percentiles_ms(pooled["previous"])}\n'
          f'  ratio coverage/previous: {ratios(pooled, 0)}')


def ratios(timings: dict[str, list[float]], warm: int) -> str:
    with_rule = np.array(timings['coverage'][warm:])
    without = np.array(timings['previous'][warm:])
    return (f'median {np.median(with_rule) / np.median(without):.2f}  '
            f'p99 {np.percentile(with_rule, 99) / np.percentile(without, 99):.2f}')


def benchmark_veto_latency(vetoes: int) -> None:
    confine_this_run()
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import LaserScan

    from sidewalk_robot.ros_common import COMMAND_QOS, SENSOR_QOS

    command = [str(Path(sys.executable).parent / 'safety_monitor_node'), '--ros-args',
               '--params-file', str(REPO_ROOT / 'config' / 'safety_monitor.yaml')]
    monitor_process = subprocess.Popen(command, env=loopback_environment(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
    rclpy.init()
    node = Node('safety_latency_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    scan_publisher = node.create_publisher(LaserScan, 'scan', SENSOR_QOS)
    odom_publisher = node.create_publisher(Odometry, 'odom', SENSOR_QOS)
    command_publisher = node.create_publisher(TwistStamped, 'cmd_vel_nav', COMMAND_QOS)
    received: list[tuple[float, float]] = []
    node.create_subscription(TwistStamped, 'cmd_vel',
                             lambda m: received.append((time.perf_counter(), m.twist.linear.x)),
                             COMMAND_QOS)

    clear = np.full(BEAMS, np.inf, dtype=np.float32)
    hazard = clear.copy()
    hazard[BEAMS // 2 - 20:BEAMS // 2 + 21] = HAZARD_FROM_LASER

    def publish_inputs(ranges: np.ndarray) -> float:
        stamp = node.get_clock().now().to_msg()
        odometry = Odometry()
        odometry.header.stamp = stamp
        odom_publisher.publish(odometry)
        twist = TwistStamped()
        twist.header.stamp = stamp
        twist.twist.linear.x = CRAWL_SPEED
        command_publisher.publish(twist)
        scan = LaserScan(angle_min=-math.pi, angle_max=math.pi - 2 * math.pi / BEAMS,
                         angle_increment=2 * math.pi / BEAMS, range_min=0.1, range_max=10.0)
        scan.header.stamp, scan.header.frame_id = stamp, 'laser_link'
        scan.ranges = ranges.tolist()
        sent = time.perf_counter()
        scan_publisher.publish(scan)
        return sent

    def run_until(predicate, ranges: np.ndarray, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        next_feed = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_feed:
                publish_inputs(ranges)
                next_feed = time.monotonic() + 0.05
            executor.spin_once(timeout_sec=0.002)
            if predicate():
                return True
        return False

    def moving() -> bool:
        return bool(received) and received[-1][1] > 0.0

    latencies: list[float] = []
    try:
        if not run_until(moving, clear, timeout=30.0):
            raise RuntimeError('safety_monitor_node never passed the command')
        for _ in range(vetoes):
            if not run_until(moving, clear, timeout=5.0):
                raise RuntimeError('the command did not pass again after the obstacle left')
            time.sleep(0.01)
            executor.spin_once(timeout_sec=0.0)
            sent = publish_inputs(hazard)
            count_before = len(received)
            vetoed = run_until(lambda: any(linear == 0.0 for _, linear in received[count_before:]),
                               hazard, timeout=2.0)
            if not vetoed:
                raise RuntimeError('no zero /cmd_vel after the obstacle appeared')
            arrival = next(t for t, linear in received[count_before:] if linear == 0.0)
            latencies.append(arrival - sent)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        monitor_process.terminate()
        monitor_process.wait(timeout=10)
    print(f'end-to-end veto latency (scan with obstacle published -> zero /cmd_vel received, '
          f'two processes over loopback DDS)\n  {percentiles_ms(latencies)}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--decisions', type=int, default=2000)
    parser.add_argument('--vetoes', type=int, default=150, help='0: core timings only')
    arguments = parser.parse_args()
    benchmark_core(arguments.decisions)
    if arguments.vetoes > 0:
        benchmark_veto_latency(arguments.vetoes)


if __name__ == '__main__':
    main()

"""Real-time factor of the headless simulator in every world, with and without the camera.

The loop is the one sim_node runs (SimRunner: 50 Hz physics, camera 320x240 at 10 Hz, lidar 360
beams at 10 Hz, odometry and IMU at 50 Hz, ground truth at 10 Hz), driven at 0.8 m/s along the
sidewalk with real_time_factor 0. Prints, per world and mode, the real-time factor over the run
and the median / p99 wall time per simulated second, plus camera-frame and scan times. Wall
time depends on what else runs on the machine, so CPU time (this thread) is printed as well.
Target: >= 5x real time with the camera on the 2-core bench.

    .venv/bin/python benchmarks/sim_speed.py [--seconds 10] [--worlds sidewalk_straight ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.headless import HeadlessSimulator
from sidewalk_robot.simulation.runner import SimRunner
from sidewalk_robot.simulation.world import available_worlds


def run(world: str, seconds: float, camera: bool) -> dict[str, float]:
    config = SimConfig(world=world, real_time_factor=0.0, camera_enabled=camera)
    with HeadlessSimulator(config=config) as simulator:
        runner = SimRunner(simulator)
        steps_per_second = round(config.physics_rate_hz)
        wall_per_second, cpu_per_second = [], []
        for _ in range(int(seconds)):
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(steps_per_second):
                runner.set_command(0.8, 0.0)
                runner.step()
            wall_per_second.append(time.perf_counter() - wall)
            cpu_per_second.append(time.thread_time() - cpu)
        frames, scans = [], []
        for _ in range(30):
            start = time.perf_counter()
            simulator.render_camera()
            frames.append(time.perf_counter() - start)
            start = time.perf_counter()
            simulator.scan()
            scans.append(time.perf_counter() - start)
    wall, cpu = np.array(wall_per_second), np.array(cpu_per_second)
    return {'rtf_wall': seconds / wall.sum(), 'rtf_cpu': seconds / cpu.sum(),
            'second_median': np.median(wall), 'second_p99': np.percentile(wall, 99),
            'frame_median': np.median(frames), 'frame_p99': np.percentile(frames, 99),
            'scan_median': np.median(scans), 'scan_p99': np.percentile(scans, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='sim seconds per run')
    parser.add_argument('--worlds', nargs='*', default=available_worlds())
    arguments = parser.parse_args()
    print(f'{"world":22s} {"mode":14s} {"RTF wall":>9s} {"RTF cpu":>8s} '
          f'{"s/sim-s med":>11s} {"p99":>6s} {"frame ms med":>12s} {"p99":>6s} '
          f'{"scan ms med":>11s} {"p99":>5s}')
    for world in arguments.worlds:
        for camera in (True, False):
            figures = run(world, arguments.seconds, camera)
            print(f'{world:22s} {"camera+lidar" if camera else "lidar only":14s} '
                  f'{figures["rtf_wall"]:8.1f}x {figures["rtf_cpu"]:7.1f}x '
                  f'{figures["second_median"]:11.3f} {figures["second_p99"]:6.3f} '
                  f'{figures["frame_median"] * 1e3:12.1f} {figures["frame_p99"] * 1e3:6.1f} '
                  f'{figures["scan_median"] * 1e3:11.2f} {figures["scan_p99"] * 1e3:5.2f}')


if __name__ == '__main__':
    main()

"""Replay throughput: recorded seconds per wall second, full stack vs raw bag reading.

A 60 s synthetic drive (camera 320x240 rgb8 at 10 Hz with sensor-like pixel noise, scan 10 Hz,
odometry 20 Hz, zstd MCAP)
is read raw (the upper bound: rosbags, no decoding), read and decoded, and replayed through
perception, planner and safety monitor at several rates. For each rate it prints the achieved
speed, how far the player fell behind, and whether the nodes kept up (frames without a grid,
latency p95). Medians over --repeats for the reads.

    .venv/bin/python benchmarks/replay.py [--duration 60] [--rates 2,4,8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sidewalk_robot.replay.bag_io import iter_messages, open_reader, typestore_for
from sidewalk_robot.replay.criteria import load_criteria
from sidewalk_robot.replay.synthetic import SyntheticDrive, write_synthetic_drive


def read_throughput(bag: Path, *, decode: bool) -> tuple[float, int]:
    """(recorded s per wall s, messages) for one full pass over the bag."""
    reader = open_reader(bag)
    try:
        store, _ = typestore_for(reader)
        recorded = reader.duration * 1e-9
        start = time.perf_counter()
        count = 0
        for connection, _, data in iter_messages(reader):
            if decode:
                store.deserialize_cdr(data, connection.msgtype)
            count += 1
        return recorded / (time.perf_counter() - start), count
    finally:
        reader.close()


def replay_throughput(bag: Path, rate: float, output: Path) -> dict:
    import rclpy
    from rclpy.context import Context

    from sidewalk_robot.replay.runner import ReplayOptions, replay_bag
    from sidewalk_robot.ros_env import confine_this_run

    confine_this_run()
    context = Context()
    rclpy.init(args=[], context=context)
    try:
        outcome = replay_bag(bag, output / f'rate{rate:g}', ReplayOptions(rate=rate),
                             load_criteria(None), context)
    finally:
        rclpy.try_shutdown(context=context)
    if outcome.evaluation is None:
        raise RuntimeError(f'replay at rate {rate} did not run: {outcome.reason}')
    return outcome.evaluation.metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, default=60.0, help='bag length [s]')
    parser.add_argument('--rates', default='2,4,8', help='replay rates to try')
    parser.add_argument('--repeats', type=int, default=5, help='passes for the raw reads')
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        bag = write_synthetic_drive(work / 'drive', SyntheticDrive(
            duration_s=arguments.duration, speed_mps=0.3, box_x_m=30.0, pixel_noise=6))
        size = sum(f.stat().st_size for f in bag.iterdir())
        print(f'bag: {arguments.duration:.0f} s, camera 10 Hz 320x240, {size / 1e6:.1f} MB '
              f'(zstd MCAP)')
        for decode in (False, True):
            speeds = [read_throughput(bag, decode=decode)[0] for _ in range(arguments.repeats)]
            label = 'read + decode' if decode else 'raw read     '
            print(f'{label}: median {statistics.median(speeds):8.1f} x real time '
                  f'(min {min(speeds):.1f}, max {max(speeds):.1f}, {arguments.repeats} passes)')
        print('full stack (perception + planner + safety monitor, use_sim_time):')
        print('   rate   achieved   max lag [s]   frames w/o grid   sensor->grid p95 [ms]   '
              'grid->cmd p95 [ms]')
        for rate in (float(r) for r in arguments.rates.split(',')):
            metrics = replay_throughput(bag, rate, work / 'out')
            print(f'{rate:7.1f} {metrics["replay_speed"]:9.2f}x {metrics["replay_max_lag_s"]:12.3f}'
                  f' {metrics["frames_without_grid"]:9d}/{metrics["frames"]:<5d}'
                  f' {_ms(metrics["sensor_to_grid_s_p95"]):>19}'
                  f' {_ms(metrics["grid_to_cmd_s_p95"]):>20}')
    return 0


def _ms(value: float | None) -> str:
    return '-' if value is None else f'{value * 1000:.1f}'


if __name__ == '__main__':
    sys.exit(main())

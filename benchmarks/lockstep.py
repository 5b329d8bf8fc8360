"""Lockstep speed: the test bags and a scenario, as ratios of simulated to wall time.

- read alone: recorded seconds per wall second reading each bag raw (rosbags, no decoding),
  the upper bound of any replay;
- replay: ``sidewalk-robot replay`` of all test bags in lockstep, one stack for the batch:
  per bag its playback (recorded s per wall s), the whole batch with the nodes' start-up, and
  the replay against reading the bag alone;
- scenario: one scenario of the suite in lockstep as ``sidewalk-robot scenarios`` runs it (the
  evidence ring buffer included, ``--keep-last 0`` without), three times: its mission
  (simulated s per wall s) and the whole run with the start-up, each run and their medians (a
  shared machine's speed moves by 10-20 % from one minute to the next), and each run's median
  CPU time per busy step of the nodes between an image and /cmd_vel (its lockstep.json).

The figures depend on the machine and on what else runs on it (the load average is printed);
the outcomes do not (test/system/test_lockstep_reproducible.py).

    .venv/bin/python benchmarks/lockstep.py [--scenario pole_in_path] [--scenario-runs 3]
                                            [--keep-last S] [--no-scenario]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sidewalk_robot.replay.bag_io import iter_messages, open_reader
from sidewalk_robot.system.evidence import DEFAULT_KEEP_LAST_S

REPO = Path(__file__).resolve().parents[1]
TEST_BAGS = sorted(p for p in (REPO / 'test' / 'data').iterdir()
                   if (p / 'metadata.yaml').is_file())


def read_alone(bag: Path, repeats: int = 3) -> tuple[float, float]:
    """(recorded seconds, median wall seconds) of reading every message of ``bag``."""
    walls = []
    for _ in range(repeats):
        reader = open_reader(bag)
        try:
            recorded = reader.duration * 1e-9
            start = time.perf_counter()
            for _message in iter_messages(reader):
                pass
            walls.append(time.perf_counter() - start)
        finally:
            reader.close()
    return recorded, statistics.median(walls)


def replay_batch(output: Path) -> tuple[float, dict[str, dict]]:
    """Wall seconds of replaying every test bag in lockstep, and each bag's lockstep.json."""
    from sidewalk_robot.replay.criteria import load_criteria
    from sidewalk_robot.replay.runner import ReplayOptions, replay_bags
    from sidewalk_robot.ros_env import confine_this_run

    confine_this_run()
    criteria = load_criteria(REPO / 'test' / 'data' / 'replay_criteria.yaml')
    start = time.perf_counter()
    outcomes = replay_bags(TEST_BAGS, output, ReplayOptions(), criteria)
    wall = time.perf_counter() - start
    failed = [f'{o.bag.name}: {o.status} {o.reason}' for o in outcomes if o.status != 'passed']
    if failed:
        raise RuntimeError(f'replay did not pass: {failed}')
    return wall, {bag.name: json.loads((output / bag.name / 'lockstep.json').read_text())
                  for bag in TEST_BAGS}


def scenario_run(name: str, output: Path, keep_last_s: float
                 ) -> tuple[float, float, float, dict[str, dict]]:
    """(mission simulated s, mission wall s, run wall s, each node's compute figures) of one
    lockstep scenario run, with the evidence ring buffer of ``keep_last_s`` simulated seconds
    (0: none)."""
    from sidewalk_robot.lockstep import LOCKSTEP_SUMMARY_FILE
    from sidewalk_robot.system.runner import RunOptions, new_run_directory, run_mission
    from sidewalk_robot.system.scenarios import load_suite
    from sidewalk_robot.system.suite import scenario_options

    (scenario,) = load_suite(None, [name])
    options = scenario_options(scenario, RunOptions(lockstep=True, record_bag=False,
                                                    keep_last_s=keep_last_s,
                                                    write_report=False))
    run_dir = new_run_directory(output, name)
    result = run_mission(options, run_dir)
    if result.summary is None or result.mission_wall_time_s is None:
        raise RuntimeError(f'scenario {name} did not run: {result.error}')
    compute = json.loads((run_dir / LOCKSTEP_SUMMARY_FILE).read_text(encoding='utf-8'))
    return (result.summary.mission_time_s, result.mission_wall_time_s, result.wall_time_s,
            compute['compute'])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenario', default='pole_in_path', help='scenario to time')
    parser.add_argument('--no-scenario', action='store_true', help='time the replays only')
    parser.add_argument('--scenario-runs', type=int, default=3,
                        help='runs of the scenario; the median ratio is reported')
    parser.add_argument('--keep-last', type=float, default=DEFAULT_KEEP_LAST_S, metavar='S',
                        help='evidence ring buffer of the scenario runs, as `sidewalk-robot '
                             'scenarios --keep-last` (default: its default; 0: none)')
    arguments = parser.parse_args()
    print(f'load average at start: {" ".join(f"{v:.2f}" for v in os.getloadavg())} '
          f'on {os.cpu_count()} CPUs')
    with tempfile.TemporaryDirectory(prefix='sidewalk-robot-bench-lockstep-') as scratch:
        scratch_path = Path(scratch)
        reads = {bag.name: read_alone(bag) for bag in TEST_BAGS}
        batch_wall, playbacks = replay_batch(scratch_path / 'replay')
        print('\nreplay in lockstep (one stack for the batch, declared latencies):')
        print(f'{"bag":<22}{"recorded s":>11}{"playback s":>11}{"sim/wall":>9}'
              f'{"read alone s":>13}{"replay/read":>12}')
        for bag in TEST_BAGS:
            recorded, read_wall = reads[bag.name]
            play_wall = playbacks[bag.name]['wall_s']
            print(f'{bag.name:<22}{recorded:>11.1f}{play_wall:>11.2f}'
                  f'{recorded / play_wall:>8.2f}x{read_wall:>13.4f}'
                  f'{play_wall / read_wall:>11.0f}x')
        total_recorded = sum(recorded for recorded, _ in reads.values())
        total_play = sum(p['wall_s'] for p in playbacks.values())
        total_read = sum(wall for _, wall in reads.values())
        print(f'{"all bags":<22}{total_recorded:>11.1f}{total_play:>11.2f}'
              f'{total_recorded / total_play:>8.2f}x{total_read:>13.4f}'
              f'{total_play / total_read:>11.0f}x')
        print(f'whole command (inspection, start-up once, {len(TEST_BAGS)} bags, evaluation): '
              f'{batch_wall:.1f} s wall for {total_recorded:.1f} s recorded = '
              f'{total_recorded / batch_wall:.2f}x real time')
        for bag, figures in playbacks.items():
            compute = ', '.join(f'{node} p95 {c["compute_p95_ms"]} ms'
                                for node, c in figures['compute'].items())
            print(f'  {bag}: {figures["steps"]} owner steps; {compute}')
        if not arguments.no_scenario:
            runs = [scenario_run(arguments.scenario, scratch_path / 'scenarios',
                                 arguments.keep_last) for _ in range(arguments.scenario_runs)]
            print(f'\nscenario {arguments.scenario} in lockstep, {len(runs)} runs, evidence '
                  f'ring buffer {arguments.keep_last:g} s (the outcome is the same every run; '
                  f'the wall time follows the machine):')
            for mission, mission_wall, run_wall, compute in runs:
                print(f'  {mission:.1f} s simulated in {mission_wall:.1f} s wall = '
                      f'{mission / mission_wall:.2f}x real time (wall/sim '
                      f'{mission_wall / mission:.2f}); with start-up {run_wall:.1f} s = '
                      f'{mission / run_wall:.2f}x')
                # What each image costs on its way to /cmd_vel, on this machine at that minute.
                print('    CPU per busy step, median: ' + ', '.join(
                    f'{node} {compute[node]["compute_median_ms"]:.1f} ms'
                    for node in ('perception', 'planner', 'safety_monitor') if node in compute))
            print(f'median: {statistics.median(m / w for m, w, _, _ in runs):.2f}x real time, '
                  f'{statistics.median(m / r for m, _, r, _ in runs):.2f}x with start-up')
    print(f'load average at end: {" ".join(f"{v:.2f}" for v in os.getloadavg())}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

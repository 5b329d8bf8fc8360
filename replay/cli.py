"""``sidewalk-robot record`` and ``sidewalk-robot replay`` (registered by sidewalk_robot/cli.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidewalk_robot.lockstep import add_lockstep_arguments, lockstep_options
from sidewalk_robot.system.parallel import ParallelError, add_parallel_arguments, parallelism_from


def register(subparsers: argparse._SubParsersAction) -> None:
    record = subparsers.add_parser(
        'record', help='record topics into a rosbag2 MCAP bag',
        description='Record topics (default: every topic discovered) into a rosbag2 bag in MCAP '
                    'format until Ctrl-C, SIGTERM or --duration. With --repair, finish a bag '
                    'whose recorder was killed.')
    record.add_argument('topics', nargs='*', help='topics to record (default: all)')
    record.add_argument('-o', '--output', type=Path,
                        help='bag folder to create (default: runs/bags/<date-time>)')
    record.add_argument('--use-sim-time', action='store_true',
                        help='timestamp messages with /clock instead of the system clock')
    record.add_argument('--duration', type=float, help='stop after this many seconds')
    record.add_argument('--repair', type=Path, metavar='BAG',
                        help='rebuild the index and metadata.yaml of an unfinished bag')
    record.set_defaults(handler=_record)

    replay = subparsers.add_parser(
        'replay', help='replay bags through perception, planner and safety monitor and evaluate',
        description='Play the sensor topics of each bag with /clock into the real nodes, record '
                    'their outputs, evaluate every frame against the criteria and write '
                    'result.jsonl, summary.json, junit.xml and timeline.png. By default in '
                    'lockstep: the player and the nodes take turns, so every run gives the '
                    'same answer, as fast as the nodes can go. Exit status: 0 all criteria '
                    'pass, 1 a criterion failed, 2 a bag could not be replayed.')
    replay.add_argument('bags', nargs='+', type=Path, help='bag folders')
    replay.add_argument('--realtime', action='store_true',
                        help='pace the bag against the wall clock (--rate) instead of lockstep: '
                             'for latency measurements; results then depend on machine load')
    replay.add_argument('--rate', type=float, default=None,
                        help='with --realtime: playback speed relative to recorded time '
                             '(default 1.0)')
    add_lockstep_arguments(replay)
    replay.add_argument('--model', type=Path,
                        help='perception model to use (model.pt or its folder)')
    replay.add_argument('--params', type=Path, help='extra ROS parameter file for the nodes')
    replay.add_argument('--criteria', type=Path,
                        help='criteria YAML (default: replay_criteria.yaml next to the bags)')
    replay.add_argument('-o', '--output', type=Path,
                        help='report folder (default: runs/replay/<date-time>)')
    replay.add_argument('--compare', nargs=2, type=Path, metavar=('A', 'B'),
                        help='replay twice, with two model files or two parameter files, and '
                             'report the differences side by side')
    replay.add_argument('--nodes', default='perception,planner,safety_monitor',
                        help='comma-separated nodes to start (default: all three)')
    replay.add_argument('--startup-timeout', type=float, default=60.0,
                        help='seconds to wait for the nodes to come up (default 60)')
    add_parallel_arguments(replay, 'bags')
    replay.set_defaults(handler=_replay)


def _default_output(kind: str) -> Path:
    from datetime import datetime

    return Path('runs') / kind / datetime.now().strftime('%Y%m%d-%H%M%S')


def _record(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.replay.bag_io import BagError, repair_bag

    if arguments.repair is not None:
        try:
            report = repair_bag(arguments.repair)
        except BagError as error:
            print(f'record --repair: {error}', file=sys.stderr)
            return 2
        print(f'repaired {report.path}: {report.recovered_messages} messages kept, '
              f'{report.dropped_tail_bytes} bytes of unfinished data dropped')
        for topic, count in sorted(report.recovered_topics.items()):
            print(f'  {topic}: {count}')
        for problem in report.problems:
            print(f'  note: {problem}')
        return 0
    from sidewalk_robot.replay.recorder import record_until_stopped

    output = arguments.output or _default_output('bags')
    output.parent.mkdir(parents=True, exist_ok=True)
    return record_until_stopped(output, arguments.topics or None,
                                use_sim_time=arguments.use_sim_time,
                                duration_s=arguments.duration)


def _replay(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.replay.runner import ReplayOptions, run_replay_command

    STACK_NODE_NAMES = ('perception', 'planner', 'safety_monitor')

    if arguments.rate is not None and not arguments.realtime:
        print('replay: --rate paces a --realtime replay; lockstep runs as fast as the nodes '
              'answer', file=sys.stderr)
        return 2
    rate = 1.0 if arguments.rate is None else arguments.rate
    if rate <= 0:
        print('replay: --rate must be positive', file=sys.stderr)
        return 2
    try:
        latencies = lockstep_options(arguments)
    except ValueError as error:
        print(f'replay: {error}', file=sys.stderr)
        return 2
    nodes = tuple(name.strip() for name in arguments.nodes.split(',') if name.strip())
    unknown = sorted(set(nodes) - set(STACK_NODE_NAMES))
    if unknown or not nodes:
        print(f'replay: --nodes takes some of {", ".join(STACK_NODE_NAMES)}; got {unknown}',
              file=sys.stderr)
        return 2
    try:
        parallelism = parallelism_from(arguments)
    except (ValueError, ParallelError) as error:
        print(f'replay: {error}', file=sys.stderr)
        return 2
    options = ReplayOptions(
        rate=rate, model=arguments.model, params=arguments.params,
        criteria=arguments.criteria, startup_timeout_s=arguments.startup_timeout, nodes=nodes,
        lockstep=not arguments.realtime, latencies=latencies,
        measured_latency=arguments.measured_latency,
        lockstep_timeout_s=arguments.lockstep_timeout)
    output = arguments.output or _default_output('replay')
    try:
        return run_replay_command(arguments.bags, output, options, compare=arguments.compare,
                                  parallelism=parallelism)
    except ParallelError as error:
        print(f'replay: {error}', file=sys.stderr)
        return 2

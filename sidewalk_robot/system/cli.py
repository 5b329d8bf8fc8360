"""``sidewalk-robot demo`` and ``sidewalk-robot scenarios``."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from sidewalk_robot.system.runner import (DEFAULT_WORLD, RunOptions, format_summary,
                                          new_run_directory, run_mission)

DEFAULT_OUTPUT = Path('runs')


class StatusPrinter:
    """Prints run messages; the once-a-second status line overwrites itself on a terminal."""

    def __init__(self, stream=sys.stdout) -> None:
        self._stream = stream
        self._interactive = stream.isatty()
        self._open_line = False

    def __call__(self, text: str, transient: bool) -> None:
        if transient and self._interactive:
            self._stream.write('\r' + text)
            self._open_line = True
        else:
            if self._open_line:
                self._stream.write('\n')
            self._stream.write(text + '\n')
            self._open_line = False
        self._stream.flush()

    def finish(self) -> None:
        if self._open_line:
            self._stream.write('\n')
            self._open_line = False


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='simulated seconds per wall second (default 1.0; 0 = as fast as '
                             'the simulator can)')
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT,
                        help='folder for the run folders (default runs/)')
    parser.add_argument('--startup-timeout', type=float, default=120.0,
                        help='wall seconds for the stack to come up (default 120)')


def run_demo(arguments: argparse.Namespace) -> int:
    printer = StatusPrinter()
    options = RunOptions(world=arguments.world, seed=arguments.seed,
                         real_time_factor=arguments.real_time_factor,
                         timeout_s=arguments.timeout, record_bag=not arguments.no_bag,
                         startup_timeout_s=arguments.startup_timeout, progress=printer,
                         title=f'demo delivery on {arguments.world}')
    run_dir = new_run_directory(arguments.output, 'demo')
    print(f'sidewalk-robot demo: headless simulation of {arguments.world} with the full stack '
          '(launch/sim.launch.xml), one delivery')
    try:
        result = run_mission(options, run_dir)
    except (ValueError, FileNotFoundError) as error:  # LaunchFileError is a ValueError
        print(f'error: {error}', file=sys.stderr)
        return 2
    printer.finish()
    print(format_summary(result))
    if result.summary is None:
        return 1
    return 0 if result.summary.arrived and result.summary.collisions == 0 else 1


def run_scenarios(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.system.scenarios import load_suite
    from sidewalk_robot.system.suite import run_suite
    from sidewalk_robot.system.suite_report import (group_figures, results_table,
                                                    system_report_markdown, write_suite_outputs)

    try:
        scenarios = load_suite(arguments.directory, arguments.only or ())
    except (ValueError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    if arguments.list:
        for scenario in scenarios:
            print(f'{scenario.name:<30} {scenario.world:<20} {scenario.fault_group:<20} '
                  f'{scenario.description}')
        return 0
    stamp = datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')
    suite_dir = arguments.output / f'scenarios-{stamp}'
    base = RunOptions(real_time_factor=arguments.real_time_factor,
                      record_bag=arguments.record, startup_timeout_s=arguments.startup_timeout,
                      progress=StatusPrinter() if arguments.verbose else None)
    results = run_suite(scenarios, base, suite_dir)
    paths = write_suite_outputs(results, suite_dir)
    print()
    print(results_table(results))
    print()
    print(system_report_markdown(group_figures(results)))
    print(f'\n{sum(r.passed for r in results)}/{len(results)} scenarios passed; '
          f'{paths["result"]}, {paths["junit"]}, {paths["report"]}')
    return 0 if all(r.passed for r in results) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        'demo', help='simulate one delivery with the full stack and write a run report',
        description='Start the headless simulator and the full stack from launch/sim.launch.xml '
                    'as separate processes, send a delivery goal and report the outcome in '
                    'runs/<timestamp>-demo/ (MCAP bag, summary.json, report.png).')
    demo.add_argument('--world', default=DEFAULT_WORLD, help=f'world (default {DEFAULT_WORLD})')
    demo.add_argument('--seed', type=int, default=0, help='simulation seed (default 0)')
    demo.add_argument('--timeout', type=float, default=120.0,
                      help='simulated seconds to reach the goal (default 120)')
    demo.add_argument('--no-bag', action='store_true', help='do not record the MCAP bag')
    _add_common(demo)
    demo.set_defaults(handler=run_demo)

    scenarios = subparsers.add_parser(
        'scenarios', help='run the scenario suite (with fault injection) and report',
        description='Run every scenario of config/scenarios/ (or --only some), judge each '
                    'against its success criteria, and write result.json, junit.xml and '
                    'system_report.md to runs/scenarios-<timestamp>/.')
    scenarios.add_argument('--only', nargs='+', metavar='NAME', help='run just these scenarios')
    scenarios.add_argument('--list', action='store_true', help='list the scenarios and exit')
    scenarios.add_argument('--directory', type=Path, default=None,
                           help='scenario folder (default config/scenarios)')
    scenarios.add_argument('--record', action='store_true',
                           help='record an MCAP bag of every scenario (off by default: disk, CPU)')
    scenarios.add_argument('--verbose', action='store_true',
                           help='print each run\'s progress lines')
    _add_common(scenarios)
    scenarios.set_defaults(handler=run_scenarios)

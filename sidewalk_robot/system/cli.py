"""``sidewalk-robot demo``, ``scenarios``, ``sweep`` and ``status``."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from sidewalk_robot.lockstep import add_lockstep_arguments, lockstep_options
from sidewalk_robot.system.evidence import DEFAULT_KEEP_LAST_S
from sidewalk_robot.system.parallel import ParallelError, add_parallel_arguments, parallelism_from
from sidewalk_robot.system.runner import (DEFAULT_WORLD, RunOptions, format_summary,
                                          new_run_directory, run_mission)
from sidewalk_robot.system.status import register as register_status

DEFAULT_OUTPUT = Path('runs')


class StatusPrinter:
    """Prints run messages; the once-a-second status line overwrites itself on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        # Looked up now, not at import: sys.stdout may have been replaced since (pytest).
        self._stream = stream if stream is not None else sys.stdout
        self._interactive = self._stream.isatty()
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


def _add_common(parser: argparse.ArgumentParser, *, lockstep_default: bool) -> None:
    if lockstep_default:
        parser.add_argument('--realtime', action='store_true',
                            help='pace the simulation against the wall clock '
                                 '(--real-time-factor) instead of lockstep: outcomes then '
                                 'depend on how busy the machine is')
    else:
        parser.add_argument('--lockstep', action='store_true',
                            help='simulator and nodes take turns: the same outcome on every '
                                 'run, as fast as the nodes can go')
    parser.add_argument('--real-time-factor', type=float, default=None,
                        help='realtime runs: simulated seconds per wall second (default 1.0; '
                             '0 = as fast as the simulator can)')
    add_lockstep_arguments(parser)
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT,
                        help='folder for the run folders (default runs/)')
    parser.add_argument('--startup-timeout', type=float, default=120.0,
                        help='wall seconds for the stack to come up (default 120)')


def _add_evidence(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--keep-last', type=float, default=DEFAULT_KEEP_LAST_S, metavar='S',
                        help='without --record: simulated seconds of every topic kept in memory '
                             'and written as the bag of a run that fails (default %(default)s; '
                             '0: none)')


def _pacing(arguments: argparse.Namespace) -> dict[str, object]:
    """RunOptions' pacing fields from ``_add_common``'s options (ValueError when they clash)."""
    lockstep = (not arguments.realtime if hasattr(arguments, 'realtime')
                else arguments.lockstep)
    if lockstep and arguments.real_time_factor is not None:
        raise ValueError('--real-time-factor paces a realtime run; a lockstep run goes as fast '
                         'as the nodes answer')
    latencies = lockstep_options(arguments)
    return {'lockstep': lockstep,
            'real_time_factor': 1.0 if arguments.real_time_factor is None
            else arguments.real_time_factor,
            'latencies': latencies, 'measured_latency': arguments.measured_latency,
            'lockstep_timeout_s': arguments.lockstep_timeout}


def run_demo(arguments: argparse.Namespace) -> int:
    printer = StatusPrinter()
    try:
        pacing = _pacing(arguments)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    options = RunOptions(world=arguments.world, seed=arguments.seed,
                         timeout_s=arguments.timeout, record_bag=not arguments.no_bag,
                         startup_timeout_s=arguments.startup_timeout, progress=printer,
                         namespace=arguments.namespace,
                         title=f'demo delivery on {arguments.world}', **pacing)
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
    try:
        parallelism = parallelism_from(arguments)
        pacing = _pacing(arguments)
    except (ValueError, ParallelError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')
    suite_dir = arguments.output / f'scenarios-{stamp}'
    base = RunOptions(record_bag=arguments.record, keep_last_s=arguments.keep_last,
                      startup_timeout_s=arguments.startup_timeout,
                      progress=StatusPrinter() if arguments.verbose else None, **pacing)
    started = time.monotonic()
    try:
        results = run_suite(scenarios, base, suite_dir, parallelism)
    except ParallelError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    wall_s = time.monotonic() - started
    paths = write_suite_outputs(results, suite_dir)
    print()
    print(results_table(results))
    print()
    print(system_report_markdown(group_figures(results)))
    print(f'\n{sum(r.passed for r in results)}/{len(results)} scenarios passed; '
          f'{paths["result"]}, {paths["junit"]}, {paths["report"]}')
    print(pace_line(results, wall_s, base.lockstep))
    return 0 if all(r.passed for r in results) else 1


def pace_line(results, wall_s: float, lockstep: bool) -> str:
    """How fast the suite ran: wall time against the simulated time of its missions."""
    simulated = sum(r.summary.mission_time_s for r in results if r.summary is not None)
    ratio = f'{wall_s / simulated:.2f} wall s per simulated s' if simulated > 0 else 'no missions'
    return (f'{"lockstep" if lockstep else "realtime"}: {wall_s / 60:.1f} min wall for '
            f'{simulated:.0f} s of missions ({ratio}, start-up included)')


def run_sweep_command(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.system.sweep import (SweepPlan, load_outcomes, load_plan,
                                             new_sweep_directory, run_sweep, save_plan)
    from sidewalk_robot.system.sweep_report import sweep_figures

    try:
        parallelism = parallelism_from(arguments)
        if arguments.resume is not None:
            if arguments.scenario is not None or arguments.seed is not None:
                raise ValueError('--resume takes the scenario and the seed from the sweep '
                                 'folder; give only --samples to extend it')
            directory = arguments.resume
            plan = load_plan(directory)
            if arguments.samples is not None:
                if arguments.samples < plan.samples:
                    raise ValueError(f'the sweep has {plan.samples} variants already; '
                                     f'--samples can only extend it')
                plan = replace(plan, samples=arguments.samples)
                save_plan(directory, plan)
        else:
            if arguments.scenario is None:
                raise ValueError('give a scenario file with a sweep block, or --resume DIR')
            pacing = _pacing(arguments)
            plan = SweepPlan(
                scenario_text=arguments.scenario.read_text(encoding='utf-8'),
                source=str(arguments.scenario), seed=arguments.seed or 0,
                samples=arguments.samples if arguments.samples is not None else 20,
                record_bag=arguments.record, keep_last_s=arguments.keep_last,
                startup_timeout_s=arguments.startup_timeout, **pacing)
            if plan.samples < 1:
                raise ValueError('--samples must be at least 1')
            name = plan.scenario().name
            directory = new_sweep_directory(arguments.output, name)
            save_plan(directory, plan)
        outcomes = run_sweep(plan, directory, parallelism)
    except (ValueError, FileNotFoundError, ParallelError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    figures = sweep_figures(outcomes, plan.samples)
    print(f'\nsweep of {plan.samples} variants, seed {plan.seed}: {figures.judged} judged')
    print(f'  arrived:        {figures.arrived.text()}')
    print(f'  collision-free: {figures.collision_free.text()}')
    print(f'  passed:         {figures.passed.text()}')
    print(f'  report: {directory / "sweep_report.md"}')
    complete = not figures.missing and not figures.not_judged
    return 0 if complete and figures.collision_free.successes == figures.judged else 1


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
    demo.add_argument('--namespace', default='',
                      help='ROS namespace of the simulator and the stack (default: none)')
    _add_common(demo, lockstep_default=False)
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
                           help='print each run\'s progress lines (one run at a time only)')
    _add_evidence(scenarios)
    _add_common(scenarios, lockstep_default=True)
    add_parallel_arguments(scenarios, 'scenarios')
    scenarios.set_defaults(handler=run_scenarios)

    sweep = subparsers.add_parser(
        'sweep', help='run random variants of a scenario and report rates with confidence bounds',
        description='Draw variants from the distributions in a scenario file\'s sweep block, '
                    'run them, and write sweep_report.md/.json/.png (arrival and collision-free '
                    'rates with 95 percent Clopper-Pearson bounds, vetoes per 100 m, the worst '
                    'runs with their evidence) to runs/sweep-<name>-<timestamp>/. Variant i '
                    'depends only on (seed, i). Exit status: 0 every variant judged and none '
                    'collided, 1 otherwise, 2 usage errors.')
    sweep.add_argument('scenario', nargs='?', type=Path,
                       help='scenario file with a sweep block (e.g. config/sweeps/*.yaml)')
    sweep.add_argument('--samples', type=int, default=None,
                       help='variants to run (default 20; with --resume: extend to this many)')
    sweep.add_argument('--seed', type=int, default=None, help='sweep seed (default 0)')
    sweep.add_argument('--resume', type=Path, metavar='DIR',
                       help='continue an interrupted sweep folder: run the variants it lacks')
    sweep.add_argument('--record', action='store_true',
                       help='record an MCAP bag of every variant (default: failed ones only)')
    _add_evidence(sweep)
    _add_common(sweep, lockstep_default=True)
    add_parallel_arguments(sweep, 'variants')
    sweep.set_defaults(handler=run_sweep_command)
    register_status(subparsers)

"""Replay bags through the real nodes started as processes, evaluate, and write the reports.

inspect every bag -> start the nodes -> wait until they and the output recorder are connected
-> play the sensor topics with /clock -> stop -> evaluate -> result.jsonl, summary.json,
timeline.png per bag; summary.json and junit.xml for the run.

In lockstep (the default, lockstep_session.py) the player and the nodes take turns, so every
run gives the same answer; the nodes start once for all bags and reset between them (a new
lockstep episode). Realtime (``ReplayOptions.lockstep`` False, ``--realtime``) paces the bag
against the wall clock with a fresh stack per bag, so state such as a latched e-stop never
leaks from one bag into the next.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from sidewalk_robot import share_directory
from sidewalk_robot.replay.bag_io import BagError, iter_messages, open_reader
from sidewalk_robot.replay.criteria import ReplayCriteria, find_criteria, load_criteria
from sidewalk_robot.replay.evaluation import Evaluation, evaluate
from sidewalk_robot.replay.inspection import (PLAYED_TOPICS, BagInspection, inspect_bag,
                                              load_record)
from sidewalk_robot.replay.report import (bag_evidence, write_bag_report, write_bag_summary,
                                          write_comparison, write_junit, write_run_summary)
from sidewalk_robot.system.parallel import Parallelism, relocated_path, run_tasks

EXIT_PASSED, EXIT_CRITERION_FAILED, EXIT_NOT_REPLAYED = 0, 1, 2


@dataclass(frozen=True)
class StackNode:
    executable: str
    name: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]


STACK = (
    StackNode('perception_node', 'perception', ('/camera/image_raw',),
              ('/perception/obstacle_grid', '/perception/pedestrian_grid')),
    StackNode('planner_node', 'planner', ('/odom',), ('/cmd_vel_nav', '/planning/path')),
    StackNode('safety_monitor_node', 'safety_monitor', ('/scan', '/odom'),
              ('/cmd_vel', '/safety/state')),
)
MODEL_PARAMETER = 'model_dir'
"""perception_node's parameter naming the model folder (model.pt + card.json)."""

OUTPUT_TOPICS = ('/perception/obstacle_grid', '/perception/pedestrian_grid', '/cmd_vel_nav',
                 '/cmd_vel', '/safety/state', '/planning/path', '/diagnostics')


@dataclass(frozen=True)
class ReplayOptions:
    rate: float = 1.0
    """Realtime only: recorded seconds per wall second."""
    model: Path | None = None
    params: Path | None = None
    criteria: Path | None = None
    startup_timeout_s: float = 60.0
    nodes: tuple[str, ...] = tuple(node.name for node in STACK)
    tail_s: float = 1.0
    clock_period_s: float = 0.01
    """Realtime: the /clock tick between messages; lockstep: the grid of the steps."""
    lockstep: bool = True
    latencies: tuple[tuple[str, float], ...] = ()
    """Lockstep: declared latencies [s] by node name, instead of lockstep.DECLARED_LATENCY_S."""
    measured_latency: bool = False
    """Lockstep: outputs take effect after each step's measured compute time instead."""
    lockstep_timeout_s: float = 60.0
    """Lockstep: wall seconds a step may wait for a node before the bag is given up."""


@dataclass
class BagOutcome:
    bag: Path
    status: str  # 'passed' | 'failed' | 'skipped'
    reason: str = ''
    evaluation: Evaluation | None = None
    inspection: BagInspection | None = None
    report_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


class StackError(RuntimeError):
    """The nodes could not be started or connected; the message includes their logs."""


# ------------------------------------------------------------------------ processes

def _executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f'{name} is not installed (run make install)')
    return found


def node_command(node: StackNode, options: ReplayOptions, *, sim_time: bool = True,
                 extra_parameters: Sequence[str] = ()) -> list[str]:
    """config/<node>.yaml, then --params, then use_sim_time, --model and ``extra_parameters``
    (``name:=value``): later ones win."""
    command = [_executable(node.executable), '--ros-args']
    default_params = share_directory() / 'config' / f'{node.name}.yaml'
    if default_params.is_file():
        command += ['--params-file', str(default_params)]
    if options.params is not None:
        command += ['--params-file', str(options.params.resolve())]
    if sim_time:
        command += ['-p', 'use_sim_time:=true']
    if node.name == 'perception' and options.model is not None:
        model_dir = options.model if options.model.is_dir() else options.model.parent
        command += ['-p', f'{MODEL_PARAMETER}:={model_dir.resolve()}']
    for parameter in extra_parameters:
        command += ['-p', parameter]
    return command


class Stack:
    """The node processes of one replay, each in its own process group, logs in ``log_dir``."""

    def __init__(self, nodes: Sequence[StackNode], options: ReplayOptions, log_dir: Path,
                 environment: dict[str, str], *,
                 extra_parameters: dict[str, Sequence[str]] | None = None,
                 sim_time_nodes: set[str] | None = None) -> None:
        self.nodes = list(nodes)
        extra_parameters = extra_parameters or {}
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        commands = {node.name: node_command(
            node, options, extra_parameters=extra_parameters.get(node.name, ()),
            sim_time=sim_time_nodes is None or node.name in sim_time_nodes)
            for node in self.nodes}  # every executable found before anything starts
        for node in self.nodes:
            log = (log_dir / f'{node.name}.log').open('w', encoding='utf-8')
            command = commands[node.name]
            self.processes[node.name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT,
                env={**environment, 'PYTHONUNBUFFERED': '1'}, start_new_session=True,
                cwd=share_directory())
            log.close()

    def dead(self) -> dict[str, int]:
        return {name: code for name, process in self.processes.items()
                if (code := process.poll()) is not None}

    def log_tail(self, name: str, characters: int = 1500) -> str:
        text = (self.log_dir / f'{name}.log').read_text(encoding='utf-8', errors='replace')
        return text[-characters:]

    def stop(self, grace_s: float = 5.0) -> dict[str, int]:
        """SIGINT every group, SIGKILL what is left; returns exit codes of processes that had
        already died before being asked to stop."""
        died_early = self.dead()
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=grace_s)
        return died_early


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------ one bag

def replay_bag(bag: Path, output_dir: Path, options: ReplayOptions,
               criteria: ReplayCriteria, context,
               inspection: BagInspection | None = None) -> BagOutcome:
    """Replay one bag (rclpy ``context`` already initialised) and evaluate it.

    ``inspection``: the bag's, when the caller has inspected it already.
    """
    from rclpy.clock import Clock, ClockType
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from sidewalk_robot.replay.player import BagPlayer
    from sidewalk_robot.replay.recorder import BagRecorder
    from sidewalk_robot.ros_common import LATCHED_QOS, SENSOR_QOS
    from sidewalk_robot.ros_env import loopback_environment

    if inspection is None:
        inspection = inspect_bag(bag, criteria)
    report_dir = output_dir / _safe_name(bag)
    if not inspection.usable:
        return _skipped(bag, inspection)
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report_dir.mkdir(parents=True)
    nodes = [node for node in STACK if node.name in options.nodes]
    node = Node('replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    stack = None
    recorder = None
    try:
        wanted_outputs = [t for n in nodes for t in n.produces]
        # Outputs are timed by their arrival on the wall clock (latencies), against headers
        # on the bag's time: the two clocks differ on purpose.
        recorder = BagRecorder(node, report_dir / 'outputs', OUTPUT_TOPICS,
                               clock=Clock(clock_type=ClockType.SYSTEM_TIME),
                               check_stamps=False)
        profiles = {'sensor': SENSOR_QOS, 'latched': LATCHED_QOS}
        played = {topic: (msgtype, profiles[PLAYED_TOPICS[topic]])
                  for topic, msgtype in inspection.played_topics.items()}
        player = BagPlayer(node, played, rate=options.rate, clock_period_s=options.clock_period_s)
        stack = Stack(nodes, options, report_dir / 'logs', loopback_environment())
        _wait_until_connected(stack, recorder, player, nodes, wanted_outputs, inspection,
                              options.startup_timeout_s)
        log = _play(bag, player, inspection, options)
        time.sleep(min(1.0, options.tail_s / options.rate))
        recorder.close()
        died = stack.stop()
    except StackError as error:
        return BagOutcome(bag, 'skipped', str(error), inspection=inspection,
                          report_dir=report_dir, warnings=inspection.warnings)
    finally:
        # Also on Ctrl-C: no node process may outlive the replay, and the bag is finalised.
        if recorder is not None:
            recorder.close()
        if stack is not None:
            stack.stop()
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
    (report_dir / 'playback.json').write_text(json.dumps(log.to_json()), encoding='utf-8')
    record = load_record(bag, report_dir / 'outputs', log, criteria)
    record.notes += inspection.warnings + recorder.problems
    for name, code in died.items():
        record.notes.append(f'{name} exited with status {code} during the replay; '
                            f'log: {stack.log_tail(name, 600)!r}')
    evaluation = evaluate(record, criteria, running_nodes=tuple(n.name for n in nodes),
                          crashed_nodes=tuple(died))
    write_bag_report(report_dir, evaluation, record)
    return BagOutcome(bag, 'passed' if evaluation.passed else 'failed', '',
                      evaluation=evaluation, inspection=inspection, report_dir=report_dir,
                      warnings=inspection.warnings)


def _wait_until_connected(stack: Stack, recorder, player, nodes: Sequence[StackNode],
                          wanted_outputs: Sequence[str], inspection: BagInspection,
                          timeout_s: float) -> None:
    """Every node up, subscribed to what it consumes, and its outputs matched by the recorder.

    Starting the playback earlier would feed the first seconds into nodes still loading.
    """
    deadline = time.monotonic() + timeout_s
    consumed = {t for n in nodes for t in n.consumes if t in inspection.played_topics}
    while True:
        dead = stack.dead()
        if dead:
            name, code = next(iter(dead.items()))
            raise StackError(f'{name} exited with status {code} while starting:\n'
                             f'{stack.log_tail(name)}')
        counts = player.subscriber_counts()
        waiting_inputs = sorted(t for t in consumed if counts.get(t, 0) == 0)
        recorded = recorder.topics
        waiting_outputs = sorted(t for t in wanted_outputs if t not in recorded)
        if not waiting_inputs and not waiting_outputs:
            time.sleep(0.5)  # let the remaining endpoint pairs finish matching
            return
        if time.monotonic() > deadline:
            logs = '\n'.join(f'--- {n.name}:\n{stack.log_tail(n.name, 800)}' for n in nodes)
            raise StackError(f'nodes not connected after {timeout_s:.0f}s: no subscriber yet '
                             f'for {waiting_inputs or "-"}, no publisher yet for '
                             f'{waiting_outputs or "-"}\n{logs}')
        time.sleep(0.2)


def _play(bag: Path, player, inspection: BagInspection,
          options: ReplayOptions):
    reader = open_reader(bag)
    try:
        messages = ((connection.topic, timestamp, data) for connection, timestamp, data
                    in iter_messages(reader, list(inspection.played_topics)))
        return player.play(messages, tail_s=options.tail_s)
    except BagError as error:
        raise StackError(f'bag became unreadable during playback: {error}') from error
    finally:
        reader.close()


def _skipped(bag: Path, inspection: BagInspection) -> BagOutcome:
    return BagOutcome(bag, 'skipped', inspection.reason or 'unusable bag',
                      inspection=inspection, warnings=inspection.warnings)


def _safe_name(bag: Path) -> str:
    name = bag.resolve().name or 'bag'
    return ''.join(c if c.isalnum() or c in '._-' else '_' for c in name)


# ------------------------------------------------------------------------ lockstep

def _replay_in_lockstep(bags: Sequence[Path], inspections: Sequence[BagInspection],
                        output_dir: Path, options: ReplayOptions, criteria: ReplayCriteria,
                        context, *, announce: bool = True) -> list[BagOutcome]:
    """Every usable bag in lockstep, the nodes started once for as many bags as they can
    take (lockstep_session.py); the others skipped with their reason."""
    from sidewalk_robot.lockstep import LockstepError
    from sidewalk_robot.replay.lockstep_session import (LockstepSession, copy_log_parts,
                                                        log_marks)
    from sidewalk_robot.ros_env import loopback_environment

    nodes = [node for node in STACK if node.name in options.nodes]
    names = [node.name for node in nodes]
    outputs = [topic for topic in OUTPUT_TOPICS
               if topic == '/diagnostics' or any(topic in n.produces for n in nodes)]
    outcomes: list[BagOutcome] = []
    session: LockstepSession | None = None
    with tempfile.TemporaryDirectory(prefix='sidewalk-robot-lockstep-') as scratch:
        log_dir = Path(scratch) / 'logs'
        try:
            for bag, inspection in zip(bags, inspections):
                if not inspection.usable:
                    outcomes.append(_skipped(bag, inspection))
                    continue
                if announce:
                    print(f'replaying {bag} (lockstep) ...', flush=True)
                report_dir = output_dir / _safe_name(bag)
                if report_dir.exists():
                    shutil.rmtree(report_dir)
                report_dir.mkdir(parents=True)
                if session is not None and not (session.reusable()
                                                and _fits(inspection, session.played)):
                    session.close()
                    session = None
                marks = log_marks(log_dir, names)
                try:
                    if session is None:
                        marks = {name: 0 for name in names}
                        later = inspections[len(outcomes):]
                        session = LockstepSession(context, nodes, options,
                                                  _played_topics(later), log_dir,
                                                  loopback_environment(), outputs)
                        session.start()
                    with _bag_messages(bag, inspection) as messages:
                        log, samples, statistics = session.play(messages,
                                                                report_dir / 'outputs')
                except (StackError, LockstepError, BagError) as error:
                    if session is not None:
                        session.close()
                        session = None
                    copy_log_parts(log_dir, marks, report_dir / 'logs')
                    outcome = BagOutcome(bag, 'skipped', str(error), inspection=inspection,
                                         report_dir=report_dir, warnings=inspection.warnings)
                    outcomes.append(outcome)
                    if announce:
                        print(_outcome_line(outcome), flush=True)
                    continue
                time.sleep(0.2)  # the nodes' last log lines of this bag
                copy_log_parts(log_dir, marks, report_dir / 'logs')
                outcome = _evaluate_lockstep_bag(bag, inspection, report_dir, log, samples,
                                                 statistics, session, criteria, names)
                outcomes.append(outcome)
                if announce:
                    print(_outcome_line(outcome), flush=True)
        finally:
            if session is not None:
                session.close()
    return outcomes


def _played_topics(inspections: Sequence[BagInspection]) -> dict[str, tuple[str, object]]:
    """What the player publishes for the first of these bags and those after it whose
    topics have the same types (a bag with another type for a topic gets nodes of its own)."""
    from sidewalk_robot.ros_common import LATCHED_QOS, SENSOR_QOS

    profiles = {'sensor': SENSOR_QOS, 'latched': LATCHED_QOS}
    played: dict[str, tuple[str, object]] = {}
    for inspection in inspections:
        if inspection.usable and _fits(inspection, played):
            for topic, msgtype in inspection.played_topics.items():
                played.setdefault(topic, (msgtype, profiles[PLAYED_TOPICS[topic]]))
    return played


def _fits(inspection: BagInspection, played: dict[str, tuple[str, object]]) -> bool:
    return all(played.get(topic, (msgtype,))[0] == msgtype
               for topic, msgtype in inspection.played_topics.items())


@contextmanager
def _bag_messages(bag: Path, inspection: BagInspection) -> Iterator[Iterator[tuple]]:
    reader = open_reader(bag)
    try:
        yield ((connection.topic, timestamp, data) for connection, timestamp, data
               in iter_messages(reader, list(inspection.played_topics)))
    finally:
        reader.close()


def _evaluate_lockstep_bag(bag: Path, inspection: BagInspection, report_dir: Path, log,
                           samples, statistics, session, criteria: ReplayCriteria,
                           names: Sequence[str]) -> BagOutcome:
    from sidewalk_robot.lockstep import (COMPUTE_TIMES_FILE, LOCKSTEP_SUMMARY_FILE,
                                         compute_sample_lines, slow_node_notes)

    died = {name: code for name, code in session.stack.dead().items() if name in names}
    (report_dir / 'playback.json').write_text(json.dumps(log.to_json()), encoding='utf-8')
    (report_dir / LOCKSTEP_SUMMARY_FILE).write_text(json.dumps({
        'declared_latency_s': {name: session.latencies[name] for name in names},
        'measured_latency': session.options.measured_latency,
        'grid_s': session.options.clock_period_s,
        'steps': len(log.clock), 'episode': session.episodes,
        'wall_s': round(log.wall_duration_s, 3),
        'compute': statistics}, indent=2), encoding='utf-8')
    (report_dir / COMPUTE_TIMES_FILE).write_text(compute_sample_lines(samples), encoding='utf-8')
    record = load_record(bag, report_dir / 'outputs', log, criteria)
    record.notes += inspection.warnings + slow_node_notes(statistics)
    for name, code in died.items():
        tail = (report_dir / 'logs' / f'{name}.log').read_text(errors='replace')[-600:]
        record.notes.append(f'{name} exited with status {code} during the replay; '
                            f'log: {tail!r}')
    evaluation = evaluate(record, criteria, running_nodes=tuple(names),
                          crashed_nodes=tuple(died))
    write_bag_report(report_dir, evaluation, record)
    return BagOutcome(bag, 'passed' if evaluation.passed else 'failed', '',
                      evaluation=evaluation, inspection=inspection, report_dir=report_dir,
                      warnings=inspection.warnings)


# ------------------------------------------------------------------------ whole runs

def replay_bags(bags: Sequence[Path], output_dir: Path, options: ReplayOptions,
                criteria: ReplayCriteria, parallelism: Parallelism = Parallelism()
                ) -> list[BagOutcome]:
    """Every bag is inspected before ROS starts, so a bad bag is refused in seconds, before
    any node runs. One bag after the other in this process (one ROS domain for all), or side
    by side as ``parallelism`` says (each replay in its own process and domain)."""
    inspections = [inspect_bag(bag, criteria) for bag in bags]
    if not parallelism.in_process:
        return _replay_side_by_side(bags, inspections, output_dir, options, criteria,
                                    parallelism)
    with _ros_context(needed=any(inspection.usable for inspection in inspections)) as context:
        if options.lockstep:
            return _replay_in_lockstep(bags, inspections, output_dir, options, criteria,
                                       context)
        outcomes = []
        for bag, inspection in zip(bags, inspections):
            print(f'replaying {bag} ...', flush=True)
            outcome = (replay_bag(bag, output_dir, options, criteria, context, inspection)
                       if inspection.usable else _skipped(bag, inspection))
            print(_outcome_line(outcome), flush=True)
            outcomes.append(outcome)
        return outcomes


def _outcome_line(outcome: BagOutcome) -> str:
    line = f'  {outcome.bag}: {outcome.status}{": " + outcome.reason if outcome.reason else ""}'
    if outcome.status != 'passed' and outcome.report_dir is not None:
        kept = ', '.join(kind for kind in bag_evidence(outcome, outcome.report_dir)
                         if kind != 'bag')
        line += f'\n  evidence in {outcome.report_dir}: {kept or "nothing"}'
    return line


@dataclass(frozen=True)
class ReplayTask:
    """One bag's replay as it travels to a worker process or a Ray node."""
    bag: Path
    options: ReplayOptions
    criteria: ReplayCriteria
    bag_files: dict[str, bytes] | None = None
    """The bag folder's files when the bag travels with the task (Ray without shared
    storage); None: ``bag`` is readable where the task runs."""


def execute_replay_task(task: ReplayTask, output_root: Path) -> BagOutcome:
    """Replay one bag in this process's own ROS domain (claimed on first use)."""
    from sidewalk_robot.ros_env import confine_this_run

    confine_this_run()
    with tempfile.TemporaryDirectory(prefix='sidewalk-robot-bag-') as scratch:
        bag = task.bag
        if task.bag_files is not None:
            bag = Path(scratch) / task.bag.name
            for relative, content in task.bag_files.items():
                (Path(scratch) / relative).parent.mkdir(parents=True, exist_ok=True)
                (Path(scratch) / relative).write_bytes(content)
        inspection = inspect_bag(bag, task.criteria)
        with _ros_context(needed=inspection.usable) as context:
            if not inspection.usable:
                outcome = _skipped(bag, inspection)
            elif task.options.lockstep:
                outcome, = _replay_in_lockstep([bag], [inspection], output_root, task.options,
                                               task.criteria, context, announce=False)
            else:
                outcome = replay_bag(bag, output_root, task.options, task.criteria, context,
                                     inspection)
    if outcome.evaluation is not None and bag != task.bag:
        outcome.evaluation.bag = str(task.bag)  # the copy is gone: name the bag itself
        write_bag_summary(outcome.report_dir, outcome.evaluation)
    return replace(outcome, bag=task.bag, inspection=None)


def _replay_side_by_side(bags: Sequence[Path], inspections: Sequence[BagInspection],
                         output_dir: Path, options: ReplayOptions, criteria: ReplayCriteria,
                         parallelism: Parallelism) -> list[BagOutcome]:
    carry_bags = parallelism.ray_address is not None and not parallelism.shared_storage
    # Workers may run elsewhere (Ray): every path they get must stand on its own.
    options = replace(options,
                      model=options.model.resolve() if options.model is not None else None,
                      params=options.params.resolve() if options.params is not None else None)
    usable = [index for index, inspection in enumerate(inspections) if inspection.usable]
    tasks = [ReplayTask(bags[index].resolve(), options, criteria,
                        _bag_files(bags[index]) if carry_bags else None) for index in usable]

    def lost(task: ReplayTask, why: str) -> BagOutcome:
        return BagOutcome(task.bag, 'skipped', why)

    def relocate(outcome: BagOutcome, scratch: Path, root: Path) -> BagOutcome:
        if outcome.report_dir is None:
            return outcome
        return replace(outcome, report_dir=relocated_path(outcome.report_dir, scratch, root))

    replayed = run_tasks(execute_replay_task, tasks, output_dir, parallelism, failed=lost,
                         relocate=relocate,
                         done_line=lambda _index, outcome: _outcome_line(outcome))
    outcomes = [_skipped(bag, inspection) for bag, inspection in zip(bags, inspections)]
    for index, outcome in zip(usable, replayed):
        outcomes[index] = replace(outcome, bag=bags[index], inspection=inspections[index])
    return outcomes


def _bag_files(bag: Path) -> dict[str, bytes]:
    """A bag (folder or single file) for a task that carries it: its files by their paths
    relative to the bag's parent folder."""
    bag = bag.resolve()
    if bag.is_file():
        return {bag.name: bag.read_bytes()}
    return {path.relative_to(bag.parent).as_posix(): path.read_bytes()
            for path in sorted(bag.rglob('*')) if path.is_file()}


@contextmanager
def _ros_context(*, needed: bool) -> Iterator[object | None]:
    """An initialised rclpy context, or None when no bag can be replayed: then not even a DDS
    participant is created."""
    if not needed:
        yield None
        return
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(args=[], context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def exit_status(outcomes: Sequence[BagOutcome]) -> int:
    if any(outcome.status == 'failed' for outcome in outcomes):
        return EXIT_CRITERION_FAILED
    if not outcomes or any(outcome.status == 'skipped' for outcome in outcomes):
        return EXIT_NOT_REPLAYED
    return EXIT_PASSED


def run_replay_command(bags: Sequence[Path], output_dir: Path, options: ReplayOptions,
                       compare: Sequence[Path] | None = None,
                       parallelism: Parallelism = Parallelism()) -> int:
    """``sidewalk-robot replay``: all bags (twice with --compare), reports, exit status."""
    from sidewalk_robot.ros_env import confine_this_run

    try:
        criteria_path = options.criteria or find_criteria(list(bags))
        criteria = load_criteria(criteria_path)
    except (FileNotFoundError, ValueError) as error:
        print(f'replay: {error}', file=sys.stderr)
        return EXIT_NOT_REPLAYED
    for extra in (options.params, options.model, *(compare or ())):
        if extra is not None and not extra.exists():
            print(f'replay: {extra} does not exist', file=sys.stderr)
            return EXIT_NOT_REPLAYED
    # A domain of our own: the nodes we start must not hear another run on this machine.
    print(f'ROS domain {confine_this_run()}', flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f'criteria: {criteria_path or "defaults"}; reports in {output_dir}')
    if not compare:
        outcomes = replay_bags(bags, output_dir, options, criteria, parallelism)
        write_run_summary(output_dir, outcomes, criteria_path)
        write_junit(output_dir / 'junit.xml', outcomes)
        _print_outcomes(outcomes)
        return exit_status(outcomes)
    variants = {}
    for label, variant in zip('AB', compare):
        variant_options = _variant_options(options, variant)
        outcomes = replay_bags(bags, output_dir / label, variant_options, criteria,
                               parallelism)
        write_run_summary(output_dir / label, outcomes, criteria_path)
        write_junit(output_dir / label / 'junit.xml', outcomes, suite_prefix=f'{label}:')
        variants[f'{label} ({variant.name})'] = outcomes
    print(write_comparison(output_dir, variants))
    return max(exit_status(outcomes) for outcomes in variants.values())


def _interrupt(*_: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the node processes are stopped on the way out."""
    raise KeyboardInterrupt


def _variant_options(options: ReplayOptions, variant: Path) -> ReplayOptions:
    from dataclasses import replace

    if variant.suffix in ('.yaml', '.yml'):
        return replace(options, params=variant)
    return replace(options, model=variant)


def _print_outcomes(outcomes: Sequence[BagOutcome]) -> None:
    for outcome in outcomes:
        print(f'{outcome.bag}: {outcome.status.upper()}'
              + (f' ({outcome.reason.splitlines()[0]})' if outcome.reason else ''))
        if outcome.evaluation is not None:
            for check in outcome.evaluation.checks:
                print(f'  [{"pass" if check.passed else "FAIL"}] {check.name}: {check.detail}')
        for warning in outcome.warnings:
            print(f'  warning: {warning}')

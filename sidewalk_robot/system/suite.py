"""Run scenarios and judge each against its success criteria: one after the other, on local
worker processes or on Ray (parallel.py), with the same results in the same order.

Each run is ``execute_scenario_task(task, output_root)``: the task carries the scenario file's
content, so it runs the same wherever it is sent; the run folder gets that content as
``scenario.yaml``. A run that fails keeps its evidence (evidence.py): without a recorded bag,
the last seconds the supervisor kept in memory become ``bag/``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sidewalk_robot.system.parallel import Parallelism, relocated_path, run_tasks
from sidewalk_robot.system.runner import RunOptions, RunResult, new_run_directory, run_mission
from sidewalk_robot.system.scenarios import Scenario, load_scenario
from sidewalk_robot.system.suite_report import ScenarioResult

SCENARIO_COPY = 'scenario.yaml'


def scenario_options(scenario: Scenario, base: RunOptions) -> RunOptions:
    """``base`` (speed, recording, progress) with the scenario's world, seed, faults, timeout
    and parameter changes."""
    return replace(base, world=scenario.world, scenario_file=scenario.path.resolve(),
                   seed=scenario.seed, timeout_s=scenario.timeout_s, faults=scenario.faults,
                   parameters=scenario.parameters, title=scenario.name)


@dataclass(frozen=True)
class ScenarioTask:
    """One scenario run as it travels to wherever it runs: the file's content, not its path."""
    label: str
    """The run folder's label: the scenario's name (a sweep adds the variant's number)."""
    name: str
    fault_group: str
    description: str
    must_arrive: bool
    document_text: str
    options: RunOptions


def scenario_task(scenario: Scenario, base: RunOptions, label: str | None = None,
                  document_text: str | None = None) -> ScenarioTask:
    """The task for ``scenario`` (its file's content unless ``document_text`` is given)."""
    text = document_text if document_text is not None else scenario.path.read_text(
        encoding='utf-8')
    return ScenarioTask(label or scenario.name, scenario.name, scenario.fault_group,
                        scenario.description, scenario.success.arrive is True, text, base)


def execute_scenario_task(task: ScenarioTask, output_root: Path) -> ScenarioResult:
    run_dir = new_run_directory(output_root, task.label)
    path = run_dir / SCENARIO_COPY
    path.write_text(task.document_text, encoding='utf-8')
    try:
        scenario = load_scenario(path)
    except (ValueError, FileNotFoundError) as error:
        return _error_result(task, str(error), run_dir, 0.0)
    return run_scenario_in(scenario, task.options, run_dir)


def run_scenario(scenario: Scenario, base: RunOptions, output_root: Path) -> ScenarioResult:
    """Run ``scenario`` in a new run folder under ``output_root``."""
    return run_scenario_in(scenario, base, new_run_directory(output_root, scenario.name))


def run_scenario_in(scenario: Scenario, base: RunOptions, run_dir: Path) -> ScenarioResult:
    started = time.monotonic()
    must_arrive = scenario.success.arrive is True
    try:
        result = run_mission(scenario_options(scenario, base), run_dir)
    except Exception as error:  # one broken scenario must not stop the suite
        message = f'{type(error).__name__}: {error}'
        return ScenarioResult(scenario.name, scenario.fault_group, scenario.description, False,
                              [message], None, str(run_dir), time.monotonic() - started,
                              error=message, must_arrive=must_arrive)
    if result.summary is None:
        failures = [result.error or 'no summary']
        _keep_evidence(result, failures)
        return ScenarioResult(scenario.name, scenario.fault_group, scenario.description, False,
                              failures, None, str(run_dir), result.wall_time_s,
                              error=result.error, must_arrive=must_arrive)
    failures = scenario.success.failures(result.summary)
    if result.error:
        failures.append(result.error)
    if failures:
        _keep_evidence(result, failures)
    return ScenarioResult(scenario.name, scenario.fault_group, scenario.description,
                          not failures, failures, result.summary, str(run_dir),
                          result.wall_time_s, must_arrive=must_arrive)


def _keep_evidence(result: RunResult, failures: list[str]) -> None:
    """A failed run's last seconds become its bag (a recorded run has its bag already)."""
    if result.recent_messages is None:
        return
    try:
        result.recent_messages.save()
    except Exception as error:  # the verdict stands without the bag; say why it is missing
        failures.append(f'(the last {result.recent_messages.seconds:.0f} s could not be kept '
                        f'as a bag: {error})')


def _error_result(task: ScenarioTask, message: str, run_dir: Path | str,
                  wall_time_s: float) -> ScenarioResult:
    return ScenarioResult(task.name, task.fault_group, task.description, False, [message], None,
                          str(run_dir), wall_time_s, error=message, must_arrive=task.must_arrive)


def lost_run(task: ScenarioTask, why: str) -> ScenarioResult:
    """The result of a run whose worker process or Ray node died for good."""
    return _error_result(task, why, '-', 0.0)


def relocate_result(result: ScenarioResult, scratch: Path, output_root: Path) -> ScenarioResult:
    return replace(result, run_dir=str(relocated_path(result.run_dir, scratch, output_root)))


def verdict_line(result: ScenarioResult) -> str:
    verdict = 'PASS' if result.passed else 'FAIL: ' + '; '.join(result.failures)
    return f'   {result.name}: {verdict}  ({result.wall_time_s:.0f} s wall, {result.run_dir})'


def run_tasks_in_order(tasks: Sequence[ScenarioTask], output_root: Path,
                       parallelism: Parallelism = Parallelism(),
                       on_done: Callable[[int, ScenarioResult], None] | None = None
                       ) -> list[ScenarioResult]:
    """Every task's result in the order of ``tasks`` (see parallel.run_tasks)."""
    if not parallelism.in_process:
        # A status line per second from several runs at once would be noise, and a printer
        # does not travel to other processes; the progress bar counts the runs instead.
        tasks = [replace(task, options=replace(task.options, progress=None)) for task in tasks]

    def start_line(index: int, task: ScenarioTask) -> str:
        return (f'== [{index + 1}/{len(tasks)}] {task.name} ({task.fault_group}): '
                f'{task.description}')

    return run_tasks(execute_scenario_task, tasks, output_root, parallelism,
                     failed=lost_run, relocate=relocate_result,
                     done_line=lambda _index, result: verdict_line(result),
                     start_line=start_line, on_done=on_done)


def run_suite(scenarios: Sequence[Scenario], base: RunOptions, output_root: Path,
              parallelism: Parallelism = Parallelism()) -> list[ScenarioResult]:
    tasks = [scenario_task(scenario, base) for scenario in scenarios]
    return run_tasks_in_order(tasks, output_root, parallelism)

"""Run scenarios one after the other and judge each against its success criteria."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sidewalk_robot.system.runner import RunOptions, new_run_directory, run_mission
from sidewalk_robot.system.scenarios import Scenario
from sidewalk_robot.system.suite_report import ScenarioResult


def scenario_options(scenario: Scenario, base: RunOptions) -> RunOptions:
    """``base`` (speed, recording, progress) with the scenario's world, seed, faults, timeout
    and parameter changes."""
    return replace(base, world=scenario.world, scenario_file=scenario.path.resolve(),
                   seed=scenario.seed, timeout_s=scenario.timeout_s, faults=scenario.faults,
                   parameters=scenario.parameters, title=scenario.name)


def run_scenario(scenario: Scenario, base: RunOptions, output_root: Path) -> ScenarioResult:
    run_dir = new_run_directory(output_root, scenario.name)
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
        return ScenarioResult(scenario.name, scenario.fault_group, scenario.description, False,
                              [result.error or 'no summary'], None, str(run_dir),
                              result.wall_time_s, error=result.error, must_arrive=must_arrive)
    failures = scenario.success.failures(result.summary)
    if result.error:
        failures.append(result.error)
    return ScenarioResult(scenario.name, scenario.fault_group, scenario.description,
                          not failures, failures, result.summary, str(run_dir),
                          result.wall_time_s, must_arrive=must_arrive)


def run_suite(scenarios: Sequence[Scenario], base: RunOptions, output_root: Path,
              announce: Callable[[str], None] = print) -> list[ScenarioResult]:
    results = []
    for index, scenario in enumerate(scenarios, start=1):
        announce(f'== [{index}/{len(scenarios)}] {scenario.name} ({scenario.fault_group}): '
                 f'{scenario.description}')
        result = run_scenario(scenario, base, output_root)
        verdict = 'PASS' if result.passed else 'FAIL: ' + '; '.join(result.failures)
        announce(f'   {verdict}  ({result.wall_time_s:.0f} s wall, {result.run_dir})')
        results.append(result)
    return results

"""``sidewalk-robot sweep``: run many random variants of one scenario and report the rates.

A sweep folder holds everything needed to continue it:

    sweep.json          the scenario file's content, the seed, the number of variants, options
    runs.jsonl          one line per finished variant (drawn values + result), appended at once
    runs/<run folders>  one per variant (scenario.yaml with the drawn values, summary, logs,
                        planner transitions; a failed run's bag)
    sweep_report.md/.json/.png

Variant i depends only on (seed, i) (distributions.py), so ``--resume`` runs the variants that
are missing (or that never got to their mission), and a larger ``--samples`` extends the sweep
with new variants while keeping the old ones.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from sidewalk_robot.system.distributions import Variant, draw_variant
from sidewalk_robot.system.parallel import Parallelism
from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import Scenario, parse_scenario
from sidewalk_robot.system.suite import ScenarioTask, run_tasks_in_order, scenario_task
from sidewalk_robot.system.suite_report import ScenarioResult
from sidewalk_robot.system.sweep_report import VariantOutcome, write_sweep_outputs

SWEEP_FILE = 'sweep.json'
RUNS_FILE = 'runs.jsonl'
RUN_FOLDER = 'runs'


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep draws and runs: the scenario as text, so a sweep folder stands alone."""
    scenario_text: str
    source: str
    """Where the scenario came from (for the report)."""
    seed: int
    samples: int
    real_time_factor: float = 1.0
    record_bag: bool = False
    keep_last_s: float = 0.0
    startup_timeout_s: float = 120.0
    lockstep: bool = False
    """Simulator and nodes take turns (docs/system.md); False in sweep folders from before."""
    latencies: tuple[tuple[str, float], ...] = ()
    measured_latency: bool = False
    lockstep_timeout_s: float = 60.0

    def scenario(self) -> Scenario:
        document = yaml.safe_load(self.scenario_text)
        if not isinstance(document, dict):
            raise ValueError(f'{self.source}: a scenario file must be a mapping')
        scenario = parse_scenario(document, Path(self.source))
        if not scenario.sweep:
            raise ValueError(f'{self.source}: no sweep block: nothing to draw (see '
                             f'docs/system.md, "Randomised sweeps")')
        return scenario

    def run_options(self) -> RunOptions:
        return RunOptions(real_time_factor=self.real_time_factor, record_bag=self.record_bag,
                          keep_last_s=self.keep_last_s,
                          startup_timeout_s=self.startup_timeout_s, lockstep=self.lockstep,
                          latencies=tuple(tuple(pair) for pair in self.latencies),
                          measured_latency=self.measured_latency,
                          lockstep_timeout_s=self.lockstep_timeout_s)


def draw_variants(plan: SweepPlan, indices: Sequence[int]) -> list[tuple[Variant, Scenario]]:
    """The variants ``indices``, each checked as the suite and the simulator would check it,
    so a distribution that draws an impossible value stops the sweep before any run."""
    from sidewalk_robot.simulation.scenario import ScenarioError, scenario_from_dict

    scenario = plan.scenario()
    checked = []
    for index in indices:
        variant = draw_variant(scenario.document, scenario.sweep, plan.seed, index)
        where = f'{plan.source} variant {index}'
        try:
            scenario_from_dict(variant.document, source=where)
            checked.append((variant, parse_scenario(variant.document, Path(where))))
        except (ValueError, ScenarioError) as error:
            raise ValueError(f'{error} (drawn: {variant.values}); narrow the distribution or '
                             f'bound it with min/max') from None
    return checked


def new_sweep_directory(root: Path, name: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')
    directory = root / f'sweep-{name}-{stamp}'
    directory.mkdir(parents=True)
    return directory


def save_plan(directory: Path, plan: SweepPlan) -> Path:
    path = directory / SWEEP_FILE
    path.write_text(json.dumps(asdict(plan), indent=2), encoding='utf-8')
    return path


def load_plan(directory: Path) -> SweepPlan:
    path = directory / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{directory} is not a sweep folder (no {SWEEP_FILE})')
    return SweepPlan(**json.loads(path.read_text(encoding='utf-8')))


def load_outcomes(directory: Path) -> dict[int, VariantOutcome]:
    """The finished variants of a sweep folder; a variant run twice counts as its last run.
    A line cut short by an interruption is ignored (that variant runs again)."""
    outcomes: dict[int, VariantOutcome] = {}
    path = directory / RUNS_FILE
    if not path.is_file():
        return outcomes
    for line in path.read_text(encoding='utf-8').splitlines():
        try:
            outcome = VariantOutcome.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError):
            continue
        outcomes[outcome.index] = outcome
    return outcomes


def _append_outcome(directory: Path, outcome: VariantOutcome) -> None:
    with (directory / RUNS_FILE).open('a', encoding='utf-8') as stream:
        stream.write(json.dumps(outcome.to_dict(), default=str) + '\n')
        stream.flush()


def to_run(plan: SweepPlan, done: dict[int, VariantOutcome]) -> list[int]:
    """Variants without a result, or whose run never reached its mission (a stack that did not
    come up on a busy machine is worth another try)."""
    return [index for index in range(plan.samples)
            if index not in done or not done[index].judged]


def _variant_task(variant: Variant, scenario: Scenario, options: RunOptions) -> ScenarioTask:
    text = yaml.safe_dump(variant.document, sort_keys=False)
    return scenario_task(scenario, options, label=scenario.name, document_text=text)


def run_sweep(plan: SweepPlan, directory: Path, parallelism: Parallelism = Parallelism()
              ) -> list[VariantOutcome]:
    """Run what ``directory`` lacks of ``plan`` and write the report (also when interrupted:
    then from the variants finished so far, and the interruption goes on up)."""
    done = load_outcomes(directory)
    indices = to_run(plan, done)
    variants = draw_variants(plan, indices)
    tasks = [_variant_task(variant, scenario, plan.run_options())
             for variant, scenario in variants]

    def on_done(position: int, result: ScenarioResult) -> None:
        variant = variants[position][0]
        outcome = VariantOutcome(variant.index, variant.values, result)
        done[variant.index] = outcome
        _append_outcome(directory, outcome)

    if indices:
        print(f'sweep {plan.scenario().name}: {len(indices)} of {plan.samples} variants to run '
              f'({parallelism.describe()}); folder {directory}', flush=True)
    try:
        run_tasks_in_order(tasks, directory / RUN_FOLDER, parallelism, on_done=on_done)
    finally:
        write_report(plan, directory, done)
    return [done[index] for index in sorted(done)]


def write_report(plan: SweepPlan, directory: Path,
                 done: dict[int, VariantOutcome]) -> dict[str, Path]:
    scenario = plan.scenario()
    outcomes = [done[index] for index in sorted(done) if index < plan.samples]
    return write_sweep_outputs(directory, scenario.name, plan.source, scenario.sweep, plan.seed,
                               plan.samples, outcomes)

"""A sweep's figures: arrival and collision-free rates with exact (Clopper-Pearson) confidence
bounds, vetoes per 100 m, the worst runs with their evidence; as markdown, JSON and a plot.

Pure (numbers and files); the plot uses matplotlib's Agg backend.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidewalk_robot.system.distributions import SweepParameter
from sidewalk_robot.system.evidence import evidence_links
from sidewalk_robot.system.suite_report import ScenarioResult, markdown_links

CONFIDENCE = 0.95
WORST_SHOWN = 5
_BISECTION_STEPS = 100
"""Halvings of [0, 1]: far below any printed digit (2^-100)."""


def binomial_cdf(successes: int, trials: int, probability: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, probability), summed exactly in log space."""
    if successes < 0:
        return 0.0
    if successes >= trials:
        return 1.0
    if probability <= 0.0:
        return 1.0
    if probability >= 1.0:
        return 0.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    log_n = math.lgamma(trials + 1)
    return math.fsum(math.exp(log_n - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                              + k * log_p + (trials - k) * log_q)
                     for k in range(successes + 1))


def _solve_decreasing(function, target: float) -> float:
    """The p in [0, 1] where the decreasing ``function`` crosses ``target``, by bisection."""
    low, high = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        if function(middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE
                    ) -> tuple[float, float]:
    """The exact two-sided interval for a binomial proportion.

    The lower bound is the p at which seeing ``successes`` or more has probability
    (1 - confidence) / 2, the upper bound the p at which seeing ``successes`` or fewer has;
    0 and 1 at the edges. (These are the beta quantiles of the usual formula.)
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials and trials > 0, got '
                         f'{successes}/{trials}')
    if not 0.0 < confidence < 1.0:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    tail = (1.0 - confidence) / 2.0
    lower = 0.0 if successes == 0 else _solve_decreasing(
        lambda p: binomial_cdf(successes - 1, trials, p), 1.0 - tail)
    upper = 1.0 if successes == trials else _solve_decreasing(
        lambda p: binomial_cdf(successes, trials, p), tail)
    return lower, upper


@dataclass(frozen=True)
class Proportion:
    successes: int
    trials: int
    lower: float | None
    upper: float | None

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    def text(self) -> str:
        if not self.trials:
            return '- (no judged run)'
        return (f'{self.successes}/{self.trials} = {self.rate:.1%} '
                f'[{self.lower:.1%}, {self.upper:.1%}]')


def proportion(successes: int, trials: int, confidence: float = CONFIDENCE) -> Proportion:
    if trials == 0:
        return Proportion(0, 0, None, None)
    return Proportion(successes, trials, *clopper_pearson(successes, trials, confidence))


@dataclass
class VariantOutcome:
    """One variant of a sweep: what was drawn and how the run went."""
    index: int
    values: dict[str, Any]
    result: ScenarioResult

    def to_dict(self) -> dict[str, Any]:
        return {'index': self.index, 'values': self.values, 'result': self.result.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantOutcome:
        return cls(int(data['index']), dict(data['values']),
                   ScenarioResult.from_dict(dict(data['result'])))

    @property
    def judged(self) -> bool:
        """Whether the mission ran (a run whose stack never came up says nothing of it)."""
        return self.result.summary is not None


@dataclass
class SweepFigures:
    samples: int
    """Variants asked for."""
    judged: int
    arrived: Proportion
    collision_free: Proportion
    passed: Proportion
    """Runs that met every success criterion of the scenario."""
    vetoes: int
    distance_m: float
    vetoes_per_100m: float | None
    not_judged: list[int] = field(default_factory=list)
    """Variants that ran but never got to the mission (their errors are in the report)."""
    missing: list[int] = field(default_factory=list)
    """Variants not run yet (an interrupted sweep)."""
    worst: list[int] = field(default_factory=list)
    """Variant indices, worst first."""


def _badness(outcome: VariantOutcome) -> tuple:
    """Sort key, worst first: collisions, failed criteria, missed deliveries, least
    clearance, most vetoes."""
    summary = outcome.result.summary
    assert summary is not None
    clearance = summary.min_clearance_m if summary.min_clearance_m is not None else math.inf
    missed = outcome.result.must_arrive and not summary.arrived
    return (-summary.collisions, outcome.result.passed, not missed, clearance,
            -summary.vetoes, outcome.index)


def sweep_figures(outcomes: Sequence[VariantOutcome], samples: int,
                  worst_shown: int = WORST_SHOWN) -> SweepFigures:
    judged = [outcome for outcome in outcomes if outcome.judged]
    summaries = [outcome.result.summary for outcome in judged]
    distance = sum(summary.distance_m for summary in summaries)
    vetoes = sum(summary.vetoes for summary in summaries)
    done = {outcome.index for outcome in outcomes}
    return SweepFigures(
        samples=samples, judged=len(judged),
        arrived=proportion(sum(summary.arrived for summary in summaries), len(judged)),
        collision_free=proportion(sum(summary.collisions == 0 for summary in summaries),
                                  len(judged)),
        passed=proportion(sum(outcome.result.passed for outcome in judged), len(judged)),
        vetoes=vetoes, distance_m=distance,
        vetoes_per_100m=100.0 * vetoes / distance if distance >= 1.0 else None,
        not_judged=sorted(outcome.index for outcome in outcomes if not outcome.judged),
        missing=[index for index in range(samples) if index not in done],
        worst=[outcome.index for outcome in sorted(judged, key=_badness)[:worst_shown]])


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3g}'
    return json.dumps(value)


def _values_text(values: Mapping[str, Any]) -> str:
    return ', '.join(f'{path} {_format_value(value)}' for path, value in values.items())


def sweep_markdown(title: str, parameters: Sequence[SweepParameter], seed: int,
                   outcomes: Sequence[VariantOutcome], figures: SweepFigures,
                   directory: Path) -> str:
    by_index = {outcome.index: outcome for outcome in outcomes}
    vetoes = ('-' if figures.vetoes_per_100m is None else
              f'{figures.vetoes_per_100m:.2f} ({figures.vetoes} in {figures.distance_m:.0f} m)')
    lines = [f'# Sweep: {title}', '',
             f'{figures.judged} of {figures.samples} variants judged, seed {seed}; '
             f'rates with {CONFIDENCE:.0%} Clopper-Pearson bounds.', '',
             '| figure | value |', '| --- | --- |',
             f'| arrived | {figures.arrived.text()} |',
             f'| collision-free | {figures.collision_free.text()} |',
             f'| met the success criteria | {figures.passed.text()} |',
             f'| vetoes per 100 m | {vetoes} |', '',
             'Swept: ' + '; '.join(f'`{p.path}` {p.distribution.describe()}'
                                   for p in parameters)
             + '; each variant also draws its simulator `seed`.', '']
    if figures.missing:
        lines += [f'**Incomplete**: {len(figures.missing)} variants not run yet '
                  f'(resume with `sidewalk-robot sweep --resume {directory}`).', '']
    if figures.not_judged:
        lines += ['## Not judged', '',
                  'These runs never reached the mission (a run that cannot start says nothing '
                  'about the robot); they are left out of the rates:', '']
        for index in figures.not_judged:
            outcome = by_index[index]
            links = markdown_links(evidence_links(Path(outcome.result.run_dir), directory))
            lines.append(f'- variant {index}: {"; ".join(outcome.result.failures)} ({links})')
        lines.append('')
    if figures.worst:
        lines += ['## Worst runs', '',
                  '| variant | result | arrived | collisions | min clearance m | vetoes | '
                  'drawn values | evidence |',
                  '| ---: | --- | --- | ---: | ---: | ---: | --- | --- |']
        for index in figures.worst:
            outcome = by_index[index]
            summary = outcome.result.summary
            clearance = ('-' if summary.min_clearance_m is None
                         else f'{summary.min_clearance_m:.2f}')
            verdict = 'pass' if outcome.result.passed else \
                'FAIL: ' + '; '.join(outcome.result.failures)
            links = markdown_links(evidence_links(Path(outcome.result.run_dir), directory))
            lines.append(f'| {index} | {verdict} | {"yes" if summary.arrived else "no"} | '
                         f'{summary.collisions} | {clearance} | {summary.vetoes} | '
                         f'{_values_text(outcome.values)} | {links} |')
        lines.append('')
    return '\n'.join(lines)


def sweep_json(title: str, source: str, parameters: Sequence[SweepParameter], seed: int,
               outcomes: Sequence[VariantOutcome], figures: SweepFigures,
               directory: Path) -> dict[str, Any]:
    variants = []
    for outcome in sorted(outcomes, key=lambda o: o.index):
        summary = outcome.result.summary
        variants.append({
            'index': outcome.index, 'values': outcome.values, 'passed': outcome.result.passed,
            'failures': outcome.result.failures,
            'arrived': summary.arrived if summary else None,
            'collisions': summary.collisions if summary else None,
            'min_clearance_m': summary.min_clearance_m if summary else None,
            'vetoes': summary.vetoes if summary else None,
            'distance_m': summary.distance_m if summary else None,
            'run_dir': outcome.result.run_dir,
            'evidence': evidence_links(Path(outcome.result.run_dir), directory)})
    return {'scenario': title, 'source': source, 'seed': seed, 'confidence': CONFIDENCE,
            'parameters': [{'path': p.path, 'distribution': p.distribution.describe()}
                           for p in parameters],
            'figures': asdict(figures), 'variants': variants}


def plot_sweep(path: Path, title: str, parameters: Sequence[SweepParameter],
               outcomes: Sequence[VariantOutcome]) -> Path | None:
    """Minimum clearance against each numeric swept value, coloured by outcome: where the
    failures lie in the parameter space. None when there is nothing to draw."""
    judged = [outcome for outcome in outcomes if outcome.judged]
    numeric = [parameter for parameter in parameters if parameter.numeric]
    if not judged or not numeric:
        return None
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = min(3, len(numeric))
    rows = math.ceil(len(numeric) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.4 * rows),
                                squeeze=False)
    kinds = (('collision', 'tab:red', lambda s, r: s.collisions > 0),
             ('failed', 'tab:orange', lambda s, r: s.collisions == 0 and not r.passed),
             ('passed', 'tab:green', lambda s, r: r.passed))
    for axis, parameter in zip(axes.flat, numeric):
        for label, colour, belongs in kinds:
            members = [o for o in judged if belongs(o.result.summary, o.result)]
            axis.scatter([o.values[parameter.path] for o in members],
                         [o.result.summary.min_clearance_m if o.result.summary.min_clearance_m
                          is not None else math.nan for o in members],
                         s=18, color=colour, label=label)
        axis.set_xlabel(parameter.path)
        axis.set_ylabel('min clearance [m]')
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(numeric):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(f'sweep {title}: {len(judged)} judged variants')
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def write_sweep_outputs(directory: Path, title: str, source: str,
                        parameters: Sequence[SweepParameter], seed: int, samples: int,
                        outcomes: Sequence[VariantOutcome]) -> dict[str, Path]:
    """sweep_report.md, sweep_report.json and (when there is something to draw)
    sweep_report.png in ``directory``."""
    figures = sweep_figures(outcomes, samples)
    paths = {'report': directory / 'sweep_report.md', 'json': directory / 'sweep_report.json'}
    paths['report'].write_text(sweep_markdown(title, parameters, seed, outcomes, figures,
                                              directory) + '\n', encoding='utf-8')
    paths['json'].write_text(json.dumps(sweep_json(title, source, parameters, seed, outcomes,
                                                   figures, directory), indent=2),
                             encoding='utf-8')
    plot = plot_sweep(directory / 'sweep_report.png', title, parameters, outcomes)
    if plot is not None:
        paths['figure'] = plot
    return paths

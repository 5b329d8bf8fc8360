"""Scenario suite results: the table, result.json, JUnit XML and the per-fault system report,
with links to what each failed run kept (bag, node logs, planner transitions) and, for lockstep
runs, each node's compute time per step."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidewalk_robot.lockstep import LOCKSTEP_SUMMARY_FILE
from sidewalk_robot.system.evidence import (PLANNER_TRANSITIONS_FILE, evidence_links,
                                            read_planner_transitions)
from sidewalk_robot.system.metrics import RunSummary
from sidewalk_robot.system.runner import LOCKSTEP_NODES

SHOWN_TRANSITIONS = 6
"""The planner's last transitions the report quotes for each failed run."""


@dataclass
class ScenarioResult:
    name: str
    fault_group: str
    description: str
    passed: bool
    failures: list[str]
    summary: RunSummary | None
    run_dir: str
    wall_time_s: float
    error: str | None = None
    must_arrive: bool = True
    """Whether the scenario is a delivery (success.arrive true), the base of the arrival rate."""

    def to_dict(self) -> dict:
        data = asdict(self)
        data['summary'] = self.summary.to_dict() if self.summary else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        """The inverse of ``to_dict`` (a sweep reads its saved runs back to resume)."""
        summary = RunSummary(**data['summary']) if data.get('summary') else None
        return cls(**{**data, 'summary': summary})


@dataclass
class GroupFigures:
    """The system report's figures for the healthy stack or one fault."""
    group: str
    runs: int
    success_rate: float
    arrival_rate: float | None
    """Arrivals among the runs that must arrive (None: no such run in the group)."""
    collisions: int
    contacts_by_others: int
    vetoes_per_100m: float | None
    mean_speed_mps: float | None
    """Total distance over total mission time of every run (waiting and stuck time included)."""
    delivery_speed_mps: float | None
    """The same over the deliveries (runs that must arrive), failed ones included: leaves out
    only runs meant to end standing, such as a barrier that closes the sidewalk."""
    mean_time_to_goal_s: float | None
    scenarios: list[str] = field(default_factory=list)


def group_figures(results: Sequence[ScenarioResult]) -> list[GroupFigures]:
    """Per fault group (healthy first): success rate, collisions, vetoes per 100 m, mean speed
    (total distance over total mission time, of every run and of the deliveries) and mean time
    to goal over the arrivals."""
    groups: dict[str, list[ScenarioResult]] = {}
    for result in results:
        groups.setdefault(result.fault_group, []).append(result)
    figures = []
    for name in sorted(groups, key=lambda g: (g != 'healthy', g)):
        members = groups[name]
        summaries = [r.summary for r in members if r.summary is not None]
        distance = sum(s.distance_m for s in summaries)
        moving_time = sum(s.mission_time_s for s in summaries)
        arrivals = [s.time_to_goal_s for s in summaries if s.arrived and s.time_to_goal_s]
        deliveries = [r.summary for r in members if r.must_arrive and r.summary is not None]
        delivery_time = sum(s.mission_time_s for s in deliveries)
        figures.append(GroupFigures(
            group=name, runs=len(members),
            success_rate=sum(r.passed for r in members) / len(members),
            arrival_rate=_arrival_rate(members),
            collisions=sum(s.collisions for s in summaries),
            contacts_by_others=sum(s.contacts_by_others for s in summaries),
            vetoes_per_100m=(100.0 * sum(s.vetoes for s in summaries) / distance
                             if distance >= 1.0 else None),
            mean_speed_mps=distance / moving_time if moving_time > 0 else None,
            delivery_speed_mps=(sum(s.distance_m for s in deliveries) / delivery_time
                                if delivery_time > 0 else None),
            mean_time_to_goal_s=sum(arrivals) / len(arrivals) if arrivals else None,
            scenarios=[r.name for r in members]))
    return figures


def _arrival_rate(members: Sequence[ScenarioResult]) -> float | None:
    deliveries = [r for r in members if r.must_arrive]
    if not deliveries:
        return None
    return sum(r.summary is not None and r.summary.arrived for r in deliveries) / len(deliveries)


def _format(value: float | None, pattern: str) -> str:
    return '-' if value is None else format(value, pattern)


def results_table(results: Sequence[ScenarioResult]) -> str:
    header = (f'{"scenario":<30} {"fault":<20} {"result":<6} {"arrived":<7} {"time s":>7} '
              f'{"dist m":>7} {"v m/s":>6} {"clear m":>7} {"vetoes":>6} {"coll":>4} {"hit by":>6}')
    lines = [header, '-' * len(header)]
    for result in results:
        s = result.summary
        lines.append(
            f'{result.name:<30} {result.fault_group[:20]:<20} '
            f'{"PASS" if result.passed else "FAIL":<6} '
            f'{("yes" if s.arrived else "no") if s else "-":<7} '
            f'{_format(s.mission_time_s if s else None, ".1f"):>7} '
            f'{_format(s.distance_m if s else None, ".1f"):>7} '
            f'{_format(s.mean_speed_mps if s else None, ".2f"):>6} '
            f'{_format(s.min_clearance_m if s else None, ".2f"):>7} '
            f'{s.vetoes if s else "-":>6} {s.collisions if s else "-":>4} '
            f'{s.contacts_by_others if s else "-":>6}')
        for failure in result.failures:
            lines.append(f'    - {failure}')
        if not result.passed:
            kept = ', '.join(evidence_links(Path(result.run_dir))) or 'nothing'
            lines.append(f'    evidence in {result.run_dir}: {kept}')
    return '\n'.join(lines)


def system_report_markdown(figures: Sequence[GroupFigures]) -> str:
    lines = ['| stack | runs | success | arrived | collisions | hit by others | vetoes / 100 m '
             '| mean speed m/s | delivery speed m/s | time to goal s |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for figure in figures:
        lines.append(
            f'| {figure.group} | {figure.runs} | {figure.success_rate:.0%} | '
            f'{_format(figure.arrival_rate, ".0%")} | {figure.collisions} | '
            f'{figure.contacts_by_others} | '
            f'{_format(figure.vetoes_per_100m, ".1f")} | '
            f'{_format(figure.mean_speed_mps, ".2f")} | '
            f'{_format(figure.delivery_speed_mps, ".2f")} | '
            f'{_format(figure.mean_time_to_goal_s, ".1f")} |')
    return '\n'.join(lines)


def markdown_links(links: dict[str, Any]) -> str:
    shown = []
    for kind, target in links.items():
        if kind == 'logs':
            shown += [f'[{Path(log).name}]({log})' for log in target]
        else:
            shown.append(f'[{kind.replace("_", " ")}]({target})')
    return ', '.join(shown) or 'nothing kept'


def failed_runs_markdown(results: Sequence[ScenarioResult], directory: Path) -> str:
    """For each failed run: why, links to its evidence (relative to ``directory``, where the
    report lies) and the planner's last state transitions."""
    failed = [result for result in results if not result.passed]
    if not failed:
        return ''
    lines = ['## Failed runs', '',
             'Every failed run keeps its bag (the recorded one, or the last seconds kept in '
             'memory), its nodes\' logs and the planner\'s state transitions '
             f'(`{PLANNER_TRANSITIONS_FILE}`, mission time in seconds).', '']
    for result in failed:
        run_dir = Path(result.run_dir)
        lines += [f'### {result.name} ({result.fault_group})', '']
        lines += [f'- {failure}' for failure in result.failures]
        lines.append(f'- evidence: {markdown_links(evidence_links(run_dir, directory))}')
        transitions = read_planner_transitions(run_dir / PLANNER_TRANSITIONS_FILE)
        if transitions:
            lines.append(f'- planner, last {min(len(transitions), SHOWN_TRANSITIONS)} of '
                         f'{len(transitions)} transitions:')
            for entry in transitions[-SHOWN_TRANSITIONS:]:
                when = entry.get('mission_time_s')
                lines.append(f'  - {"-" if when is None else f"{when:.1f} s"}: '
                             f'{entry["state"]} ({entry["reason"]})')
        lines.append('')
    return '\n'.join(lines)


def _run_compute(run_dir: Path) -> dict[str, Any] | None:
    """A lockstep run's per-node compute figures (its lockstep.json), None without them."""
    try:
        return json.loads((run_dir / LOCKSTEP_SUMMARY_FILE).read_text(encoding='utf-8'))['compute']
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compute_markdown(results: Sequence[ScenarioResult]) -> str:
    """Per lockstep run: each of the robot's nodes' CPU time per busy step, median / p95 ms,
    and the steps over its declared latency (lockstep does not hide a slow node); empty when no
    run has the figures (a realtime suite)."""
    rows = []
    for result in results:
        compute = _run_compute(Path(result.run_dir))
        if compute is None:
            continue
        cells = []
        for node in LOCKSTEP_NODES:
            figures = compute.get(node)
            if not figures:
                cells.append('-')
                continue
            over = figures.get('steps_over_declared')
            cells.append(f'{figures["compute_median_ms"]:.1f} / {figures["compute_p95_ms"]:.1f}'
                         + (f' ({over} of {figures["busy_steps"]} over '
                            f'{figures["declared_latency_ms"]:g})' if over else ''))
        rows.append(f'| {result.name} | ' + ' | '.join(cells) + ' |')
    if not rows:
        return ''
    return '\n'.join([
        '## Compute per busy step', '',
        'CPU time of each node per lockstep step, median / p95 in ms, and the steps that took '
        'longer than the latency the run declared for the node (ms): the outcome above is that '
        'of nodes keeping their declared latency; this is how far this machine was from it '
        '(each run folder\'s `lockstep.json`, `compute_times.jsonl`).', '',
        '| scenario | ' + ' | '.join(LOCKSTEP_NODES) + ' |',
        '| --- |' + ' ---: |' * len(LOCKSTEP_NODES), *rows, ''])


def junit_xml(results: Sequence[ScenarioResult], suite_name: str = 'sidewalk_robot.scenarios'
              ) -> str:
    suite = ElementTree.Element('testsuite', name=suite_name, tests=str(len(results)),
                                failures=str(sum(not r.passed and r.error is None
                                                 for r in results)),
                                errors=str(sum(r.error is not None for r in results)),
                                time=f'{sum(r.wall_time_s for r in results):.1f}')
    for result in results:
        case = ElementTree.SubElement(suite, 'testcase', classname=f'scenarios.{result.fault_group}',
                                      name=result.name, time=f'{result.wall_time_s:.1f}')
        if result.error is not None:
            ElementTree.SubElement(case, 'error', message=result.error).text = result.error
        elif not result.passed:
            message = '; '.join(result.failures)
            ElementTree.SubElement(case, 'failure', message=message).text = message
        if result.summary is not None:
            ElementTree.SubElement(case, 'system-out').text = json.dumps(
                result.summary.to_dict(), indent=1)
    return ElementTree.tostring(suite, encoding='unicode', xml_declaration=True)


def write_suite_outputs(results: Sequence[ScenarioResult], directory: Path) -> dict[str, Path]:
    """result.json, junit.xml, table.txt, system_report.md and .png in ``directory``."""
    from sidewalk_robot.system.report import write_system_report_png

    directory.mkdir(parents=True, exist_ok=True)
    figures = group_figures(results)
    paths = {'result': directory / 'result.json', 'junit': directory / 'junit.xml',
             'table': directory / 'table.txt', 'report': directory / 'system_report.md',
             'figure': directory / 'system_report.png'}
    paths['result'].write_text(json.dumps({
        'passed': sum(r.passed for r in results), 'total': len(results),
        'scenarios': [{**r.to_dict(), 'evidence': evidence_links(Path(r.run_dir), directory)}
                      for r in results],
        'system_report': [asdict(f) for f in figures]}, indent=2), encoding='utf-8')
    paths['junit'].write_text(junit_xml(results), encoding='utf-8')
    paths['table'].write_text(results_table(results) + '\n', encoding='utf-8')
    sections = [section for section in (failed_runs_markdown(results, directory),
                                        compute_markdown(results)) if section]
    paths['report'].write_text(system_report_markdown(figures) + '\n'
                               + ''.join(f'\n{section}' for section in sections),
                               encoding='utf-8')
    write_system_report_png(paths['figure'], figures)
    return paths

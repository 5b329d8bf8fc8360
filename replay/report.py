"""Replay reports: result.jsonl, summary.json, JUnit XML, timeline PNG and A/B comparison, with
links to each bag's evidence (outputs bag, node logs, planner transitions)."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sidewalk_robot.replay.bag_io import iter_messages, open_reader, typestore_for
from sidewalk_robot.replay.evaluation import Evaluation, ReplayRecord
from sidewalk_robot.system.evidence import (PLANNER_TRANSITIONS_FILE, PlannerTransitions,
                                            is_planner_status)

if TYPE_CHECKING:
    from sidewalk_robot.replay.runner import BagOutcome

SPEED_AXIS_TOP = 2.0
OUTPUTS_FOLDER = 'outputs'
COMPARED_METRICS = (
    ('frames', 'frames', '{:.0f}'),
    ('frames_passed', 'frames passed', '{:.0f}'),
    ('stopping_violations', 'stopping violations', '{:.0f}'),
    ('estop_violations', 'e-stop violations', '{:.0f}'),
    ('stale_intervals', 'stale outputs', '{:.0f}'),
    ('veto_frames', 'frames vetoed', '{:.0f}'),
    ('limited_frames', 'frames slowed by the monitor', '{:.0f}'),
    ('recall', 'perception recall', '{:.3f}'),
    ('false_alarm_rate', 'perception false alarms', '{:.3f}'),
    ('frames_without_grid', 'frames without grid', '{:.0f}'),
    ('sensor_to_grid_s_median', 'sensor->grid median [ms]', 'ms'),
    ('sensor_to_grid_s_p95', 'sensor->grid p95 [ms]', 'ms'),
    ('grid_to_cmd_s_p95', 'grid->cmd p95 [ms]', 'ms'),
    ('cmd_to_gated_s_p95', 'cmd->gated p95 [ms]', 'ms'),
    ('mean_planner_speed_mps', 'mean planner speed [m/s]', '{:.3f}'),
    ('mean_gated_speed_mps', 'mean gated speed [m/s]', '{:.3f}'),
    ('max_gated_speed_mps', 'top gated speed [m/s]', '{:.3f}'),
    ('replay_max_lag_s', 'player max lag [s]', '{:.3f}'),
)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def evaluation_summary(evaluation: Evaluation) -> dict:
    return _json_safe({
        'bag': evaluation.bag,
        'passed': evaluation.passed,
        'checks': [vars(check) for check in evaluation.checks],
        'metrics': evaluation.metrics,
        'notes': evaluation.notes,
    })


def write_bag_report(report_dir: Path, evaluation: Evaluation, record: ReplayRecord) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    with (report_dir / 'result.jsonl').open('w', encoding='utf-8') as stream:
        for row in evaluation.rows:
            stream.write(json.dumps(_json_safe(row)) + '\n')
    write_bag_summary(report_dir, evaluation)
    plot_timeline(report_dir / 'timeline.png', evaluation, record)
    write_planner_transitions(report_dir)


def write_bag_summary(report_dir: Path, evaluation: Evaluation) -> Path:
    path = report_dir / 'summary.json'
    path.write_text(json.dumps(evaluation_summary(evaluation), indent=2), encoding='utf-8')
    return path


def write_planner_transitions(report_dir: Path) -> Path | None:
    """planner_transitions.jsonl from the planner's /diagnostics in the outputs bag, on bag
    time (the planner's clock); None when there is no outputs bag or no planner."""
    outputs = report_dir / OUTPUTS_FOLDER
    if not (outputs / 'metadata.yaml').is_file():
        return None
    transitions = PlannerTransitions()
    reader = open_reader(outputs)
    try:
        store, _ = typestore_for(reader)
        for connection, _, data in iter_messages(reader, ['/diagnostics']):
            message = store.deserialize_cdr(data, connection.msgtype)
            stamp = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
            for status in message.status:
                if is_planner_status(status.name):
                    transitions.observe(stamp, {kv.key: kv.value for kv in status.values})
    finally:
        reader.close()
    if not transitions.entries:  # no planner in this replay (--nodes)
        return None
    return transitions.write_jsonl(report_dir / PLANNER_TRANSITIONS_FILE)


def bag_evidence(outcome: BagOutcome, relative_to: Path) -> dict[str, object]:
    """What explains a bag's replay: the bag itself, the nodes' outputs as a bag, their logs,
    the planner's transitions, the per-frame results and the timeline (paths relative to
    ``relative_to`` where they lie below it)."""
    def shown(path: Path) -> str:
        try:
            return path.resolve().relative_to(relative_to.resolve()).as_posix()
        except ValueError:
            return str(path)

    links: dict[str, object] = {'bag': str(outcome.bag)}
    report_dir = outcome.report_dir
    if report_dir is None:
        return links
    if (report_dir / OUTPUTS_FOLDER / 'metadata.yaml').is_file():
        links['outputs'] = shown(report_dir / OUTPUTS_FOLDER)
    logs = sorted((report_dir / 'logs').glob('*.log'))
    if logs:
        links['logs'] = [shown(log) for log in logs]
    for name in (PLANNER_TRANSITIONS_FILE, 'result.jsonl', 'timeline.png', 'playback.json'):
        if (report_dir / name).is_file():
            links[Path(name).stem] = shown(report_dir / name)
    return links


def plot_timeline(path: Path, evaluation: Evaluation, record: ReplayRecord) -> None:
    """Speed, nearest obstacle, vetoes and perception agreement over bag time."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = evaluation.rows
    origin = record.start_time
    frame_times = [row['time'] - origin for row in rows]
    figure, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    speed, distance, veto, agreement = axes
    if record.commands:
        speed.plot([c.time - origin for c in record.commands], [c.linear for c in record.commands],
                   label='planner /cmd_vel_nav', color='tab:blue', alpha=0.7)
    if record.gated:
        speed.plot([g.time - origin for g in record.gated], [g.linear for g in record.gated],
                   label='monitor /cmd_vel', color='tab:green')
    speed.plot(frame_times, [min(SPEED_AXIS_TOP, _nan(row['speed_limit_mps'])) for row in rows],
               '--', color='tab:red', label='stopping-distance limit (raw scan)')
    speed.set_ylabel('speed [m/s]')
    speed.set_ylim(bottom=min(-0.1, speed.get_ylim()[0]), top=SPEED_AXIS_TOP)
    speed.legend(loc='upper right', fontsize=8)
    distance.plot(frame_times, [_nan(row['nearest_obstacle_m']) for row in rows],
                  color='tab:orange', label='raw scan, straight corridor')
    if record.states:
        distance.plot([s.time - origin for s in record.states],
                      [s.nearest_obstacle_m for s in record.states], color='tab:purple',
                      alpha=0.6, label='monitor nearest_obstacle_m')
    distance.set_ylabel('nearest obstacle [m]')
    distance.legend(loc='upper right', fontsize=8)
    veto.step(frame_times, [1 if row['veto'] else 0 for row in rows], where='post',
              color='tab:red', label='veto')
    veto.step(frame_times, [0.7 if row['limited'] else 0 for row in rows], where='post',
              color='tab:orange', label='limited')
    veto.step(frame_times, [0.5 if row['stale'] else 0 for row in rows], where='post',
              color='black', label='stale output')
    violations = [row['time'] - origin for row in rows if row['stopping_violations']]
    veto.plot(violations, [1.1] * len(violations), 'rv', label='stopping violation')
    estops = [e.time - origin for e in record.estops if e.engaged]
    for index, estop in enumerate(estops):
        veto.axvline(estop, color='tab:brown', label='e-stop' if index == 0 else None)
    veto.set_ylim(-0.1, 1.3)
    veto.set_ylabel('events')
    veto.legend(loc='upper right', fontsize=8)
    agreement.plot(frame_times, [_nan(row.get('recall')) for row in rows], '.-',
                   label='recall vs lidar')
    agreement.plot(frame_times, [_nan(row.get('false_alarm_rate')) for row in rows], '.-',
                   label='false-alarm rate vs lidar')
    agreement.set_ylim(-0.05, 1.05)
    agreement.set_ylabel('agreement')
    agreement.set_xlabel('bag time [s]')
    agreement.legend(loc='upper right', fontsize=8)
    status = 'PASS' if evaluation.passed else 'FAIL'
    figure.suptitle(f'{Path(evaluation.bag).name}: {status}')
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def outcome_summary(outcome: BagOutcome, relative_to: Path) -> dict:
    entry = {'bag': str(outcome.bag), 'status': outcome.status, 'reason': outcome.reason,
             'warnings': outcome.warnings,
             'report': str(outcome.report_dir) if outcome.report_dir else None,
             'evidence': bag_evidence(outcome, relative_to)}
    if outcome.evaluation is not None:
        summary = evaluation_summary(outcome.evaluation)
        entry.update(checks=summary['checks'], metrics=summary['metrics'], notes=summary['notes'])
    return entry


def write_run_summary(output_dir: Path, outcomes: Sequence[BagOutcome],
                      criteria_path: Path | None) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        'passed': bool(outcomes) and all(o.status == 'passed' for o in outcomes),
        'criteria': str(criteria_path) if criteria_path else None,
        'counts': {status: sum(1 for o in outcomes if o.status == status)
                   for status in ('passed', 'failed', 'skipped')},
        'bags': [outcome_summary(outcome, output_dir) for outcome in outcomes],
    }
    (output_dir / 'summary.json').write_text(json.dumps(_json_safe(summary), indent=2),
                                             encoding='utf-8')
    return summary


def write_junit(path: Path, outcomes: Sequence[BagOutcome], suite_prefix: str = '') -> None:
    """One test suite per bag, one test case per check; a skipped bag is a skipped case."""
    suites = ElementTree.Element('testsuites', name='sidewalk-robot replay')
    for outcome in outcomes:
        name = f'{suite_prefix}{Path(outcome.bag).name}'
        suite = ElementTree.SubElement(suites, 'testsuite', name=name)
        checks = outcome.evaluation.checks if outcome.evaluation else []
        if not checks:
            case = ElementTree.SubElement(suite, 'testcase', classname=name, name='replay')
            ElementTree.SubElement(case, 'skipped', message=outcome.reason or 'not replayed')
        for check in checks:
            case = ElementTree.SubElement(suite, 'testcase', classname=name, name=check.name)
            if not check.passed:
                failure = ElementTree.SubElement(case, 'failure', message=check.detail)
                failure.text = f'value {check.value!r}, limit {check.limit!r}'
            else:
                ElementTree.SubElement(case, 'system-out').text = check.detail
        failures = sum(1 for check in checks if not check.passed)
        suite.set('tests', str(max(1, len(checks))))
        suite.set('failures', str(failures))
        suite.set('errors', '0')
        suite.set('skipped', '0' if checks else '1')
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(suites).write(path, encoding='utf-8', xml_declaration=True)


def write_comparison(output_dir: Path, variants: Mapping[str, Sequence[BagOutcome]]) -> str:
    """compare.json and compare.md: each metric per bag for every variant, plus the delta."""
    labels = list(variants)
    bags = sorted({str(o.bag) for outcomes in variants.values() for o in outcomes})
    table: dict[str, dict] = {}
    lines = ['# Replay comparison', '', f'Variants: {", ".join(labels)}', '']
    for bag in bags:
        per_variant = {label: next((o for o in variants[label] if str(o.bag) == bag), None)
                       for label in labels}
        lines += [f'## {Path(bag).name}', '',
                  '| metric | ' + ' | '.join(labels) + ' | B - A |',
                  '| --- |' + ' --- |' * (len(labels) + 1)]
        statuses = [per_variant[label].status if per_variant[label] else 'missing'
                    for label in labels]
        lines.append('| result | ' + ' | '.join(statuses) + ' | |')
        bag_table = {'status': dict(zip(labels, statuses)), 'metrics': {}}
        for key, title, style in COMPARED_METRICS:
            values = [_metric(per_variant[label], key) for label in labels]
            delta = (values[1] - values[0] if len(values) == 2 and None not in values else None)
            bag_table['metrics'][key] = {'values': dict(zip(labels, values)), 'delta': delta}
            lines.append(f'| {title} | ' + ' | '.join(_format(v, style) for v in values)
                         + f' | {_format(delta, style, signed=True)} |')
        table[bag] = bag_table
        lines.append('')
    (output_dir / 'compare.json').write_text(json.dumps(_json_safe(table), indent=2),
                                             encoding='utf-8')
    text = '\n'.join(lines)
    (output_dir / 'compare.md').write_text(text + '\n', encoding='utf-8')
    return text


def _metric(outcome: BagOutcome | None, key: str) -> float | None:
    if outcome is None or outcome.evaluation is None:
        return None
    value = outcome.evaluation.metrics.get(key)
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else float(value)


def _format(value: float | None, style: str, signed: bool = False) -> str:
    if value is None:
        return '-'
    if style == 'ms':
        value, style = value * 1000.0, '{:.1f}'
    text = style.format(value)
    return f'+{text}' if signed and value > 0 else text

"""The promotion gate: a candidate perception model replaces the current one only when it is
no worse on held-out data, passes the replay of every recorded bag and the scenario suite.

Stages run in order and the first failure ends the gate (what did not run is recorded as
skipped): held-out metrics first, since they take seconds and catch most bad models, then the
replays and the scenarios, which take minutes. The decision, with every figure, is written
into the candidate's card.json (``promotion``) and into ``<output>/<time>/decision.json``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sidewalk_robot import share_directory
from sidewalk_robot.perception.cli import DEFAULT_DATASET

QUICK_FRAMES = 40
QUICK_SCENARIOS = ('pole_in_path',)
REPLAY_RATE = 2.0


@dataclass(frozen=True)
class GateLimits:
    """How much worse than the current model a candidate may be on the held-out split."""
    bev_recall_drop: float = 0.005
    bev_precision_drop: float = 0.005
    mean_iou_drop: float = 0.01
    obstacle_ece_rise: float = 0.01


@dataclass(frozen=True)
class PromotionOptions:
    candidate: Path
    current: Path | None = None
    """None: the model_dir of config/perception.yaml."""
    dataset: Path = Path(DEFAULT_DATASET)
    bags: tuple[Path, ...] | None = None
    """None: every bag in test/data."""
    quick: bool = False
    output: Path = Path('runs/promotion')
    limits: GateLimits = GateLimits()


@dataclass(frozen=True)
class Check:
    name: str
    candidate: float
    current: float
    limit: float
    passed: bool
    sentence: str


def compare_held_out(candidate: dict[str, Any], current: dict[str, Any],
                     limits: GateLimits) -> list[Check]:
    """The candidate's held-out figures against the current model's (same frames)."""
    figures = [
        ('bev_recall', candidate['bev']['recall'], current['bev']['recall'],
         -limits.bev_recall_drop),
        ('bev_precision', candidate['bev']['precision'], current['bev']['precision'],
         -limits.bev_precision_drop),
        ('mean_iou', candidate['mean_iou'], current['mean_iou'], -limits.mean_iou_drop),
        ('obstacle_ece', candidate['obstacle_ece'], current['obstacle_ece'],
         limits.obstacle_ece_rise),
    ]
    checks = []
    for name, new, old, allowed in figures:
        lower_is_better = allowed > 0
        if any(isinstance(v, float) and math.isnan(v) for v in (new, old)):
            passed = False
            sentence = f'{name}: not measurable on these frames (candidate {new}, current {old})'
        else:
            change = new - old
            passed = change <= allowed if lower_is_better else change >= allowed
            sentence = (f'{name} {new:.4f} vs {old:.4f} ({change:+.4f}; allowed '
                        f'{"up to +" if lower_is_better else "down to "}{allowed:+.4f})')
        checks.append(Check(name, new, old, allowed, passed, sentence))
    return checks


def default_current_model() -> Path:
    from sidewalk_robot.config import load_config
    from sidewalk_robot.perception.config import PerceptionConfig

    return load_config(PerceptionConfig, share_directory() / 'config' /
                       'perception.yaml').resolved_model_dir()


def held_out_metrics(model_dir: Path, dataset: Path, max_frames: int) -> dict[str, Any]:
    """The model on the dataset's held-out split, projected as the node projects."""
    from sidewalk_robot.config import load_config
    from sidewalk_robot.perception.config import PerceptionConfig
    from sidewalk_robot.perception.dataset import capture_camera, load_split, read_card
    from sidewalk_robot.perception.evaluation import (evaluate_frames, model_predictor,
                                                      settings_for)
    from sidewalk_robot.perception.geometry import GridGeometry
    from sidewalk_robot.perception.model_io import load_model

    card = read_card(dataset)
    frames = load_split(dataset, 'held_out')
    if max_frames:
        frames = frames.subset(slice(0, max_frames))
    node_config = load_config(PerceptionConfig, share_directory() / 'config' / 'perception.yaml')
    return evaluate_frames(model_predictor(load_model(model_dir)), frames, capture_camera(card),
                           GridGeometry(**card['grid']), settings_for(node_config))


def promote(options: PromotionOptions, progress: Callable[[str], None] = print
            ) -> dict[str, Any]:
    """Run the gate; returns the decision (also written into the candidate's card)."""
    from sidewalk_robot.perception.model_card import ModelLoadError, read_card, write_card

    candidate = options.candidate.resolve()
    current = (options.current or default_current_model()).resolve()
    if candidate == current:
        raise ValueError(f'{candidate} is the current model already')
    try:
        card = read_card(candidate)
        current_card = read_card(current)
    except (ModelLoadError, FileNotFoundError, ValueError) as error:
        raise ValueError(f'cannot read a model card: {error}') from error
    started = datetime.now(timezone.utc)
    report_dir = options.output / f'{started.strftime("%Y%m%dT%H%M%SZ")}-{card.get("version")}'
    report_dir.mkdir(parents=True, exist_ok=True)
    stages: list[dict[str, Any]] = []

    progress(f'held-out metrics of {candidate.name} and {current.name} on {options.dataset}')
    frames = QUICK_FRAMES if options.quick else 0
    try:
        new, old = (held_out_metrics(candidate, options.dataset, frames),
                    held_out_metrics(current, options.dataset, frames))
    except (ModelLoadError, FileNotFoundError, ValueError) as error:
        raise ValueError(f'held-out evaluation failed: {error}') from error
    checks = compare_held_out(new, old, options.limits)
    stages.append({'stage': 'held_out_metrics', 'passed': all(c.passed for c in checks),
                   'frames': new['frames'], 'dataset': str(options.dataset),
                   'checks': [asdict(c) for c in checks]})
    for check in checks:
        progress(f'  {"ok  " if check.passed else "FAIL"} {check.sentence}')

    if stages[-1]['passed']:
        stages.append(_replay_stage(candidate, options, report_dir, progress))
    if stages[-1]['passed']:
        stages.append(_scenario_stage(candidate, options, report_dir, progress))
    ran = {stage['stage'] for stage in stages}
    stages += [{'stage': name, 'passed': None, 'skipped': 'an earlier stage failed'}
               for name in ('held_out_metrics', 'replay', 'scenarios') if name not in ran]
    promoted = all(stage['passed'] for stage in stages)
    decision = {
        'decision': 'promoted' if promoted else 'refused',
        'time': started.isoformat(timespec='seconds'),
        'candidate': {'path': str(candidate), 'version': card.get('version')},
        'against': {'path': str(current), 'version': current_card.get('version')},
        'quick': options.quick, 'limits': asdict(options.limits), 'stages': stages,
        'reason': ('every stage passed' if promoted else
                   next(_failure(stage) for stage in stages if stage['passed'] is False)),
        'report': str(report_dir),
    }
    card = read_card(candidate)  # as it is now: an evaluation may have written meanwhile
    card.setdefault('promotion', []).append(decision)
    write_card(candidate, card)
    (report_dir / 'decision.json').write_text(json.dumps(decision, indent=2, default=str) + '\n',
                                              encoding='utf-8')
    progress(f'{decision["decision"]}: {decision["reason"]}')
    return decision


def _failure(stage: dict[str, Any]) -> str:
    if stage['stage'] == 'held_out_metrics':
        failed = [c['name'] for c in stage['checks'] if not c['passed']]
        return f'worse than the current model on the held-out split: {", ".join(failed)}'
    return f'{stage["stage"]}: {stage.get("failed") or stage.get("error")}'


def _replay_stage(candidate: Path, options: PromotionOptions, report_dir: Path,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    from sidewalk_robot.replay.runner import ReplayOptions, run_replay_command

    bags = list(options.bags) if options.bags is not None else sorted(
        p.parent for p in (share_directory() / 'test' / 'data').glob('*/metadata.yaml'))
    if options.quick:
        bags = bags[:1]
    if not bags:
        return {'stage': 'replay', 'passed': False, 'error': 'no bags to replay'}
    progress(f'replaying {len(bags)} bag(s) with {candidate.name}')
    status = run_replay_command(bags, report_dir / 'replay',
                                ReplayOptions(rate=REPLAY_RATE, model=candidate))
    summary_path = report_dir / 'replay' / 'summary.json'
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {'stage': 'replay', 'passed': status == 0, 'exit_status': status,
            'bags': [str(b) for b in bags], 'report': str(report_dir / 'replay'),
            'failed': None if status == 0 else f'exit status {status} (see {summary_path})',
            'summary': summary.get('bags', summary)}


def _scenario_stage(candidate: Path, options: PromotionOptions, report_dir: Path,
                    progress: Callable[[str], None]) -> dict[str, Any]:
    from sidewalk_robot.system.runner import RunOptions
    from sidewalk_robot.system.scenarios import load_suite
    from sidewalk_robot.system.suite import run_suite

    scenarios = load_suite(None, QUICK_SCENARIOS if options.quick else ())
    with_candidate = []
    for scenario in scenarios:
        parameters = {node: dict(changes) for node, changes in scenario.parameters.items()}
        parameters.setdefault('perception', {})['model_dir'] = str(candidate)
        with_candidate.append(replace(scenario, parameters=parameters))
    progress(f'running {len(scenarios)} scenario(s) with {candidate.name}')
    results = run_suite(with_candidate, RunOptions(record_bag=False),
                        report_dir / 'scenarios')
    failed = [result.name for result in results if not result.passed]
    return {'stage': 'scenarios', 'passed': not failed and bool(results),
            'scenarios': {result.name: {'passed': result.passed, 'failures': result.failures}
                          for result in results},
            'failed': ', '.join(failed) if failed else None}

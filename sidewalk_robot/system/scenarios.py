"""Scenario files (config/scenarios/*.yaml) and their success criteria (pure, no rclpy).

A scenario file is the simulator's overlay (name, world, seed, start, goal, obstacles,
pedestrians: read by sim_node through its ``scenario_file`` parameter) plus the keys this layer
adds:

    description: what the scenario checks (one line)
    timeout: 90                 # simulated seconds after the goal is issued
    faults: [{type: perception_blind, start: 0.0}]      # see faults.py
    parameters: {planner: {use_scan: false}}  # node parameters changed for this run only
    success: {arrive: true, max_collisions: 0, min_clearance_m: 0.05,
              max_time_s: 60, expect_veto_reasons: [obstacle]}
    sweep: {obstacles.pole.x: {uniform: [9, 15]}}  # for sidewalk-robot sweep: distributions.py

``arrive: false`` means the robot must *not* reach the goal (a blocked sidewalk); leave it out
(null) when either outcome is acceptable (a blind robot may be stopped for good).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidewalk_robot import share_directory
from sidewalk_robot.config import read_parameter_file, read_yaml_mapping
from sidewalk_robot.system.distributions import SweepParameter, parse_sweep
from sidewalk_robot.system.faults import FaultSpec, parse_faults
from sidewalk_robot.system.metrics import RunSummary

DEFAULT_TIMEOUT_S = 90.0
_SUCCESS_KEYS = {'arrive', 'max_collisions', 'min_clearance_m', 'max_time_s',
                 'expect_veto_reasons', 'max_vetoes_per_100m'}
_SIMULATOR_KEYS = {'name', 'world', 'seed', 'start', 'goal', 'route', 'obstacles',
                   'pedestrians'}
_SYSTEM_KEYS = {'description', 'timeout', 'faults', 'success', 'tags', 'parameters', 'sweep'}
PARAMETER_NODES = ('perception', 'planner', 'safety_monitor')
"""Nodes of robot.launch.xml whose parameters a scenario may change: config/<node>.yaml is
copied with the changes and passed as the launch argument <node>_params_file."""


@dataclass(frozen=True)
class SuccessCriteria:
    arrive: bool | None = True
    max_collisions: int = 0
    min_clearance_m: float | None = None
    max_time_s: float | None = None
    expect_veto_reasons: tuple[str, ...] = ()
    max_vetoes_per_100m: float | None = None

    def failures(self, summary: RunSummary) -> list[str]:
        """Why ``summary`` misses these criteria (empty: success)."""
        problems: list[str] = []
        if self.arrive is True and not summary.arrived:
            remaining = summary.final_distance_to_goal_m
            problems.append('did not arrive' + (f' ({remaining:.1f} m from the goal)'
                                                if remaining is not None else ''))
        if self.arrive is False and summary.arrived:
            problems.append('arrived although the goal should be unreachable')
        if summary.collisions > self.max_collisions:
            problems.append(f'{summary.collisions} collision(s) with '
                            f'{", ".join(summary.collided_with)} (allowed {self.max_collisions})')
        if self.min_clearance_m is not None and summary.min_clearance_m is not None \
                and summary.min_clearance_m < self.min_clearance_m:
            problems.append(f'clearance {summary.min_clearance_m:.2f} m < '
                            f'{self.min_clearance_m:.2f} m')
        if self.max_time_s is not None and summary.arrived \
                and summary.time_to_goal_s is not None and summary.time_to_goal_s > self.max_time_s:
            problems.append(f'took {summary.time_to_goal_s:.1f} s > {self.max_time_s:.1f} s')
        for expected in self.expect_veto_reasons:
            if not any(expected.lower() in reason.lower() for reason in summary.vetoes_by_reason):
                problems.append(f'no safety veto with a reason containing {expected!r} '
                                f'(saw: {", ".join(summary.vetoes_by_reason) or "none"})')
        if self.max_vetoes_per_100m is not None and summary.vetoes_per_100m is not None \
                and summary.vetoes_per_100m > self.max_vetoes_per_100m:
            problems.append(f'{summary.vetoes_per_100m:.1f} vetoes per 100 m > '
                            f'{self.max_vetoes_per_100m:.1f}')
        return problems


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    world: str
    seed: int
    timeout_s: float
    faults: tuple[FaultSpec, ...]
    success: SuccessCriteria
    description: str = ''
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    document: Mapping[str, Any] = field(default_factory=dict)
    sweep: tuple[SweepParameter, ...] = ()
    """What a sweep draws (the ``sweep:`` block); a plain run uses the nominal values."""

    @property
    def fault_group(self) -> str:
        """'healthy' or the fault types joined with '+': the system report's grouping."""
        return '+'.join(sorted({fault.type for fault in self.faults})) or 'healthy'


def _finite(value: Any, name: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f'{path}: {name} must be a finite number, got {value!r}')
    return float(value)


def parse_success(entry: Mapping[str, Any] | None, path: Path) -> SuccessCriteria:
    entry = dict(entry or {})
    unknown = set(entry) - _SUCCESS_KEYS
    if unknown:
        raise ValueError(f'{path}: unknown success keys {sorted(unknown)} '
                         f'(known: {sorted(_SUCCESS_KEYS)})')
    arrive = entry.get('arrive', True)
    if arrive not in (True, False, None):
        raise ValueError(f'{path}: success.arrive must be true, false or null, got {arrive!r}')
    max_collisions = entry.get('max_collisions', 0)
    if isinstance(max_collisions, bool) or not isinstance(max_collisions, int) \
            or max_collisions < 0:
        raise ValueError(f'{path}: success.max_collisions must be an integer >= 0')
    optional = {key: (_finite(entry[key], f'success.{key}', path)
                      if entry.get(key) is not None else None)
                for key in ('min_clearance_m', 'max_time_s', 'max_vetoes_per_100m')}
    reasons = entry.get('expect_veto_reasons', [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ValueError(f'{path}: success.expect_veto_reasons must be a list of strings')
    return SuccessCriteria(arrive=arrive, max_collisions=max_collisions,
                           expect_veto_reasons=tuple(reasons), **optional)


def parse_parameters(entry: Any, path: Path) -> dict[str, dict[str, Any]]:
    """``parameters: {node: {name: value}}``: every node and parameter must exist."""
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise ValueError(f'{path}: parameters must map node names to parameter values')
    parsed: dict[str, dict[str, Any]] = {}
    for node, values in entry.items():
        if node not in PARAMETER_NODES:
            raise ValueError(f'{path}: parameters for unknown node {node!r} '
                             f'(known: {", ".join(PARAMETER_NODES)})')
        if not isinstance(values, dict) or not values:
            raise ValueError(f'{path}: parameters.{node} must map parameter names to values')
        known = read_parameter_file(share_directory() / 'config' / f'{node}.yaml')
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f'{path}: {node} has no parameter(s) {unknown}')
        parsed[node] = dict(values)
    return parsed


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file; ValueError / FileNotFoundError name the problem."""
    path = Path(path)
    return parse_scenario(read_yaml_mapping(path, 'scenario file'), path)


def parse_scenario(document: Mapping[str, Any], path: Path) -> Scenario:
    """Check a scenario document (``path``: where it is, or would be, written)."""
    unknown = set(document) - _SIMULATOR_KEYS - _SYSTEM_KEYS
    if unknown:
        raise ValueError(f'{path}: unknown keys {sorted(unknown)}')
    for required in ('name', 'world'):
        if not isinstance(document.get(required), str) or not document[required]:
            raise ValueError(f'{path}: "{required}" must be a non-empty string')
    seed = document.get('seed', 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f'{path}: seed must be an integer, got {seed!r}')
    timeout = _finite(document.get('timeout', DEFAULT_TIMEOUT_S), 'timeout', path)
    if timeout <= 0:
        raise ValueError(f'{path}: timeout must be positive')
    try:
        faults = parse_faults(document.get('faults'))
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error
    return Scenario(name=document['name'], path=path, world=document['world'], seed=seed,
                    timeout_s=timeout, faults=faults,
                    success=parse_success(document.get('success'), path),
                    description=str(document.get('description', '')),
                    parameters=parse_parameters(document.get('parameters'), path),
                    document=document,
                    sweep=parse_sweep(document.get('sweep'), document, str(path)))


def scenario_directory() -> Path:
    return share_directory() / 'config' / 'scenarios'


def load_suite(directory: Path | None = None, only: Iterable[str] = ()) -> list[Scenario]:
    """Every scenario of ``directory`` (sorted by file name), or just those named in ``only``."""
    directory = directory or scenario_directory()
    scenarios = [load_scenario(path) for path in sorted(directory.glob('*.yaml'))]
    names = [scenario.name for scenario in scenarios]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'{directory}: duplicate scenario names {duplicates}')
    wanted = list(only)
    if not wanted:
        return scenarios
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise ValueError(f'unknown scenario(s) {missing} (known: {", ".join(names)})')
    return [scenario for scenario in scenarios if scenario.name in wanted]

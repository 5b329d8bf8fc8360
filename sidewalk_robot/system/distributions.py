"""The ``sweep:`` block of a scenario file: distributions to draw scenario variants from (pure).

    sweep:
      obstacles.pole.x: {uniform: [9.0, 15.0]}
      obstacles.pole.radius: {normal: [0.12, 0.03], min: 0.05}
      obstacles.pole.color: {choice: [[0.2, 0.2, 0.2], [0.9, 0.4, 0.1]]}
      pedestrians.crosser.speed: {uniform: [0.8, 1.6]}
      pedestrians.crosser.waypoints: {choice: [[[11, -1.6], [11, 1.6]], [[14, 1.6], [10, -1.6]]]}
      faults.lidar_dropout.start: {uniform: [3.0, 12.0]}

Each key is a path to one value of the scenario document, its parts separated by dots: mapping
keys, and list entries by their ``name`` (obstacles, pedestrians), their ``type`` (faults) or
their index (``obstacles.0.size.2``). The value under the path is the nominal one, which a plain
scenario run uses; a sweep replaces it with a draw. ``min``/``max`` clamp a uniform or normal
draw (a normal radius must stay positive).

Variant ``i`` of a sweep with seed ``s`` depends on (s, i) and the declarations alone: its
random generator is seeded from both, so variant 17 is the same in a sweep of 20 and one of
1000, and a sweep can be resumed or extended. Only ``random.Random.random()`` is used, whose
sequence for a given seed Python keeps across versions; every draw is made from it.
"""
from __future__ import annotations

import copy
import hashlib
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DISTRIBUTION_KINDS = ('uniform', 'normal', 'choice')
SWEPT_ROOTS = ('world', 'start', 'goal', 'route', 'obstacles', 'pedestrians', 'faults',
               'parameters', 'timeout')
"""Top-level keys a sweep may vary. Not ``seed``: every variant draws its own simulator seed."""
_LIST_KEYS = ('name', 'type')
"""How a path part picks a list entry other than by index."""
SIMULATOR_SEED_RANGE = 2 ** 31


@dataclass(frozen=True)
class Distribution:
    kind: str
    arguments: tuple[Any, ...]
    minimum: float | None = None
    maximum: float | None = None

    def draw(self, rng: random.Random) -> Any:
        if self.kind == 'choice':
            return copy.deepcopy(self.arguments[int(rng.random() * len(self.arguments))])
        if self.kind == 'uniform':
            low, high = self.arguments
            value = low + (high - low) * rng.random()
        else:
            mean, deviation = self.arguments
            value = statistics.NormalDist(mean, deviation).inv_cdf(_open_unit(rng)) \
                if deviation > 0 else mean
        if self.minimum is not None:
            value = max(value, self.minimum)
        if self.maximum is not None:
            value = min(value, self.maximum)
        return value

    def describe(self) -> str:
        text = f'{self.kind}{list(self.arguments)}'
        bounds = [f'{name} {value:g}' for name, value in (('min', self.minimum),
                                                          ('max', self.maximum))
                  if value is not None]
        return text + (f' ({", ".join(bounds)})' if bounds else '')


def _open_unit(rng: random.Random) -> float:
    """A uniform draw in (0, 1): the normal quantile of 0 is minus infinity."""
    while True:
        value = rng.random()
        if value > 0.0:
            return value


@dataclass(frozen=True)
class SweepParameter:
    path: str
    distribution: Distribution

    @property
    def numeric(self) -> bool:
        return self.distribution.kind != 'choice' or all(
            _is_number(option) for option in self.distribution.arguments)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value)


def parse_distribution(entry: Any, where: str) -> Distribution:
    if not isinstance(entry, Mapping):
        raise ValueError(f'{where}: expected a distribution such as {{uniform: [a, b]}}, '
                         f'{{normal: [mean, sigma]}} or {{choice: [...]}}, got {entry!r}')
    kinds = [key for key in entry if key in DISTRIBUTION_KINDS]
    unknown = sorted(set(entry) - set(DISTRIBUTION_KINDS) - {'min', 'max'})
    if len(kinds) != 1 or unknown:
        raise ValueError(f'{where}: needs exactly one of {", ".join(DISTRIBUTION_KINDS)} '
                         f'(and optionally min, max); got keys {sorted(entry)}')
    kind = kinds[0]
    arguments = entry[kind]
    if kind == 'choice':
        if not isinstance(arguments, list) or not arguments:
            raise ValueError(f'{where}: choice needs a non-empty list of values')
        if 'min' in entry or 'max' in entry:
            raise ValueError(f'{where}: min and max apply to uniform and normal only')
        return Distribution(kind, tuple(arguments))
    if (not isinstance(arguments, list) or len(arguments) != 2
            or not all(_is_number(value) for value in arguments)):
        raise ValueError(f'{where}: {kind} needs two finite numbers, got {arguments!r}')
    first, second = (float(value) for value in arguments)
    if kind == 'uniform' and first > second:
        raise ValueError(f'{where}: uniform needs [low, high] with low <= high')
    if kind == 'normal' and second < 0:
        raise ValueError(f'{where}: normal needs [mean, sigma] with sigma >= 0')
    bounds = {}
    for name in ('min', 'max'):
        if entry.get(name) is not None:
            if not _is_number(entry[name]):
                raise ValueError(f'{where}: {name} must be a finite number')
            bounds[name] = float(entry[name])
    if 'min' in bounds and 'max' in bounds and bounds['min'] > bounds['max']:
        raise ValueError(f'{where}: min must not exceed max')
    return Distribution(kind, (first, second), bounds.get('min'), bounds.get('max'))


def _list_index(items: list, part: str, path: str) -> int:
    """The entry of ``items`` that ``part`` names: by name, fault type, or index."""
    matches = [index for index, item in enumerate(items) if isinstance(item, Mapping)
               and any(item.get(key) == part for key in _LIST_KEYS)]
    if len(matches) > 1:
        raise ValueError(f'sweep path {path!r}: {part!r} names {len(matches)} entries; '
                         f'use the index instead')
    if matches:
        return matches[0]
    if part.isdigit() and int(part) < len(items):
        return int(part)
    raise ValueError(f'sweep path {path!r}: no entry {part!r} (entries are picked by name, '
                     f'fault type or index 0-{len(items) - 1})')


def _parent_of(document: Any, path: str) -> tuple[Any, str | int]:
    """The container holding the value at ``path`` and its key or index there."""
    parts = path.split('.')
    if not all(parts):
        raise ValueError(f'sweep path {path!r} has an empty part')
    if parts[0] not in SWEPT_ROOTS:
        raise ValueError(f'sweep path {path!r}: a sweep can vary {", ".join(SWEPT_ROOTS)}')
    container = document
    for depth, part in enumerate(parts):
        if isinstance(container, list):
            key: str | int = _list_index(container, part, path)
        elif isinstance(container, Mapping):
            key = part
        else:
            raise ValueError(f'sweep path {path!r}: {".".join(parts[:depth])!r} holds '
                             f'{container!r}, not a mapping or a list')
        if depth == len(parts) - 1:
            return container, key
        if isinstance(container, Mapping) and key not in container:
            raise ValueError(f'sweep path {path!r}: the scenario has no '
                             f'{".".join(parts[:depth + 1])!r}')
        container = container[key]
    raise AssertionError('unreachable: a path has at least one part')


def parse_sweep(entry: Any, document: Mapping[str, Any], where: str
                ) -> tuple[SweepParameter, ...]:
    """The ``sweep:`` block of ``document`` (None: no sweep); ValueError names the problem."""
    if entry is None:
        return ()
    if not isinstance(entry, Mapping) or not entry:
        raise ValueError(f'{where}: sweep must map value paths to distributions')
    parameters = []
    for path, declaration in entry.items():
        if not isinstance(path, str):
            raise ValueError(f'{where}: sweep keys are paths such as obstacles.pole.x, '
                             f'got {path!r}')
        try:
            _parent_of(document, path)
        except ValueError as error:
            raise ValueError(f'{where}: {error}') from None
        parameters.append(SweepParameter(path, parse_distribution(declaration,
                                                                  f'{where}: sweep.{path}')))
    return tuple(parameters)


def variant_seed(seed: int, index: int) -> int:
    """The seed of variant ``index``'s generator: a hash, so neighbouring variants and
    neighbouring sweep seeds share nothing."""
    digest = hashlib.sha256(f'sidewalk-robot sweep {seed} variant {index}'.encode()).digest()
    return int.from_bytes(digest[:8], 'big')


@dataclass(frozen=True)
class Variant:
    index: int
    document: dict[str, Any]
    """The scenario document with the drawn values, without ``sweep``."""
    values: dict[str, Any]
    """The drawn value of every swept path, and the simulator seed under ``seed``."""


def draw_variant(document: Mapping[str, Any], parameters: Sequence[SweepParameter], seed: int,
                 index: int) -> Variant:
    """Variant ``index`` of the sweep ``seed``: a function of those two and the declarations."""
    rng = random.Random(variant_seed(seed, index))
    variant = copy.deepcopy({key: value for key, value in document.items() if key != 'sweep'})
    values: dict[str, Any] = {'seed': int(rng.random() * SIMULATOR_SEED_RANGE)}
    for parameter in parameters:
        value = parameter.distribution.draw(rng)
        container, key = _parent_of(variant, parameter.path)
        container[key] = value
        values[parameter.path] = value
    variant['seed'] = values['seed']
    variant['name'] = f'{document["name"]}-{index:04d}'
    return Variant(index, variant, values)

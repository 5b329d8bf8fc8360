"""Street crossings on a route: where the robot must stop at the kerb and ask before going on.

A crossing is declared by its start (the near kerb) and end (the far kerb) in the route's frame;
they arrive on route_crossings next to /route (docs/operations.md), which has no room for them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sidewalk_robot.planning.route import Route

STAMP_TOLERANCE = 1e-6
"""route_stamp and the route's header stamp are the same number sent two ways [s]."""


@dataclass(frozen=True)
class Crossing:
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class RouteCrossings:
    """The crossings of the route whose header stamp is ``route_stamp``."""
    frame_id: str
    route_stamp: float
    crossings: tuple[Crossing, ...]

    def belongs_to(self, route_stamp: float | None) -> bool:
        return route_stamp is not None and abs(self.route_stamp - route_stamp) <= STAMP_TOLERANCE


@dataclass(frozen=True)
class CrossingSpan:
    """A crossing located on the route: arc lengths of its start and end."""
    start_s: float
    end_s: float


def _point(value: object, where: str) -> tuple[float, float]:
    if not isinstance(value, dict) or not {'x', 'y'} <= set(value):
        raise ValueError(f'{where} must be {{"x": ..., "y": ...}}')
    try:
        x, y = float(value['x']), float(value['y'])
    except (TypeError, ValueError) as error:
        raise ValueError(f'{where} is not a pair of numbers') from error
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f'{where} is not finite')
    return x, y


def parse_route_crossings(text: str) -> RouteCrossings:
    """The JSON of route_crossings; ValueError says what is wrong with it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'route crossings are not JSON: {error}') from error
    if not isinstance(document, dict):
        raise ValueError('route crossings must be a JSON object')
    frame_id, stamp = document.get('frame_id'), document.get('route_stamp')
    entries = document.get('crossings')
    if not isinstance(frame_id, str) or not frame_id:
        raise ValueError('route crossings name no "frame_id"')
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        raise ValueError('route crossings need the "route_stamp" of their route [s]')
    if not isinstance(entries, list):
        raise ValueError('route crossings need a "crossings" list')
    crossings = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f'crossing {index} must be an object with "start" and "end"')
        crossings.append(Crossing(_point(entry.get('start'), f'crossing {index} start'),
                                  _point(entry.get('end'), f'crossing {index} end')))
    return RouteCrossings(frame_id, float(stamp), tuple(crossings))


def locate_crossings(route: Route, crossings: tuple[Crossing, ...],
                     corridor: float) -> list[CrossingSpan]:
    """Each crossing as a span of the route, in route order. A crossing whose ends are not
    within ``corridor`` of the route, or that runs against it, is refused: a robot that
    does not know where it must stop must not guess."""
    spans = []
    for index, crossing in enumerate(crossings):
        start_s, start_off = route.project(*crossing.start, 0.0, route.length)
        end_s, end_off = route.project(*crossing.end, start_s, route.length)
        if max(start_off, end_off) > corridor:
            raise ValueError(f'crossing {index} is {max(start_off, end_off):.1f} m off the '
                             f'route (more than the route corridor {corridor:.1f} m)')
        if end_s <= start_s:
            raise ValueError(f'crossing {index} does not run along the route')
        spans.append(CrossingSpan(start_s, end_s))
    return sorted(spans, key=lambda span: span.start_s)

"""Scenario overlays: a YAML file that adds obstacles and walkers to a world.

```yaml
name: pole_in_path
world: sidewalk_straight
seed: 3
start: {x: 0.0, y: 0.0, yaw: 0.0}        # optional override
goal: {x: 20.0, y: 0.0, yaw: 0.0}        # optional override
route: [[0.0, 0.0], [20.0, 0.0]]          # optional: waypoints from start to goal (world frame)
obstacles:
  - {name: pole, shape: cylinder, radius: 0.1, length: 1.5, x: 8.0, y: 0.0, semantic: obstacle}
  - {name: crate, shape: box, size: [0.5, 0.5, 1.0], x: 12.0, y: -0.5, yaw: 0.3}
pedestrians:
  - {name: ped1, radius: 0.25, height: 1.7, speed: 1.2, start_time: 5.0,
     waypoints: [[10.0, -2.0], [10.0, 2.0]], loop: false}
```
Other top-level keys (faults, success, timeout, ...) belong to the system layer and are ignored
here. Obstacles stand on the ground (z = 0) unless ``z`` gives the height of their base.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidewalk_robot.config import read_yaml_mapping
from sidewalk_robot.simulation.sdf import Geometry, Pose3
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import (DEFAULT_PEDESTRIAN, PEDESTRIAN_COLOR, Actor, Pose2D,
                                             StaticBody, Waypoint, World)

DEFAULT_OBSTACLE_COLOR = (0.55, 0.5, 0.45, 1.0)
_OBSTACLE_KEYS = {'name', 'shape', 'size', 'radius', 'length', 'height', 'x', 'y', 'z', 'yaw',
                  'semantic', 'color'}
_PEDESTRIAN_KEYS = {'name', 'radius', 'height', 'speed', 'start_time', 'waypoints', 'loop', 'color'}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Scenario:
    name: str
    world: str | None
    seed: int | None
    start: Pose2D | None
    goal: Pose2D | None
    obstacles: tuple[StaticBody, ...]
    pedestrians: tuple[Actor, ...]
    path: Path | None = None
    route: tuple[tuple[float, float], ...] | None = None


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario YAML file (FileNotFoundError / ScenarioError when bad)."""
    path = Path(path)
    try:
        document = read_yaml_mapping(path, 'scenario file')
    except ValueError as error:
        raise ScenarioError(str(error)) from error
    return scenario_from_dict(document, source=str(path), path=path)


def scenario_from_dict(document: dict[str, Any], source: str = '<scenario>',
                       path: Path | None = None) -> Scenario:
    world = document.get('world')
    if world is not None and not isinstance(world, str):
        raise ScenarioError(f'{source}: "world" must be a world name or path')
    seed = document.get('seed')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f'{source}: "seed" must be a non-negative integer, got {seed!r}')
    obstacles = document.get('obstacles') or []
    pedestrians = document.get('pedestrians') or []
    if not isinstance(obstacles, list) or not isinstance(pedestrians, list):
        raise ScenarioError(f'{source}: "obstacles" and "pedestrians" must be lists')
    return Scenario(
        name=str(document.get('name') or (path.stem if path else 'scenario')),
        world=world, seed=seed,
        start=_pose2d(document.get('start'), f'{source}: start'),
        goal=_pose2d(document.get('goal'), f'{source}: goal'),
        obstacles=tuple(_obstacle(entry, f'{source}: obstacles[{i}]')
                        for i, entry in enumerate(obstacles)),
        pedestrians=tuple(_pedestrian(entry, f'{source}: pedestrians[{i}]')
                          for i, entry in enumerate(pedestrians)),
        path=path, route=_route(document.get('route'), f'{source}: route'))


def _route(entry: Any, where: str) -> tuple[tuple[float, float], ...] | None:
    if entry is None:
        return None
    try:
        route = tuple((float(x), float(y)) for x, y in entry)
    except (TypeError, ValueError) as error:
        raise ScenarioError(f'{where} must be a list of [x, y] waypoints') from error
    if len(route) < 2 or not all(math.isfinite(v) for point in route for v in point):
        raise ScenarioError(f'{where} needs at least two finite [x, y] waypoints')
    return route


def apply_scenario(world: World, scenario: Scenario) -> World:
    """The world with the scenario's obstacles, walkers and start/goal overrides."""
    taken = {body.model for body in world.bodies} | {actor.name for actor in world.actors}
    for name in [b.model for b in scenario.obstacles] + [a.name for a in scenario.pedestrians]:
        if name in taken:
            raise ScenarioError(f'scenario {scenario.name!r}: name {name!r} is already used in '
                                f'world {world.name!r}')
        taken.add(name)
    start = scenario.start or world.start_pose
    goal = scenario.goal or world.goal_pose
    route = world.route
    if scenario.start or scenario.goal:
        route = (start[:2], goal[:2]) if len(world.route) <= 2 else world.route
    if scenario.route is not None:
        route = scenario.route
    return world.replace(bodies=world.bodies + scenario.obstacles,
                         actors=world.actors + scenario.pedestrians,
                         start_pose=start, goal_pose=goal, route=route)


def _number(entry: dict, key: str, where: str, default: float | None = None) -> float:
    value = entry.get(key, default)
    if value is None:
        raise ScenarioError(f'{where}: missing "{key}"')
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f'{where}: "{key}" must be a finite number, got {value!r}')
    return float(value)


def _positive(entry: dict, key: str, where: str, default: float | None = None) -> float:
    value = _number(entry, key, where, default)
    if value <= 0:
        raise ScenarioError(f'{where}: "{key}" must be positive, got {value}')
    return value


def _pose2d(entry: Any, where: str) -> Pose2D | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ScenarioError(f'{where}: expected {{x, y, yaw}}')
    return Pose2D(_number(entry, 'x', where), _number(entry, 'y', where),
                  _number(entry, 'yaw', where, 0.0))


def _color(entry: dict, where: str,
           default: tuple[float, ...]) -> tuple[float, float, float, float]:
    value = entry.get('color')
    if value is None:
        return default
    if (not isinstance(value, list) or len(value) not in (3, 4)
            or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in value)):
        raise ScenarioError(f'{where}: "color" must be 3 or 4 numbers in [0, 1]')
    return tuple(float(v) for v in value) + ((1.0,) if len(value) == 3 else ())


def _check_keys(entry: Any, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise ScenarioError(f'{where}: expected a mapping')
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ScenarioError(f'{where}: unknown keys {", ".join(unknown)} '
                            f'(allowed: {", ".join(sorted(allowed))})')


def _obstacle(entry: Any, where: str) -> StaticBody:
    _check_keys(entry, _OBSTACLE_KEYS, where)
    name = entry.get('name')
    if not isinstance(name, str) or not name:
        raise ScenarioError(f'{where}: every obstacle needs a "name"')
    shape = entry.get('shape', 'box')
    if shape == 'box':
        size = entry.get('size')
        if (not isinstance(size, list) or len(size) != 3
                or not all(isinstance(v, (int, float)) and v > 0 for v in size)):
            raise ScenarioError(f'{where}: a box needs "size": [x, y, z] with positive numbers')
        geometry = Geometry('box', size=tuple(float(v) for v in size))
    elif shape == 'cylinder':
        length = _positive(entry, 'length', where, entry.get('height'))
        geometry = Geometry('cylinder', radius=_positive(entry, 'radius', where), length=length)
    elif shape == 'sphere':
        geometry = Geometry('sphere', radius=_positive(entry, 'radius', where))
    else:
        raise ScenarioError(f'{where}: unknown shape {shape!r} (box, cylinder or sphere)')
    try:
        semantic = SemanticClass.parse(str(entry.get('semantic', 'obstacle')))
    except ValueError as error:
        raise ScenarioError(f'{where}: {error}') from error
    base = _number(entry, 'z', where, 0.0)
    pose = Pose3(_number(entry, 'x', where), _number(entry, 'y', where),
                 base + geometry.half_extents()[2], 0.0, 0.0, _number(entry, 'yaw', where, 0.0))
    return StaticBody(name=name, model=name, semantic=semantic, geometry=geometry, pose=pose,
                      color=_color(entry, where, DEFAULT_OBSTACLE_COLOR))


def _pedestrian(entry: Any, where: str) -> Actor:
    _check_keys(entry, _PEDESTRIAN_KEYS, where)
    name = entry.get('name')
    if not isinstance(name, str) or not name:
        raise ScenarioError(f'{where}: every pedestrian needs a "name"')
    points = entry.get('waypoints')
    if (not isinstance(points, list) or not points
            or not all(isinstance(p, list) and len(p) == 2
                       and all(isinstance(v, (int, float)) for v in p) for p in points)):
        raise ScenarioError(f'{where}: "waypoints" must be a list of [x, y] pairs')
    speed = _positive(entry, 'speed', where, 1.2)
    loop = entry.get('loop', False)
    if not isinstance(loop, bool):
        raise ScenarioError(f'{where}: "loop" must be true or false')
    path = [(float(x), float(y)) for x, y in points]
    if loop and len(path) > 1:
        path.append(path[0])  # walk back to the start instead of jumping there
    waypoints, time = [], 0.0
    for index, (x, y) in enumerate(path):
        if index:
            time += math.hypot(x - path[index - 1][0], y - path[index - 1][1]) / speed
        ahead = path[index + 1] if index + 1 < len(path) else None
        behind = path[index - 1] if index else None
        if ahead is not None:
            yaw = math.atan2(ahead[1] - y, ahead[0] - x)
        elif behind is not None:
            yaw = math.atan2(y - behind[1], x - behind[0])
        else:
            yaw = 0.0
        if waypoints and time <= waypoints[-1].time:
            raise ScenarioError(f'{where}: consecutive waypoints must differ')
        waypoints.append(Waypoint(time, x, y, yaw))
    radius = _positive(entry, 'radius', where, DEFAULT_PEDESTRIAN.radius)
    height = _positive(entry, 'height', where, DEFAULT_PEDESTRIAN.length)
    return Actor(name=name, waypoints=tuple(waypoints),
                 geometry=Geometry('cylinder', radius=radius, length=height),
                 offset=Pose3(z=height / 2), color=_color(entry, where, PEDESTRIAN_COLOR),
                 loop=loop, delay_start=_number(entry, 'start_time', where, 0.0))

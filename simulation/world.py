"""Worlds: the static scene, actors, start and goal poses read from worlds/*.sdf.

The same files run in Gazebo Harmonic. Conventions (see docs/simulation.md):
- every static model carries ``<sr:semantic>`` (default ``obstacle`` when absent);
- the world names ``<frame name="start">`` and ``<frame name="goal">``; ``<frame name="route_NN">``
  frames (NN = 00, 01, ...) give the sidewalk centre line from start to goal;
- ``<frame name="crossing_NN_start">`` and ``crossing_NN_end`` mark street crossings (the near
  and the far kerb on the walking line), where a robot stops and asks before going on;
- actors (pedestrians) move along ``<script><trajectory>`` waypoints (relative to the actor's
  ``<pose>``; our worlds give none, so they are in the world frame).
"""
from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sidewalk_robot import share_directory
from sidewalk_robot.simulation.sdf import Geometry, Pose3, SdfDocument, SdfError
from sidewalk_robot.simulation.semantics import SDF_NAMESPACE, SemanticClass

DEFAULT_WORLD = 'sidewalk_straight'
DEFAULT_PEDESTRIAN = Geometry('cylinder', radius=0.25, length=1.7)
PEDESTRIAN_COLOR = (0.85, 0.55, 0.35, 1.0)

_WORLD_UNDERSTOOD = {'model', 'actor', 'frame', 'include', 'scene', 'light'}
_WORLD_HARMLESS = {'physics', 'gui', 'plugin', 'gravity', 'magnetic_field', 'atmosphere',
                   'spherical_coordinates', 'wind', 'audio'}
_MODEL_UNDERSTOOD = {'static', 'pose', 'link', 'sr:semantic'}
_MODEL_HARMLESS = {'plugin', 'self_collide', 'allow_auto_disable', 'enable_wind', 'frame'}
_LINK_UNDERSTOOD = {'pose', 'visual', 'collision'}
_LINK_HARMLESS = {'inertial', 'gravity', 'kinematic', 'self_collide', 'enable_wind',
                  'must_be_base_link', 'velocity_decay', 'light'}
_VISUAL_UNDERSTOOD = {'geometry', 'pose', 'material'}
_VISUAL_HARMLESS = {'cast_shadows', 'transparency', 'visibility_flags', 'laser_retro', 'meta',
                    'plugin'}
_COLLISION_UNDERSTOOD = {'geometry', 'pose'}
_COLLISION_HARMLESS = {'surface', 'laser_retro', 'max_contacts'}
_ACTOR_UNDERSTOOD = {'pose', 'link', 'script'}
_ACTOR_HARMLESS = {'skin', 'animation', 'plugin', 'joint'}


class Pose2D(NamedTuple):
    """Planar pose in the world frame: x, y [m], yaw [rad]."""
    x: float
    y: float
    yaw: float


class Crossing(NamedTuple):
    """A street crossing: its start and end (x, y) on the walking line, world frame."""
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class StaticBody:
    """One primitive of a static model, posed in the world.

    ``visible`` bodies are drawn by the camera, ``collides`` bodies block the robot and return
    lidar ranges. A link whose visual and collision coincide becomes one body with both.
    """
    name: str
    model: str
    semantic: SemanticClass
    geometry: Geometry
    pose: Pose3
    color: tuple[float, float, float, float]
    visible: bool = True
    collides: bool = True


@dataclass(frozen=True)
class Waypoint:
    time: float
    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class Actor:
    """A pedestrian moving through timed waypoints (world frame), drawn as ``geometry``.

    ``offset`` places the geometry relative to the walking frame (z up from the ground).
    Before ``delay_start`` the actor stands at its first waypoint; without ``loop`` it stays at
    the last one once the trajectory ends.
    """
    name: str
    waypoints: tuple[Waypoint, ...]
    geometry: Geometry = DEFAULT_PEDESTRIAN
    offset: Pose3 = Pose3(z=DEFAULT_PEDESTRIAN.length / 2)
    color: tuple[float, float, float, float] = PEDESTRIAN_COLOR
    loop: bool = True
    delay_start: float = 0.0

    @property
    def duration(self) -> float:
        return self.waypoints[-1].time - self.waypoints[0].time

    def pose_at(self, time: float) -> Pose2D:
        """Where the actor is at sim ``time`` (linear interpolation between waypoints)."""
        first = self.waypoints[0]
        elapsed = time - self.delay_start
        if elapsed <= 0 or len(self.waypoints) == 1 or self.duration <= 0:
            return Pose2D(first.x, first.y, first.yaw)
        elapsed = math.fmod(elapsed, self.duration) if self.loop else min(elapsed, self.duration)
        local = first.time + elapsed
        for before, after in zip(self.waypoints, self.waypoints[1:]):
            if local <= after.time:
                span = after.time - before.time
                fraction = 0.0 if span <= 0 else (local - before.time) / span
                turn = math.atan2(math.sin(after.yaw - before.yaw),
                                  math.cos(after.yaw - before.yaw))
                return Pose2D(before.x + fraction * (after.x - before.x),
                              before.y + fraction * (after.y - before.y),
                              before.yaw + fraction * turn)
        last = self.waypoints[-1]
        return Pose2D(last.x, last.y, last.yaw)


@dataclass(frozen=True)
class World:
    """Everything the headless simulator needs from a world file."""
    name: str
    bodies: tuple[StaticBody, ...]
    actors: tuple[Actor, ...]
    start_pose: Pose2D
    goal_pose: Pose2D
    route: tuple[tuple[float, float], ...]
    path: Path | None = None
    sun_direction: tuple[float, float, float] = (-0.5, 0.1, -0.9)
    background: tuple[float, float, float, float] = (0.62, 0.76, 0.92, 1.0)
    ambient: tuple[float, float, float, float] = (0.6, 0.6, 0.6, 1.0)
    frames: dict[str, Pose3] = field(default_factory=dict)
    crossings: tuple[Crossing, ...] = ()

    def replace(self, **changes: object) -> World:
        return dataclasses.replace(self, **changes)

    def body(self, name: str) -> StaticBody:
        for body in self.bodies:
            if body.name == name or body.model == name:
                return body
        raise KeyError(f'world {self.name!r} has no body or model named {name!r}')


def worlds_directory() -> Path:
    return share_directory() / 'worlds'


def available_worlds() -> list[str]:
    """Names of the world files shipped in worlds/ (``sidewalk_straight``, ...)."""
    return sorted(path.stem for path in worlds_directory().glob('*.sdf'))


def world_path(name_or_path: str | Path) -> Path:
    """A world name (``street_corner``) or a path to an .sdf file -> the file's path."""
    candidate = Path(name_or_path)
    if candidate.suffix == '.sdf' or candidate.is_file() or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise FileNotFoundError(f'world file not found: {candidate}')
        return candidate
    path = worlds_directory() / f'{name_or_path}.sdf'
    if not path.is_file():
        raise FileNotFoundError(f'unknown world {str(name_or_path)!r}; available: '
                                f'{", ".join(available_worlds()) or "none"}')
    return path


def model_directory(name: str) -> Path:
    return worlds_directory() / 'models' / name


def load_world(path_or_name: str | Path) -> World:
    """Read a world by name or path; raises SdfError / FileNotFoundError with file and element."""
    document = SdfDocument(world_path(path_or_name))
    worlds = document.root.findall('world')
    if len(worlds) != 1:
        raise document.error('world', 'the file must contain exactly one <world>')
    world_element = worlds[0]
    document.check_children(document.root, {'world'}, set())
    document.check_children(world_element, _WORLD_UNDERSTOOD, _WORLD_HARMLESS)

    bodies: list[StaticBody] = []
    actors: list[Actor] = []
    frames: dict[str, Pose3] = {}
    for child in world_element:
        tag = child.tag if isinstance(child.tag, str) else ''
        if tag == 'model':
            bodies += _read_model(document, child, Pose3(), child.get('name', ''))
        elif tag == 'include':
            bodies += _read_include(document, child)
        elif tag == 'actor':
            actors.append(_read_actor(document, child))
        elif tag == 'frame':
            name = child.get('name')
            if not name:
                raise document.error(child, 'a <frame> needs a name')
            if child.get('attached_to', '') not in ('', 'world'):
                raise document.error(child, f'frame {name!r}: attached_to must be the world')
            frames[name] = document.pose(child)

    for required in ('start', 'goal'):
        if required not in frames:
            raise document.error('frame', f'the world must name a <frame name="{required}">')
    start, goal = _planar(frames['start']), _planar(frames['goal'])
    route_names = sorted(name for name in frames if name.startswith('route_'))
    route = tuple((frames[n].x, frames[n].y) for n in route_names) or (start[:2], goal[:2])
    return World(name=world_element.get('name') or document.path.stem, bodies=tuple(bodies),
                 actors=tuple(actors), start_pose=start, goal_pose=goal, route=route,
                 path=document.path, frames=frames, crossings=_read_crossings(document, frames),
                 **_read_lighting(document, world_element))


def _read_crossings(document: SdfDocument, frames: dict[str, Pose3]) -> tuple[Crossing, ...]:
    """crossing_NN_start / crossing_NN_end frame pairs, in NN order; half a pair is an error."""
    names = sorted({name.rsplit('_', 1)[0] for name in frames
                    if name.startswith('crossing_') and name.endswith(('_start', '_end'))})
    crossings = []
    for name in names:
        missing = [f'{name}_{end}' for end in ('start', 'end') if f'{name}_{end}' not in frames]
        if missing:
            raise document.error('frame', f'crossing {name!r} needs a <frame name='
                                          f'"{missing[0]}">')
        start, end = frames[f'{name}_start'], frames[f'{name}_end']
        crossings.append(Crossing((start.x, start.y), (end.x, end.y)))
    return tuple(crossings)


def _planar(pose: Pose3) -> Pose2D:
    return Pose2D(pose.x, pose.y, pose.yaw)


def _read_lighting(document: SdfDocument, world: ElementTree.Element) -> dict[str, tuple]:
    lighting: dict[str, tuple] = {}
    scene = world.find('scene')
    if scene is not None:
        for tag, key in (('background', 'background'), ('ambient', 'ambient')):
            if scene.find(tag) is not None:
                values = document.numbers(scene, tag, 4)
                lighting[key] = values
    for light in world.findall('light'):
        if light.get('type') == 'directional' and light.find('direction') is not None:
            lighting['sun_direction'] = document.numbers(light, 'direction', 3)
            break
    return lighting


def _read_model(document: SdfDocument, model: ElementTree.Element, parent: Pose3,
                name: str, static_override: bool | None = None) -> list[StaticBody]:
    if not name:
        raise document.error(model, 'a <model> needs a name')
    document.check_children(model, _MODEL_UNDERSTOOD, _MODEL_HARMLESS)
    static = (document.boolean(model, 'static', False) if static_override is None
              else static_override)
    if not static:
        raise document.error(model, f'model {name!r} is not static: worlds hold static models '
                                    'only (the robot is spawned separately, people are actors)')
    semantic_element = model.find(f'{{{SDF_NAMESPACE}}}semantic')
    try:
        semantic = (SemanticClass.OBSTACLE if semantic_element is None
                    else SemanticClass.parse(semantic_element.text or ''))
    except ValueError as error:
        raise document.error('sr:semantic', f'model {name!r}: {error}') from error
    model_pose = parent.compose(document.pose(model))
    bodies: list[StaticBody] = []
    for link in model.findall('link'):
        bodies += _read_link(document, link, model_pose, name, semantic)
    return bodies


def _read_link(document: SdfDocument, link: ElementTree.Element, model_pose: Pose3,
               model_name: str, semantic: SemanticClass) -> list[StaticBody]:
    link_name = link.get('name', 'link')
    document.check_children(link, _LINK_UNDERSTOOD, _LINK_HARMLESS)
    link_pose = model_pose.compose(document.pose(link))
    visuals = []
    for visual in link.findall('visual'):
        document.check_children(visual, _VISUAL_UNDERSTOOD, _VISUAL_HARMLESS)
        visuals.append((visual.get('name', 'visual'), document.geometry(visual),
                        document.pose(visual), document.color(visual)))
    collisions = []
    for collision in link.findall('collision'):
        document.check_children(collision, _COLLISION_UNDERSTOOD, _COLLISION_HARMLESS)
        collisions.append((collision.get('name', 'collision'), document.geometry(collision),
                           document.pose(collision)))
    bodies: list[StaticBody] = []
    unmatched = list(collisions)
    for visual_name, geometry, pose, color in visuals:
        twin = next((c for c in unmatched if c[1] == geometry and c[2] == pose), None)
        if twin is not None:
            unmatched.remove(twin)
        bodies.append(StaticBody(f'{model_name}/{link_name}/{visual_name}', model_name, semantic,
                                 geometry, link_pose.compose(pose), color, visible=True,
                                 collides=twin is not None))
    for collision_name, geometry, pose in unmatched:
        bodies.append(StaticBody(f'{model_name}/{link_name}/{collision_name}', model_name,
                                 semantic, geometry, link_pose.compose(pose), (0.5, 0.5, 0.5, 1.0),
                                 visible=False, collides=True))
    return bodies


def _read_include(document: SdfDocument, include: ElementTree.Element) -> list[StaticBody]:
    uri = document.text(include, 'uri')
    if not uri.startswith('model://'):
        raise document.error('uri', f'only model:// URIs of our own models load offline, '
                                    f'got {uri!r}')
    model_name = uri[len('model://'):].strip('/')
    model_file = document.path.parent / 'models' / model_name / 'model.sdf'
    if not model_file.is_file():
        model_file = model_directory(model_name) / 'model.sdf'
    included = SdfDocument(model_file)
    models = included.root.findall('model')
    if len(models) != 1:
        raise included.error('model', 'a model file must contain exactly one <model>')
    name = document.text(include, 'name', models[0].get('name', model_name))
    static = (document.boolean(include, 'static', True) if include.find('static') is not None
              else None)
    return _read_model(included, models[0], document.pose(include), name, static)


def _read_actor(document: SdfDocument, actor: ElementTree.Element) -> Actor:
    name = actor.get('name')
    if not name:
        raise document.error(actor, 'an <actor> needs a name')
    document.check_children(actor, _ACTOR_UNDERSTOOD, _ACTOR_HARMLESS)
    script = actor.find('script')
    if script is None:
        raise document.error(actor, f'actor {name!r} has no <script>')
    document.check_children(script, {'loop', 'delay_start', 'auto_start', 'trajectory'}, set())
    # As in Gazebo, waypoints are relative to the actor's <pose> (the world frame without one).
    origin = document.pose(actor)
    waypoints: list[Waypoint] = []
    for trajectory in script.findall('trajectory'):
        document.check_children(trajectory, {'waypoint'}, set())
        offset = waypoints[-1].time if waypoints else 0.0
        points = []
        for waypoint in trajectory.findall('waypoint'):
            time = document.number(waypoint, 'time')
            pose = origin.compose(document.pose(waypoint))
            points.append(Waypoint(offset + time, pose.x, pose.y, pose.yaw))
        if not points:
            raise document.error(trajectory, f'actor {name!r}: trajectory without waypoints')
        if any(b.time <= a.time for a, b in zip(points, points[1:])):
            raise document.error(trajectory, f'actor {name!r}: waypoint times must increase')
        if waypoints and points[0].time == waypoints[-1].time:
            points = points[1:]
        waypoints += points
    if not waypoints:
        raise document.error(script, f'actor {name!r} has no <trajectory>')
    geometry, color = DEFAULT_PEDESTRIAN, PEDESTRIAN_COLOR
    offset = Pose3(z=DEFAULT_PEDESTRIAN.length / 2)
    link = actor.find('link')
    if link is not None:
        document.check_children(link, _LINK_UNDERSTOOD, _LINK_HARMLESS)
        visual = link.find('visual')
        if visual is not None:
            document.check_children(visual, _VISUAL_UNDERSTOOD, _VISUAL_HARMLESS)
            geometry = document.geometry(visual)
            offset = document.pose(link).compose(document.pose(visual))
            color = document.color(visual)
    return Actor(name=name, waypoints=tuple(waypoints), geometry=geometry, offset=offset,
                 color=color, loop=document.boolean(script, 'loop', True),
                 delay_start=document.number(script, 'delay_start', 0.0))


__all__ = ['Actor', 'Crossing', 'DEFAULT_WORLD', 'Pose2D', 'SdfError', 'StaticBody', 'Waypoint',
           'World', 'available_worlds', 'load_world', 'model_directory', 'world_path',
           'worlds_directory']

"""Our own reader for the subset of SDFormat 1.9 that the worlds and the robot model use.

It understands static links with box, cylinder and sphere geometry, poses, materials, frames,
actors with waypoint trajectories and the robot's sensor and drive blocks. Elements that only
matter to Gazebo (plugins, GUI, physics, lights, inertia, ...) are skipped with one log line per
element name and file. Anything else is an error naming the file and the element, so a typo in a
world never silently changes the scene.
"""
from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidewalk_robot.simulation.semantics import SDF_NAMESPACE

LOGGER = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ('1.6', '1.7', '1.8', '1.9')
GEOMETRY_KINDS = ('box', 'cylinder', 'sphere')


class SdfError(ValueError):
    """A world or model file that cannot be read; the message names the file and element."""

    def __init__(self, path: str | Path, element: str, message: str) -> None:
        super().__init__(f'{path}: <{element}>: {message}')
        self.path = Path(path)
        self.element = element


@dataclass(frozen=True)
class Pose3:
    """Position [m] and fixed-axis roll, pitch, yaw [rad] (SDF ``<pose>`` convention)."""
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def matrix(self) -> np.ndarray:
        """Homogeneous 4x4 transform; rotation is Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        transform = np.eye(4)
        transform[:3, :3] = [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
        transform[:3, 3] = (self.x, self.y, self.z)
        return transform

    @classmethod
    def from_matrix(cls, transform: np.ndarray) -> Pose3:
        rotation = transform[:3, :3]
        pitch = math.asin(max(-1.0, min(1.0, -rotation[2, 0])))
        if abs(rotation[2, 0]) < 1.0 - 1e-9:
            roll = math.atan2(rotation[2, 1], rotation[2, 2])
            yaw = math.atan2(rotation[1, 0], rotation[0, 0])
        else:  # gimbal lock: put the whole rotation about z into yaw
            roll = 0.0
            yaw = math.atan2(-rotation[0, 1], rotation[1, 1])
        x, y, z = (float(v) for v in transform[:3, 3])
        return cls(x, y, z, roll, pitch, yaw)

    def compose(self, child: Pose3) -> Pose3:
        """``child`` (expressed in this frame) expressed in this frame's parent."""
        return Pose3.from_matrix(self.matrix() @ child.matrix())

    def quaternion(self) -> tuple[float, float, float, float]:
        """(x, y, z, w) of the rotation."""
        cr, sr = math.cos(self.roll / 2), math.sin(self.roll / 2)
        cp, sp = math.cos(self.pitch / 2), math.sin(self.pitch / 2)
        cy, sy = math.cos(self.yaw / 2), math.sin(self.yaw / 2)
        return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy)


@dataclass(frozen=True)
class Geometry:
    """A primitive: ``box`` uses ``size`` (x, y, z); ``cylinder`` radius and length (along z);
    ``sphere`` radius."""
    kind: str
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.0
    length: float = 0.0

    def half_extents(self) -> tuple[float, float, float]:
        """Half size of the geometry's own axis-aligned bounding box."""
        if self.kind == 'box':
            return (self.size[0] / 2, self.size[1] / 2, self.size[2] / 2)
        if self.kind == 'cylinder':
            return (self.radius, self.radius, self.length / 2)
        return (self.radius, self.radius, self.radius)

    def scaled(self, factor: float) -> Geometry:
        return Geometry(self.kind, tuple(s * factor for s in self.size), self.radius * factor,
                        self.length * factor)


class SdfDocument:
    """One parsed SDF file plus the bookkeeping for skipped elements and errors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._skipped: set[str] = set()
        if not self.path.is_file():
            raise FileNotFoundError(f'SDF file not found: {self.path}')
        try:
            self.root = ElementTree.parse(self.path).getroot()
        except ElementTree.ParseError as error:
            raise SdfError(self.path, 'sdf', f'malformed XML: {error}') from error
        if self.root.tag != 'sdf':
            raise SdfError(self.path, self.root.tag, 'the root element must be <sdf>')
        version = self.root.get('version')
        if version not in SUPPORTED_VERSIONS:
            raise SdfError(self.path, 'sdf', f'unsupported SDF version {version!r} '
                                             f'(expected one of {", ".join(SUPPORTED_VERSIONS)})')

    def error(self, element: ElementTree.Element | str, message: str) -> SdfError:
        tag = element if isinstance(element, str) else self.tag_name(element)
        return SdfError(self.path, tag, message)

    @staticmethod
    def tag_name(element: ElementTree.Element) -> str:
        """The tag with our namespace written as ``sr:`` (ElementTree expands prefixes)."""
        tag = element.tag
        if tag.startswith('{'):
            namespace, _, local = tag[1:].partition('}')
            return f'sr:{local}' if namespace == SDF_NAMESPACE else f'{{{namespace}}}{local}'
        return tag

    def skip(self, element: ElementTree.Element) -> None:
        """Log once per element name per file that the headless simulator ignores it."""
        tag = self.tag_name(element)
        if tag not in self._skipped:
            self._skipped.add(tag)
            LOGGER.info('%s: skipping <%s> (not used by the headless simulator)',
                        self.path.name, tag)

    def check_children(self, element: ElementTree.Element, understood: set[str],
                       harmless: set[str]) -> None:
        """Every child is understood, harmless (skipped, logged) or an error."""
        for child in element:
            if not isinstance(child.tag, str):
                continue  # XML comments and processing instructions
            tag = self.tag_name(child)
            if tag in understood:
                continue
            # Custom elements of other tools (any prefix but ours) are theirs to read.
            foreign = tag.startswith('{') or (':' in tag and not tag.startswith('sr:'))
            if tag in harmless or foreign:
                self.skip(child)
                continue
            owner = element.get('name')
            where = f'<{self.tag_name(element)}>' + (f' {owner!r}' if owner else '')
            raise self.error(child, f'unsupported SDF element inside {where}')

    def text(self, element: ElementTree.Element, tag: str, default: str | None = None) -> str:
        child = element.find(tag)
        if child is None or child.text is None or not child.text.strip():
            if default is None:
                raise self.error(tag, f'missing inside <{self.tag_name(element)}> '
                                      f'{element.get("name", "")!r}')
            return default
        return child.text.strip()

    def number(self, element: ElementTree.Element, tag: str, default: float | None = None) -> float:
        raw = self.text(element, tag, None if default is None else repr(default))
        try:
            value = float(raw)
        except ValueError as error:
            raise self.error(tag, f'expected a number, got {raw!r}') from error
        if not math.isfinite(value):
            raise self.error(tag, f'expected a finite number, got {raw!r}')
        return value

    def numbers(self, element: ElementTree.Element, tag: str, count: int,
                default: str | None = None) -> tuple[float, ...]:
        raw = self.text(element, tag, default)
        try:
            values = tuple(float(v) for v in raw.split())
        except ValueError as error:
            raise self.error(tag, f'expected {count} numbers, got {raw!r}') from error
        if len(values) != count or not all(math.isfinite(v) for v in values):
            raise self.error(tag, f'expected {count} finite numbers, got {raw!r}')
        return values

    def boolean(self, element: ElementTree.Element, tag: str, default: bool) -> bool:
        raw = self.text(element, tag, 'true' if default else 'false').lower()
        if raw in ('true', '1'):
            return True
        if raw in ('false', '0'):
            return False
        raise self.error(tag, f'expected true or false, got {raw!r}')

    def pose(self, element: ElementTree.Element) -> Pose3:
        """The element's ``<pose>`` relative to its parent (identity when absent)."""
        pose_element = element.find('pose')
        if pose_element is None:
            return Pose3()
        relative_to = pose_element.get('relative_to', '')
        if relative_to:
            raise self.error(pose_element, f'relative_to={relative_to!r} is not supported; '
                                           'express the pose in its parent frame')
        values = self.numbers(element, 'pose', 6, '0 0 0 0 0 0')
        if pose_element.get('degrees', 'false').lower() == 'true':
            values = values[:3] + tuple(math.radians(v) for v in values[3:])
        return Pose3(*values)

    def geometry(self, element: ElementTree.Element) -> Geometry:
        """The ``<geometry>`` of a visual or collision."""
        geometry = element.find('geometry')
        if geometry is None:
            raise self.error(element, f'{element.get("name", "")!r} has no <geometry>')
        shapes = [child for child in geometry if isinstance(child.tag, str)]
        if len(shapes) != 1:
            raise self.error(geometry, 'expected exactly one shape')
        shape = shapes[0]
        kind = self.tag_name(shape)
        if kind == 'box':
            size = self.numbers(shape, 'size', 3)
            if min(size) <= 0:
                raise self.error('size', f'box size must be positive, got {size}')
            return Geometry('box', size=size)
        if kind == 'cylinder':
            radius, length = self.number(shape, 'radius'), self.number(shape, 'length')
            if radius <= 0 or length <= 0:
                raise self.error('cylinder', 'radius and length must be positive')
            return Geometry('cylinder', radius=radius, length=length)
        if kind == 'sphere':
            radius = self.number(shape, 'radius')
            if radius <= 0:
                raise self.error('sphere', 'radius must be positive')
            return Geometry('sphere', radius=radius)
        raise self.error(shape, f'unknown geometry in {element.get("name", "")!r} '
                                f'(supported: {", ".join(GEOMETRY_KINDS)})')

    def color(self, visual: ElementTree.Element) -> tuple[float, float, float, float]:
        """Diffuse colour RGBA of a visual's material (ambient if no diffuse; grey if none)."""
        material = visual.find('material')
        if material is None:
            return (0.7, 0.7, 0.7, 1.0)
        for tag in ('diffuse', 'ambient'):
            if material.find(tag) is not None:
                raw = self.text(material, tag)
                try:
                    values = tuple(float(v) for v in raw.split())
                except ValueError as error:
                    raise self.error(tag, f'expected RGBA numbers, got {raw!r}') from error
                if len(values) == 3:
                    values += (1.0,)
                if len(values) != 4 or not all(0.0 <= v <= 1.0 for v in values):
                    raise self.error(tag, f'expected 3 or 4 numbers in [0, 1], got {raw!r}')
                return values
        return (0.7, 0.7, 0.7, 1.0)

"""Flat ground surfaces drawn by ray-plane intersection in numpy.

Sidewalks, roads, curbs and lawns are long thin slabs. PyBullet's CPU renderer spends most of a
frame on them (every triangle that crosses the camera plane costs a scan of the whole screen).
Their visible part is the top face, which a per-pixel ray-plane intersection draws exactly in a
few milliseconds; the simulator composites it with PyBullet's image of everything else by depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.simulation.world import StaticBody

_FLAT_TOLERANCE = 1e-6
GROUND_TOP_LIMIT = 0.05
"""Highest top surface [m] drawn as ground; anything taller is drawn as a solid."""


def is_flat_ground(body: StaticBody) -> bool:
    """A ground-class, level, axis-aligned box whose top face is all a camera above can see.

    Other ground bodies (tilted ramps, slabs at an angle) are left to PyBullet."""
    pose, geometry = body.pose, body.geometry
    return (body.semantic.is_ground and geometry.kind == 'box' and body.visible
            and abs(pose.roll) < _FLAT_TOLERANCE and abs(pose.pitch) < _FLAT_TOLERANCE
            and abs(math.sin(2 * pose.yaw)) < _FLAT_TOLERANCE
            and pose.z + geometry.size[2] / 2 <= GROUND_TOP_LIMIT)


@dataclass(frozen=True)
class GroundImage:
    hit: np.ndarray
    """H x W bool: a ground surface is seen."""
    depth: np.ndarray
    """H x W float32 z-depth [m] (inf where no ground)."""
    color_index: np.ndarray
    """H x W int: index into the surface list (valid where hit)."""


class _Level:
    """One intersection plane and the surfaces that answer there, as a lookup table over the
    cells between all their x and y edges (first listed surface wins a cell)."""

    def __init__(self, height: float,
                 rectangles: list[tuple[int, float, float, float, float]]) -> None:
        self.height = np.float32(height)
        self.x_edges = np.array(sorted({v for r in rectangles for v in r[1:3]}), dtype=np.float32)
        self.y_edges = np.array(sorted({v for r in rectangles for v in r[3:5]}), dtype=np.float32)
        self.table = np.full((len(self.x_edges) + 1, len(self.y_edges) + 1), -1, dtype=np.int32)
        for index, x0, x1, y0, y1 in reversed(rectangles):
            # Search in float32, as the edges are stored, so each bound finds its own edge.
            i0, i1 = np.searchsorted(self.x_edges, np.array([x0, x1], dtype=np.float32))
            j0, j1 = np.searchsorted(self.y_edges, np.array([y0, y1], dtype=np.float32))
            self.table[i0 + 1:i1 + 1, j0 + 1:j1 + 1] = index

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.table[np.searchsorted(self.x_edges, x, side='right'),
                          np.searchsorted(self.y_edges, y, side='right')]


@dataclass(frozen=True)
class _Attitude:
    """What stays the same while a camera only moves and turns about the vertical, as a
    robot on flat ground does: per plane, each pixel's ray parameter (its z-depth) and where
    it meets the plane relative to the camera, horizontally, at the first pose seen."""
    rotation: np.ndarray
    """Camera to world rotation at that first pose."""
    eye_height: float
    pixels: np.ndarray
    """Flat indices of the pixels whose ray goes down."""
    planes: tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, ...]
    """Per level: (depth, x offset, y offset) of those pixels; None for a plane at or above
    the camera (it sees none of its top faces)."""


class GroundRenderer:
    """Top faces of flat ground boxes, as seen by a pinhole camera."""

    _ATTITUDE_TOLERANCE = 1e-9
    _ATTITUDES_KEPT = 4

    def __init__(self, bodies: list[StaticBody], width: int, height: int,
                 focal_length: float) -> None:
        self.bodies = bodies
        columns, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        # Ray per pixel in the sensor frame (x forward, y left, z up), forward component 1 so
        # that the ray parameter at a hit is the z-depth along the optical axis.
        self._rays = np.stack([np.ones_like(columns), -(columns - width / 2) / focal_length,
                               -(rows - height / 2) / focal_length],
                              axis=-1).reshape(-1, 3).astype(np.float32)
        self._shape = (height, width)
        self._levels = self._build_levels(bodies)
        self._attitudes: list[_Attitude] = []

    @staticmethod
    def _build_levels(bodies: list[StaticBody]) -> list[_Level]:
        """Planes from the highest down. A plane answers for the surfaces whose top lies there
        and for the taller slabs reaching down through it: a ray that missed a slab's top but
        meets the plane inside its outline came in through its side (a curb across the road)."""
        tops = [b.pose.z + b.geometry.size[2] / 2 for b in bodies]
        bottoms = [b.pose.z - b.geometry.size[2] / 2 for b in bodies]
        levels = []
        for height in sorted({round(top, 6) for top in tops}, reverse=True):
            members = sorted((i for i in range(len(bodies))
                              if tops[i] >= height - 1e-6 and bottoms[i] < height),
                             key=lambda i: -tops[i])
            levels.append(_Level(height, [(i, *_outline(bodies[i])) for i in members]))
        return levels

    def _attitude(self, rotation: np.ndarray, eye_height: float) -> _Attitude:
        """The cached attitude this pose shares (same tilt and height: it differs only by a
        turn about the vertical), or a new one computed from this pose."""
        for attitude in self._attitudes:
            if (abs(attitude.eye_height - eye_height) <= self._ATTITUDE_TOLERANCE
                    and np.allclose(attitude.rotation[2], rotation[2], rtol=0.0,
                                    atol=self._ATTITUDE_TOLERANCE)):
                return attitude
        rays, turn = self._rays, rotation.astype(np.float32)
        # Element-wise rather than a BLAS matmul: no thread start-up for a 3x3 rotation.
        directions = (rays[:, :1] * turn[:, 0] + rays[:, 1:2] * turn[:, 1]
                      + rays[:, 2:] * turn[:, 2])
        pixels = np.flatnonzero(directions[:, 2] < -1e-6)
        down = directions[pixels]
        planes = []
        for level in self._levels:
            if eye_height <= level.height:
                planes.append(None)
                continue
            depth = (level.height - np.float32(eye_height)) / down[:, 2]
            planes.append((depth, depth * down[:, 0], depth * down[:, 1]))
        attitude = _Attitude(rotation.copy(), eye_height, pixels, tuple(planes))
        self._attitudes = [attitude, *self._attitudes][:self._ATTITUDES_KEPT]
        return attitude

    def render(self, camera_to_world: np.ndarray) -> GroundImage:
        rotation, eye = camera_to_world[:3, :3], camera_to_world[:3, 3]
        attitude = self._attitude(rotation, float(eye[2]))
        # This pose is the attitude's first one turned about the vertical by (c, s).
        turn = rotation @ attitude.rotation.T
        c, s = np.float32(turn[0, 0]), np.float32(turn[1, 0])
        eye_x, eye_y = np.float32(eye[0]), np.float32(eye[1])
        count = len(attitude.pixels)
        depth = np.full(count, np.inf, dtype=np.float32)
        index = np.zeros(count, dtype=np.int32)
        todo: np.ndarray | None = None  # None: every downward pixel is still unanswered
        for level, plane in zip(self._levels, attitude.planes):
            if plane is None:
                continue
            if todo is not None and not len(todo):
                break
            plane_depth, offset_x, offset_y = plane if todo is None else (
                plane[0][todo], plane[1][todo], plane[2][todo])
            found = level.lookup(eye_x + c * offset_x - s * offset_y,
                                 eye_y + s * offset_x + c * offset_y)
            hit = found >= 0
            if todo is None:
                depth = np.where(hit, plane_depth, depth)
                index = np.where(hit, found, index)
                todo = np.flatnonzero(~hit)
            else:
                depth[todo[hit]] = plane_depth[hit]
                index[todo[hit]] = found[hit]
                todo = todo[~hit]
        best_depth = np.full(self._shape[0] * self._shape[1], np.inf, dtype=np.float32)
        best_index = np.zeros(len(best_depth), dtype=np.int32)
        best_depth[attitude.pixels] = depth
        best_index[attitude.pixels] = index
        return GroundImage(hit=np.isfinite(best_depth).reshape(self._shape),
                           depth=best_depth.reshape(self._shape),
                           color_index=best_index.reshape(self._shape))


def _outline(body: StaticBody) -> tuple[float, float, float, float]:
    """x and y extent of a level box turned by a multiple of 90 degrees."""
    half_x, half_y = body.geometry.size[0] / 2, body.geometry.size[1] / 2
    c, s = abs(math.cos(body.pose.yaw)), abs(math.sin(body.pose.yaw))
    extent_x, extent_y = c * half_x + s * half_y, s * half_x + c * half_y
    return (body.pose.x - extent_x, body.pose.x + extent_x,
            body.pose.y - extent_y, body.pose.y + extent_y)

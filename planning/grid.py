"""The perception grids as arrays, and the distance fields the local planner looks up.

A grid is in ``base_link`` as it was at the grid's stamp. Geometry (size, resolution, origin)
always comes from the message: nothing here assumes the default 80 x 80 at 0.1 m.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import FootprintCircles, Pose2D, transform_points

FAR_AWAY = 1.0e3
"""Distance reported where a field has no cell of its kind at all [m]."""

MAX_CELLS = 1_000_000

_SQUARE = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_OBSTACLE, _PEDESTRIAN, _CAUTION, _UNKNOWN, _PROBABILITY = range(5)
"""Layers of the stacked, padded field array the rollouts read."""

_RINGS_PER_CHECK = 8
"""Wavefront rings grown between checks whether it still grows."""

_RING_STEP = 1.03
"""Euclidean cells per ring of the alternating wavefront: its octagon grows 1 cell a ring along
the axes and 1.06 along the diagonals."""


@dataclass(frozen=True)
class LocalGrid:
    """A probability grid: ``probability[row, col]`` in [0, 1]; ``unknown`` marks -1 cells."""
    stamp: float
    frame_id: str
    resolution: float
    origin: Pose2D
    probability: np.ndarray
    unknown: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.probability.shape

    def same_geometry(self, other: LocalGrid) -> bool:
        return (self.shape == other.shape and math.isclose(self.resolution, other.resolution)
                and self.origin == other.origin)

    @classmethod
    def from_occupancy(cls, data: Sequence[int] | np.ndarray, width: int, height: int,
                       resolution: float, origin: Pose2D, stamp: float,
                       frame_id: str) -> LocalGrid:
        """Validate OccupancyGrid content (-1 unknown, 0..100 percent) and convert it.

        Raises ValueError naming what is wrong, so the caller can report it and stay safe.
        """
        if width <= 0 or height <= 0 or width * height > MAX_CELLS:
            raise ValueError(f'grid size {width} x {height} is empty or implausible')
        if not (math.isfinite(resolution) and resolution > 0.0):
            raise ValueError(f'grid resolution {resolution} is not a positive number')
        if not origin.is_finite() or not math.isfinite(stamp):
            raise ValueError('grid origin or stamp is not finite')
        values = np.asarray(data, dtype=np.int16)
        if values.size != width * height:
            raise ValueError(f'grid data has {values.size} cells, expected {width} x {height}')
        values = values.reshape(height, width)
        if np.any((values < -1) | (values > 100)):
            raise ValueError('grid values outside -1..100')
        unknown = values < 0
        probability = np.where(unknown, 0.0, values / 100.0).astype(np.float32)
        return cls(stamp, frame_id, float(resolution), origin, probability, unknown)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y (grid frame) of every cell centre, each shaped like the grid."""
        rows, cols = self.shape
        u, v = np.meshgrid((np.arange(cols) + 0.5) * self.resolution,
                           (np.arange(rows) + 0.5) * self.resolution)
        return transform_points(self.origin, u, v)


def _distance_to(mask: np.ndarray, resolution: float) -> np.ndarray:
    """Metres from each cell centre to the nearest edge of a ``mask`` cell (0 on them)."""
    if not mask.any():
        return np.full(mask.shape, FAR_AWAY, dtype=np.float32)
    cells = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.maximum(cells * resolution - 0.5 * resolution, 0.0).astype(np.float32)


@dataclass(frozen=True)
class PoseSamples:
    """What the fields say at the footprint of each pose (arrays shaped like the poses)."""
    obstacle_clearance: np.ndarray
    pedestrian_clearance: np.ndarray
    caution_contact: np.ndarray
    unknown_contact: np.ndarray
    probability: np.ndarray


class GridFields:
    """Distance fields of one obstacle grid (and optional pedestrian grid) for fast lookups."""

    def __init__(self, obstacles: LocalGrid, pedestrians: LocalGrid | None,
                 config: PlannerConfig, circles: FootprintCircles,
                 standing_pedestrians: np.ndarray | None = None) -> None:
        if pedestrians is not None and not obstacles.same_geometry(pedestrians):
            raise ValueError('pedestrian grid geometry differs from the obstacle grid')
        self.grid = obstacles
        self.circles = circles
        resolution = obstacles.resolution
        known_probability = obstacles.probability
        lethal = (known_probability >= config.lethal_probability) & ~obstacles.unknown
        caution = (known_probability >= config.caution_probability) & ~obstacles.unknown
        centre_x, _ = obstacles.cell_centres()
        risky_unknown = obstacles.unknown & (centre_x >= config.unknown_blind_distance)
        self.obstacle_distance = _distance_to(lethal, resolution)
        self.caution_distance = _distance_to(caution, resolution)
        self.unknown_distance = _distance_to(risky_unknown, resolution)
        if pedestrians is not None:
            people = ((pedestrians.probability >= config.pedestrian_probability)
                      & ~pedestrians.unknown)
            self.pedestrian_distance = _distance_to(people, resolution)
        else:
            self.pedestrian_distance = np.full(obstacles.shape, FAR_AWAY, dtype=np.float32)
        # Pedestrian-labelled cells that have not moved (see pedestrians.py): obstacles for the
        # rollouts, but a stop in front of them is still reported as yielding to a pedestrian.
        standing = (standing_pedestrians if standing_pedestrians is not None
                    else np.zeros(obstacles.shape, dtype=bool))
        self.standing_pedestrian_distance = _distance_to(standing, resolution)
        # Each circle reads the highest probability it overlaps, so a thin uncertain obstacle
        # still costs something even between the circle centres.
        kernel_cells = max(1, int(math.ceil(circles.radius / resolution)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                           (2 * kernel_cells + 1, 2 * kernel_cells + 1))
        self.probability_footprint = cv2.dilate(known_probability, kernel)
        layers = [None] * 5
        layers[_OBSTACLE], layers[_PEDESTRIAN] = self.obstacle_distance, self.pedestrian_distance
        layers[_CAUTION], layers[_UNKNOWN] = self.caution_distance, self.unknown_distance
        layers[_PROBABILITY] = self.probability_footprint
        outside = np.zeros(5, dtype=np.float32)
        outside[[_OBSTACLE, _PEDESTRIAN, _CAUTION]] = FAR_AWAY
        height, width = obstacles.shape
        padded = np.empty((5, height + 2, width + 2), dtype=np.float32)
        padded[:] = outside[:, None, None]
        padded[:, 1:-1, 1:-1] = np.stack(layers)
        self._padded_width = width + 2
        self._layers = padded.reshape(5, -1)
        # Where the robot's centre may be on the way to the carrot: half its width plus half
        # the clearance margin from obstacles (the rollouts check the full footprint), and
        # half its width plus the keep-out from pedestrians.
        half_width = 0.5 * config.footprint_width
        self.passable = ((self.obstacle_distance >= half_width + 0.5 * config.clearance_margin)
                         & (self.pedestrian_distance >= half_width + config.pedestrian_keep_out))

    def cells_of(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
        """Row, column (clipped) and inside-the-grid flag of grid-frame points."""
        grid = self.grid
        local_x, local_y = transform_points(grid.origin.inverse(), xs, ys)
        cols = np.floor(local_x / grid.resolution).astype(np.int64)
        rows = np.floor(local_y / grid.resolution).astype(np.int64)
        height, width = grid.shape
        inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        return np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1), inside

    def distance_to_line(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Metres from every cell to the polyline through grid-frame points ``xs``, ``ys``
        (FAR_AWAY everywhere when it does not cross the grid)."""
        grid = self.grid
        local_x, local_y = transform_points(grid.origin.inverse(), xs, ys)
        # cv2 draws in 1/16 cell fixed point and clips lines running off the image.
        points = np.stack([local_x / grid.resolution - 0.5, local_y / grid.resolution - 0.5],
                          axis=-1)
        line = np.full(grid.shape, 255, dtype=np.uint8)
        cv2.polylines(line, [np.round(points * 16).astype(np.int32)], False, 0,
                      lineType=cv2.LINE_8, shift=4)
        if line.all():
            return np.full(grid.shape, FAR_AWAY, dtype=np.float32)
        return cv2.distanceTransform(line, cv2.DIST_L2, 5) * np.float32(grid.resolution)

    def cost_to_go(self, target_x: float, target_y: float, max_travel: float,
                   allowed: np.ndarray | None = None) -> np.ndarray:
        """Metres to travel from each cell to the target (grid frame) around obstacles.

        A wavefront over the passable cells (and ``allowed`` ones, when given), growing
        alternately by 4- and 8-neighbours so its rings are octagons, close to circles. It
        starts at the passable cell nearest the target (the target may lie outside the grid or
        inside an obstacle); cells it cannot reach within ``max_travel`` are infinitely far.
        """
        grid = self.grid
        centre_x, centre_y = grid.cell_centres()
        offset = np.hypot(centre_x - target_x, centre_y - target_y)
        open_cells = self.passable if allowed is None else self.passable & allowed
        if not open_cells.any():
            return np.full(grid.shape, np.inf, dtype=np.float32)
        seed = np.unravel_index(np.argmin(np.where(open_cells, offset, np.inf)), grid.shape)
        passable = open_cells.astype(np.uint8)
        reached = np.zeros(grid.shape, dtype=np.uint8)
        reached[seed] = 1
        # Each ring adds 1 to every reached cell, so a cell first reached in ring r ends with
        # rings - r + 1: ring numbers without indexing a mask every ring.
        times_reached = np.zeros(grid.shape, dtype=np.uint16)
        times_reached[seed] = 1
        rings, count = 0, 1
        max_rings = min(grid.shape[0] + grid.shape[1],
                        int(math.ceil(max_travel / (_RING_STEP * grid.resolution))))
        while rings < max_rings:
            for _ in range(_RINGS_PER_CHECK):
                rings += 1
                reached = cv2.dilate(reached, _SQUARE if rings % 2 else _CROSS)
                cv2.bitwise_and(reached, passable, dst=reached)
                np.add(times_reached, reached, out=times_reached)
            grown_count = cv2.countNonZero(reached)
            if grown_count == count:
                break
            count = grown_count
        ring_of_cell = (rings + 1 - times_reached.astype(np.float32))
        cost = offset[seed] + ring_of_cell * (_RING_STEP * grid.resolution)
        return np.where(times_reached > 0, cost, np.inf).astype(np.float32)

    def standing_pedestrian_clearance(self, x: float, y: float, yaw: float) -> float:
        """Gap between the footprint at a grid-frame pose and standing pedestrian cells."""
        circles = self.circles
        circle_x, circle_y = transform_points(Pose2D(x, y, yaw), circles.offsets_x,
                                              circles.offsets_y)
        rows, cols, inside = self.cells_of(circle_x, circle_y)
        distances = np.where(inside, self.standing_pedestrian_distance[rows, cols], FAR_AWAY)
        return float(distances.min()) - circles.radius

    def sample(self, xs: np.ndarray, ys: np.ndarray, yaws: np.ndarray) -> PoseSamples:
        """Footprint clearances and contacts for poses given in the grid's frame.

        Outside the grid there are no known obstacles or pedestrians, and it is unknown.
        """
        circles = self.circles
        cos_yaw, sin_yaw = np.cos(yaws)[..., None], np.sin(yaws)[..., None]
        circle_x = xs[..., None] + cos_yaw * circles.offsets_x - sin_yaw * circles.offsets_y
        circle_y = ys[..., None] + sin_yaw * circles.offsets_x + cos_yaw * circles.offsets_y
        grid = self.grid
        local_x, local_y = transform_points(grid.origin.inverse(), circle_x, circle_y)
        height, width = grid.shape
        # The padded border holds the outside values, so clipping into it needs no mask.
        column_f, row_f = local_x / grid.resolution, local_y / grid.resolution
        rows = np.clip(np.floor(row_f).astype(np.int64) + 1, 0, height + 1)
        cols = np.clip(np.floor(column_f).astype(np.int64) + 1, 0, width + 1)
        cells = rows * self._padded_width + cols

        def layer(index: int) -> np.ndarray:
            return self._layers[index].take(cells)

        # Clearances interpolate between cell centres: reading the nearest cell would be up to
        # half a cell wrong, which decides whether the robot fits through a gap.
        row_0, column_0 = np.floor(row_f - 0.5), np.floor(column_f - 0.5)
        row_weight, column_weight = row_f - 0.5 - row_0, column_f - 0.5 - column_0
        row_0 = np.clip(row_0.astype(np.int64) + 1, 0, height)
        column_0 = np.clip(column_0.astype(np.int64) + 1, 0, width)
        corner = row_0 * self._padded_width + column_0

        def interpolated(index: int) -> np.ndarray:
            values = self._layers[index]
            top = ((1.0 - column_weight) * values.take(corner)
                   + column_weight * values.take(corner + 1))
            bottom = ((1.0 - column_weight) * values.take(corner + self._padded_width)
                      + column_weight * values.take(corner + self._padded_width + 1))
            return (1.0 - row_weight) * top + row_weight * bottom

        radius = circles.radius
        obstacle = interpolated(_OBSTACLE).min(axis=-1) - radius
        pedestrian = interpolated(_PEDESTRIAN).min(axis=-1) - radius
        unknown_contact = layer(_UNKNOWN).min(axis=-1) < radius
        caution_contact = unknown_contact | (layer(_CAUTION).min(axis=-1) < radius)
        probability = layer(_PROBABILITY).max(axis=-1)
        return PoseSamples(obstacle, pedestrian, caution_contact, unknown_contact, probability)

"""Pedestrian blobs tracked in odom: which ones stand still, and where the moving ones go.

The learned pedestrian class is weak (IoU 0.38): parts of crates and barriers are labelled
pedestrian, and persistently so once the robot stands in front of them. A person and a
mislabelled crate look alike in one grid; over a few seconds they do not: a crate never moves.
So each pedestrian blob (8-connected cells >= ``pedestrian_probability``) is located in odom and
compared with the blobs of the last ``pedestrian_static_time`` seconds:

- *static*: a blob was seen within ``pedestrian_static_radius`` of it in at least half of the
  grids of that window, the oldest of them at least 80 % of the window ago. Its cells leave the
  pedestrian keep-out; they stay obstacles (the obstacle grid holds P(obstacle) + P(pedestrian)),
  passed with the ordinary clearance, and a path they block is still reported as yielding to a
  pedestrian.
- *moving*: matched to the nearest blob about ``PREDICTION_BASELINE`` ago, faster than
  ``MIN_TRACKED_SPEED``: its cells are also stamped where it will be over the next
  ``pedestrian_prediction_time`` seconds, so the keep-out covers the walker's way and the robot
  waits instead of crossing in front of it.

Pure numpy/OpenCV; times are the grids' stamps.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D, transform_points
from sidewalk_robot.planning.grid import LocalGrid

PREDICTION_BASELINE = 0.8
"""Seconds between the two sightings a walker's velocity is measured from (longer averages
out the jitter of blob centroids, shorter follows turns)."""

MIN_TRACKED_SPEED = 0.25
"""Below this speed [m/s] a blob's motion is centroid jitter, not walking."""

MAX_PEDESTRIAN_SPEED = 3.0
"""A blob further than this speed times the baseline from every earlier one is new [m/s]."""

STATIC_WINDOW_COVERAGE = 0.8
"""The oldest matching sighting must be at least this fraction of the static window old."""


@dataclass(frozen=True)
class TrackedPedestrians:
    """The pedestrian grid the keep-out uses, and the cells recognised as standing objects."""
    keep_out: LocalGrid
    static: np.ndarray
    """Boolean, grid-shaped: pedestrian cells of blobs that have not moved."""


class PedestrianTracker:
    def __init__(self, config: PlannerConfig) -> None:
        self.config = config
        self._sightings: deque[tuple[float, np.ndarray]] = deque()

    def clear(self) -> None:
        self._sightings.clear()

    def update(self, grid: LocalGrid, grid_pose: Pose2D) -> TrackedPedestrians:
        """Classify the blobs of a new pedestrian grid taken at ``grid_pose`` (odom)."""
        config = self.config
        if self._sightings and grid.stamp < self._sightings[-1][0]:
            self._sightings.clear()  # the clock went back: simulation or replay restarted
        people = (grid.probability >= config.pedestrian_probability) & ~grid.unknown
        count, labels, _, centroids = cv2.connectedComponentsWithStats(
            people.astype(np.uint8), connectivity=8)
        # Centroid pixel coordinates -> grid frame -> odom.
        local_x = (centroids[1:, 0] + 0.5) * grid.resolution
        local_y = (centroids[1:, 1] + 0.5) * grid.resolution
        base_x, base_y = transform_points(grid.origin, local_x, local_y)
        odom_x, odom_y = transform_points(grid_pose, base_x, base_y)
        positions = np.stack([odom_x, odom_y], axis=1)

        static = np.zeros(grid.shape, dtype=bool)
        keep_out = np.where(people, grid.probability, 0.0).astype(np.float32)
        for blob, position in enumerate(positions, start=1):
            cells = labels == blob
            if self._is_static(grid.stamp, position):
                static |= cells
                keep_out[cells] = 0.0
                continue
            velocity = self._velocity(grid.stamp, position)
            if velocity is not None:
                self._stamp_ahead(keep_out, grid, cells, velocity, grid_pose)

        self._sightings.append((grid.stamp, positions))
        horizon = max(config.pedestrian_static_time, PREDICTION_BASELINE) + 1.0
        while self._sightings and self._sightings[0][0] < grid.stamp - horizon:
            self._sightings.popleft()
        tracked = LocalGrid(grid.stamp, grid.frame_id, grid.resolution, grid.origin, keep_out,
                            grid.unknown)
        return TrackedPedestrians(tracked, static)

    def _is_static(self, stamp: float, position: np.ndarray) -> bool:
        config = self.config
        window = config.pedestrian_static_time
        in_window = [(s, p) for s, p in self._sightings if s >= stamp - window]
        if not in_window:
            return False
        matched = [s for s, p in in_window if len(p) and np.min(
            np.hypot(p[:, 0] - position[0], p[:, 1] - position[1]))
            <= config.pedestrian_static_radius]
        return (bool(matched) and min(matched) <= stamp - STATIC_WINDOW_COVERAGE * window
                and len(matched) >= 0.5 * len(in_window))

    def _velocity(self, stamp: float, position: np.ndarray) -> np.ndarray | None:
        """Odom velocity from the nearest blob seen about PREDICTION_BASELINE ago."""
        earlier = [(s, p) for s, p in self._sightings
                   if 0.5 * PREDICTION_BASELINE <= stamp - s <= 1.5 * PREDICTION_BASELINE]
        if not earlier:
            return None
        then, previous = min(earlier, key=lambda sighting: abs(stamp - sighting[0]
                                                                - PREDICTION_BASELINE))
        if not len(previous):
            return None
        elapsed = stamp - then
        distances = np.hypot(previous[:, 0] - position[0], previous[:, 1] - position[1])
        nearest = int(np.argmin(distances))
        speed = distances[nearest] / elapsed
        if speed < MIN_TRACKED_SPEED or speed > MAX_PEDESTRIAN_SPEED:
            return None
        return (position - previous[nearest]) / elapsed

    def _stamp_ahead(self, keep_out: np.ndarray, grid: LocalGrid, cells: np.ndarray,
                     velocity: np.ndarray, grid_pose: Pose2D) -> None:
        """Copy the blob's cells along its predicted way, one cell per step."""
        # odom velocity -> grid-array axes (columns along the grid origin's x)
        yaw = grid_pose.yaw + grid.origin.yaw
        along_x = math.cos(yaw) * velocity[0] + math.sin(yaw) * velocity[1]
        along_y = -math.sin(yaw) * velocity[0] + math.cos(yaw) * velocity[1]
        horizon = self.config.pedestrian_prediction_time
        shift_x, shift_y = along_x * horizon / grid.resolution, along_y * horizon / grid.resolution
        steps = int(math.ceil(math.hypot(shift_x, shift_y)))
        if steps == 0:
            return
        values = np.where(cells, keep_out, 0.0).astype(np.float32)
        height, width = grid.shape
        for step in range(1, steps + 1):
            fraction = step / steps
            shift = np.float32([[1.0, 0.0, shift_x * fraction], [0.0, 1.0, shift_y * fraction]])
            moved = cv2.warpAffine(values, shift, (width, height), flags=cv2.INTER_NEAREST)
            np.maximum(keep_out, moved, out=keep_out)

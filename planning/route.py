"""A route of waypoints in the odom frame and the robot's progress along it."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sidewalk_robot.planning.geometry import Pose2D

MIN_WAYPOINT_SPACING = 0.01
"""Waypoints closer than this to the previous one are dropped [m]."""

PROJECTION_BACKTRACK = 0.5
"""How far behind the recorded progress a projection may land (a robot may drift back) [m]."""

PROJECTION_REACH = 5.0
"""How far ahead of the recorded progress a projection may land, so a route that loops back
near itself is not skipped [m]."""


class Route:
    """A polyline from the first waypoint to the final goal, with arc length ``s``."""

    def __init__(self, waypoints: Sequence[tuple[float, float]] | np.ndarray) -> None:
        points = np.asarray(waypoints, dtype=float).reshape(-1, 2)
        if len(points) == 0:
            raise ValueError('route has no waypoints')
        if not np.all(np.isfinite(points)):
            raise ValueError('route has a waypoint that is not finite')
        kept = [points[0]]
        for point in points[1:]:
            if np.hypot(*(point - kept[-1])) >= MIN_WAYPOINT_SPACING:
                kept.append(point)
        if len(kept) == 1:  # a lone goal: a zero-length route that ends where it starts
            kept.append(kept[0])
        self.points = np.array(kept)
        segments = np.diff(self.points, axis=0)
        self.segment_lengths = np.hypot(segments[:, 0], segments[:, 1])
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.segment_lengths)])
        safe_lengths = np.where(self.segment_lengths > 0.0, self.segment_lengths, 1.0)
        self.directions = segments / safe_lengths[:, None]
        self.directions[self.segment_lengths == 0.0] = (1.0, 0.0)

    @property
    def length(self) -> float:
        return float(self.cumulative[-1])

    @property
    def goal(self) -> tuple[float, float]:
        return float(self.points[-1, 0]), float(self.points[-1, 1])

    def _segment_at(self, s: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.cumulative, s, side='right') - 1
        return np.clip(index, 0, len(self.segment_lengths) - 1)

    def points_at(self, s: np.ndarray, right_offset: float = 0.0,
                  taper: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y and heading at arc lengths ``s`` (clamped to the route), shifted right.

        The right shift fades linearly to zero over the last ``taper`` metres so the route
        still ends exactly at the goal.
        """
        s = np.clip(np.asarray(s, dtype=float), 0.0, self.length)
        segment = self._segment_at(s)
        along = s - self.cumulative[segment]
        direction = self.directions[segment]
        offset = right_offset * np.clip((self.length - s) / taper, 0.0, 1.0)
        xs = self.points[segment, 0] + direction[..., 0] * along + direction[..., 1] * offset
        ys = self.points[segment, 1] + direction[..., 1] * along - direction[..., 0] * offset
        return xs, ys, np.arctan2(direction[..., 1], direction[..., 0])

    def project(self, x: float, y: float, s_min: float, s_max: float) -> tuple[float, float]:
        """Arc length and distance of the route point nearest to (x, y) within [s_min, s_max]."""
        starts, lengths = self.points[:-1], self.segment_lengths
        along = np.einsum('ij,ij->i', np.array([x, y]) - starts, self.directions)
        along = np.clip(along, 0.0, lengths)
        s = np.clip(self.cumulative[:-1] + along, s_min, s_max)
        xs, ys, _ = self.points_at(s)
        distances = np.hypot(xs - x, ys - y)
        best = int(np.argmin(distances))
        return float(s[best]), float(distances[best])


class RouteProgress:
    """Where the robot is along a route: progress only moves forward, waypoint by waypoint."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.s = 0.0

    def update(self, pose: Pose2D) -> float:
        s, _ = self.route.project(pose.x, pose.y, max(0.0, self.s - PROJECTION_BACKTRACK),
                                  self.s + PROJECTION_REACH)
        self.s = max(self.s, s)
        return self.s

    @property
    def waypoints_passed(self) -> int:
        return int(np.searchsorted(self.route.cumulative, self.s + 1e-9, side='right')) - 1

    @property
    def remaining(self) -> float:
        return self.route.length - self.s

    def goal_distance(self, pose: Pose2D) -> float:
        return math.hypot(self.route.goal[0] - pose.x, self.route.goal[1] - pose.y)

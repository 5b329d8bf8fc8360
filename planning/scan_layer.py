"""The bumper lidar in the planner: returns as obstacle cells, and the returns that move.

The camera looks ahead only (about +-45 degrees, and nothing within ~0.9 m of the bumper); the
lidar sees all around at 0.25 m height. Two things follow (Nav2's obstacle layer does the
first, its people-aware plugins the second):

- every return is an occupied cell of the obstacle grid: the crates of a narrow gap are placed
  to the centimetre, and a pole stays on the map once it has left the camera's view;
- small clusters of returns (a walker's body, a jogger) that *move* are tracked over a few
  scans: each gets the pedestrian keep-out along its predicted way, so the robot yields to a
  person stepping in from the side or coming close in the camera's blind spot.

The lidar sees nothing below its plane (kerbs, pits, a flat barrier foot): it adds
obstacles, it never clears the camera's obstacles or unknown cells.

A cluster is *moving* when its centroid, located in odom, is displaced from the nearest small
cluster of the scan ``MOTION_BASELINES`` seconds earlier at a plausible walking-to-running
speed, and both baselines agree on the velocity: a pole whose visible face changes as the
robot passes, or two posts swapping places in the matching, do not agree.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D, transform_points, wrap_angle
from sidewalk_robot.planning.pedestrians import MAX_PEDESTRIAN_SPEED

MOTION_BASELINES = (0.2, 0.5)
"""Seconds back to the scans a cluster's velocity is measured against (both must agree)."""

BASELINE_SLACK = 0.12
"""A stored scan within this of a baseline's age is used for it [s] (the lidar runs at 10 Hz)."""

VELOCITY_AGREEMENT = 0.4
"""The two baselines' velocities may differ by this plus a third of the speed [m/s]."""

MIN_MOVER_RETURNS = 3
"""Fewer returns are no walker: single returns along a wall seen at a grazing angle are too far
apart to cluster, and as the robot drives they slide along the wall like a walker would."""

ADJACENT_BEAMS = 2.5
"""Returns at most this many typical beam steps apart are neighbours (for occlusion)."""

MOVED_INTO_EMPTY_SHARE = 0.5
"""A walker candidate moves only if at least this share of its returns lie where the scan of
the long baseline saw nothing: a static box seen from a driving robot shows a new face, but
that face was hidden behind its old one, never in empty space."""

SEEN_EMPTY_MARGIN = 0.15
"""A place counts as seen empty when the earlier beam reached this much further [m]."""

MIN_MOVER_RADIUS = 0.2
"""Radius given to a moving cluster seen edge-on (a few returns) [m]."""

HISTORY_SECONDS = 1.0
"""Scans kept for the motion baselines [s]."""


@dataclass(frozen=True)
class Scan:
    """Returns of one scan as points in the robot frame at ``stamp``."""
    stamp: float
    points: np.ndarray
    """(N, 2) x, y in base_link, in beam order."""


@dataclass(frozen=True)
class MovingReturn:
    """A tracked moving cluster, in odom at the scan's stamp."""
    x: float
    y: float
    velocity_x: float
    velocity_y: float
    radius: float

    @property
    def speed(self) -> float:
        return math.hypot(self.velocity_x, self.velocity_y)


def scan_points(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                range_max: float, config: PlannerConfig) -> np.ndarray:
    """LaserScan ranges -> (N, 2) points in base_link.

    REP 117: +inf is no return within range and NaN an erroneous reading (both dropped);
    -inf is something closer than range_min (kept, at range_min). Raises ValueError for a scan
    whose geometry makes no sense.
    """
    values = np.asarray(ranges, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError('scan has no ranges')
    if not (math.isfinite(angle_min) and math.isfinite(angle_increment) and angle_increment != 0.0):
        raise ValueError(f'scan angles are not usable (angle_increment {angle_increment})')
    if not (math.isfinite(range_min) and math.isfinite(range_max) and 0.0 <= range_min < range_max):
        raise ValueError(f'scan range limits {range_min}..{range_max} make no sense')
    values = np.where(np.isneginf(values), range_min, values)
    valid = np.isfinite(values) & (values >= range_min) & (values <= range_max)
    angles = angle_min + angle_increment * np.arange(values.size) + config.laser_yaw_offset
    r, a = values[valid], angles[valid]
    return np.column_stack([config.laser_x_offset + r * np.cos(a),
                            config.laser_y_offset + r * np.sin(a)])


def laser_polar(points: np.ndarray, config: PlannerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Range and bearing (laser_link) of base_link points."""
    relative = points - np.array([config.laser_x_offset, config.laser_y_offset])
    bearings = wrap_angle(np.arctan2(relative[:, 1], relative[:, 0]) - config.laser_yaw_offset)
    return np.hypot(relative[:, 0], relative[:, 1]), bearings


def cluster_slices(points: np.ndarray, gap: float) -> list[np.ndarray]:
    """Index arrays of runs of neighbouring returns (beam order), the run across the end of
    the sweep joined to the one at its start."""
    if len(points) == 0:
        return []
    steps = np.hypot(*np.diff(points, axis=0).T)
    groups = np.split(np.arange(len(points)), np.flatnonzero(steps > gap) + 1)
    if len(groups) > 1 and math.dist(points[0], points[-1]) <= gap:
        groups[0] = np.concatenate([groups.pop(), groups[0]])
    return groups


def small_clusters(points: np.ndarray, config: PlannerConfig
                   ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Centroids (K, 2), radii (K,) and member points of the fully visible clusters of a
    person's size and return count.

    A cluster whose neighbouring beam hits something nearer is partly hidden behind it: as the
    robot moves, more or less of it shows and its centroid slides although nothing moves, so
    it is left out (a walker passing behind a post is picked up again once in the open).
    """
    groups = cluster_slices(points, config.scan_cluster_gap)
    ranges, angles = laser_polar(points, config)
    count = len(points)
    steps = np.abs(wrap_angle(np.diff(angles))) if count > 1 else np.zeros(0)
    adjacent = ADJACENT_BEAMS * float(np.median(steps)) if len(steps) else 0.0

    def hidden_at(end: int, neighbour: int) -> bool:
        return (abs(float(wrap_angle(angles[neighbour] - angles[end]))) <= adjacent
                and ranges[neighbour] < ranges[end])

    centroids, radii, member_points = [], [], []
    for indices in groups:
        members = points[indices]
        extent = float(np.hypot(*(members.max(axis=0) - members.min(axis=0))))
        if len(indices) < MIN_MOVER_RETURNS or extent > config.moving_return_max_size:
            continue
        if len(groups) > 1 and (hidden_at(indices[0], (indices[0] - 1) % count)
                                or hidden_at(indices[-1], (indices[-1] + 1) % count)):
            continue
        centroids.append(members.mean(axis=0))
        radii.append(max(0.5 * extent, MIN_MOVER_RADIUS))
        member_points.append(members)
    return (np.asarray(centroids, dtype=np.float64).reshape(-1, 2), np.asarray(radii),
            member_points)


@dataclass(frozen=True)
class _ScanView:
    """One earlier scan as its laser saw it: where it looked from and how far each beam that
    returned reached (sorted by bearing), to tell which places it saw to be empty."""
    stamp: float
    centroids: np.ndarray
    """Walker candidates' centroids in odom."""
    laser: Pose2D
    bearings: np.ndarray
    ranges: np.ndarray
    beam_step: float

    def seen_empty(self, points: np.ndarray) -> np.ndarray:
        """Per odom point: this scan's beam towards it reached clearly beyond it (or had no
        return at all), so nothing stood there then."""
        if len(self.bearings) < 2:
            return np.ones(len(points), dtype=bool)
        local_x, local_y = transform_points(self.laser.inverse(), points[:, 0], points[:, 1])
        bearings, ranges = np.arctan2(local_y, local_x), np.hypot(local_x, local_y)
        index = np.searchsorted(self.bearings, bearings) % len(self.bearings)
        beam_ranges = np.full(len(points), np.inf)
        for candidate in (index, index - 1):
            near = np.abs(wrap_angle(self.bearings[candidate] - bearings)) <= 0.75 * self.beam_step
            beam_ranges = np.where(near, np.minimum(beam_ranges, self.ranges[candidate]),
                                   beam_ranges)
        return beam_ranges > ranges + SEEN_EMPTY_MARGIN


class MovingReturnTracker:
    """Finds the moving clusters of each new scan by comparing with the scans before it."""

    def __init__(self, config: PlannerConfig) -> None:
        self.config = config
        self._history: deque[_ScanView] = deque()

    def clear(self) -> None:
        self._history.clear()

    def update(self, scan: Scan, pose: Pose2D) -> list[MovingReturn]:
        """The moving clusters of ``scan``, taken with the robot at ``pose`` (odom)."""
        if self._history and scan.stamp <= self._history[-1].stamp:
            if scan.stamp < self._history[-1].stamp:
                self._history.clear()  # the clock went back: simulation or replay restarted
            else:
                return []  # the same scan again
        config = self.config
        centroids, radii, members = small_clusters(scan.points, config)
        in_odom = np.column_stack(transform_points(pose, centroids[:, 0], centroids[:, 1]))
        views = [self._view_at(scan.stamp, baseline) for baseline in MOTION_BASELINES]
        moving: list[MovingReturn] = []
        if all(view is not None for view in views):
            short, long = (_velocities(scan.stamp, in_odom, view) for view in views)
            speed = np.hypot(long[:, 0], long[:, 1])
            with np.errstate(invalid='ignore'):  # inf - inf where no earlier cluster existed
                agree = np.hypot(*(short - long).T) <= VELOCITY_AGREEMENT + speed / 3.0
            plausible = ((speed >= self.config.moving_return_min_speed)
                         & (np.hypot(short[:, 0], short[:, 1])
                            >= self.config.moving_return_min_speed)
                         & (speed <= MAX_PEDESTRIAN_SPEED))
            for index in np.flatnonzero(agree & plausible):
                points = np.column_stack(transform_points(pose, members[index][:, 0],
                                                          members[index][:, 1]))
                if views[-1].seen_empty(points).mean() < MOVED_INTO_EMPTY_SHARE:
                    continue
                moving.append(MovingReturn(float(in_odom[index, 0]), float(in_odom[index, 1]),
                                           float(long[index, 0]), float(long[index, 1]),
                                           float(radii[index])))
        self._history.append(self._view_of(scan, pose, in_odom))
        while self._history and self._history[0].stamp < scan.stamp - HISTORY_SECONDS:
            self._history.popleft()
        return moving

    def _view_of(self, scan: Scan, pose: Pose2D, centroids: np.ndarray) -> _ScanView:
        config = self.config
        ranges, bearings = laser_polar(scan.points, config)
        order = np.argsort(bearings)
        bearings = bearings[order]
        steps = np.diff(bearings)
        beam_step = float(np.median(steps[steps > 0])) if np.any(steps > 0) else math.pi
        laser = pose.compose(Pose2D(config.laser_x_offset, config.laser_y_offset,
                                    config.laser_yaw_offset))
        return _ScanView(scan.stamp, centroids, laser, bearings, ranges[order], beam_step)

    def _view_at(self, stamp: float, baseline: float) -> _ScanView | None:
        """The stored scan closest to ``baseline`` seconds before ``stamp`` (None: none)."""
        candidates = [view for view in self._history
                      if abs(stamp - view.stamp - baseline) <= BASELINE_SLACK]
        if not candidates:
            return None
        return min(candidates, key=lambda view: abs(stamp - view.stamp - baseline))


def _velocities(stamp: float, centroids: np.ndarray, view: _ScanView) -> np.ndarray:
    """Velocity of each centroid from the nearest candidate centroid of an earlier scan
    (infinite where that scan had no candidate at all)."""
    old = view.centroids
    if len(old) == 0 or len(centroids) == 0:
        return np.full((len(centroids), 2), np.inf)
    offsets = centroids[:, None, :] - old[None, :, :]
    nearest = np.argmin(np.hypot(offsets[..., 0], offsets[..., 1]), axis=1)
    return offsets[np.arange(len(centroids)), nearest] / (stamp - view.stamp)


def mark_returns(shape: tuple[int, int], resolution: float, origin: Pose2D, xs: np.ndarray,
                 ys: np.ndarray) -> np.ndarray:
    """Boolean grid: the cells holding the points (grid-parent frame)."""
    local_x, local_y = transform_points(origin.inverse(), xs, ys)
    cols = np.floor(local_x / resolution).astype(np.int64)
    rows = np.floor(local_y / resolution).astype(np.int64)
    height, width = shape
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    marked = np.zeros(shape, dtype=bool)
    marked[rows[inside], cols[inside]] = True
    return marked


def mark_predicted_ways(cell_x: np.ndarray, cell_y: np.ndarray, movers: list[MovingReturn],
                        horizon: float) -> np.ndarray:
    """Boolean grid: cells (centres ``cell_x``, ``cell_y``, same frame as the movers) within a
    mover's radius of the segment it covers in the next ``horizon`` seconds."""
    marked = np.zeros(cell_x.shape, dtype=bool)
    for mover in movers:
        end_x, end_y = mover.velocity_x * horizon, mover.velocity_y * horizon
        length_squared = end_x * end_x + end_y * end_y
        rel_x, rel_y = cell_x - mover.x, cell_y - mover.y
        along = np.clip((rel_x * end_x + rel_y * end_y) / max(length_squared, 1e-9), 0.0, 1.0)
        marked |= np.hypot(rel_x - along * end_x, rel_y - along * end_y) <= mover.radius
    return marked

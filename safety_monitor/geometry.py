"""Footprint, scan returns in base_link (REP 117) and the footprint swept along a commanded arc.

A command (v, w) moves the robot as a rigid body about its instantaneous centre of rotation
(ICR) at (0, v/w) in base_link, or straight along x when w is 0. Distances along the motion are
measured by the *lead point*, the footprint point farthest from the ICR, which moves fastest:
for straight motion that is simply the distance driven; for rotation in place it is the arc of a
corner. No point of the body travels farther than the lead point, so braking the lead point in
time brakes the whole body in time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from sidewalk_robot.safety_monitor.inputs import LaserScanData

SWEEP_STEP = 0.02
"""Lead-point travel between sampled poses [m]. A return can get at most SWEEP_STEP / 2 closer
to the footprint than the sampled poses show; the containment test is inflated by that much."""

STRAIGHT_YAW_RATE = 1e-6
"""Below this yaw rate [rad/s] a motion is treated as straight (its turning radius is huge)."""

BOUNDARY_STEP = 0.025
"""Spacing of the footprint boundary samples that trace the swept path for rule 10 [m]."""

COVERAGE_STEP = 0.05
"""Lead-point travel between the poses at which rule 10 samples the swept path [m]."""

REAR_SECTOR_HALF_ANGLE = math.radians(20.0)
"""A scan covers the rear when some beam points within this angle of straight back."""


@dataclass(frozen=True)
class Footprint:
    """Rectangle centred on the base_link origin."""
    half_length: float
    half_width: float

    @classmethod
    def from_size(cls, length: float, width: float) -> Footprint:
        return cls(length / 2.0, width / 2.0)

    @property
    def circumradius(self) -> float:
        return math.hypot(self.half_length, self.half_width)

    def box_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """max(|x| - L/2, |y| - W/2): <= 0 inside; outside a lower bound of the distance."""
        return np.maximum(np.abs(x) - self.half_length, np.abs(y) - self.half_width)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Euclidean distance from each point to the footprint (0 on or inside it)."""
        dx = np.maximum(np.abs(points[:, 0]) - self.half_length, 0.0)
        dy = np.maximum(np.abs(points[:, 1]) - self.half_width, 0.0)
        return np.hypot(dx, dy)

    def push_to_boundary(self, points: np.ndarray) -> np.ndarray:
        """Points inside the footprint moved to its nearest edge.

        A return inside the body is physically something touching it (or a -Inf beam, REP 117:
        closer than the sensor can measure). On the edge it blocks motion towards it and lets
        the robot move away, instead of blocking every motion.
        """
        x, y = points[:, 0].copy(), points[:, 1].copy()
        inside = self.box_distance(x, y) < 0.0
        if not inside.any():
            return points
        gap_x = self.half_length - np.abs(x[inside])
        gap_y = self.half_width - np.abs(y[inside])
        toward_x = gap_x <= gap_y
        xi, yi = x[inside], y[inside]
        xi = np.where(toward_x, np.copysign(self.half_length, xi), xi)
        yi = np.where(toward_x, yi, np.copysign(self.half_width, yi))
        x[inside], y[inside] = xi, yi
        return np.column_stack((x, y))


@dataclass(frozen=True)
class ScanObservation:
    """How far each beam has looked: the space a scan has actually observed.

    Beam i covers the bearings within half an increment of its own (seen from the laser) out to
    its observed range: up to its return for a valid finite range, up to range_max for +Inf
    ("nothing within range", REP 117), not at all for NaN, -Inf or a value outside the range
    limits. Bearings no beam covers are outside the field of view.
    """
    laser_x: float
    first_bearing: float
    """Bearing of beam 0 in base_link [rad] (angle_min plus the laser's yaw)."""
    increment: float
    observed_range: np.ndarray

    @cached_property
    def _beams_per_turn(self) -> float:
        return 2.0 * math.pi / abs(self.increment)

    @cached_property
    def _reach_squared(self) -> np.ndarray:
        """Squared observed range by beam cell over a full turn; -1 where no beam looks."""
        count = len(self.observed_range)
        table = np.full(max(count, math.ceil(self._beams_per_turn)) + 1, -1.0)
        table[:count] = self.observed_range ** 2
        if count >= self._beams_per_turn:
            # A full turn: a cell index past the last beam only comes from rounding at the wrap.
            table[count:] = table[0]
        return table

    def look_up(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For points (x, y) in base_link: (inside the field of view, observed)."""
        dx = x - self.laser_x
        cell = ((np.arctan2(y, dx) - self.first_bearing) / self.increment + 0.5) \
            % self._beams_per_turn
        reach_squared = self._reach_squared[cell.astype(np.intp)]
        return reach_squared >= 0.0, dx * dx + y * y <= reach_squared


@dataclass(frozen=True)
class ScanPoints:
    """Returns of one scan in base_link, after REP 117 beam semantics."""
    points: np.ndarray
    valid_beams: int
    covers_rear: bool
    observation: ScanObservation


def scan_to_points(scan: LaserScanData, laser_x: float, laser_yaw: float,
                   footprint: Footprint) -> ScanPoints:
    """REP 117: +Inf = nothing within range (valid, no return); -Inf = closer than range_min
    (a return at the sensor); NaN or a finite value outside [range_min, range_max] = no
    information (ignored). The header must have been checked already."""
    ranges = np.asarray(scan.ranges, dtype=float)
    angles = scan.angle_min + scan.angle_increment * np.arange(len(ranges)) + laser_yaw
    too_close = np.isneginf(ranges)
    measured = np.isfinite(ranges) & (ranges >= scan.range_min) & (ranges <= scan.range_max)
    nothing_in_range = np.isposinf(ranges)
    valid_beams = int(np.count_nonzero(measured | np.isinf(ranges)))
    returning = measured | too_close
    distance = np.where(too_close, 0.0, ranges)[returning]
    beam = angles[returning]
    points = np.column_stack((laser_x + distance * np.cos(beam), distance * np.sin(beam)))
    covers_rear = bool(np.any(np.cos(angles) <= -math.cos(REAR_SECTOR_HALF_ANGLE)))
    observed_range = np.where(measured, ranges, np.where(nothing_in_range, scan.range_max, 0.0))
    observation = ScanObservation(laser_x, scan.angle_min + laser_yaw, scan.angle_increment,
                                  observed_range)
    return ScanPoints(footprint.push_to_boundary(points), valid_beams, covers_rear, observation)


@dataclass(frozen=True)
class Arc:
    """The rigid motion a command describes, parametrised by lead-point travel."""
    linear: float
    angular: float
    footprint: Footprint

    @property
    def straight(self) -> bool:
        return abs(self.angular) < STRAIGHT_YAW_RATE

    @property
    def turning_radius(self) -> float:
        """Signed y of the ICR in base_link (only meaningful when not straight)."""
        return self.linear / self.angular

    @property
    def lead_radius(self) -> float:
        """Distance from the ICR to the farthest footprint corner."""
        return math.hypot(self.footprint.half_length,
                          abs(self.turning_radius) + self.footprint.half_width)

    @property
    def lead_speed(self) -> float:
        """Speed of the fastest footprint point [m/s]."""
        if self.straight:
            return abs(self.linear)
        return abs(self.angular) * self.lead_radius

    def max_travel(self) -> float:
        """Lead-point travel after which the motion repeats itself (one full turn)."""
        return math.inf if self.straight else 2.0 * math.pi * self.lead_radius

    def poses(self, travel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, yaw of base_link after the lead point has travelled ``travel``."""
        if self.straight:
            return math.copysign(1.0, self.linear) * travel, np.zeros_like(travel), \
                np.zeros_like(travel)
        radius = self.turning_radius
        yaw = math.copysign(1.0, self.angular) * travel / self.lead_radius
        return radius * np.sin(yaw), radius * (1.0 - np.cos(yaw)), yaw

    def may_touch(self, points: np.ndarray) -> np.ndarray:
        """Cheap mask of points the sweep can reach at all (the rest are skipped)."""
        slack = SWEEP_STEP
        if self.straight:
            return np.abs(points[:, 1]) <= self.footprint.half_width + slack
        radius = self.turning_radius
        from_icr = np.hypot(points[:, 0], points[:, 1] - radius)
        icr_clearance = self.footprint.clearance(np.array([[0.0, radius]]))[0]
        return (from_icr >= icr_clearance - slack) & (from_icr <= self.lead_radius + slack)


@dataclass(frozen=True)
class _Boundary:
    """The footprint's edges cut into pieces: midpoints, outward normals and lengths."""
    x: np.ndarray
    y: np.ndarray
    normal_x: np.ndarray
    normal_y: np.ndarray
    length: np.ndarray


@lru_cache(maxsize=8)
def _boundary(footprint: Footprint) -> _Boundary:
    x, y, normal_x, normal_y, length = [], [], [], [], []
    for half_along, half_across, across_y in ((footprint.half_length, footprint.half_width, True),
                                              (footprint.half_width, footprint.half_length, False)):
        pieces = max(1, math.ceil(2.0 * half_across / BOUNDARY_STEP))
        across = -half_across + (np.arange(pieces) + 0.5) * (2.0 * half_across / pieces)
        for side in (1.0, -1.0):
            along = np.full(pieces, side * half_along)
            x.append(along if across_y else across)
            y.append(across if across_y else along)
            normal_x.append(np.full(pieces, side if across_y else 0.0))
            normal_y.append(np.full(pieces, 0.0 if across_y else side))
            length.append(np.full(pieces, 2.0 * half_across / pieces))
    return _Boundary(*(np.concatenate(part) for part in (x, y, normal_x, normal_y, length)))


@dataclass(frozen=True)
class SweptPath:
    """Sample points of the area the footprint sweeps along an arc, outside where it stands."""
    x: np.ndarray
    y: np.ndarray
    """Point coordinates in base_link at the start of the motion."""
    travel: np.ndarray
    """Lead-point travel before the footprint reaches each point (rounded down a step)."""
    weight: np.ndarray
    """Area each point stands for (relative; the same scale for all points of one path)."""


def swept_path(arc: Arc, horizon: float) -> SweptPath:
    """The path within ``horizon`` of lead-point travel, traced by the leading boundary.

    Under a constant twist each boundary piece moves with the same body-frame velocity all along
    the arc; the pieces whose outward normal has a positive share of it (the leading ones) sweep
    new area at a rate of length times that share, which is each sample's weight. Poses are
    COVERAGE_STEP of lead-point travel apart. A piece at the pose after travel s reaches its
    points after at most s, so each point is given the travel one step earlier: never later than
    the true contact.
    """
    boundary = _boundary(arc.footprint)
    lead_speed = arc.lead_speed
    horizon = min(horizon, arc.max_travel())
    if lead_speed == 0.0 or horizon <= 0.0:
        nothing = np.empty(0)
        return SweptPath(nothing, nothing, nothing, nothing)
    normal_speed = boundary.normal_x * (arc.linear - arc.angular * boundary.y) \
        + boundary.normal_y * (arc.angular * boundary.x)
    leading = normal_speed > 1e-9 * lead_speed
    body_x, body_y = boundary.x[leading], boundary.y[leading]
    weight = (boundary.length * normal_speed)[leading] / lead_speed
    travel = COVERAGE_STEP * np.arange(1, math.ceil(horizon / COVERAGE_STEP) + 1)
    reached_after = np.repeat(travel - COVERAGE_STEP, len(weight))
    weight = np.tile(weight, len(travel))
    pose_x, pose_y, yaw = arc.poses(travel)
    if arc.straight:
        # The leading edge is the front (or rear) edge: it stays ahead of the start footprint.
        return SweptPath((pose_x[:, None] + body_x).ravel(), np.tile(body_y, len(travel)),
                         reached_after, weight)
    cos_yaw, sin_yaw = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = (pose_x[:, None] + cos_yaw * body_x - sin_yaw * body_y).ravel()
    y = (pose_y[:, None] + sin_yaw * body_x + cos_yaw * body_y).ravel()
    outside = arc.footprint.box_distance(x, y) > 1e-9
    return SweptPath(x[outside], y[outside], reached_after[outside], weight[outside])


def contact_distances(points: np.ndarray, arc: Arc, horizon: float) -> np.ndarray:
    """Lead-point travel before the footprint, moving along ``arc``, reaches each point.

    Only points reached within ``horizon`` are returned (unordered). A point touching the
    footprint already counts only if the motion pushes into it, so moving away stays possible.
    Each value is rounded down to the previous sampled pose: never later than the true contact.
    """
    return indexed_contact_distances(points, arc, horizon)[1]


def indexed_contact_distances(points: np.ndarray, arc: Arc,
                              horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """``contact_distances`` with the index into ``points`` of each reached point."""
    nothing = (np.empty(0, dtype=int), np.empty(0))
    if arc.linear == 0.0 and arc.straight:
        return nothing
    horizon = min(horizon, arc.max_travel())
    reach = horizon + arc.footprint.circumradius + SWEEP_STEP
    candidate_index = np.flatnonzero((np.hypot(points[:, 0], points[:, 1]) <= reach)
                                     & arc.may_touch(points))
    candidates = points[candidate_index]
    if len(candidates) == 0 or horizon <= 0.0:
        return nothing
    travel = SWEEP_STEP * np.arange(1, math.ceil(horizon / SWEEP_STEP) + 1)
    x, y, yaw = arc.poses(travel)
    cos_yaw, sin_yaw = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    dx = candidates[None, :, 0] - x[:, None]
    dy = candidates[None, :, 1] - y[:, None]
    local_x = cos_yaw * dx + sin_yaw * dy
    local_y = cos_yaw * dy - sin_yaw * dx
    depth = arc.footprint.box_distance(local_x, local_y)
    start = arc.footprint.box_distance(candidates[:, 0], candidates[:, 1])
    touching = (depth <= SWEEP_STEP / 2.0) & (depth < start[None, :] - 1e-9)
    reached = touching.any(axis=0)
    first_sample = touching.argmax(axis=0)[reached]
    return candidate_index[reached], first_sample * SWEEP_STEP


def kth_smallest(values: np.ndarray, count: int) -> float:
    """The count-th smallest value, or +inf when there are fewer values: the debounce rule."""
    if len(values) < count:
        return math.inf
    return float(np.partition(values, count - 1)[count - 1])

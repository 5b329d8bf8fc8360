"""The monitor's rules as small pure functions; the state machine in monitor.py chains them."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.geometry import (COVERAGE_STEP, SWEEP_STEP, Arc, Footprint,
                                                    ScanObservation, indexed_contact_distances,
                                                    kth_smallest, swept_path)


# Rule 1: caps ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Capped:
    linear: float
    angular: float
    limited: bool


def cap_speeds(linear: float, angular: float, config: SafetyConfig) -> Capped:
    """Clamp to the forward, reverse and yaw-rate caps."""
    capped_linear = min(max(linear, -config.max_reverse_speed), config.max_linear_speed)
    capped_angular = min(max(angular, -config.max_angular_speed), config.max_angular_speed)
    return Capped(capped_linear, capped_angular,
                  capped_linear != linear or capped_angular != angular)


def cap_acceleration(target: float, previous: float, max_step: float) -> float:
    """Speed up by at most ``max_step`` from ``previous``; slow down (towards 0) at once.

    Braking is never delayed: a target between 0 and ``previous`` (or a change of direction,
    which first passes 0) takes effect immediately, and only the part beyond is limited.
    """
    if previous * target < 0.0:
        previous = 0.0
    if abs(target) <= abs(previous):
        return target
    return previous + min(max(target - previous, -max_step), max_step)


# Rule 2: speed and separation ----------------------------------------------------------------

def required_distance(speed: float, config: SafetyConfig, obstacle_speed: float = 0.0) -> float:
    """Distance the lead point needs to stop from ``speed``, plus the margin it must keep, plus
    how far an obstacle closing at ``obstacle_speed`` comes during reaction and braking (rule 9).
    """
    return speed * config.reaction_time + speed ** 2 / (2.0 * config.brake_decel) \
        + config.stop_margin \
        + obstacle_speed * (config.reaction_time + speed / config.brake_decel)


def stopping_speed_limit(distance: float, config: SafetyConfig,
                         obstacle_speed: float = 0.0) -> float:
    """Largest v >= 0 with required_distance(v, obstacle_speed) <= distance."""
    if math.isinf(distance):
        return math.inf
    room = distance - config.stop_margin - obstacle_speed * config.reaction_time
    if room <= 0.0:
        return 0.0
    decel = config.brake_decel
    delay = config.reaction_time + obstacle_speed / decel
    return decel * (math.sqrt(delay * delay + 2.0 * room / decel) - delay)


def slowdown_speed_limit(distance: float, config: SafetyConfig) -> float:
    """Linear ramp from max_linear_speed at slowdown_distance to 0 at stop_margin."""
    if distance >= config.slowdown_distance:
        return math.inf
    span = config.slowdown_distance - config.stop_margin
    if distance <= config.stop_margin or span <= 0.0:
        return 0.0
    return config.max_linear_speed * (distance - config.stop_margin) / span


def lead_speed_limit(distance: float, config: SafetyConfig, obstacle_speed: float = 0.0) -> float:
    return min(stopping_speed_limit(distance, config, obstacle_speed),
               slowdown_speed_limit(distance, config))


def lead_speed_limits(distances: np.ndarray, obstacle_speeds: np.ndarray,
                      config: SafetyConfig) -> np.ndarray:
    """``lead_speed_limit`` for many finite distances at once."""
    decel = config.brake_decel
    room = distances - config.stop_margin - obstacle_speeds * config.reaction_time
    delay = config.reaction_time + obstacle_speeds / decel
    stopping = decel * (np.sqrt(delay * delay + 2.0 * np.maximum(room, 0.0) / decel) - delay)
    stopping = np.where(room > 0.0, stopping, 0.0)
    span = config.slowdown_distance - config.stop_margin
    with np.errstate(divide='ignore', invalid='ignore'):
        ramp = config.max_linear_speed * (distances - config.stop_margin) / span
    ramp = np.where(distances <= config.stop_margin, 0.0, ramp) if span > 0.0 \
        else np.zeros_like(distances)
    ramp = np.where(distances >= config.slowdown_distance, np.inf, ramp)
    return np.minimum(stopping, ramp)


def sweep_horizon(lead_speed: float, config: SafetyConfig, obstacle_speed: float = 0.0) -> float:
    """Lead-point travel beyond which no return closing at up to ``obstacle_speed`` could limit
    ``lead_speed``."""
    if config.max_linear_speed > 0.0 and lead_speed < config.max_linear_speed:
        ramp_end = config.stop_margin + (config.slowdown_distance - config.stop_margin) \
            * lead_speed / config.max_linear_speed
    else:
        ramp_end = config.slowdown_distance
    return max(required_distance(lead_speed, config, obstacle_speed), ramp_end) + SWEEP_STEP


@dataclass(frozen=True)
class PathCoverage:
    """Rule 10: how much of the swept path the scan has observed."""
    fraction: float
    """Observed share (by area) of the part of the path inside the field of view (nan: nothing
    judged: no motion, or none of the path in view)."""
    observed_travel: float
    """Longest lead-point travel over which the path is observed to at least the required share
    (inf: the whole judged path is, so it was not looked for)."""


NOT_JUDGED = PathCoverage(math.nan, math.inf)


def path_coverage(arc: Arc, observation: ScanObservation, horizon: float,
                  min_fraction: float) -> PathCoverage:
    """Rule 10: the observed share of the path swept within ``horizon`` of lead-point travel,
    and, when it is below ``min_fraction``, the longest stretch of the path from the robot that
    is observed to at least that share (a multiple of COVERAGE_STEP; 0: not even the first).

    Only the part of the path inside the scan's field of view is judged: the sensor cannot look
    elsewhere by design (reversing without rear coverage is rule 2's ``reverse_unchecked``).
    """
    path = swept_path(arc, horizon)
    in_view, observed = observation.look_up(path.x, path.y)
    total = float(np.dot(path.weight, in_view))
    if total <= 0.0:
        return NOT_JUDGED
    fraction = float(np.dot(path.weight, observed)) / total
    if fraction >= min_fraction:
        return PathCoverage(fraction, math.inf)
    pose = np.rint(path.travel / COVERAGE_STEP).astype(int)
    seen_so_far = np.cumsum(np.bincount(pose, np.where(observed, path.weight, 0.0)))
    judged_so_far = np.cumsum(np.bincount(pose, np.where(in_view, path.weight, 0.0)))
    enough = np.flatnonzero(seen_so_far >= min_fraction * judged_so_far - 1e-12)
    enough = enough[judged_so_far[enough] > 0.0]
    return PathCoverage(fraction, (enough[-1] + 1) * COVERAGE_STEP if len(enough) else 0.0)


@dataclass(frozen=True)
class Separation:
    scale: float
    """Factor (0..1) applied to both linear and angular speed, so the path stays the one checked."""
    path_clearance: float
    """Debounced lead-point travel to the nearest return on the path (inf: none within reach)."""
    allowed_lead_speed: float
    coverage: PathCoverage = NOT_JUDGED
    """Rule 10's view of the path at the speed the returns allow."""
    limited_by_coverage: bool = False
    """Rule 10, not the returns, sets allowed_lead_speed."""


def separation_limit(linear: float, angular: float, points: np.ndarray, footprint: Footprint,
                     config: SafetyConfig, point_speeds: np.ndarray | None = None,
                     observation: ScanObservation | None = None) -> Separation:
    """Rules 2, 7, 9 and 10: limit the motion so it can stop before the min_points-th nearest
    return in the footprint swept along the commanded arc (slower still inside the slow-down
    zone), and within a stretch of the path the scan has observed well enough.

    ``point_speeds`` (rule 9): how fast each return closes in; each return's distance is then
    judged with its own speed, and the min_points-th smallest of the resulting limits holds.
    As every limit is non-decreasing in distance, all-zero speeds give exactly rule 2.

    ``observation`` (rule 10; None: rule off): the path the robot covers within its stopping
    distance plus stop_margin, at the speed the returns allow, is judged. When less than
    min_path_coverage of it is observed, the speed is lowered until its stopping distance plus
    stop_margin spans only the longest stretch of the path observed to at least that share: as
    if a return stood where that stretch ends. The shadow behind a return that limits the speed
    lies beyond that speed's stopping distance, so it does not count again.
    """
    arc = Arc(linear, angular, footprint)
    lead_speed = arc.lead_speed
    if lead_speed == 0.0:
        return Separation(1.0, math.inf, math.inf)
    fastest = float(point_speeds.max()) if point_speeds is not None and len(point_speeds) else 0.0
    index, contacts = indexed_contact_distances(points, arc,
                                                sweep_horizon(lead_speed, config, fastest))
    clearance = kth_smallest(contacts, config.min_points)
    if fastest == 0.0:
        allowed = lead_speed_limit(clearance, config)
    else:
        allowed = kth_smallest(lead_speed_limits(contacts, point_speeds[index], config),
                               config.min_points)
    coverage, limited_by_coverage = NOT_JUDGED, False
    judged_speed = min(lead_speed, allowed)
    if observation is not None and config.min_path_coverage > 0.0 and judged_speed > 0.0:
        coverage = path_coverage(arc, observation, required_distance(judged_speed, config),
                                 config.min_path_coverage)
        if coverage.fraction < config.min_path_coverage:
            observed_limit = stopping_speed_limit(coverage.observed_travel, config)
            if observed_limit < allowed:
                allowed, limited_by_coverage = observed_limit, True
    return Separation(min(1.0, allowed / lead_speed), clearance, allowed, coverage,
                      limited_by_coverage)


def approaching_clearance(points: np.ndarray, point_speeds: np.ndarray, linear: float,
                          footprint: Footprint, config: SafetyConfig) -> float:
    """Rule 9: footprint clearance of the min_points-th nearest return that closes in and lies in
    the watched corridor on the side the robot drives to (inf: none, or no linear motion).

    The corridor is the footprint's width plus approach_watch_margin on either side, from the
    base_link origin onwards in the direction of travel: a crosser is seen before it steps in.
    """
    if linear == 0.0 or len(points) == 0:
        return math.inf
    ahead = math.copysign(1.0, linear) * points[:, 0] >= 0.0
    beside = np.abs(points[:, 1]) <= footprint.half_width + config.approach_watch_margin
    watched = ahead & beside & (point_speeds > 0.0)
    return kth_smallest(footprint.clearance(points[watched]), config.min_points)


# Rule 3: escape -------------------------------------------------------------------------------

def escape_rotation(angular: float, points: np.ndarray, footprint: Footprint,
                    config: SafetyConfig, observation: ScanObservation | None = None) -> float:
    """When the commanded path is blocked, the yaw rate that turning in place allows.

    The robot keeps its way out: turning in place is passed whenever the footprint swept by the
    turn stays clear (and observed, rule 10), under the same stopping rule measured at the
    footprint corners.
    """
    if angular == 0.0:
        return 0.0
    separation = separation_limit(0.0, angular, points, footprint, config,
                                  observation=observation)
    return angular * separation.scale


# Rule 4: watchdogs ----------------------------------------------------------------------------

def staleness_problem(name: str, stamp: float, now: float, timeout: float) -> str | None:
    age = now - stamp
    if age > timeout:
        return f'{name} is stale: last stamp {age:.3f} s old (timeout {timeout:.3f} s)'
    return None

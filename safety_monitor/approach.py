"""Rule 9: how fast returns close in on the footprint beyond what the robot's own motion explains.

Speed and separation monitoring (ISO/TS 15066) adds the other party's speed over the robot's
reaction and braking time to the separation it must keep. The monitor has no perception, so the
speed comes from the raw scan alone: the scan is cut into bearing sectors around base_link; in
each sector the clearance from the footprint to its ``min_points``-th nearest return now is
compared with the same figure in a scan about ``approach_baseline`` earlier, whose returns are
first moved by the robot's own motion since (integrated from odometry). A static world then
shows no change at all, and what is left is obstacle motion towards the body.

Robustness: comparing sector minima (not individual beams) needs no association between returns;
an estimate counts only when the previous one for the sector agreed (the smaller of the two is
kept), so a single jump (a new object entering a sector, an occlusion edge) is not a speed;
closing speeds below ``min_obstacle_speed`` count as 0 (range noise, odometry error) and above
``max_obstacle_speed`` are clamped.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.geometry import Footprint

SECTOR_COUNT = 36
"""Bearing sectors of 10 degrees: narrow enough to keep a walker apart from the wall behind it,
wide enough that a walker stays in one sector for several scans."""


@dataclass(frozen=True)
class Pose2D:
    """base_link pose in the monitor's own odometry-integrated frame."""
    x: float
    y: float
    yaw: float

    def moved(self, linear: float, angular: float, duration: float) -> Pose2D:
        """Pose after holding the twist for ``duration`` (exact arc)."""
        turn = angular * duration
        if abs(turn) < 1e-9:
            forward, left = linear * duration, 0.0
        else:
            forward = linear / angular * math.sin(turn)
            left = linear / angular * (1.0 - math.cos(turn))
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        return Pose2D(self.x + cos_yaw * forward - sin_yaw * left,
                      self.y + sin_yaw * forward + cos_yaw * left, self.yaw + turn)


def to_frame(points: np.ndarray, seen_from: Pose2D, now_at: Pose2D) -> np.ndarray:
    """Returns seen in base_link at ``seen_from``, expressed in base_link at ``now_at``."""
    cos_a, sin_a = math.cos(seen_from.yaw), math.sin(seen_from.yaw)
    world_x = seen_from.x + cos_a * points[:, 0] - sin_a * points[:, 1]
    world_y = seen_from.y + sin_a * points[:, 0] + cos_a * points[:, 1]
    cos_b, sin_b = math.cos(now_at.yaw), math.sin(now_at.yaw)
    dx, dy = world_x - now_at.x, world_y - now_at.y
    return np.column_stack((cos_b * dx + sin_b * dy, cos_b * dy - sin_b * dx))


def sector_of(points: np.ndarray) -> np.ndarray:
    bearing = np.arctan2(points[:, 1], points[:, 0])
    return np.floor((bearing + math.pi) / (2.0 * math.pi / SECTOR_COUNT)).astype(int) \
        % SECTOR_COUNT


def sector_clearances(points: np.ndarray, footprint: Footprint, count: int) -> np.ndarray:
    """Per sector, the ``count``-th smallest footprint clearance (+inf: fewer returns)."""
    result = np.full(SECTOR_COUNT, math.inf)
    if len(points) == 0:
        return result
    sectors = sector_of(points)
    clearance = footprint.clearance(points)
    order = np.lexsort((clearance, sectors))
    per_sector = np.bincount(sectors, minlength=SECTOR_COUNT)
    first = np.cumsum(per_sector) - per_sector
    enough = per_sector >= count
    result[enough] = clearance[order][first[enough] + count - 1]
    return result


@dataclass
class _Frame:
    stamp: float
    pose: Pose2D
    points: np.ndarray


class ApproachTracker:
    """Closing speed of every return of the latest scan, from the scans before it."""

    def __init__(self, config: SafetyConfig, footprint: Footprint) -> None:
        self.config, self.footprint = config, footprint
        self._frames: deque[_Frame] = deque()
        self._previous_raw = np.zeros(SECTOR_COUNT)
        self.point_speeds = np.empty(0)
        """Closing speed [m/s] of each return of the latest scan (its sector's estimate)."""

    def forget(self) -> None:
        self._frames.clear()
        self._previous_raw = np.zeros(SECTOR_COUNT)
        self.point_speeds = np.empty(0)

    def observe(self, stamp: float, points: np.ndarray, linear: float | None,
                angular: float | None) -> None:
        """A new valid scan at ``stamp``; ``linear``/``angular``: the latest odometry twist
        (None: no odometry, so own motion cannot be told apart and the history restarts)."""
        if linear is None or angular is None:
            self.forget()
            self.point_speeds = np.zeros(len(points))
            return
        pose = Pose2D(0.0, 0.0, 0.0)
        if self._frames:
            last = self._frames[-1]
            pose = last.pose.moved(linear, angular, max(stamp - last.stamp, 0.0))
        raw = self._raw_closing_speeds(stamp, pose, points)
        agreed = np.minimum(raw, self._previous_raw)
        self._previous_raw = raw
        speeds = np.where(agreed >= self.config.min_obstacle_speed,
                          np.minimum(agreed, self.config.max_obstacle_speed), 0.0)
        self.point_speeds = speeds[sector_of(points)] if len(points) else np.empty(0)
        self._frames.append(_Frame(stamp, pose, points))
        oldest_useful = stamp - 2.0 * self.config.approach_baseline - self.config.scan_timeout
        while self._frames[0].stamp < oldest_useful:
            self._frames.popleft()

    def _raw_closing_speeds(self, stamp: float, pose: Pose2D, points: np.ndarray) -> np.ndarray:
        reference = self._reference(stamp)
        if reference is None:
            return np.zeros(SECTOR_COUNT)
        elapsed = stamp - reference.stamp
        then = sector_clearances(to_frame(reference.points, reference.pose, pose),
                                 self.footprint, self.config.min_points)
        now = sector_clearances(points, self.footprint, self.config.min_points)
        with np.errstate(invalid='ignore'):
            closing = (then - now) / elapsed
        # A sector that was empty before and holds a return now has no speed to measure (inf).
        return np.where(np.isfinite(closing), np.maximum(closing, 0.0), 0.0)

    def _reference(self, stamp: float) -> _Frame | None:
        """The newest stored scan at least approach_baseline older than ``stamp``."""
        for frame in reversed(self._frames):
            age = stamp - frame.stamp
            if age >= self.config.approach_baseline:
                return frame if age <= 2.0 * self.config.approach_baseline \
                    + self.config.scan_timeout else None
        return None

"""The monitor's inputs as plain data, and the checks that decide whether one can be trusted.

Every check returns ``None`` for a good input or a one-line explanation; the monitor turns an
explanation into a stop with that reason. Times are seconds on the node's clock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VelocityCommand:
    stamp: float
    linear: float
    angular: float


@dataclass(frozen=True)
class OdometrySample:
    stamp: float
    linear: float
    angular: float


@dataclass(frozen=True)
class LaserScanData:
    """A sensor_msgs/LaserScan without ROS: beam i points at angle_min + i * angle_increment,
    and the last beam at angle_max."""
    stamp: float
    frame_id: str
    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray


def stamp_problem(stamp: float, now: float, future_tolerance: float) -> str | None:
    if not math.isfinite(stamp):
        return f'stamp {stamp} is not finite'
    if stamp > now + future_tolerance:
        return f'stamp {stamp:.3f} s is {stamp - now:.3f} s in the future'
    return None


def command_problem(command: VelocityCommand) -> str | None:
    if not (math.isfinite(command.linear) and math.isfinite(command.angular)):
        return f'command is not finite (linear {command.linear}, angular {command.angular})'
    return None


def odometry_problem(odometry: OdometrySample) -> str | None:
    if not (math.isfinite(odometry.linear) and math.isfinite(odometry.angular)):
        return ('odometry twist is not finite '
                f'(linear {odometry.linear}, angular {odometry.angular})')
    return None


def scan_header_problem(scan: LaserScanData, expected_frame: str, laser_yaw: float,
                        forward_half_angle: float) -> str | None:
    """Problems with the scan as a whole; bad individual beams are handled per REP 117 later.

    The beams must be where the header says (angle_max agrees with angle_min and the increment
    to within one increment; otherwise a beam's bearing, and so where its return lies, is
    unknown) and must cover the sector ahead the robot drives into: ``forward_half_angle``
    either side of base_link's x axis, seen from the laser (``laser_yaw``: laser in base_link).
    """
    if scan.frame_id != expected_frame:
        return f'scan frame {scan.frame_id!r} is not the expected {expected_frame!r}'
    if len(scan.ranges) == 0:
        return 'scan is empty'
    if not (math.isfinite(scan.angle_min) and math.isfinite(scan.angle_max)
            and math.isfinite(scan.angle_increment) and scan.angle_increment != 0.0):
        return (f'scan angles are unusable (angle_min {scan.angle_min}, angle_max '
                f'{scan.angle_max}, angle_increment {scan.angle_increment})')
    last_beam = scan.angle_min + (len(scan.ranges) - 1) * scan.angle_increment
    if abs(last_beam - scan.angle_max) > abs(scan.angle_increment):
        return (f'scan geometry is inconsistent: angle_max {scan.angle_max:.4f} rad, but '
                f'angle_min + ({len(scan.ranges)} - 1) * angle_increment = {last_beam:.4f} rad')
    if not (math.isfinite(scan.range_min) and math.isfinite(scan.range_max)
            and 0.0 <= scan.range_min < scan.range_max):
        return f'scan range limits are unusable ({scan.range_min} .. {scan.range_max})'
    if not covers_sector(scan, laser_yaw, forward_half_angle):
        first, last = sorted((scan.angle_min + laser_yaw, last_beam + laser_yaw))
        return (f'scan beams ({math.degrees(first):.1f} .. {math.degrees(last):.1f} deg in '
                f'base_link) do not cover the forward sector of '
                f'+-{math.degrees(forward_half_angle):.1f} deg the robot drives into')
    return None


def covers_sector(scan: LaserScanData, laser_yaw: float, half_angle: float) -> bool:
    """Whether the beams (each covering half an increment either side) span every bearing
    within ``half_angle`` of base_link's x axis. Angles are compared modulo a full turn."""
    step = abs(scan.angle_increment)
    ends = (scan.angle_min, scan.angle_min + (len(scan.ranges) - 1) * scan.angle_increment)
    start = min(ends) + laser_yaw - step / 2.0
    span = max(ends) - min(ends) + step
    if span >= 2.0 * math.pi:
        return True
    rounding = 1e-9
    sector_start = (-half_angle - start + rounding) % (2.0 * math.pi) - rounding
    return sector_start + 2.0 * half_angle <= span + rounding

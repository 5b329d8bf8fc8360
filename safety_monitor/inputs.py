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
    """A sensor_msgs/LaserScan without ROS: beam i points at angle_min + i * angle_increment."""
    stamp: float
    frame_id: str
    angle_min: float
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


def scan_header_problem(scan: LaserScanData, expected_frame: str) -> str | None:
    """Problems with the scan as a whole; bad individual beams are handled per REP 117 later."""
    if scan.frame_id != expected_frame:
        return f'scan frame {scan.frame_id!r} is not the expected {expected_frame!r}'
    if len(scan.ranges) == 0:
        return 'scan is empty'
    if not (math.isfinite(scan.angle_min) and math.isfinite(scan.angle_increment)
            and scan.angle_increment != 0.0):
        return (f'scan angles are unusable (angle_min {scan.angle_min}, '
                f'angle_increment {scan.angle_increment})')
    if not (math.isfinite(scan.range_min) and math.isfinite(scan.range_max)
            and 0.0 <= scan.range_min < scan.range_max):
        return f'scan range limits are unusable ({scan.range_min} .. {scan.range_max})'
    return None

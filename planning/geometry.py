"""2-D poses and the footprint model used by the planner."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Angle(s) wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


@dataclass(frozen=True)
class Pose2D:
    x: float
    y: float
    yaw: float

    def compose(self, other: Pose2D) -> Pose2D:
        """``other`` (given in this pose's frame) expressed in this pose's parent frame."""
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        return Pose2D(self.x + cos_yaw * other.x - sin_yaw * other.y,
                      self.y + sin_yaw * other.x + cos_yaw * other.y,
                      float(wrap_angle(self.yaw + other.yaw)))

    def inverse(self) -> Pose2D:
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        return Pose2D(-cos_yaw * self.x - sin_yaw * self.y,
                      sin_yaw * self.x - cos_yaw * self.y,
                      float(wrap_angle(-self.yaw)))

    def distance_to(self, x: float, y: float) -> float:
        return math.hypot(x - self.x, y - self.y)

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.x, self.y, self.yaw))


def transform_points(pose: Pose2D, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points given in ``pose``'s frame, expressed in the parent frame."""
    cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
    return pose.x + cos_yaw * xs - sin_yaw * ys, pose.y + sin_yaw * xs + cos_yaw * ys


@dataclass(frozen=True)
class FootprintCircles:
    """Circles covering the rectangular footprint: a 2 x N grid of equal circles.

    Two rows keep the circles small, so the covered shape is only a few centimetres wider than
    the rectangle and a gap the robot fits through is not refused for the shape of the model.
    """
    offsets_x: np.ndarray
    offsets_y: np.ndarray
    radius: float

    @classmethod
    def covering(cls, length: float, width: float, columns: int = 5) -> FootprintCircles:
        cell_length, cell_width = length / columns, width / 2.0
        xs = -length / 2.0 + cell_length * (np.arange(columns) + 0.5)
        ys = np.array([-cell_width / 2.0, cell_width / 2.0])
        grid_x, grid_y = np.meshgrid(xs, ys)
        return cls(grid_x.ravel().astype(np.float32), grid_y.ravel().astype(np.float32),
                   math.hypot(cell_length, cell_width) / 2.0)

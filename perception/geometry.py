"""Pinhole camera on a robot over flat ground: rays, ground intersections, grid cells.

Frames follow docs/interfaces.md: base_link (x forward, y left, z up, z = 0 on the ground),
camera_link posed in base_link by (x, y, z, roll, pitch, yaw) with positive pitch nose down,
and the optical frame (z forward, x right, y down) in which pixels are measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Optical frame axes expressed in camera_link: optical z = link x, x = -link y, y = -link z.
_OPTICAL_TO_LINK = np.array([[0.0, 0.0, 1.0],
                             [-1.0, 0.0, 0.0],
                             [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (pixel centres at integers)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera seen through an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(fx=self.fx * sx, fy=self.fy * sy,
                          cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
                          width=width, height=height)

    def validate(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f'invalid camera intrinsics {self}')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'invalid image size {self.width}x{self.height}')


@dataclass(frozen=True)
class Extrinsics:
    """Pose of camera_link in base_link [m, rad]."""
    x: float
    y: float
    z: float
    roll: float
    pitch: float
    yaw: float

    @property
    def translation(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def link_rotation(self) -> np.ndarray:
        """Rotation taking camera_link vectors into base_link (R = Rz(yaw) Ry(pitch) Rx(roll))."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        return rz @ ry @ rx

    def optical_rotation(self) -> np.ndarray:
        """Rotation taking optical-frame vectors into base_link."""
        return self.link_rotation() @ _OPTICAL_TO_LINK


@dataclass(frozen=True)
class CameraModel:
    intrinsics: Intrinsics
    extrinsics: Extrinsics

    def pixel_rays(self) -> np.ndarray:
        """Unnormalised ray direction in base_link through every pixel centre, shape (H, W, 3)."""
        k = self.intrinsics
        u = np.arange(k.width, dtype=np.float64)
        v = np.arange(k.height, dtype=np.float64)
        uu, vv = np.meshgrid(u, v)
        optical = np.stack([(uu - k.cx) / k.fx, (vv - k.cy) / k.fy, np.ones_like(uu)], axis=-1)
        return optical @ self.extrinsics.optical_rotation().T

    def ground_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel's ray meets the ground (z = 0): (H, W, 2) xy and a (H, W) hit mask.

        Rays at or above the horizon never meet the ground; their xy is NaN.
        """
        rays = self.pixel_rays()
        origin = self.extrinsics.translation
        descending = rays[..., 2] < -1e-9
        with np.errstate(divide='ignore', invalid='ignore'):
            scale = np.where(descending, -origin[2] / rays[..., 2], np.nan)
        xy = origin[:2] + rays[..., :2] * scale[..., None]
        return xy, descending

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) of base_link points (N, 3) and a mask of points in front."""
        rotation = self.extrinsics.optical_rotation()
        optical = (np.asarray(points, dtype=np.float64) - self.extrinsics.translation) @ rotation
        in_front = optical[:, 2] > 1e-6
        k = self.intrinsics
        with np.errstate(divide='ignore', invalid='ignore'):
            u = k.fx * optical[:, 0] / optical[:, 2] + k.cx
            v = k.fy * optical[:, 1] / optical[:, 2] + k.cy
        return np.stack([u, v], axis=1), in_front

    def depth_of(self, points: np.ndarray) -> np.ndarray:
        """Optical-axis depth (z in the optical frame) of base_link points (N, 3)."""
        rotation = self.extrinsics.optical_rotation()
        return ((np.asarray(points, dtype=np.float64) - self.extrinsics.translation) @ rotation)[:, 2]


@dataclass(frozen=True)
class GridGeometry:
    """A base_link occupancy grid: ``data[row * width + col]``, columns along +x."""
    resolution: float
    width: int
    height: int
    origin_x: float
    origin_y: float

    def cell_centres(self) -> np.ndarray:
        """(height, width, 2) xy of every cell centre."""
        xs = self.origin_x + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.height) + 0.5) * self.resolution
        xx, yy = np.meshgrid(xs, ys)
        return np.stack([xx, yy], axis=-1)

    def cell_index(self, xy: np.ndarray) -> np.ndarray:
        """Flat cell index of each xy point (..., 2); -1 outside the grid or NaN."""
        with np.errstate(invalid='ignore'):
            col = np.floor((xy[..., 0] - self.origin_x) / self.resolution)
            row = np.floor((xy[..., 1] - self.origin_y) / self.resolution)
        inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        index = np.full(xy.shape[:-1], -1, dtype=np.int64)
        index[inside] = (row[inside] * self.width + col[inside]).astype(np.int64)
        return index

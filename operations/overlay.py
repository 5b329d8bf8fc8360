"""The camera view the operator sees: the image with the predicted obstacles drawn on it.

Each obstacle-grid cell at or above a threshold is a square on the ground (base_link, z = 0);
its corners go through the perception node's camera model (perception/geometry.py, numpy
only: the console never loads torch) and the square is filled on the image, so the operator
sees where the model puts each obstacle's foot. Then the image is JPEG-encoded.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sidewalk_robot.perception.geometry import CameraModel, GridGeometry

OBSTACLE_COLOUR = (255, 40, 40)
PEDESTRIAN_COLOUR = (255, 170, 0)
FILL_ALPHA = 0.45
_MIN_DEPTH = 0.05
"""Corners closer than this to the camera plane (or behind it) are not drawn."""


@dataclass(frozen=True)
class GridLayer:
    """A grid as published: geometry, 0..100 / -1 values (row-major, columns along +x)."""
    geometry: GridGeometry
    values: np.ndarray
    frame_id: str


def cell_polygons(camera: CameraModel, geometry: GridGeometry, cells: np.ndarray
                  ) -> list[np.ndarray]:
    """Image polygons (int32, 4 x 2) of the ground squares of flat ``cells`` indices that lie
    wholly in front of the camera."""
    if not len(cells):
        return []
    rows, cols = np.divmod(cells, geometry.width)
    x0 = geometry.origin_x + cols * geometry.resolution
    y0 = geometry.origin_y + rows * geometry.resolution
    r = geometry.resolution
    corners = np.stack([np.stack([x0, y0], -1), np.stack([x0 + r, y0], -1),
                        np.stack([x0 + r, y0 + r], -1), np.stack([x0, y0 + r], -1)], axis=1)
    points = np.concatenate([corners.reshape(-1, 2), np.zeros((corners.size // 2, 1))], axis=1)
    pixels, _ = camera.project(points)
    depth = camera.depth_of(points).reshape(-1, 4)
    pixels = pixels.reshape(-1, 4, 2)
    visible = (depth > _MIN_DEPTH).all(axis=1) & np.isfinite(pixels).all(axis=(1, 2))
    limit = 4 * max(camera.intrinsics.width, camera.intrinsics.height)
    visible &= (np.abs(pixels) < limit).all(axis=(1, 2))
    return [np.round(polygon).astype(np.int32) for polygon in pixels[visible]]


def draw_overlay(image: np.ndarray, camera: CameraModel, obstacles: GridLayer | None,
                 pedestrians: GridLayer | None, threshold: int) -> np.ndarray:
    """A copy of ``image`` (H x W x 3 RGB) with the cells at or above ``threshold`` filled."""
    canvas = image.copy()
    layer = image.copy()
    drawn = False
    for grid, colour in ((obstacles, OBSTACLE_COLOUR), (pedestrians, PEDESTRIAN_COLOUR)):
        if grid is None:
            continue
        cells = np.flatnonzero(grid.values >= threshold)
        polygons = cell_polygons(camera, grid.geometry, cells)
        if polygons:
            cv2.fillPoly(layer, polygons, colour)
            drawn = True
    if drawn:
        cv2.addWeighted(layer, FILL_ALPHA, canvas, 1.0 - FILL_ALPHA, 0.0, dst=canvas)
    return canvas


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """RGB image -> JPEG bytes (OpenCV writes BGR)."""
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return encoded.tobytes()

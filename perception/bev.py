"""Per-pixel class probabilities -> bird's-eye-view grids in base_link (flat ground).

Each image column is walked from the bottom (near) upwards. The first pixel that is probably
not ground (obstacle, pedestrian or background) is where that column's view is blocked: the
obstacle stands on the ground there (its ground contact), so that pixel's ground point carries
the obstacle probability. Pixels above it look at the obstacle's body, not at the ground behind,
so cells seen only through them are occluded and stay unknown. The contact pixel sits on the
blurred edge between ground and obstacle, so its cell takes the obstacle probability of the
few pixels just above it (the obstacle itself). Cells outside the camera's view,
above the horizon or beyond the maximum range are unknown too: never free.

The ray geometry does not change from frame to frame, so it is precomputed once: every pixel's
grid cell (pixels sorted by cell, so a frame needs one ``maximum.reduceat``), and for cells
too far away to receive a pixel centre, the pixel their centre projects to.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidewalk_robot.perception.geometry import CameraModel, GridGeometry


@dataclass(frozen=True)
class BevGrids:
    """Probabilities per cell, shape (grid height, grid width); NaN = unknown."""
    obstacle: np.ndarray
    pedestrian: np.ndarray

    @property
    def known(self) -> np.ndarray:
        return ~np.isnan(self.obstacle)


def probability_to_occupancy(probability: np.ndarray) -> np.ndarray:
    """OccupancyGrid values: 0..100 percent, -1 where the probability is NaN (unknown)."""
    unknown = np.isnan(probability)
    percent = np.rint(np.clip(np.nan_to_num(probability, nan=0.0), 0.0, 1.0) * 100.0)
    percent[unknown] = -1
    return percent.astype(np.int8)


class BevProjector:
    """Projects probability images of one fixed size through one fixed camera onto a grid."""

    def __init__(self, camera: CameraModel, grid: GridGeometry, max_range: float,
                 block_threshold: float = 0.5, contact_rows_above: int = 2,
                 min_block_rows: int = 1) -> None:
        camera.intrinsics.validate()
        self.camera = camera
        self.grid = grid
        self.max_range = max_range
        self.block_threshold = block_threshold
        self.contact_rows_above = contact_rows_above
        self.min_block_rows = min_block_rows
        height, width = camera.intrinsics.height, camera.intrinsics.width
        self.image_shape = (height, width)

        ground_xy, hits_ground = camera.ground_points()
        with np.errstate(invalid='ignore'):
            in_range = hits_ground & (np.hypot(ground_xy[..., 0], ground_xy[..., 1]) <= max_range)
        pixel_cells = np.where(in_range, grid.cell_index(np.nan_to_num(ground_xy, nan=1e9)), -1)
        flat_cells = pixel_cells.ravel()
        mapped = np.flatnonzero(flat_cells >= 0)
        order = mapped[np.argsort(flat_cells[mapped], kind='stable')]
        self._pixel_order = order
        sorted_cells = flat_cells[order]
        starts = np.flatnonzero(np.diff(sorted_cells, prepend=-1))  # first pixel of each cell
        self._segment_starts = starts
        self._segment_cells = sorted_cells[starts]
        self._pixel_rows = order // width
        self._pixel_cols = order % width

        # Cells receiving no pixel centre (mostly far ones): sample the pixel their centre hits.
        cell_count = grid.width * grid.height
        has_pixel = np.zeros(cell_count, dtype=bool)
        has_pixel[self._segment_cells] = True
        centres = grid.cell_centres().reshape(-1, 2)
        points = np.concatenate([centres, np.zeros((cell_count, 1))], axis=1)
        uv, in_front = camera.project(points)
        with np.errstate(invalid='ignore'):
            u = np.rint(uv[:, 0])
            v = np.rint(uv[:, 1])
            in_image = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        in_range_cells = np.hypot(centres[:, 0], centres[:, 1]) <= max_range
        fallback = np.flatnonzero(~has_pixel & in_image & in_range_cells)
        self._fallback_cells = fallback
        self._fallback_rows = v[fallback].astype(np.int64)
        self._fallback_cols = u[fallback].astype(np.int64)
        self.in_view = has_pixel.copy()
        self.in_view[fallback] = True
        self.in_view = self.in_view.reshape(grid.height, grid.width)

    def contact_rows(self, block_probability: np.ndarray) -> np.ndarray:
        """Per column, the lowest image row whose pixel blocks the view; -1 where none does."""
        blocked = block_probability >= self.block_threshold
        from_bottom = blocked[::-1]
        any_blocked = from_bottom.any(axis=0)
        rows = self.image_shape[0] - 1 - np.argmax(from_bottom, axis=0)
        return np.where(any_blocked, rows, -1)

    def _erode_upwards(self, image: np.ndarray) -> np.ndarray:
        """Each pixel becomes the smallest value of itself and the ``min_block_rows - 1`` pixels
        above it: a speck of a few misclassified rows on the pavement fades away (it neither
        places an obstacle nor hides the ground behind it), while the bottom row of anything
        taller keeps its value, so ground contacts do not move."""
        eroded = image.copy()
        for offset in range(1, self.min_block_rows):
            np.minimum(eroded[offset:], image[:-offset], out=eroded[offset:])
        return eroded

    def _contact_values(self, image: np.ndarray, contact: np.ndarray) -> np.ndarray:
        """Per column, the largest value of ``image`` at the contact row and the rows above it."""
        columns = np.arange(self.image_shape[1])
        values = np.zeros(self.image_shape[1], dtype=image.dtype)
        for offset in range(self.contact_rows_above + 1):
            rows = np.clip(contact - offset, 0, None)
            values = np.maximum(values, image[rows, columns])
        return values

    def project(self, obstacle: np.ndarray, pedestrian: np.ndarray,
                block: np.ndarray) -> BevGrids:
        """Grids from (H, W) probability images of obstacle, pedestrian and view-blocking.

        ``block`` is the probability that a pixel is not ground; ``obstacle`` the probability
        that it is something the robot must not drive into (which includes the pedestrians).
        """
        for name, image in (('obstacle', obstacle), ('pedestrian', pedestrian), ('block', block)):
            if image.shape != self.image_shape:
                raise ValueError(f'{name} probability image is {image.shape}, '
                                 f'projector expects {self.image_shape}')
        if self.min_block_rows > 1:
            obstacle, pedestrian, block = (self._erode_upwards(image)
                                           for image in (obstacle, pedestrian, block))
        contact = self.contact_rows(block)
        has_contact = contact >= 0
        obstacle = obstacle.copy()
        pedestrian = pedestrian.copy()
        columns = np.flatnonzero(has_contact)
        obstacle[contact[columns], columns] = self._contact_values(obstacle, contact)[columns]
        pedestrian[contact[columns], columns] = self._contact_values(pedestrian, contact)[columns]
        cell_count = self.grid.width * self.grid.height
        obstacle_cells = np.full(cell_count, np.nan, dtype=np.float32)
        pedestrian_cells = np.full(cell_count, np.nan, dtype=np.float32)

        if len(self._pixel_order):
            visible = self._pixel_rows >= contact[self._pixel_cols]
            flat_obstacle = obstacle.reshape(-1)[self._pixel_order]
            flat_pedestrian = pedestrian.reshape(-1)[self._pixel_order]
            hidden = np.float32(-1.0)
            obstacle_max = np.maximum.reduceat(np.where(visible, flat_obstacle, hidden),
                                               self._segment_starts)
            pedestrian_max = np.maximum.reduceat(np.where(visible, flat_pedestrian, hidden),
                                                 self._segment_starts)
            seen = obstacle_max >= 0.0
            obstacle_cells[self._segment_cells[seen]] = obstacle_max[seen]
            pedestrian_cells[self._segment_cells[seen]] = pedestrian_max[seen]

        if len(self._fallback_cells):
            rows, cols = self._fallback_rows, self._fallback_cols
            visible = rows >= contact[cols]
            cells = self._fallback_cells[visible]
            obstacle_cells[cells] = obstacle[rows[visible], cols[visible]]
            pedestrian_cells[cells] = pedestrian[rows[visible], cols[visible]]

        shape = (self.grid.height, self.grid.width)
        return BevGrids(obstacle=obstacle_cells.reshape(shape),
                        pedestrian=pedestrian_cells.reshape(shape))

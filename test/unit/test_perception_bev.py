"""Camera geometry and BEV projection on synthetic scenes whose answer is known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidewalk_robot.perception.bev import BevProjector, probability_to_occupancy
from sidewalk_robot.perception.geometry import CameraModel, Extrinsics, GridGeometry, Intrinsics
from sidewalk_robot.perception.labels import (BACKGROUND, OBSTACLE, PEDESTRIAN, SIDEWALK,
                                              obstacle_pedestrian_block, one_hot)

CAMERA = CameraModel(Intrinsics(160.0, 160.0, 160.0, 120.0, 320, 240),
                     Extrinsics(0.30, 0.0, 0.50, 0.0, 0.35, 0.0))
GRID = GridGeometry(0.1, 80, 80, -1.0, -4.0)


def cell(x: float, y: float) -> tuple[int, int]:
    """(row, col) of the cell containing base_link point (x, y)."""
    return int(math.floor((y - GRID.origin_y) / GRID.resolution)), \
        int(math.floor((x - GRID.origin_x) / GRID.resolution))


def render_labels(camera: CameraModel, boxes: list[tuple[float, float, float, float, float, int]]
                  ) -> np.ndarray:
    """Ray-cast a flat sidewalk with axis-aligned boxes (xmin, xmax, ymin, ymax, height, class)."""
    rays = camera.pixel_rays()
    origin = camera.extrinsics.translation
    with np.errstate(divide='ignore', invalid='ignore'):
        ground_t = np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf)
    labels = np.where(np.isfinite(ground_t), SIDEWALK, BACKGROUND).astype(np.uint8)
    nearest = ground_t.copy()
    for xmin, xmax, ymin, ymax, height, label in boxes:
        low = np.array([xmin, ymin, 0.0])
        high = np.array([xmax, ymax, height])
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (low - origin) / rays
            t2 = (high - origin) / rays
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (t_near <= t_far) & (t_far > 0) & (t_near < nearest)
        labels[hit] = label
        nearest = np.where(hit, t_near, nearest)
    return labels


def project_labels(projector: BevProjector, labels: np.ndarray):
    return projector.project(*obstacle_pedestrian_block(one_hot(labels)))


def test_optical_axis_meets_the_ground_where_trigonometry_says() -> None:
    xy, hits = CAMERA.ground_points()
    # Principal point (160, 120) is exactly on the optical axis: 0.5 m high, 0.35 rad down.
    assert hits[120, 160]
    assert xy[120, 160] == pytest.approx([0.30 + 0.50 / math.tan(0.35), 0.0], abs=1e-9)
    # Image right (u > cx) looks to the robot's right (negative y).
    assert xy[200, 300, 1] < 0 < xy[200, 20, 1]
    # Top row looks above the horizon: 120 px up at f = 160 is 0.64 rad > 0.35 rad.
    assert not hits[0].any()


def test_projecting_ground_points_returns_the_pixels() -> None:
    xy, hits = CAMERA.ground_points()
    rows, cols = np.nonzero(hits)
    points = np.concatenate([xy[rows, cols], np.zeros((len(rows), 1))], axis=1)
    uv, in_front = CAMERA.project(points)
    assert in_front.all()
    np.testing.assert_allclose(uv, np.stack([cols, rows], axis=1), atol=1e-6)


def test_scaled_intrinsics_keep_rays_through_the_same_scene_point() -> None:
    half = CameraModel(CAMERA.intrinsics.scaled_to(160, 120), CAMERA.extrinsics)
    point = np.array([[2.5, 0.7, 0.0]])
    full_uv, _ = CAMERA.project(point)
    half_uv, _ = half.project(point)
    np.testing.assert_allclose((half_uv + 0.5) * 2.0 - 0.5, full_uv, atol=1e-9)


def test_box_is_placed_at_its_ground_contact_and_hides_what_is_behind_it() -> None:
    projector = BevProjector(CAMERA, GRID, max_range=6.0)
    labels = render_labels(CAMERA, [(3.0, 3.4, -0.5, 0.5, 0.8, OBSTACLE)])
    grids = project_labels(projector, labels)
    obstacle = grids.obstacle
    for y in np.arange(-0.35, 0.36, 0.1):
        row = cell(0.0, y)[0]
        occupied_cols = np.flatnonzero(np.nan_to_num(obstacle[row], nan=0.0) >= 0.5)
        assert len(occupied_cols), f'no obstacle found at y={y:.2f}'
        nearest_x = GRID.origin_x + occupied_cols.min() * GRID.resolution
        assert 3.0 - 1e-9 <= nearest_x <= 3.1 + 1e-9, f'contact at x={nearest_x} for y={y:.2f}'
        # Free ground in front, unknown behind (never free behind the box).
        assert np.all(obstacle[row, cell(0.8, y)[1]:cell(2.9, y)[1]] == 0.0)
        assert np.all(np.isnan(obstacle[row, cell(3.6, y)[1]:cell(5.9, y)[1]]))
    assert np.all(np.isnan(grids.pedestrian[cell(4.0, 0.0)]))
    assert np.nanmax(grids.pedestrian) == 0.0


def test_cells_outside_the_view_or_beyond_range_are_unknown() -> None:
    projector = BevProjector(CAMERA, GRID, max_range=5.0)
    grids = project_labels(projector, render_labels(CAMERA, []))
    for x, y in [(-0.5, 0.0), (0.45, 0.0), (0.8, 3.0), (2.0, -3.9), (5.5, 0.0), (6.9, 0.0)]:
        assert np.isnan(grids.obstacle[cell(x, y)]), (x, y)
    for x, y in [(0.8, 0.0), (2.0, 0.0), (3.0, 2.0), (4.8, 0.0), (4.0, -2.5)]:
        assert grids.obstacle[cell(x, y)] == 0.0, (x, y)
    # Every cell in the view is known on an empty sidewalk: far cells get a pixel too.
    assert np.array_equal(grids.known, projector.in_view)


def test_pedestrian_appears_in_both_grids_and_soft_probabilities_pass_through() -> None:
    projector = BevProjector(CAMERA, GRID, max_range=6.0)
    labels = render_labels(CAMERA, [(2.0, 2.3, 0.8, 1.1, 1.7, PEDESTRIAN)])
    probabilities = one_hot(labels) * 0.8
    probabilities[SIDEWALK] += 0.2 * (labels != BACKGROUND)
    probabilities[BACKGROUND] += 0.2 * (labels == BACKGROUND)
    grids = projector.project(*obstacle_pedestrian_block(probabilities))
    contact = cell(2.05, 0.95)
    assert grids.obstacle[contact] == pytest.approx(0.8)
    assert grids.pedestrian[contact] == pytest.approx(0.8)
    assert grids.obstacle[cell(1.5, 0.0)] == pytest.approx(0.0)
    assert np.isnan(grids.obstacle[cell(3.0, 1.4)])  # in the pedestrian's shadow


def test_contact_rows_find_the_lowest_blocking_pixel() -> None:
    projector = BevProjector(CameraModel(Intrinsics(4.0, 4.0, 2.0, 2.0, 4, 5),
                                         CAMERA.extrinsics), GRID, max_range=6.0)
    block = np.zeros((5, 4))
    block[1, 0] = block[3, 0] = 1.0
    block[0, 2] = 0.6
    block[4, 3] = 0.4
    assert projector.contact_rows(block).tolist() == [3, -1, 0, -1]


def test_wrong_probability_image_size_is_rejected() -> None:
    projector = BevProjector(CAMERA, GRID, max_range=6.0)
    small = np.zeros((120, 160), dtype=np.float32)
    with pytest.raises(ValueError, match='projector expects'):
        projector.project(small, small, small)


def test_occupancy_values_are_percent_with_minus_one_for_unknown() -> None:
    probability = np.array([[0.0, 0.004, 0.5, 1.0, np.nan, 1.7]])
    assert probability_to_occupancy(probability).tolist() == [[0, 0, 50, 100, -1, 100]]


def test_specks_on_the_pavement_are_ignored_when_asked() -> None:
    labels = render_labels(CAMERA, [(3.0, 3.4, -0.5, 0.5, 0.8, OBSTACLE)])
    speck_row = 200  # about 0.8 m ahead: a 2-row, 20-column speck of misclassified pixels
    labels[speck_row:speck_row + 2, 150:170] = OBSTACLE
    plain = project_labels(BevProjector(CAMERA, GRID, max_range=6.0), labels)
    filtered = project_labels(BevProjector(CAMERA, GRID, max_range=6.0, min_block_rows=3), labels)
    row = cell(0.0, 0.0)[0]
    assert np.isnan(plain.obstacle[row, cell(2.0, 0.0)[1]])  # the speck hides the ground behind it
    assert filtered.obstacle[row, cell(2.0, 0.0)[1]] == 0.0
    assert np.nanmax(filtered.obstacle[row, cell(0.7, 0.0)[1]:cell(1.5, 0.0)[1]]) == 0.0
    assert np.nanmax(filtered.obstacle[row, cell(3.0, 0.0)[1]:cell(3.2, 0.0)[1]]) == 1.0

"""Per-frame uncertainty over the near-ground region: 0 for certain, higher for spread-out
class probabilities, and only the region counts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import CameraModel
from sidewalk_robot.perception.labels import (CLASS_NAMES, NOT_DRIVABLE, OBSTACLE, PEDESTRIAN,
                                              SIDEWALK)
from sidewalk_robot.perception.uncertainty import frame_uncertainty, near_ground_region

CLASSES = len(CLASS_NAMES)


def certain(label: int, shape: tuple[int, int] = (6, 8)) -> np.ndarray:
    probabilities = np.zeros((CLASSES, *shape))
    probabilities[label] = 1.0
    return probabilities


def test_certain_frames_score_zero_and_uniform_ones_score_one() -> None:
    region = np.ones((6, 8), dtype=bool)
    assert frame_uncertainty(certain(SIDEWALK), region).class_entropy == pytest.approx(0.0)
    uniform = np.full((CLASSES, 6, 8), 1.0 / CLASSES)
    result = frame_uncertainty(uniform, region)
    assert result.class_entropy == pytest.approx(1.0)
    assert 0.0 < result.group_entropy < 1.0  # the groups hold 2, 2 and 1 of the 5 classes


def test_confusions_inside_a_grid_group_raise_only_the_class_entropy() -> None:
    region = np.ones((6, 8), dtype=bool)
    ground_mix = np.zeros((CLASSES, 6, 8))
    ground_mix[SIDEWALK] = ground_mix[NOT_DRIVABLE] = 0.5
    inside = frame_uncertainty(ground_mix, region)
    assert inside.class_entropy > 0.3 and inside.group_entropy == pytest.approx(0.0)
    across = np.zeros((CLASSES, 6, 8))
    across[SIDEWALK] = across[OBSTACLE] = 0.5
    assert frame_uncertainty(across, region).group_entropy > 0.5
    obstacle_or_pedestrian = np.zeros((CLASSES, 6, 8))
    obstacle_or_pedestrian[OBSTACLE] = obstacle_or_pedestrian[PEDESTRIAN] = 0.5
    assert frame_uncertainty(obstacle_or_pedestrian, region).group_entropy == pytest.approx(0.0)


def test_only_pixels_of_the_region_count() -> None:
    probabilities = certain(SIDEWALK)
    probabilities[:, :3] = 1.0 / CLASSES  # unsure about the top half only
    bottom = np.zeros((6, 8), dtype=bool)
    bottom[3:] = True
    assert frame_uncertainty(probabilities, bottom).class_entropy == pytest.approx(0.0)
    assert frame_uncertainty(probabilities, ~bottom).class_entropy == pytest.approx(1.0)
    assert math.isnan(frame_uncertainty(probabilities, np.zeros((6, 8), bool)).class_entropy)
    with pytest.raises(ValueError, match='differ'):
        frame_uncertainty(probabilities, np.ones((3, 8), dtype=bool))


def test_near_ground_region_is_the_image_bottom_up_to_the_distance() -> None:
    config = PerceptionConfig()
    intrinsics = config.default_intrinsics().scaled_to(160, 120)
    camera = CameraModel(intrinsics, config.extrinsics())
    near = near_ground_region(camera, 4.0)
    assert near[-1].all() and not near[0].any()  # the bottom row looks at the ground nearby
    rows = np.flatnonzero(near[:, 80])
    assert rows.max() == 119 and np.all(np.diff(rows) == 1)  # one band up from the bottom
    ground_xy, _ = camera.ground_points()
    top = rows.min()
    assert np.hypot(*ground_xy[top, 80]) <= 4.0 < np.hypot(*ground_xy[top - 1, 80])
    farther = near_ground_region(camera, 6.0)
    assert farther.sum() > near.sum() and np.all(farther[near])

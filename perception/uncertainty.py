"""Per-frame uncertainty of the network: how unsure it is where the grid is decided.

Temperature scaling calibrates the probabilities on the training worlds; it says nothing about
input unlike anything in training (a paving pattern, a colour no scene had). On such input the
network's class probabilities spread out, mostly near the robot where ground meets obstacle.
The figure here is the mean normalised entropy of the class probabilities over the *near-ground
region*: the pixels whose ray meets the flat ground within ``max_distance`` of base_link (the
part of the image where the ground contacts the grid depends on lie). 0 = every pixel certain,
1 = every pixel uniform over the classes. The same mean over the grid's three groups (ground,
obstacle or pedestrian, background) is reported next to it: confusions inside a group (sidewalk
versus lawn) raise the first, only those that move an obstacle raise the second.

Pure numpy on the probabilities; the node computes the region once per camera model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidewalk_robot.perception.geometry import CameraModel
from sidewalk_robot.perception.labels import GRID_GROUPS
NEAR_GROUND_DISTANCE = 4.0
"""Default reach of the region [m]: the grid's evaluated range."""


@dataclass(frozen=True)
class FrameUncertainty:
    class_entropy: float
    """Mean entropy of the class probabilities over the region, / log(classes): 0..1."""
    group_entropy: float
    """Mean entropy of the grid-group probabilities over the region, / log(3): 0..1."""


def near_ground_region(camera: CameraModel,
                       max_distance: float = NEAR_GROUND_DISTANCE) -> np.ndarray:
    """(H, W) bool of ``camera``'s image: pixels whose ray meets the ground within
    ``max_distance`` of base_link. ``camera`` must have the probability image's intrinsics
    (``Intrinsics.scaled_to`` the network's output size)."""
    ground_xy, hits_ground = camera.ground_points()
    with np.errstate(invalid='ignore'):
        near = np.hypot(ground_xy[..., 0], ground_xy[..., 1]) <= max_distance
    return hits_ground & near


def _mean_normalised_entropy(probabilities: np.ndarray) -> float:
    """Mean over pixels of the entropy of (K, N) probabilities, divided by log K."""
    clipped = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(probabilities * np.log(clipped)).sum(axis=0)
    return float(entropy.mean() / np.log(probabilities.shape[0]))


def frame_uncertainty(probabilities: np.ndarray, region: np.ndarray) -> FrameUncertainty:
    """Uncertainty of one frame from its (C, H, W) class probabilities (softmax output, or an
    ensemble's mean) over ``region`` (H, W) bool; NaN for an empty region."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[1:] != region.shape:
        raise ValueError(f'probabilities {probabilities.shape[1:]} and region {region.shape} '
                         'differ in size')
    if not region.any():
        return FrameUncertainty(float('nan'), float('nan'))
    pixels = probabilities[:, region]
    groups = np.stack([pixels[list(members)].sum(axis=0) for members in GRID_GROUPS])
    return FrameUncertainty(class_entropy=_mean_normalised_entropy(pixels),
                            group_entropy=_mean_normalised_entropy(groups))

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

Pure numpy on the probabilities; the node computes the region once per camera model, and the
figure costs about 0.4 ms per frame on the network's 160x120 output (float32, one pass of log
over the region's pixels, not the whole image; docs/perception.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidewalk_robot.perception.geometry import CameraModel
from sidewalk_robot.perception.labels import CLASS_NAMES, GRID_GROUPS

NEAR_GROUND_DISTANCE = 4.0
"""Default reach of the region [m]: the grid's evaluated range."""

_GROUP_SUMS = np.array([[1.0 if index in members else 0.0 for index in range(len(CLASS_NAMES))]
                        for members in GRID_GROUPS], dtype=np.float32)
"""(groups, classes): the matrix that sums class probabilities into grid-group ones."""

_SMALLEST_PROBABILITY = np.float32(1e-12)
"""0 log 0 is 0: probabilities are raised to this before the log (their product stays ~0)."""


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
    """Mean over pixels of the entropy of (K, N) float32 probabilities, divided by log K."""
    terms = np.maximum(probabilities, _SMALLEST_PROBABILITY)
    np.log(terms, out=terms)
    terms *= probabilities
    count, pixels = probabilities.shape
    return float(-terms.sum(dtype=np.float64) / (pixels * np.log(count)))


def frame_uncertainty(probabilities: np.ndarray, region: np.ndarray) -> FrameUncertainty:
    """Uncertainty of one frame from its (C, H, W) class probabilities (softmax output, or an
    ensemble's mean) over ``region`` (H, W) bool; NaN for an empty region."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape[1:] != region.shape:
        raise ValueError(f'probabilities {probabilities.shape[1:]} and region {region.shape} '
                         'differ in size')
    inside = np.flatnonzero(region)
    if not inside.size:
        return FrameUncertainty(float('nan'), float('nan'))
    pixels = np.take(probabilities.reshape(len(probabilities), -1), inside, axis=1)
    return FrameUncertainty(class_entropy=_mean_normalised_entropy(pixels),
                            group_entropy=_mean_normalised_entropy(_GROUP_SUMS @ pixels))

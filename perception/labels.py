"""The classes the network predicts: the simulator's semantic classes, in the same order.

Kept here as plain data so that the node and the model code need no simulator (pybullet)
import; a unit test checks that they match ``simulation.semantics.SemanticClass``.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = ('sidewalk', 'not_drivable', 'obstacle', 'pedestrian', 'background')
SIDEWALK, NOT_DRIVABLE, OBSTACLE, PEDESTRIAN, BACKGROUND = range(len(CLASS_NAMES))
GROUND_CLASSES: tuple[int, ...] = (SIDEWALK, NOT_DRIVABLE)
OBSTACLE_CLASSES: tuple[int, ...] = (OBSTACLE, PEDESTRIAN)
GRID_GROUPS: tuple[tuple[int, ...], ...] = (GROUND_CLASSES, OBSTACLE_CLASSES, (BACKGROUND,))
"""What the BEV projection tells apart: ground (walk on), something to avoid, sky."""
IGNORE_LABEL = 255
"""Label value for pixels that carry no class (never produced by the simulator)."""


def obstacle_pedestrian_block(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split (C, H, W) class probabilities into obstacle, pedestrian and view-blocking images."""
    obstacle = probabilities[OBSTACLE] + probabilities[PEDESTRIAN]
    pedestrian = probabilities[PEDESTRIAN]
    block = 1.0 - (probabilities[SIDEWALK] + probabilities[NOT_DRIVABLE])
    return obstacle, pedestrian, block


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(H, W) integer labels -> (C, H, W) float32 probabilities (ignored pixels: all zero)."""
    classes = np.arange(len(CLASS_NAMES), dtype=labels.dtype)[:, None, None]
    return (labels[None] == classes).astype(np.float32)

"""Evaluation of a model on labelled frames: pixels, calibration and the BEV grid.

- Segmentation: confusion matrix, per-class IoU, pixel accuracy.
- Calibration: ECE of the obstacle probability (obstacle + pedestrian vs the rest) per pixel,
  and of the top-1 confidence; ECE and reliability of the grid's obstacle probability per cell,
  over every known cell of the region and over the *decisive* cells alone (see
  ``GridCalibration``): the overall figures are dominated by easy free cells.
- Uncertainty: per frame, the mean normalised entropy over the near-ground region
  (perception.uncertainty); its mean and percentiles over the frames.
- BEV: the frames go through the same projection as the node. Ground truth is the obstacle
  layout rasterised in base_link. Only cells in the camera's view within ``max_distance`` of
  base_link count. Recall is over the obstacle cells the camera can actually see (a cell is
  visible when part of it is not hidden behind something nearer, judged with the rendered
  depth): the far side of an obstacle cannot be seen from one image. A visible obstacle cell is
  found when a predicted obstacle cell (p >= 0.5) lies within ``tolerance`` of it; a predicted
  cell is correct when an obstacle cell of the layout lies within ``tolerance``. Figures with
  no tolerance (exact cell) are reported next to them.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sidewalk_robot.perception.bev import BevProjector
from sidewalk_robot.perception.calibration import CalibrationBins
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.dataset import Frames
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry
from sidewalk_robot.perception.labels import CLASS_NAMES, OBSTACLE_CLASSES
from sidewalk_robot.perception.model_io import LoadedModel, class_probabilities
from sidewalk_robot.perception.pipeline import bev_inputs
from sidewalk_robot.perception.uncertainty import frame_uncertainty, near_ground_region


@dataclass(frozen=True)
class EvaluationSettings:
    max_distance: float = 4.0
    tolerance: float = 0.2
    boundary_distance: float = 0.3
    """Free cells this close to a ground-truth obstacle cell are decisive (GridCalibration)."""
    obstacle_threshold: float = 0.5
    block_threshold: float = PerceptionConfig.block_threshold
    min_block_rows: int = PerceptionConfig.min_block_rows
    max_range: float = PerceptionConfig.max_range
    projection_width: int = PerceptionConfig.projection_width
    projection_height: int = PerceptionConfig.projection_height
    batch_size: int = 32


def settings_for(config: PerceptionConfig) -> EvaluationSettings:
    """Evaluation that projects exactly as a node with ``config`` does."""
    return EvaluationSettings(block_threshold=config.block_threshold,
                              min_block_rows=config.min_block_rows, max_range=config.max_range,
                              projection_width=config.projection_width,
                              projection_height=config.projection_height)


class SegmentationScores:
    def __init__(self) -> None:
        classes = len(CLASS_NAMES)
        self.confusion = np.zeros((classes, classes), dtype=np.int64)
        self.obstacle_calibration = CalibrationBins()
        self.confidence_calibration = CalibrationBins()

    def add(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        """(N, C, H, W) probabilities and (N, H, W) labels."""
        predicted = probabilities.argmax(axis=1)
        classes = len(CLASS_NAMES)
        valid = labels < classes
        self.confusion += np.bincount(labels[valid].astype(np.int64) * classes + predicted[valid],
                                      minlength=classes * classes).reshape(classes, classes)
        obstacle_probability = probabilities[:, list(OBSTACLE_CLASSES)].sum(axis=1)
        is_obstacle = np.isin(labels, OBSTACLE_CLASSES)
        self.obstacle_calibration.add(obstacle_probability[valid], is_obstacle[valid])
        self.confidence_calibration.add(probabilities.max(axis=1)[valid],
                                        (predicted == labels)[valid])

    def iou(self) -> dict[str, float]:
        true_positive = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - true_positive
        return {name: (float(tp / u) if u > 0 else float('nan'))
                for name, tp, u in zip(CLASS_NAMES, true_positive, union)}

    def summary(self) -> dict[str, Any]:
        iou = self.iou()
        present = [value for value in iou.values() if not np.isnan(value)]
        return {
            'iou': {k: round(v, 4) for k, v in iou.items()},
            'mean_iou': round(float(np.mean(present)), 4) if present else float('nan'),
            'pixel_accuracy': round(float(np.trace(self.confusion) / max(1, self.confusion.sum())), 4),
            'obstacle_ece': round(self.obstacle_calibration.expected_calibration_error(), 4),
            'top1_ece': round(self.confidence_calibration.expected_calibration_error(), 4),
            'confusion_matrix': self.confusion.tolist(),
        }


def _disc_kernel(radius_cells: float) -> np.ndarray:
    reach = int(np.floor(radius_cells))
    offsets = np.arange(-reach, reach + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx * xx + yy * yy <= radius_cells * radius_cells + 1e-9).astype(np.uint8)


def dilate(mask: np.ndarray, radius_cells: float) -> np.ndarray:
    if radius_cells < 1.0:
        return mask.copy()
    return cv2.dilate(mask.astype(np.uint8), _disc_kernel(radius_cells)).astype(bool)


def visible_cells(mask: np.ndarray, depth: np.ndarray, depth_camera: CameraModel,
                  grid: GridGeometry) -> np.ndarray:
    """Cells of ``mask`` whose ground (centre or an edge midpoint) is not hidden behind a nearer
    surface in the rendered ``depth``: the part of an obstacle's footprint a camera can see
    the foot of. (The top of a low box is visible too, but from one image it cannot be told
    from ground behind the box's front edge.)"""
    rows, cols = np.nonzero(mask)
    visible = np.zeros_like(mask, dtype=bool)
    if len(rows) == 0:
        return visible
    centres = grid.cell_centres()[rows, cols]
    half = grid.resolution / 2
    samples = []
    for dx, dy in ((0, 0), (half, 0), (-half, 0), (0, half), (0, -half)):
        samples.append(np.column_stack([centres[:, 0] + dx, centres[:, 1] + dy,
                                        np.zeros(len(rows))]))
    points = np.concatenate(samples)
    uv, in_front = depth_camera.project(points)
    point_depth = depth_camera.depth_of(points)
    height, width = depth.shape
    with np.errstate(invalid='ignore'):
        u, v = np.rint(uv[:, 0]), np.rint(uv[:, 1])
        inside = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    seen = np.zeros(len(points), dtype=bool)
    surface = depth[v[inside].astype(int), u[inside].astype(int)].astype(np.float64)
    seen[inside] = point_depth[inside] <= surface + 0.03 + 0.01 * point_depth[inside]
    visible[rows, cols] = seen.reshape(-1, len(rows)).any(axis=0)
    return visible


class BevScores:
    def __init__(self, tolerance_cells: float) -> None:
        self.tolerance_cells = tolerance_cells
        self.counts = {key: 0 for key in ('visible_obstacle_cells', 'found', 'found_exact',
                                          'predicted_obstacle_cells', 'correct', 'correct_exact',
                                          'evaluated_cells', 'unknown_cells')}

    def add(self, predicted: np.ndarray, footprint: np.ndarray, visible: np.ndarray,
            region: np.ndarray, threshold: float) -> None:
        """``predicted`` obstacle probability grid (NaN unknown), ``footprint`` > 0 occupied."""
        occupied = footprint > 0
        predicted_obstacle = np.nan_to_num(predicted, nan=0.0) >= threshold
        near_prediction = dilate(predicted_obstacle, self.tolerance_cells)
        near_truth = dilate(occupied, self.tolerance_cells)
        targets = occupied & visible & region
        claims = predicted_obstacle & region
        counts = self.counts
        counts['visible_obstacle_cells'] += int(targets.sum())
        counts['found'] += int((targets & near_prediction).sum())
        counts['found_exact'] += int((targets & predicted_obstacle).sum())
        counts['predicted_obstacle_cells'] += int(claims.sum())
        counts['correct'] += int((claims & near_truth).sum())
        counts['correct_exact'] += int((claims & occupied).sum())
        counts['evaluated_cells'] += int(region.sum())
        counts['unknown_cells'] += int((region & np.isnan(predicted)).sum())

    def summary(self) -> dict[str, Any]:
        c = self.counts

        def ratio(numerator: int, denominator: int) -> float:
            return round(numerator / denominator, 4) if denominator else float('nan')

        return {'recall': ratio(c['found'], c['visible_obstacle_cells']),
                'precision': ratio(c['correct'], c['predicted_obstacle_cells']),
                'recall_exact_cell': ratio(c['found_exact'], c['visible_obstacle_cells']),
                'precision_exact_cell': ratio(c['correct_exact'], c['predicted_obstacle_cells']),
                'unknown_fraction': ratio(c['unknown_cells'], c['evaluated_cells']),
                **{key: int(value) for key, value in c.items()}}


class GridCalibration:
    """Calibration of the grid's obstacle probability per cell, against the rasterised layout.

    Cells count when they lie in the evaluated region (in view, within ``max_distance``) and the
    grid knows them (unknown cells carry no probability). ``overall``: every such cell.
    ``decisive``: the cells that decide where the robot may drive, i.e. those that are
    obstacle in truth, free cells within ``boundary_cells`` of one (where the obstacle's edge,
    and so the clearance, is placed) and cells the grid claims as obstacle (p >= threshold:
    false alarms stop the robot). The rest, free ground far from anything that the network
    calls free with near certainty, make up most cells and most of the overall figure.
    """

    def __init__(self, boundary_cells: float, threshold: float) -> None:
        self.boundary_cells = boundary_cells
        self.threshold = threshold
        self.overall = CalibrationBins()
        self.decisive = CalibrationBins()

    def add(self, predicted: np.ndarray, footprint: np.ndarray, region: np.ndarray) -> None:
        """``predicted`` obstacle probability grid (NaN unknown), ``footprint`` > 0 occupied."""
        known = region & ~np.isnan(predicted)
        occupied = footprint > 0
        claimed = np.nan_to_num(predicted, nan=0.0) >= self.threshold
        decisive = known & (dilate(occupied, self.boundary_cells) | claimed)
        self.overall.add(predicted[known], occupied[known])
        self.decisive.add(predicted[decisive], occupied[decisive])

    def summary(self) -> dict[str, Any]:
        def of(bins: CalibrationBins) -> dict[str, Any]:
            reliability = bins.reliability()
            return {'ece': round(bins.expected_calibration_error(), 4),
                    'cells': int(bins.count.sum()),
                    'obstacle_share': round(float(bins.outcome_sum.sum()
                                                  / max(1, bins.count.sum())), 4),
                    'reliability': {key: [round(float(v), 4) for v in values]
                                    for key, values in reliability.items()}}
        return {'overall': of(self.overall), 'decisive': of(self.decisive),
                'boundary_cells': self.boundary_cells, 'threshold': self.threshold}


class UncertaintyScores:
    """Per-frame uncertainty (perception.uncertainty), summarised over the frames."""

    def __init__(self) -> None:
        self.class_entropy: list[float] = []
        self.group_entropy: list[float] = []

    def add(self, probabilities: np.ndarray, region: np.ndarray) -> None:
        """(C, H, W) probabilities of one frame."""
        uncertainty = frame_uncertainty(probabilities, region)
        self.class_entropy.append(uncertainty.class_entropy)
        self.group_entropy.append(uncertainty.group_entropy)

    def summary(self) -> dict[str, Any]:
        def of(values: list[float]) -> dict[str, float]:
            array = np.asarray(values, dtype=np.float64)
            return {'mean': round(float(np.mean(array)), 4),
                    **{f'p{q}': round(float(np.percentile(array, q)), 4)
                       for q in (5, 50, 90, 95, 99)}}
        return {'class_entropy': of(self.class_entropy), 'group_entropy': of(self.group_entropy),
                'region': 'pixels whose ray meets the ground within max_distance'}


Predictor = Callable[[Frames, slice], torch.Tensor]
"""(frames, batch slice) -> (N, C, h, w) class probabilities for those frames."""


def model_predictor(model: LoadedModel) -> Predictor:
    return lambda frames, batch: class_probabilities(model, frames.image[batch])


def oracle_predictor(frames: Frames, batch: slice) -> torch.Tensor:
    """Ground-truth labels as probabilities: what a perfect network would output."""
    labels = torch.from_numpy(frames.label[batch].astype(np.int64))
    return F.one_hot(labels, len(CLASS_NAMES)).permute(0, 3, 1, 2).float()


def evaluate_frames(predict: Predictor, frames: Frames, camera: CameraModel, grid: GridGeometry,
                    settings: EvaluationSettings = EvaluationSettings(),
                    progress: bool = False) -> dict[str, Any]:
    """Metrics of ``predict`` on ``frames``; ``camera`` is the capture camera (full resolution)."""
    projection_camera = CameraModel(
        camera.intrinsics.scaled_to(settings.projection_width, settings.projection_height),
        camera.extrinsics)
    projector = BevProjector(projection_camera, grid, settings.max_range, settings.block_threshold,
                             min_block_rows=settings.min_block_rows)
    depth_height, depth_width = frames.depth.shape[1:]
    depth_camera = CameraModel(camera.intrinsics.scaled_to(depth_width, depth_height),
                               camera.extrinsics)
    centres = grid.cell_centres()
    region = projector.in_view & (np.hypot(centres[..., 0], centres[..., 1]) <= settings.max_distance)
    segmentation = SegmentationScores()
    bev = BevScores(settings.tolerance / grid.resolution)
    grid_calibration = GridCalibration(settings.boundary_distance / grid.resolution,
                                       settings.obstacle_threshold)
    uncertainty = UncertaintyScores()
    near_ground: np.ndarray | None = None
    size = (settings.projection_height, settings.projection_width)
    starts = range(0, len(frames), settings.batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc='evaluate', unit='batch')
    for start in starts:
        stop = min(start + settings.batch_size, len(frames))
        probabilities = predict(frames, slice(start, stop))
        segmentation.add(probabilities.numpy(), frames.label[start:stop])
        if near_ground is None:
            height, width = probabilities.shape[-2:]
            near_ground = near_ground_region(CameraModel(
                camera.intrinsics.scaled_to(width, height), camera.extrinsics),
                settings.max_distance)
        for offset in range(stop - start):
            index = start + offset
            uncertainty.add(probabilities[offset].numpy(), near_ground)
            obstacle, pedestrian, block = bev_inputs(probabilities[offset], size)
            grids = projector.project(obstacle, pedestrian, block)
            footprint = frames.footprint[index]
            visible = visible_cells((footprint > 0) & region, frames.depth[index], depth_camera, grid)
            bev.add(grids.obstacle, footprint, visible, region, settings.obstacle_threshold)
            grid_calibration.add(grids.obstacle, footprint, region)
    return {'frames': len(frames), 'settings': asdict(settings), **segmentation.summary(),
            'bev': bev.summary(), 'grid_calibration': grid_calibration.summary(),
            'uncertainty': uncertainty.summary()}


def plot_confusion_matrix(confusion: np.ndarray, path: Path, title: str) -> None:
    """Row-normalised confusion matrix (rows: true class) as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(5.5, 4.8), dpi=110)
    image = axes.imshow(normalised, cmap='Blues', vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=35, ha='right')
    axes.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_xlabel('predicted')
    axes.set_ylabel('true')
    axes.set_title(title, fontsize=10)
    for row in range(len(CLASS_NAMES)):
        for col in range(len(CLASS_NAMES)):
            value = normalised[row, col]
            axes.text(col, row, f'{value:.2f}', ha='center', va='center', fontsize=8,
                      color='white' if value > 0.6 else 'black')
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + '\n', encoding='utf-8')


"""The perception core: one RGB image in, obstacle and pedestrian grids out (no ROS here).

Any failure (no model, wrong image, an exception in inference) gives a result whose grids are
entirely unknown and whose ``error`` says why: the planner must never see "all free" because
perception broke.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sidewalk_robot.perception.bev import BevGrids, BevProjector
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry, Intrinsics
from sidewalk_robot.perception.labels import NOT_DRIVABLE, OBSTACLE, PEDESTRIAN, SIDEWALK
from sidewalk_robot.perception.model import InputSpec
from sidewalk_robot.perception.model_io import LoadedModel, ModelLoadError, load_model


@dataclass(frozen=True)
class ImageStatistics:
    """Cheap input statistics that reveal drift: mean brightness in [0, 1] and blur.

    ``sharpness`` is the variance of the Laplacian of the grey image: it drops when the image
    is blurred (focus, motion, a dirty lens).
    """
    brightness: float
    sharpness: float


@dataclass(frozen=True)
class PerceptionResult:
    grids: BevGrids
    statistics: ImageStatistics | None
    mean_confidence: float
    inference_seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def unknown_grids(grid: GridGeometry) -> BevGrids:
    shape = (grid.height, grid.width)
    return BevGrids(obstacle=np.full(shape, np.nan, dtype=np.float32),
                    pedestrian=np.full(shape, np.nan, dtype=np.float32))


def failed_result(grid: GridGeometry, error: str, statistics: ImageStatistics | None = None,
                  elapsed_seconds: float = 0.0) -> PerceptionResult:
    """What a failure publishes: every cell unknown, never free."""
    return PerceptionResult(unknown_grids(grid), statistics, float('nan'), elapsed_seconds, error)


def image_statistics(image: np.ndarray) -> ImageStatistics:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    return ImageStatistics(brightness=float(grey.mean()) / 255.0,
                           sharpness=float(laplacian.var()))


def normalise(images: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB -> (N, 3, H, W) float tensor as the network expects."""
    batch = images[None] if images.ndim == 3 else images
    if not batch.flags.writeable:  # torch wants to own writable memory (ROS buffers are not)
        batch = batch.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (tensor - mean) / std


def resize_for_network(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    if image.shape[:2] == (spec.height, spec.width):
        return image
    return cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)


def class_probabilities(model: LoadedModel, images: np.ndarray) -> torch.Tensor:
    """Calibrated class probabilities (N, C, h, w) for uint8 RGB images at the network size;
    for an ensemble, the mean over its members."""
    with torch.inference_mode():
        batch = normalise(images, model.input_spec).contiguous(memory_format=torch.channels_last)
        first, *others = model.members
        total = torch.softmax(first.network(batch) / first.temperature, dim=1)
        for member in others:
            total += torch.softmax(member.network(batch) / member.temperature, dim=1)
        return total / len(model.members)


def bev_inputs(probabilities: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) probabilities -> (3, H, W) obstacle, pedestrian, view-blocking images at ``size``."""
    obstacle = probabilities[OBSTACLE] + probabilities[PEDESTRIAN]
    block = 1.0 - probabilities[SIDEWALK] - probabilities[NOT_DRIVABLE]
    stacked = torch.stack([obstacle, probabilities[PEDESTRIAN], block])[None]
    if stacked.shape[-2:] != size:
        stacked = F.interpolate(stacked, size=size, mode='bilinear', align_corners=False)
    return stacked[0].clamp_(0.0, 1.0).numpy()


class PerceptionPipeline:
    """Holds the model and the projector cache; ``process`` never raises for bad input."""

    def __init__(self, config: PerceptionConfig, model: LoadedModel | None,
                 model_error: str | None = None) -> None:
        if model is None and not model_error:
            model_error = 'no model loaded'
        self.config = config
        self.model = model
        self.model_error = model_error
        self.grid = config.grid()
        self._projectors: dict[Intrinsics, BevProjector] = {}

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> PerceptionPipeline:
        """Load the configured model; a bad model folder is kept as the pipeline's error."""
        torch.set_num_threads(config.num_threads)
        try:
            return cls(config, load_model(config.resolved_model_dir()))
        except ModelLoadError as error:
            return cls(config, None, str(error))

    @property
    def model_version(self) -> str:
        return self.model.version if self.model else 'none'

    def projector(self, intrinsics: Intrinsics) -> BevProjector:
        projector = self._projectors.get(intrinsics)
        if projector is None:
            scaled = intrinsics.scaled_to(self.config.projection_width,
                                          self.config.projection_height)
            projector = BevProjector(CameraModel(scaled, self.config.extrinsics()), self.grid,
                                     self.config.max_range, self.config.block_threshold,
                                     min_block_rows=self.config.min_block_rows)
            self._projectors = {intrinsics: projector}  # one camera at a time: keep one
        return projector

    def _failure(self, error: str, statistics: ImageStatistics | None,
                 started: float) -> PerceptionResult:
        return failed_result(self.grid, error, statistics, time.perf_counter() - started)

    def process(self, image: np.ndarray, intrinsics: Intrinsics) -> PerceptionResult:
        started = time.perf_counter()
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3:
            shape = getattr(image, 'shape', None)
            return self._failure(f'expected an HxWx3 uint8 RGB image, got {shape}', None, started)
        if image.shape[:2] != (intrinsics.height, intrinsics.width):
            return self._failure(
                f'image is {image.shape[1]}x{image.shape[0]}, the camera model expects '
                f'{intrinsics.width}x{intrinsics.height}', None, started)
        statistics = image_statistics(image)
        if self.model is None:
            return self._failure(f'model unavailable: {self.model_error}', statistics, started)
        try:
            intrinsics.validate()
            network_image = resize_for_network(image, self.model.input_spec)
            probabilities = class_probabilities(self.model, network_image)[0]
            if not torch.isfinite(probabilities).all():
                raise FloatingPointError('network produced non-finite probabilities')
            confidence = float(probabilities.max(dim=0).values.mean())
            size = (self.config.projection_height, self.config.projection_width)
            obstacle, pedestrian, block = bev_inputs(probabilities, size)
            grids = self.projector(intrinsics).project(obstacle, pedestrian, block)
        except Exception as error:  # the node must survive any inference failure
            return self._failure(f'inference failed: {type(error).__name__}: {error}',
                                 statistics, started)
        return PerceptionResult(grids, statistics, confidence, time.perf_counter() - started)

"""The perception core: one RGB image in, obstacle and pedestrian grids out (no ROS here).

Any failure (no model, wrong image, an exception in inference) gives a result whose grids are
entirely unknown and whose ``error`` says why: the planner must never see "all free" because
perception broke.

The network runs on ONNX Runtime (the model folder's ``model.onnx``, ``onnx_runtime``) or on
torch (``model_io``, the training path). Nothing here imports torch: the robot's runtime
install has none, and the torch loader is imported only when the torch backend is chosen or
needed as the fallback.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from sidewalk_robot.perception.bev import BevGrids, BevProjector
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry, Intrinsics
from sidewalk_robot.perception.input_checks import implausible_intrinsics
from sidewalk_robot.perception.labels import NOT_DRIVABLE, OBSTACLE, PEDESTRIAN, SIDEWALK
from sidewalk_robot.perception.model_card import InputSpec, ModelLoadError, model_camera
from sidewalk_robot.perception.onnx_runtime import OnnxExportUnavailable, load_onnx_model
from sidewalk_robot.perception.uncertainty import (FrameUncertainty, frame_uncertainty,
                                                   near_ground_region)

BACKENDS = ('onnxruntime', 'torch')


class ProbabilityModel(Protocol):
    """A model the pipeline can run: ``onnx_runtime.OnnxModel`` or ``model_io.LoadedModel``."""
    backend: str
    input_spec: InputSpec
    card: dict[str, Any]

    @property
    def version(self) -> str: ...

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the network's input size -> (C, H, W) float32."""


def load_torch_model(folder: Path, num_threads: int) -> ProbabilityModel:
    """The model's networks on torch: the training path, and the fallback for a model folder
    without a current ONNX export. Imported here only, as the robot's install has no torch."""
    import torch

    from sidewalk_robot.perception.model_io import load_model

    torch.set_num_threads(num_threads)
    return load_model(folder)


def load_probability_model(config: PerceptionConfig) -> tuple[ProbabilityModel, str | None]:
    """The configured model on the configured backend, and a warning when it had to fall back.

    ``onnxruntime`` with an ONNX export that is missing or stale falls back to torch (and says
    so); where torch is not installed either, that is a ModelLoadError naming the command that
    exports the model. A bad model folder is a ModelLoadError on either backend.
    """
    if config.backend not in BACKENDS:
        raise ValueError(f'parameter \'backend\' must be one of {", ".join(BACKENDS)}, '
                         f'got {config.backend!r}')
    folder = config.resolved_model_dir()
    if config.backend == 'torch':
        try:
            return load_torch_model(folder, config.num_threads), None
        except ImportError as error:
            raise ModelLoadError(f'backend torch needs torch, which is not installed '
                                 f'({error}); backend onnxruntime does not') from error
    try:
        return load_onnx_model(folder, config.num_threads), None
    except OnnxExportUnavailable as unavailable:
        reason = str(unavailable)
    export_command = f'sidewalk-robot export-onnx --model {folder}'
    try:
        model = load_torch_model(folder, config.num_threads)
    except ImportError as error:
        raise ModelLoadError(f'{reason}; torch, the fallback, is not installed ({error}): '
                             f'run {export_command} where it is') from error
    return model, f'{reason}: running on torch instead (slower); {export_command} fixes that'


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
    uncertainty: FrameUncertainty | None = None
    """The network's uncertainty over the near-ground region (perception.uncertainty); None
    without a network output."""

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


def resize_for_network(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    if image.shape[:2] == (spec.height, spec.width):
        return image
    return cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)


def bev_inputs(probabilities: np.ndarray, size: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, h, w) probabilities -> obstacle, pedestrian, view-blocking images at ``size`` (H, W).

    Bilinear with pixel centres aligned (as torch's ``align_corners=False``), one plane at a
    time (faster than one 3-channel resize). Also takes a CPU torch tensor, as the evaluation
    passes them.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    obstacle = probabilities[OBSTACLE] + probabilities[PEDESTRIAN]
    block = 1.0 - probabilities[SIDEWALK] - probabilities[NOT_DRIVABLE]
    planes = []
    for plane in (obstacle, probabilities[PEDESTRIAN], block):
        if plane.shape != size:
            plane = cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        planes.append(np.clip(plane, 0.0, 1.0))
    return planes[0], planes[1], planes[2]


class PerceptionPipeline:
    """Holds the model and the projector cache; ``process`` never raises for bad input."""

    def __init__(self, config: PerceptionConfig, model: ProbabilityModel | None,
                 model_error: str | None = None, backend_warning: str | None = None) -> None:
        if model is None and not model_error:
            model_error = 'no model loaded'
        self.config = config
        self.model = model
        self.model_error = model_error
        self.backend_warning = backend_warning
        self.grid = config.grid()
        self._projectors: dict[Intrinsics, BevProjector] = {}
        self._near_ground: dict[tuple[Intrinsics, tuple[int, ...]], np.ndarray] = {}
        trained_for = model_camera(model.card) if model is not None else None
        # Without a camera in the card, the parameters are the only other statement of what
        # the camera should be.
        self.reference_camera = trained_for or config.default_intrinsics()
        self.reference_camera_name = 'the model\'s' if trained_for else 'the parameters\''

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> PerceptionPipeline:
        """Load the configured model; a bad model folder is kept as the pipeline's error.

        Raises ValueError for an unknown ``backend``: a configuration error, not a model one.
        """
        try:
            model, warning = load_probability_model(config)
            return cls(config, model, backend_warning=warning)
        except ModelLoadError as error:
            return cls(config, None, str(error))

    @property
    def model_version(self) -> str:
        return self.model.version if self.model else 'none'

    @property
    def backend(self) -> str:
        return self.model.backend if self.model else 'none'

    def implausible_intrinsics(self, intrinsics: Intrinsics, source: str) -> str | None:
        """Why ``intrinsics`` (from ``source``) cannot be the camera the model expects, or None."""
        return implausible_intrinsics(intrinsics, self.reference_camera,
                                      self.config.intrinsics_tolerance, source,
                                      self.reference_camera_name)

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

    def near_ground(self, intrinsics: Intrinsics, size: tuple[int, ...]) -> np.ndarray:
        """The near-ground region (perception.uncertainty) of the probability image, (H, W)
        ``size``, of a camera with ``intrinsics``; computed once per camera and size."""
        key = (intrinsics, size)
        region = self._near_ground.get(key)
        if region is None:
            height, width = size
            region = near_ground_region(CameraModel(intrinsics.scaled_to(width, height),
                                                    self.config.extrinsics()))
            self._near_ground = {key: region}  # one camera at a time: keep one
        return region

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
            probabilities = self.model.probabilities(network_image)
            if not np.isfinite(probabilities).all():
                raise FloatingPointError('network produced non-finite probabilities')
            confidence = float(probabilities.max(axis=0).mean())
            uncertainty = frame_uncertainty(
                probabilities, self.near_ground(intrinsics, probabilities.shape[1:]))
            size = (self.config.projection_height, self.config.projection_width)
            obstacle, pedestrian, block = bev_inputs(probabilities, size)
            grids = self.projector(intrinsics).project(obstacle, pedestrian, block)
        except Exception as error:  # the node must survive any inference failure
            return self._failure(f'inference failed: {type(error).__name__}: {error}',
                                 statistics, started)
        return PerceptionResult(grids, statistics, confidence, time.perf_counter() - started,
                                uncertainty=uncertainty)

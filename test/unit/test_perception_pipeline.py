"""The perception core: a grid for a good image, all-unknown grids with a reason otherwise."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sidewalk_robot.config import load_config
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import CameraModel
from sidewalk_robot.perception.labels import SIDEWALK
from sidewalk_robot.perception.model import InputSpec
from sidewalk_robot.perception.model_io import load_model, save_model
from sidewalk_robot.perception.pipeline import PerceptionPipeline, image_statistics
from sidewalk_robot.perception.uncertainty import frame_uncertainty, near_ground_region

from test_perception_model import trained_looking_network
from helpers.images import street_image

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pipeline(tmp_path: Path) -> PerceptionPipeline:
    save_model(tmp_path / 'model', trained_looking_network(), InputSpec(), 1.0, {'version': 't'})
    config = PerceptionConfig(model_dir=str(tmp_path / 'model'))
    return PerceptionPipeline.from_config(config)


def test_shipped_parameter_file_matches_the_config_defaults() -> None:
    assert load_config(PerceptionConfig, REPO_ROOT / 'config' / 'perception.yaml') == PerceptionConfig()


def test_good_image_gives_grids_with_known_and_unknown_cells(pipeline: PerceptionPipeline) -> None:
    result = pipeline.process(street_image(), pipeline.config.default_intrinsics())
    assert result.ok, result.error
    assert result.grids.obstacle.shape == (80, 80)
    known = result.grids.known
    assert known.any() and not known.all()  # behind the robot is never seen
    assert not known[:, :10].any()  # x < 0: behind the camera
    values = result.grids.obstacle[known]
    assert ((values >= 0) & (values <= 1)).all()
    assert 0.0 < result.mean_confidence <= 1.0
    assert result.inference_seconds > 0


def test_wrong_image_size_gives_an_unknown_grid_and_a_reason(pipeline: PerceptionPipeline) -> None:
    result = pipeline.process(street_image(640, 480), pipeline.config.default_intrinsics())
    assert not result.ok and 'expects 320x240' in result.error
    assert np.isnan(result.grids.obstacle).all() and np.isnan(result.grids.pedestrian).all()


@pytest.mark.parametrize('image', [np.zeros((240, 320), np.uint8), np.zeros((240, 320, 4), np.uint8),
                                   np.zeros((240, 320, 3), np.float32)])
def test_wrong_image_layout_gives_an_unknown_grid(pipeline: PerceptionPipeline, image) -> None:
    result = pipeline.process(image, pipeline.config.default_intrinsics())
    assert not result.ok and 'uint8 RGB' in result.error
    assert np.isnan(result.grids.obstacle).all()


def test_missing_model_gives_unknown_grids_but_still_image_statistics(tmp_path: Path) -> None:
    pipeline = PerceptionPipeline.from_config(PerceptionConfig(model_dir=str(tmp_path / 'absent')))
    assert pipeline.model is None and 'model folder not found' in pipeline.model_error
    result = pipeline.process(street_image(), pipeline.config.default_intrinsics())
    assert not result.ok and 'model unavailable' in result.error
    assert np.isnan(result.grids.obstacle).all()
    assert result.statistics is not None and 0 < result.statistics.brightness < 1


def test_exception_in_inference_is_caught(pipeline: PerceptionPipeline, monkeypatch) -> None:
    def explode(_images):
        raise RuntimeError('simulated kernel failure')

    monkeypatch.setattr(pipeline.model.members[0].network, 'forward', explode)
    result = pipeline.process(street_image(), pipeline.config.default_intrinsics())
    assert not result.ok and 'simulated kernel failure' in result.error
    assert np.isnan(result.grids.obstacle).all()


def test_non_finite_network_output_is_an_error(pipeline: PerceptionPipeline, monkeypatch) -> None:
    monkeypatch.setattr(pipeline.model.members[0].network, 'forward',
                        lambda images: torch.full((1, 5, 120, 160), float('nan')))
    result = pipeline.process(street_image(), pipeline.config.default_intrinsics())
    assert not result.ok and 'non-finite' in result.error
    assert np.isnan(result.grids.obstacle).all()


def test_each_frame_carries_the_networks_uncertainty_near_the_ground(
        pipeline: PerceptionPipeline, monkeypatch) -> None:
    intrinsics = pipeline.config.default_intrinsics()
    output = pipeline.model.probabilities(cv2.resize(street_image(), (160, 120),
                                                     interpolation=cv2.INTER_AREA))
    region = near_ground_region(CameraModel(intrinsics.scaled_to(160, 120),
                                            pipeline.config.extrinsics()))
    result = pipeline.process(street_image(), intrinsics)
    assert result.uncertainty == frame_uncertainty(output, region)
    assert 0.0 < result.uncertainty.class_entropy < 1.0
    # Sure of the ground near the robot and unsure above it: only the near ground counts.
    sure_below = np.full_like(output, 1.0 / len(output))
    sure_below[:, region] = 0.0
    sure_below[SIDEWALK, region] = 1.0
    monkeypatch.setattr(pipeline.model, 'probabilities', lambda image: sure_below)
    assert pipeline.process(street_image(), intrinsics).uncertainty.class_entropy == \
        pytest.approx(0.0)
    monkeypatch.setattr(pipeline.model, 'probabilities',
                        lambda image: np.full_like(output, 1.0 / len(output)))
    assert pipeline.process(street_image(), intrinsics).uncertainty.class_entropy == \
        pytest.approx(1.0)
    failed = pipeline.process(street_image(640, 480), intrinsics)
    assert not failed.ok and failed.uncertainty is None


def test_the_uncertainty_costs_well_under_a_millisecond_per_frame(
        pipeline: PerceptionPipeline) -> None:
    """Measured on the network's output size, the region computed once (the node's case)."""
    output = pipeline.model.probabilities(cv2.resize(street_image(), (160, 120),
                                                     interpolation=cv2.INTER_AREA))
    region = pipeline.near_ground(pipeline.config.default_intrinsics(), output.shape[1:])
    assert pipeline.near_ground(pipeline.config.default_intrinsics(), output.shape[1:]) is region
    durations = []
    for _ in range(50):
        started = time.process_time()
        frame_uncertainty(output, region)
        durations.append(time.process_time() - started)
    assert np.median(durations) < 1e-3


def test_other_camera_sizes_work_with_matching_intrinsics(pipeline: PerceptionPipeline) -> None:
    intrinsics = pipeline.config.default_intrinsics().scaled_to(640, 480)
    result = pipeline.process(street_image(640, 480), intrinsics)
    assert result.ok, result.error
    reference = pipeline.process(street_image(), pipeline.config.default_intrinsics())
    # Same scene through the same camera: the same cells are in view.
    assert (result.grids.known == reference.grids.known).mean() > 0.97


def test_image_statistics_reveal_darkness_and_blur() -> None:
    sharp = street_image()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    dark = (sharp // 4).astype(np.uint8)
    assert image_statistics(blurred).sharpness < 0.5 * image_statistics(sharp).sharpness
    assert image_statistics(dark).brightness < 0.3 * image_statistics(sharp).brightness


def test_model_temperature_changes_confidence_but_not_the_argmax(tmp_path: Path) -> None:
    network = trained_looking_network()
    for name, temperature in (('sharp', 0.5), ('soft', 4.0)):
        save_model(tmp_path / name, network, InputSpec(), temperature, {'version': name})
    config = PerceptionConfig()
    sharp = PerceptionPipeline(replace(config), load_model(tmp_path / 'sharp'))
    soft = PerceptionPipeline(replace(config), load_model(tmp_path / 'soft'))
    image = street_image()
    assert sharp.process(image, config.default_intrinsics()).mean_confidence > \
        soft.process(image, config.default_intrinsics()).mean_confidence

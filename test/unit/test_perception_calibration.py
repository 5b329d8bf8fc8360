"""Temperature scaling and expected calibration error, and the BEV scoring rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sidewalk_robot.perception.calibration import (CalibrationBins, expected_calibration_error,
                                                   fit_temperature)
from sidewalk_robot.perception.evaluation import (BevScores, GridCalibration, SegmentationScores,
                                                  dilate)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200_000, 5, generator=generator) * 4.0
    labels = torch.multinomial(torch.softmax(logits / 2.5, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_ece_is_small_for_calibrated_and_large_for_overconfident_probabilities() -> None:
    rng = np.random.default_rng(1)
    probability = rng.uniform(0, 1, 100_000)
    outcome = rng.uniform(0, 1, probability.size) < probability
    assert expected_calibration_error(probability, outcome) < 0.01
    overconfident = np.where(probability > 0.5, 0.99, 0.01)
    assert expected_calibration_error(overconfident, outcome) > 0.2


def test_calibration_bins_accumulate_like_one_batch() -> None:
    rng = np.random.default_rng(2)
    probability = rng.uniform(0, 1, 1000)
    outcome = rng.uniform(0, 1, 1000) < probability ** 2
    bins = CalibrationBins()
    bins.add(probability[:400], outcome[:400])
    bins.add(probability[400:], outcome[400:])
    assert bins.expected_calibration_error() == pytest.approx(
        expected_calibration_error(probability, outcome))
    assert sum(bins.reliability()['count']) == 1000


def test_segmentation_scores_iou_and_confusion() -> None:
    labels = np.array([[[0, 0, 2, 3]]])
    probabilities = np.zeros((1, 5, 1, 4))
    for pixel, predicted in enumerate([0, 2, 2, 3]):
        probabilities[0, predicted, 0, pixel] = 1.0
    scores = SegmentationScores()
    scores.add(probabilities, labels)
    summary = scores.summary()
    assert summary['iou']['sidewalk'] == 0.5
    assert summary['iou']['obstacle'] == 0.5
    assert summary['iou']['pedestrian'] == 1.0
    assert np.isnan(summary['iou']['background'])
    assert summary['confusion_matrix'][0][2] == 1


def test_bev_scores_count_matches_within_the_tolerance() -> None:
    footprint = np.zeros((10, 10), dtype=np.uint8)
    footprint[5, 5] = 1
    visible = footprint > 0
    region = np.ones((10, 10), dtype=bool)
    predicted = np.full((10, 10), np.nan)
    predicted[5, 7] = 0.9  # two cells away: within 0.2 m at 0.1 m cells
    predicted[0, 0] = 0.8  # nothing near: a false alarm
    predicted[9, 9] = 0.3  # below the threshold: not a claim
    scores = BevScores(tolerance_cells=2.0)
    scores.add(predicted, footprint, visible, region, threshold=0.5)
    summary = scores.summary()
    assert summary['recall'] == 1.0 and summary['recall_exact_cell'] == 0.0
    assert summary['precision'] == 0.5
    assert summary['unknown_fraction'] == pytest.approx(97 / 100)


def test_dilation_uses_a_round_neighbourhood() -> None:
    mask = np.zeros((7, 7), dtype=bool)
    mask[3, 3] = True
    grown = dilate(mask, 2.0)
    assert grown[3, 5] and grown[4, 4] and not grown[5, 5] and not grown[4, 5]


def test_grid_calibration_counts_obstacle_boundary_and_claimed_cells_as_decisive() -> None:
    footprint = np.zeros((20, 20), dtype=np.uint8)
    footprint[10, 10] = 1
    region = np.ones((20, 20), dtype=bool)
    region[:, 15:] = False  # out of view or too far
    predicted = np.full((20, 20), 0.01)
    predicted[0, 0] = np.nan           # unknown: no probability to judge
    predicted[10, 10] = 0.2            # the obstacle, held too low
    predicted[10, 12] = 0.3            # a boundary cell (two cells away)
    predicted[2, 2] = 0.9              # a false alarm far from anything
    predicted[5, 18] = 0.9             # outside the region
    calibration = GridCalibration(boundary_cells=3.0, threshold=0.5)
    calibration.add(predicted, footprint, region)
    summary = calibration.summary()
    boundary_ring = int(dilate(footprint > 0, 3.0).sum())
    assert summary['overall']['cells'] == 20 * 15 - 1
    assert summary['decisive']['cells'] == boundary_ring + 1
    # Decisive cells: mostly near-certain free ring cells, one missed obstacle, one false alarm.
    assert summary['decisive']['ece'] > summary['overall']['ece']
    assert summary['decisive']['obstacle_share'] == pytest.approx(1 / (boundary_ring + 1), abs=1e-4)
    assert sum(summary['decisive']['reliability']['count']) == boundary_ring + 1


def test_grid_calibration_of_a_calibrated_grid_is_small_on_both_sets() -> None:
    rng = np.random.default_rng(3)
    calibration = GridCalibration(boundary_cells=3.0, threshold=0.5)
    region = np.ones((40, 40), dtype=bool)
    for _ in range(50):
        predicted = rng.uniform(0.0, 1.0, (40, 40))
        footprint = (rng.uniform(0.0, 1.0, (40, 40)) < predicted).astype(np.uint8)
        calibration.add(predicted, footprint, region)
    summary = calibration.summary()
    assert summary['overall']['ece'] < 0.02 and summary['decisive']['ece'] < 0.02

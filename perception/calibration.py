"""Confidence calibration: temperature scaling and expected calibration error (ECE)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

TEMPERATURE_RANGE = (0.25, 8.0)


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return float(F.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 40) -> float:
    """Temperature T minimising the NLL of softmax(logits / T): golden-section search on log T.

    ``logits`` (N, C) and ``labels`` (N,) are pixels from a validation split. NLL is convex in
    1/T, hence unimodal in log T, so the 1-D search needs no learning rate or tuning.
    """
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a = negative_log_likelihood(logits, labels, math.exp(a))
    loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    for _ in range(iterations):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = negative_log_likelihood(logits, labels, math.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    return math.exp((low + high) / 2.0)


class CalibrationBins:
    """Accumulates (probability, outcome) pairs into equal-width bins, batch by batch."""

    def __init__(self, bins: int = 15) -> None:
        self.bins = bins
        self.count = np.zeros(bins, dtype=np.int64)
        self.probability_sum = np.zeros(bins)
        self.outcome_sum = np.zeros(bins)

    def add(self, probability: np.ndarray, outcome: np.ndarray) -> None:
        probability = np.asarray(probability, dtype=np.float64).ravel()
        outcome = np.asarray(outcome, dtype=np.float64).ravel()
        index = np.clip((probability * self.bins).astype(np.int64), 0, self.bins - 1)
        self.count += np.bincount(index, minlength=self.bins)
        self.probability_sum += np.bincount(index, weights=probability, minlength=self.bins)
        self.outcome_sum += np.bincount(index, weights=outcome, minlength=self.bins)

    def expected_calibration_error(self) -> float:
        """Sum over bins of (bin share) x |mean predicted probability - observed frequency|."""
        total = self.count.sum()
        if total == 0:
            return float('nan')
        filled = self.count > 0
        gap = np.abs(self.probability_sum[filled] - self.outcome_sum[filled]) / self.count[filled]
        return float(np.sum(gap * self.count[filled]) / total)

    def reliability(self) -> dict[str, list[float]]:
        filled = self.count > 0
        return {'bin_centre': list(((np.arange(self.bins) + 0.5) / self.bins)[filled]),
                'mean_probability': list(self.probability_sum[filled] / self.count[filled]),
                'observed_frequency': list(self.outcome_sum[filled] / self.count[filled]),
                'count': [int(c) for c in self.count[filled]]}


def expected_calibration_error(probability: np.ndarray, outcome: np.ndarray, bins: int = 15) -> float:
    accumulator = CalibrationBins(bins)
    accumulator.add(probability, outcome)
    return accumulator.expected_calibration_error()

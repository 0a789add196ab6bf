"""Pairwise accuracy and its uncertainty: pure functions over score arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def pairwise_correct(chosen: ArrayLike, rejected: ArrayLike) -> np.ndarray:
    """1 where the chosen reply scores higher, 0 where lower, and 1/2 for an exact tie in score.

    Counting a tie as half right is what a coin flip between the two would score; counting it
    as wrong (as some leaderboards do) penalises a model for the ties alone.
    """
    chosen, rejected = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    return np.where(chosen > rejected, 1.0, np.where(chosen == rejected, 0.5, 0.0))


def bootstrap_ci(
    values: ArrayLike, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values`` (Efron & Tibshirani 1993, ch. 13).

    Resample the n values with replacement ``resamples`` times and take the (1-c)/2 and (1+c)/2
    quantiles of the resampled means. Seeded, so a report is reproducible.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


@dataclass
class AccuracyEstimate:
    accuracy: float
    ci_low: float
    ci_high: float
    n: int


def estimate(correct: ArrayLike, seed: int = 0) -> AccuracyEstimate:
    """Mean of per-pair correctness (1, 1/2 or 0) with its 95 % percentile bootstrap interval."""
    correct = np.asarray(correct, dtype=float)
    low, high = bootstrap_ci(correct, seed=seed)
    return AccuracyEstimate(float(correct.mean()) if correct.size else float("nan"), low, high, int(correct.size))

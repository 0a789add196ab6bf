"""Pairwise accuracy and its uncertainty: pure functions over score arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm


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


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927; Brown, Cai & DasGupta 2001, eq. 4).

    With p̂ = k/n and z the (1 + c)/2 normal quantile (1.95996 for 95 %):

        centre = (p̂ + z²/2n) / (1 + z²/n),  half-width = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/4n²)

    Unlike the bootstrap (which on 8 pairs all right gives 1.0–1.0) it holds for small samples:
    8 of 8 gives 0.676–1.0. ``successes`` may be fractional (a tie in score counts 1/2). No
    observations: (NaN, NaN). Equals ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n} (got {successes})")
    z = float(norm.ppf((1 + confidence) / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: the rounding of centre ∓ half aside
    return low, 1.0 if successes == n else min(1.0, centre + half)


@dataclass
class AccuracyEstimate:
    accuracy: float
    ci_low: float
    ci_high: float
    n: int


def estimate(correct: ArrayLike, seed: int = 0) -> AccuracyEstimate:
    """Mean of per-pair correctness (1, 1/2 or 0) with its 95 % Wilson score interval.

    ``seed`` is kept for callers that pass one; the Wilson interval is exact arithmetic, not resampled.
    """
    del seed
    correct = np.asarray(correct, dtype=float)
    low, high = wilson_interval(float(correct.sum()), int(correct.size))
    return AccuracyEstimate(float(correct.mean()) if correct.size else float("nan"), low, high, int(correct.size))

"""AUROC of a detector's scores, with DeLong's 95 % interval: pure functions over score arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm


@dataclass(frozen=True)
class AurocEstimate:
    auroc: float
    ci_low: float
    ci_high: float
    positives: int
    negatives: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "auroc": self.auroc,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "positives": self.positives,
            "negatives": self.negatives,
        }


def placements(positive: ArrayLike, negative: ArrayLike) -> np.ndarray:
    """ψ(x_i, y_j): 1 where positive i scores above negative j, 1/2 for an exact tie, else 0; (m, n)."""
    x = np.asarray(positive, dtype=float)[:, None]
    y = np.asarray(negative, dtype=float)[None, :]
    return np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))


def auroc(positive: ArrayLike, negative: ArrayLike, confidence: float = 0.95) -> AurocEstimate:
    """The probability that a positive (LM text) outscores a negative (human text), ties counting 1/2
    (the Mann-Whitney form of the area under the ROC curve), and DeLong's interval (DeLong, DeLong &
    Clarke-Pearson 1988):

        AUC = (1/mn) Σ_ij ψ(x_i, y_j),   V10_i = (1/n) Σ_j ψ(x_i, y_j),   V01_j = (1/m) Σ_i ψ(x_i, y_j)
        Var(AUC) = s²(V10)/m + s²(V01)/n   (s²: sample variances),   AUC ± z·√Var, clipped to [0, 1]

    Exact arithmetic, nothing resampled. A perfect separation has zero variance, so its interval is
    the point 1; with under two positives or negatives the variance is unknown and the interval NaN.
    """
    psi = placements(positive, negative)
    m, n = psi.shape
    if m == 0 or n == 0:
        raise ValueError(f"AUROC needs positives and negatives (got {m} positives, {n} negatives)")
    area = float(psi.mean())
    if m < 2 or n < 2:
        return AurocEstimate(area, math.nan, math.nan, m, n)
    variance = psi.mean(axis=1).var(ddof=1) / m + psi.mean(axis=0).var(ddof=1) / n
    half = float(norm.ppf((1 + confidence) / 2)) * math.sqrt(variance)
    return AurocEstimate(area, max(0.0, area - half), min(1.0, area + half), m, n)


@dataclass(frozen=True)
class PairedDifference:
    """AUROC(a) − AUROC(b) of two detectors scored on the same texts, its interval and two-sided p-value."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float

    def as_dict(self) -> dict[str, float]:
        return {"difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high, "p_value": self.p_value}


def paired_auroc_difference(
    positive_a: ArrayLike, negative_a: ArrayLike, positive_b: ArrayLike, negative_b: ArrayLike, confidence: float = 0.95
) -> PairedDifference:
    """DeLong's paired test (DeLong, DeLong & Clarke-Pearson 1988): two detectors' scores of the *same*
    positives and negatives, so their AUROCs are correlated and separate intervals overstate the doubt.

        d = AUC_a − AUC_b,   Var(d) = s²(V10_a − V10_b)/m + s²(V01_a − V01_b)/n,   z = d/√Var(d)

    with V10 and V01 the placements of :func:`auroc`; p = 2(1 − Φ(|z|)). Identical detectors give
    d = 0 with p = 1.
    """
    psi_a, psi_b = placements(positive_a, negative_a), placements(positive_b, negative_b)
    if psi_a.shape != psi_b.shape:
        raise ValueError(f"paired detectors must score the same texts (got {psi_a.shape} and {psi_b.shape})")
    m, n = psi_a.shape
    if m < 2 or n < 2:
        raise ValueError(f"a paired test needs at least 2 positives and 2 negatives (got {m} and {n})")
    difference = float(psi_a.mean() - psi_b.mean())
    v10, v01 = psi_a.mean(axis=1) - psi_b.mean(axis=1), psi_a.mean(axis=0) - psi_b.mean(axis=0)
    sd = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    if sd == 0:
        return PairedDifference(difference, difference, difference, 1.0 if difference == 0 else 0.0)
    half = float(norm.ppf((1 + confidence) / 2)) * sd
    p_value = float(2 * norm.sf(abs(difference) / sd))
    return PairedDifference(difference, difference - half, difference + half, p_value)

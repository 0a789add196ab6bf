"""How well a learned reward ranks segments the way the true reward does: Pearson's and Spearman's
correlation between learned and true segment returns, each with a 95 % interval.

A learned reward is only defined up to a positive scale and shift (Bradley-Terry sees differences of
returns, and a scale is absorbed by β), so agreement is measured by correlation, not error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.stats import norm, pearsonr, spearmanr

from rewardlab.control.gym_env import RolledSegment
from rewardlab.control.reward_net import RewardNet, segment_returns


@dataclass(frozen=True)
class Correlation:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class RewardCorrelationOutput:
    pearson: Correlation
    spearman: Correlation
    n: int


def fisher_interval(r: float, n: int, rank: bool = False, confidence: float = 0.95) -> tuple[float, float]:
    """tanh(atanh r ∓ z·se): Fisher's z-interval for a correlation of ``n`` pairs.

    se = 1/√(n − 3) for Pearson's r (Fisher 1921); for Spearman's ρ, se = √(1 + ρ²/2)/√(n − 3)
    (Bonett & Wright 2000). Undefined (NaN) below 4 pairs or for a NaN correlation; ±1 stays put.
    """
    if n < 4 or math.isnan(r):
        return float("nan"), float("nan")
    if abs(r) >= 1.0:
        return r, r
    se = math.sqrt(1 + r * r / 2 if rank else 1.0) / math.sqrt(n - 3)
    z = float(norm.ppf((1 + confidence) / 2))
    centre = math.atanh(r)
    return math.tanh(centre - z * se), math.tanh(centre + z * se)


def correlations(learned: ArrayLike, true: ArrayLike) -> RewardCorrelationOutput:
    """Pearson and Spearman correlation of two equal-length score arrays, with Fisher intervals.
    A constant side has no correlation: NaN."""
    learned, true = np.asarray(learned, dtype=float), np.asarray(true, dtype=float)
    if learned.shape != true.shape or learned.ndim != 1:
        raise ValueError(f"need two flat arrays of equal length (got {learned.shape} and {true.shape})")
    n = int(learned.size)
    out = []
    for fn, rank in ((pearsonr, False), (spearmanr, True)):
        r = float("nan") if n < 2 or np.ptp(learned) == 0 or np.ptp(true) == 0 else float(fn(learned, true)[0])
        out.append(Correlation(r, *fisher_interval(r, n, rank=rank)))
    return RewardCorrelationOutput(out[0], out[1], n)


@torch.no_grad()
def reward_correlation(learned: RewardNet, segments: Sequence[RolledSegment]) -> RewardCorrelationOutput:
    """Correlation between the learned returns Σ_t r̂(o_t, a_t) and the true partial returns of ``segments``."""
    if not segments:
        raise ValueError("no segments to correlate")
    returns = segment_returns(learned, [s.segment for s in segments]).numpy()
    return correlations(returns, [s.true_return for s in segments])

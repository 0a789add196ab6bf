"""The functional form of gold reward against KL that over-optimisation studies fit.

Gao et al. 2022, "Scaling Laws for Reward Model Overoptimization", the functional form of their RL runs:

    R(d) = d·(α − β·log d),    d = sqrt(KL(π‖π_ref)),

with R the gold reward gained over the initial policy (so R(0) = 0). Rafailov et al. 2024, "Scaling
Laws for Reward Model Overoptimization in Direct Alignment Algorithms", fit this same form to DPO,
IPO and SLiC checkpoints (their §4; only the abstract was read here, the form is Gao et al.'s). The
form is linear in (α, β), so the least-squares fit is exact linear algebra, not an iterative search.
With β > 0 the curve rises, peaks where dR/dd = α − β·log d − β = 0, i.e. at d* = exp(α/β − 1),
and falls beyond it; there R(d*) = β·d*. That peak is what "over-optimisation" means: past d*,
moving further from the reference loses gold reward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def gold_form(d: np.ndarray | float, alpha: float, beta: float) -> np.ndarray:
    """R(d) = d·(α − β·log d), with R(0) = 0 (the limit of d·log d)."""
    d = np.asarray(d, dtype=np.float64)
    safe = np.where(d > 0, d, 1.0)
    return np.where(d > 0, d * (alpha - beta * np.log(safe)), 0.0)


@dataclass(frozen=True)
class GoldFit:
    alpha: float
    beta: float
    r2: float | None
    """Share of the gains' variance the fit explains (None when the gains do not vary)."""
    peak_d: float | None
    """d* = exp(α/β − 1), where the fitted curve peaks (None unless β > 0)."""
    peak_gain: float | None
    """R(d*) = β·d*, the most gold reward the fitted curve reaches."""
    points: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def fit_gold_form(d: Sequence[float], gains: Sequence[float]) -> GoldFit | None:
    """Least-squares (α, β) of ``gains ≈ d·(α − β·log d)``; None when fewer than two distinct d > 0.

    Points at d = 0 carry no information on (α, β) (the form is 0 there whatever they are) but
    count in R², since a curve that starts from the initial policy passes through them.
    """
    d_all = np.asarray(d, dtype=np.float64)
    r_all = np.asarray(gains, dtype=np.float64)
    if d_all.shape != r_all.shape:
        raise ValueError(f"d and gains must have the same length (got {d_all.size} and {r_all.size})")
    if np.any(d_all < 0) or not np.all(np.isfinite(d_all)) or not np.all(np.isfinite(r_all)):
        raise ValueError("d must be finite and >= 0, and the gains finite")
    positive = d_all > 0
    if np.unique(d_all[positive]).size < 2:
        return None
    x, y = d_all[positive], r_all[positive]
    design = np.stack([x, -x * np.log(x)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = r_all - gold_form(d_all, alpha, beta)
    spread = float(np.sum((r_all - r_all.mean()) ** 2))
    r2 = 1 - float(np.sum(residual**2)) / spread if spread > 0 else None
    peak = math.exp(alpha / beta - 1) if beta > 0 and alpha / beta - 1 < 700 else None
    return GoldFit(
        alpha=float(alpha),
        beta=float(beta),
        r2=r2,
        peak_d=peak,
        peak_gain=float(beta * peak) if peak is not None else None,
        points=int(d_all.size),
    )

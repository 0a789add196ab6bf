"""Weights of a dimension reward (``evaluate.dimensions``) from k preference labels, by Bradley-Terry.

With the dimensions standardised, z = (d − μ)/σ (μ, σ over the training pairs' replies, so that one
prior suits every dimension), the weights are the linear probe's fit on dimension differences
(``training.probe.fit_linear_bt``, the same convex objective the frozen-feature probe solves):

    w* = argmin_w  −(1/k) Σ_i log σ(w·(z(x_i, y_i^c) − z(x_i, y_i^r)))  +  λ‖w‖²

A handful of weights instead of hundreds of feature weights is why few labels suffice (Nath et al.
2024): the labels only decide how much each known dimension matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rewardlab.evaluate.dimensions import DimensionReward, check_dimensions
from rewardlab.training.probe import fit_linear_bt

DEFAULT_L2 = 1.0
"""λ·k: the prior weighs as much as one labelled pair, whatever k is."""


def standardisation(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """μ and σ per column; a column that never varies keeps σ = 1 (its weight then stays 0)."""
    center = values.mean(0)
    scale = values.std(0, unbiased=False)
    return center, torch.where(scale > 1e-12, scale, torch.ones_like(scale))


def fit_dimension_reward(
    dimensions: Sequence[str],
    chosen: Sequence[Sequence[float]],
    rejected: Sequence[Sequence[float]],
    *,
    l2: float = DEFAULT_L2,
    encoder: str = "minilm",
) -> DimensionReward:
    """The reward whose weights fit ``chosen`` over ``rejected`` (rows of dimension values, one per pair)."""
    names = check_dimensions(dimensions)
    c = torch.from_numpy(np.asarray(chosen, dtype=np.float64).reshape(-1, len(names)))
    r = torch.from_numpy(np.asarray(rejected, dtype=np.float64).reshape(-1, len(names)))
    if len(c) != len(r) or not len(c):
        raise ValueError(f"need one rejected row per chosen row, at least one pair (got {len(c)} and {len(r)})")
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (got {l2})")
    center, scale = standardisation(torch.cat([c, r]))
    diffs = (c - r) / scale
    w = fit_linear_bt(diffs, torch.ones(len(diffs), dtype=torch.float64), l2 / len(diffs)).double()
    return DimensionReward(
        tuple(names),
        tuple(w.tolist()),
        tuple(center.tolist()),
        tuple(scale.tolist()),
        encoder,
    )

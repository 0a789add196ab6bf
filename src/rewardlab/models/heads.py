"""How a head's outputs become one score per reply (or per pair), by what the head was trained to mean.

- ``reward``: one output, the reward itself.
- ``attributes``: one reward per attribute; a user direction u combines them, r = ⟨u/‖u‖, r_attr⟩
  (Directional Preference Alignment), so changing u changes the ranking without retraining.
- ``ensemble``: one reward per member; aggregated by mean, worst case (min) or mean − λ·variance,
  with the variance kept as the score's uncertainty (Coste et al., reward model ensembles).
- ``preference``: preference embeddings (General Preference Model); such a model scores pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

AGGREGATIONS = ("mean", "wco", "uwo")


def combine_attributes(outputs: Tensor, direction: Sequence[float] | None) -> Tensor:
    """⟨u/‖u‖, r⟩ over the last axis; no direction means equal weight on every attribute."""
    n = outputs.shape[-1]
    u = torch.ones(n) if direction is None else torch.as_tensor(direction, dtype=outputs.dtype)
    if u.shape != (n,):
        raise ValueError(f"the direction needs {n} weights, one per attribute (got {len(u)})")
    if not torch.isfinite(u).all() or u.norm() == 0:
        raise ValueError(f"the direction must be finite and not all zero (got {u.tolist()})")
    return outputs @ (u / u.norm()).to(outputs.device)


def aggregate_members(outputs: Tensor, method: str = "mean", uncertainty_weight: float = 0.0) -> tuple[Tensor, Tensor]:
    """(score, variance across members) from (..., M) member rewards.

    mean: (1/M)·Σ r_m; wco (worst-case optimisation): min_m r_m; uwo (uncertainty-weighted
    optimisation): mean − λ·Var_m(r_m), with the population variance as in Coste et al. (2024).
    """
    variance = outputs.var(dim=-1, unbiased=False)
    if method == "mean":
        return outputs.mean(-1), variance
    if method == "wco":
        return outputs.min(-1).values, variance
    if method == "uwo":
        return outputs.mean(-1) - uncertainty_weight * variance, variance
    raise ValueError(f"unknown aggregation {method!r} (choose from {', '.join(AGGREGATIONS)})")


def preference_logit(a: Tensor, b: Tensor) -> Tensor:
    """⟨R^≻ v_a, v_b⟩ for (..., 2k) preference embeddings, R^≻ block-diagonal with blocks [[0, -1], [1, 0]].

    Skew-symmetric: logit(a, b) = −logit(b, a) and logit(a, a) = 0, so P(a ≻ b) = σ(logit) can
    express cyclic preferences no scalar reward can (General Preference Modeling, Zhang et al. 2024).
    """
    a1, a2 = a[..., 0::2], a[..., 1::2]
    b1, b2 = b[..., 0::2], b[..., 1::2]
    # R^≻ v_a = (-a2, a1) per block; its dot product with (b1, b2):
    return (a1 * b2 - a2 * b1).sum(-1)

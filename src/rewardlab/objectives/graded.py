"""Graded preferences: labels that say how strongly a reply is preferred, not only which."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective

STRENGTH_CLIP = 1e-3
"""Strengths are clipped to [0.001, 0.999] before the logit, so a certain label (strength 1) asks
for a finite margin (logit(0.999) = 6.9) instead of an infinite one."""


def _check_strength(strength: Tensor) -> None:
    known = strength[~strength.isnan()]
    if bool(((known < 0) | (known > 1)).any()):
        raise ValueError(
            f"strength must be a probability in [0, 1] (got values from {known.min().item()} to {known.max().item()})"
        )


def soft_targets(like: Tensor, strength: Tensor | None, tie: Tensor | None) -> Tensor:
    """P(chosen ≻ rejected) per pair: ``strength`` where given (not NaN), else ½ for a tie and 1 otherwise."""
    fallback = torch.ones_like(like) if tie is None else torch.where(tie, 0.5, 1.0).to(like.dtype)
    if strength is None:
        return fallback
    _check_strength(strength)
    strength = strength.to(like.dtype)
    return torch.where(strength.isnan(), fallback, strength)


@register_objective("soft_bradley_terry")
def soft_bradley_terry_loss(
    chosen: Tensor, rejected: Tensor, strength: Tensor | None = None, tie: Tensor | None = None
) -> ObjectiveOutput:
    """Cross-entropy of the Bradley-Terry probability σ(r_c - r_r) against the graded label s, per pair.

        loss = -s·log σ(r_c - r_r) - (1 - s)·log σ(r_r - r_c)

    A graded label is the annotators' (or a judge's) probability that the chosen reply is better;
    its minimum over the gap is at σ(d) = s, so the label's strength is learned rather than pushed
    to certainty: the Bradley-Terry likelihood (Bradley & Terry 1952) of a fractional outcome, e.g.
    a vote share. Without a strength the target is 1, or ½ for a tie, which is ``bradley_terry``.
    """
    target = soft_targets(chosen, strength, tie)
    gap = chosen - rejected
    losses = -target * F.logsigmoid(gap) - (1 - target) * F.logsigmoid(-gap)
    gap = gap.detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})


@register_objective("adaptive_margin")
def adaptive_margin_loss(
    chosen: Tensor,
    rejected: Tensor,
    margin: Tensor | None = None,
    strength: Tensor | None = None,
    gamma: float = 1.0,
) -> ObjectiveOutput:
    """Bradley-Terry with a margin that grows with the preference's strength, per pair.

        loss = -log σ(r_c - r_r - γ·m),   m = margin if given, else logit(strength)

    Secrets of RLHF in Large Language Models Part II (Wang et al. 2024, adaptive margin): pairs whose
    preference is strong must be separated by a wider reward gap, ambiguous pairs (strength near ½,
    m near 0) hardly at all. logit(strength) is the gap Bradley-Terry assigns to that strength;
    strengths are clipped to [0.001, 0.999] first, and a pair without one (NaN) gets m = 0. γ = 0 is
    plain Bradley-Terry.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be ≥ 0 (got {gamma})")
    if margin is None and strength is None:
        raise ValueError("adaptive_margin needs a margin or a strength per pair; without either use bradley_terry")
    if margin is None:
        _check_strength(strength)
        margin = torch.logit(strength.to(chosen.dtype), eps=STRENGTH_CLIP).nan_to_num(nan=0.0)
    gap = chosen - rejected
    losses = -F.logsigmoid(gap - gamma * margin.to(gap.dtype))
    gap = gap.detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})

"""Bradley-Terry held near a starting reward model: continual preference tuning (ReMoDetect)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective


@register_objective("anchored_bradley_terry")
def anchored_bradley_terry_loss(
    chosen: Tensor,
    rejected: Tensor,
    chosen_rating: Tensor | None = None,
    rejected_rating: Tensor | None = None,
    anchor_coef: float = 1.0,
) -> ObjectiveOutput:
    """Bradley-Terry plus a pull towards the starting model's rewards, read from the pairs' ratings.

    With r the rewards being trained and r₀ the starting model's (``chosen_rating``/``rejected_rating``,
    which the caller fills with r₀ on the same replies), per pair:

        loss = -log σ(r_c - r_r) + λ/2 · [(r_c - r₀_c)² + (r_r - r₀_r)²]

    ReMoDetect's continual preference fine-tuning (Lee et al. 2024, §3.2): tune a trained reward model
    on "aligned LM text ≻ human text" while the squared gap to the initial model's rewards keeps it
    from forgetting the preferences it learned (a replay-style regulariser). A missing (NaN) rating
    leaves its reply unanchored; λ = ``anchor_coef`` = 0 is plain Bradley-Terry.
    """
    if anchor_coef < 0:
        raise ValueError(f"anchor_coef must be non-negative (got {anchor_coef})")
    losses = -F.logsigmoid(chosen - rejected)
    for reward, anchor in ((chosen, chosen_rating), (rejected, rejected_rating)):
        if anchor is not None and anchor_coef:
            gap = torch.where(torch.isnan(anchor), torch.zeros_like(reward), reward - anchor.to(reward.dtype))
            losses = losses + 0.5 * anchor_coef * gap**2
    gap = (chosen - rejected).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})

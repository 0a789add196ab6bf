"""Plackett-Luce: the likelihood of a whole ranking, built as a sequence of choices of the best remaining."""

from __future__ import annotations

import torch
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective


@register_objective("plackett_luce")
def plackett_luce_loss(ranked: Tensor, ranked_mask: Tensor | None = None) -> ObjectiveOutput:
    """Negative log-likelihood of each group's ranking (best first) under Plackett-Luce, per group.

        loss = -Σ_k log( exp(r_k) / Σ_{j ≥ k, j real} exp(r_j) )

    (Plackett 1975, Luce 1959; the K-wise loss of Zhu et al. 2023, "Principled Reinforcement Learning
    with Human Feedback from Pairwise or K-wise Comparisons".) Each position is a softmax choice of
    the best among the replies not ranked yet; with K = 2 it is Bradley-Terry exactly. Padded
    positions (``ranked_mask`` false) take no part, wherever they are.

    Accuracy is the fraction of a group's K(K-1)/2 pairs whose rewards are in the ranked order
    (with K = 2, Bradley-Terry's accuracy); ``top_accuracy`` says whether the first reply scores highest.
    """
    if ranked.dim() != 2:
        raise ValueError(
            f"plackett_luce needs one scalar reward per reply, ranked of shape (G, K) (got {tuple(ranked.shape)})"
        )
    mask = torch.ones_like(ranked, dtype=torch.bool) if ranked_mask is None else ranked_mask.bool()
    if mask.shape != ranked.shape:
        raise ValueError(f"ranked_mask has shape {tuple(mask.shape)} but ranked {tuple(ranked.shape)}")
    if bool((mask.sum(dim=1) < 2).any()):
        raise ValueError("every ranked group needs at least two real replies")
    # A finite fill (not -inf) keeps gradients free of NaN where a suffix holds padding only.
    filled = ranked.masked_fill(~mask, torch.finfo(ranked.dtype).min / 4)
    suffix_log_sum = filled.flip(1).logcumsumexp(dim=1).flip(1)
    losses = -torch.where(mask, filled - suffix_log_sum, 0.0).sum(dim=1)

    rewards = ranked.detach()
    k = ranked.shape[1]
    above = torch.ones(k, k, dtype=torch.bool, device=mask.device).triu(diagonal=1)
    before = above & mask.unsqueeze(2) & mask.unsqueeze(1)  # [g, i, j]: both real, i ranked above j
    in_order = (rewards.unsqueeze(2) > rewards.unsqueeze(1)) & before
    accuracy = in_order.sum(dim=(1, 2)).float() / before.sum(dim=(1, 2)).float()
    first = mask.int().argmax(dim=1)  # the best reply: the first real position
    beats_all = in_order[torch.arange(len(first)), first].sum(dim=1) == mask.sum(dim=1) - 1
    return ObjectiveOutput(losses, {"accuracy": accuracy, "top_accuracy": beats_all.float()})

"""The maths of process rewards: the loss that trains a step's score, and how step scores make a chain's.

A PRM scores step t of a chain with a logit r_t that the chain is still right after step t (its prefix
of t steps read after the prompt), p_t = σ(r_t). How the p_t make the chain's score (``chain_score``)
lives in ``rewards.step_aggregation``, below the models, so that a scorer kind can read it too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def step_bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of each step's logit against its label, elementwise:

        ℓ_t = −[y_t log σ(r_t) + (1 − y_t) log(1 − σ(r_t))]

    The PRM objective of Lightman et al. 2023 ("Let's Verify Step by Step", y_t ∈ {0, 1} from human
    verdicts) and of Math-Shepherd (Wang et al. 2024, y_t the share of Monte-Carlo completions from step
    t that reach the right answer, so a soft label in [0, 1]). Minimised at σ(r_t) = y_t.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"{tuple(labels.shape)} labels for {tuple(logits.shape)} step scores")
    if bool(((labels < 0) | (labels > 1)).any()):
        raise ValueError("step labels must lie in [0, 1]")
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")


def first_flagged_step(probabilities: Tensor, threshold: float = 0.5) -> int | None:
    """The 0-based index of the first step scored below ``threshold`` (the PRM's first wrong step), or None."""
    below = (probabilities < threshold).nonzero()
    return int(below[0, 0]) if len(below) else None


def batch_step_loss(logits: Tensor, labels: Tensor, chain_index: Tensor, chains: int) -> Tensor:
    """The batch's loss: each chain's mean step loss, averaged over its ``chains`` chains, so a long chain
    weighs as much as a short one (``chain_index[i]`` is the chain of step row i)."""
    losses = step_bce_loss(logits, labels)
    totals = torch.zeros(chains, dtype=losses.dtype).index_add(0, chain_index, losses)
    counts = torch.zeros(chains, dtype=losses.dtype).index_add(0, chain_index, torch.ones_like(losses))
    return (totals / counts.clamp(min=1)).mean()

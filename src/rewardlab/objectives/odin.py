"""ODIN: a quality reward and a length reward, trained together, and only the quality reward kept.

Chen et al. 2024, "ODIN: Disentangled Reward Mitigates Hacking in RLHF" (arXiv 2402.07319). Neither
the paper nor its abstract is in ``papers/reward-modeling-papers.txt``: the loss below is our reading
of the paper's length loss (two heads, correlation terms over the batch), not a copy of its code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective


def pearson(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson's correlation of two (N,) tensors, differentiable; 0 when either is constant."""
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / ((x.pow(2).sum() * y.pow(2).sum()).sqrt() + eps)


@register_objective("odin", head_size=2, head="reward", kept_outputs=1)
def odin_loss(
    chosen: Tensor,
    rejected: Tensor,
    chosen_length: Tensor | None = None,
    rejected_length: Tensor | None = None,
    tie: Tensor | None = None,
    length_coef: float = 1.0,
) -> ObjectiveOutput:
    """Bradley-Terry on r_Q + r_L, with r_L pulled towards length and r_Q decorrelated from it, per pair.

    The head has two outputs per reply, r_Q (quality, output 0) and r_L (length, output 1), two linear
    heads on the same pooled representation. With ρ Pearson's correlation over the 2B replies of the
    batch and L their lengths (characters):

        loss = -log σ((r_Q + r_L)_c − (r_Q + r_L)_r)  +  λ·[ |ρ(r_Q, L)| − ρ(r_L, L) ]

    (½/½ target for a tie). The correlation term (the paper's length loss, λ = ``length_coef``) is a
    property of the batch, added to every pair's loss. Length can then explain the labels only
    through r_L, which the finished model drops (``kept_outputs=1``): it scores r_Q alone. The
    paper also keeps the two heads' weights orthogonal (|W_Qᵀ W_L|); an objective sees rewards, not
    weights, so that term is not here. Correlations need a batch: with fewer than 3 replies, or no
    lengths given (then plain Bradley-Terry on the sum), the term is 0. ``corr_quality_length`` is
    ρ(r_Q, L), the quantity ODIN drives to 0, for the logs.
    """
    if length_coef < 0:
        raise ValueError(f"length_coef must be ≥ 0 (got {length_coef})")
    if chosen.dim() != 2 or chosen.shape[-1] != 2:
        raise ValueError(f"odin needs (B, 2) outputs per reply, quality and length (got {tuple(chosen.shape)})")
    diff = chosen.sum(-1) - rejected.sum(-1)
    target = torch.ones_like(diff) if tie is None else torch.where(tie, 0.5, 1.0).to(diff.dtype)
    losses = -target * F.logsigmoid(diff) - (1 - target) * F.logsigmoid(-diff)
    corr_quality = torch.zeros((), dtype=diff.dtype, device=diff.device)
    if chosen_length is not None and rejected_length is not None and 2 * len(diff) >= 3:
        outputs = torch.cat([chosen, rejected]).float()
        lengths = torch.cat([chosen_length, rejected_length]).to(outputs)
        corr_quality = pearson(outputs[:, 0], lengths)
        corr_length = pearson(outputs[:, 1], lengths)
        losses = losses + length_coef * (corr_quality.abs() - corr_length).to(losses.dtype)
    quality_gap = (chosen[:, 0] - rejected[:, 0]).detach()
    return ObjectiveOutput(
        losses,
        {"accuracy": (quality_gap > 0).float(), "corr_quality_length": corr_quality.detach().expand_as(diff)},
    )

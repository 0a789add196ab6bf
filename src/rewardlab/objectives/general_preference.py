"""General Preference Model: replies as vectors, preference as a skew-symmetric form that can be cyclic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, head_size_option, register_objective
from rewardlab.rewards.aggregate import gpm_preference_logit

EMBEDDING_SIZE = head_size_option("dim", per_unit=2, meaning="gpm's number of 2-d blocks")


@register_objective("gpm", head_size=EMBEDDING_SIZE, head="preference")
def gpm_loss(
    chosen: Tensor,
    rejected: Tensor,
    tie: Tensor | None = None,
    dim: int = 2,
    beta: float = 1.0,
    normalize: bool = True,
) -> ObjectiveOutput:
    """Negative log-likelihood of the label under the General Preference Model, per pair.

        P(c ≻ r) = σ(β·⟨R^≻ v_c, v_r⟩),   loss = -log P(c ≻ r)   (½/½ target for a tie)

    Zhang et al. 2024, "General Preference Modeling with Preference Representations for Aligning
    Language Models": each reply is embedded once (2k = 2·``dim`` head outputs) and any two are
    compared by a skew-symmetric form, so intransitive (cyclic) preferences can be fitted at the
    cost of one forward pass per reply. The paper writes the scale as a temperature 1/β and lets a
    prompt-dependent gate weight the blocks; here the blocks are weighted equally. Accuracy: the
    logit is positive.
    """
    size = EMBEDDING_SIZE({"dim": dim})
    if chosen.dim() != 2 or chosen.shape[-1] != size:
        raise ValueError(f"gpm with dim={dim} needs (B, {size}) embeddings per reply (got {tuple(chosen.shape)})")
    if beta <= 0:
        raise ValueError(f"beta must be positive (got {beta})")
    logit = gpm_preference_logit(chosen, rejected, beta=beta, normalize=normalize)
    target = torch.ones_like(logit) if tie is None else torch.where(tie, 0.5, 1.0).to(logit.dtype)
    losses = -target * F.logsigmoid(logit) - (1 - target) * F.logsigmoid(-logit)
    logit = logit.detach()
    return ObjectiveOutput(losses, {"accuracy": (logit > 0).float(), "logit": logit})

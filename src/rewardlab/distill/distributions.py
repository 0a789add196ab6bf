"""Full next-token distributions at every reply position of preference pairs, one packed pass.

Distillation compares whole distributions, not the log-probability of the one token in the data, so
this keeps the (reply tokens × vocabulary) log-softmax that :func:`rewardlab.models.logprobs.packed_pair_logps`
reduces to a gather. The packing (prompt read once, rejected reply blind to the chosen one) is the
same :func:`rewardlab.models.logprobs.pack_preferences`, so the two agree token for token.

Memory: the result is B·T·V floats (SmolLM2: V = 49,152, so 8 pairs × 2 replies × 256 tokens is
0.8 GB in fp32); callers compute it per micro-batch and drop it after the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rewardlab.models.logprobs import PairTokens, pack_preferences, packed_reply_logps


@dataclass(frozen=True)
class ReplyDistributions:
    """Log-probabilities (B, T, V) at each reply position of both replies, and their tokens and masks (B, T)."""

    chosen: Tensor
    rejected: Tensor
    chosen_targets: Tensor
    rejected_targets: Tensor
    chosen_mask: Tensor
    rejected_mask: Tensor

    def token_logps(self, side: str) -> Tensor:
        """(B, T): the log-probability of each reply token in the data, 0 at padding."""
        logps, targets, mask = getattr(self, side), getattr(self, f"{side}_targets"), getattr(self, f"{side}_mask")
        picked = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return torch.where(mask, picked, torch.zeros((), dtype=picked.dtype, device=picked.device))


def reply_distributions(
    model: torch.nn.Module, tokens: PairTokens, pad_id: int, max_row_tokens: int | None = None
) -> ReplyDistributions:
    """Every reply position's log-softmax (fp32) for the pairs in ``tokens``; gradients flow unless the
    caller runs it under ``torch.no_grad()``."""
    packed = pack_preferences(tokens, pad_id, max_row_tokens)
    device = next(model.parameters()).device
    logps = packed_reply_logps(model, packed)
    return ReplyDistributions(
        logps[packed.chosen_index.to(device)],
        logps[packed.rejected_index.to(device)],
        packed.chosen_targets.to(device),
        packed.rejected_targets.to(device),
        packed.chosen_mask.to(device),
        packed.rejected_mask.to(device),
    )

"""General Preference Model: replies as vectors, preference as a skew-symmetric form that can be cyclic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, head_size_option, register_objective


def gpm_preference_logit(v_a: Tensor, v_b: Tensor, beta: float = 1.0, normalize: bool = True) -> Tensor:
    """β·⟨R^≻ v_a, v_b⟩: the log-odds that reply a is preferred to reply b, from (..., 2k) embeddings.

    R^≻ is block-diagonal with k blocks [[0, -1], [1, 0]] acting on dimensions (0, 1), (2, 3), ...
    With v = (x_1, y_1, ..., x_k, y_k), block l contributes x_a·y_b - y_a·x_b, so the score is
    antisymmetric, s(a, b) = -s(b, a) and s(a, a) = 0: P(a ≻ b) = σ(s) and P(b ≻ a) = 1 - P(a ≻ b).
    A block is a rotation by 90°, so three replies 120° apart in one plane prefer one another in a
    cycle, which no scalar reward can express. ``normalize`` puts the embeddings on the unit sphere
    first, as the paper does; β then sets how sure the model can be (|s| ≤ β).
    """
    if v_a.shape[-1] % 2 or v_a.shape != v_b.shape:
        raise ValueError(
            "preference embeddings must have the same even last dimension 2k "
            f"(got {tuple(v_a.shape)} and {tuple(v_b.shape)})"
        )
    if normalize:
        v_a, v_b = F.normalize(v_a, dim=-1), F.normalize(v_b, dim=-1)
    x_a, y_a = v_a[..., 0::2], v_a[..., 1::2]
    x_b, y_b = v_b[..., 0::2], v_b[..., 1::2]
    return beta * (x_a * y_b - y_a * x_b).sum(dim=-1)


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

"""Bradley-Terry: the probability that a reply is preferred is a logistic function of the reward gap."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective


@register_objective("bradley_terry")
def bradley_terry_loss(
    chosen: Tensor,
    rejected: Tensor,
    margin: Tensor | None = None,
    tie: Tensor | None = None,
    label_smoothing: float = 0.0,
    center_coef: float = 0.0,
    use_margin: bool = True,
) -> ObjectiveOutput:
    """Negative log-likelihood of the human label under Bradley-Terry, per pair.

    With d = r_c - r_r - m and target y (1 for a preference, 1/2 for a tie):

        loss = -[(1 - ε)·y + ε·(1 - y)]·log σ(d) - [(1 - ε)·(1 - y) + ε·y]·log σ(-d)
               + η·(r_c + r_r)²

    - ε = 0, m = 0: the pairwise ranking loss of InstructGPT (Ouyang et al. 2022, eq. 1).
    - m: the preference-strength margin of Llama 2 (Touvron et al. 2023, eq. 2), read from the
      pair's ``margin`` field when ``use_margin`` is true.
    - ε: label smoothing, the conservative loss for labels flipped with probability ε.
    - y = 1/2 for tied pairs: the likelihood of "equally good" under a soft label, minimised at d = 0.
    - η: TRL's reward-centering term (Eisenstein et al. 2023), which pins rewards near zero mean
      without changing their order.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5) (got {label_smoothing})")
    diff = chosen - rejected
    if use_margin and margin is not None:
        diff = diff - margin
    target = torch.ones_like(diff) if tie is None else torch.where(tie, 0.5, 1.0).to(diff.dtype)
    p_chosen = (1 - label_smoothing) * target + label_smoothing * (1 - target)
    losses = -p_chosen * F.logsigmoid(diff) - (1 - p_chosen) * F.logsigmoid(-diff)
    if center_coef:
        losses = losses + center_coef * (chosen + rejected) ** 2
    gap = (chosen - rejected).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})

"""Davidson's model: Bradley-Terry with a third outcome, the tie, whose probability is learned."""

from __future__ import annotations

import torch
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, register_objective


def davidson_log_probabilities(r_a: Tensor, r_b: Tensor, nu: float | Tensor = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """log P(a ≻ b), log P(tie), log P(b ≻ a) under Davidson (1970), with π = exp(r).

    Dividing numerator and denominator by √(π_a·π_b) leaves only the gap d = r_a - r_b:

        P(a ≻ b) = e^{d/2} / Z,   P(tie) = ν / Z,   P(b ≻ a) = e^{-d/2} / Z,   Z = e^{d/2} + e^{-d/2} + ν

    so the model is computed in log space without overflow. ν = 0 is Bradley-Terry: P(a ≻ b) = σ(d).
    """
    nu_t = torch.as_tensor(nu, dtype=r_a.dtype, device=r_a.device)
    if bool((nu_t < 0).any()):
        raise ValueError(f"nu must be ≥ 0 (got {nu})")
    half = (r_a - r_b) / 2
    log_nu = torch.log(nu_t).expand_as(half)
    log_z = torch.logsumexp(torch.stack([half, -half, log_nu]), dim=0)
    return half - log_z, log_nu - log_z, -half - log_z


def davidson_probabilities(r_a: Tensor, r_b: Tensor, nu: float | Tensor = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """(P(a ≻ b), P(tie), P(b ≻ a)) for rewards r_a, r_b under Davidson (1970); they sum to 1.

    P(a ≻ b) = π_a / (π_a + π_b + ν·√(π_a·π_b)),   P(tie) = ν·√(π_a·π_b) / (…),   π = exp(r)
    """
    log_a, log_tie, log_b = davidson_log_probabilities(r_a, r_b, nu)
    return log_a.exp(), log_tie.exp(), log_b.exp()


@register_objective("davidson")
def davidson_loss(chosen: Tensor, rejected: Tensor, tie: Tensor | None = None, nu: float = 1.0) -> ObjectiveOutput:
    """Negative log-likelihood of "chosen wins" or "tie" under Davidson's model, per pair.

        loss = -log P(c ≻ r) for a preference,   -log P(tie) for a tied pair

    (Davidson 1970, "On Extending the Bradley-Terry Model to Accommodate Ties in Paired Comparison
    Experiments", JASA 65.)

    ν sets how likely ties are between equally good replies (P(tie | d = 0) = ν / (2 + ν)); the
    rewards keep Bradley-Terry's meaning, and ν → 0 recovers it exactly. A tied pair counts as
    accurate when the tie is the most probable of the three outcomes.
    """
    if nu < 0:
        raise ValueError(f"nu must be ≥ 0 (got {nu}); nu = 0 is plain Bradley-Terry")
    log_win, log_tie, log_loss = davidson_log_probabilities(chosen, rejected, nu)
    gap = (chosen - rejected).detach()
    metrics = {"margin": gap, "tie_probability": log_tie.detach().exp()}
    if tie is None or not bool(tie.any()):
        return ObjectiveOutput(-log_win, {"accuracy": (gap > 0).float(), **metrics})
    if nu == 0:
        raise ValueError("nu = 0 gives ties probability zero, but the data has tied pairs; use nu > 0")
    tie_is_likeliest = (log_tie >= torch.maximum(log_win, log_loss)).detach()
    accuracy = torch.where(tie, tie_is_likeliest, gap > 0).float()
    return ObjectiveOutput(torch.where(tie, -log_tie, -log_win), {"accuracy": accuracy, **metrics})

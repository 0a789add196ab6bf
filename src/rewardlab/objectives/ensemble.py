"""Reward-model ensembles: M rewards per reply, trained together, combined conservatively at use time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, head_size_option, register_objective


def bootstrap_weights(pairs: int, members: int, seed: int, kind: str = "poisson") -> Tensor:
    """(pairs, members) resampling weights with mean 1, the same for the same arguments.

    ``poisson``: Poisson(1) counts, the large-sample limit of drawing n pairs with replacement
    (Oza & Russell 2001, online bagging); ``bernoulli``: 2·Bernoulli(½), each member sees about
    half of the pairs, twice as heavily.
    """
    generator = torch.Generator().manual_seed(seed)
    if kind == "poisson":
        return torch.poisson(torch.ones(pairs, members), generator=generator)
    if kind == "bernoulli":
        return 2 * torch.bernoulli(torch.full((pairs, members), 0.5), generator=generator)
    raise ValueError(f"bootstrap must be 'poisson', 'bernoulli' or None (got {kind!r})")


MEMBER_COUNT = head_size_option("members")


@register_objective("ensemble_bradley_terry", head_size=MEMBER_COUNT, head="ensemble")
def ensemble_bradley_terry_loss(
    chosen: Tensor,
    rejected: Tensor,
    tie: Tensor | None = None,
    members: int = 4,
    bootstrap: str | None = None,
    seed: int = 0,
) -> ObjectiveOutput:
    """Bradley-Terry on each of the M member rewards, averaged over members, per pair.

        loss = (1/M)·Σ_m w_{b,m}·[-log σ(r_{c,m} - r_{r,m})]   (½/½ target for a tie)

    The ensemble of Coste et al. 2024 (who train M separate models) as one M-output head: the members
    share the network below the head and differ by their head's initialisation and, with
    ``bootstrap``, by their data. There
    w_{b,m} are ``bootstrap_weights`` for batch position b drawn from ``seed``: when the whole data
    set is one batch this is a fixed bootstrap resample per member; with shuffled mini-batches the
    same pattern is reused at every step, so a pair visited again lands on a new position and draws
    new weights (online bagging). Without ``bootstrap`` every w is 1. Accuracy is that of the
    members' mean reward; ``member_accuracy`` is the fraction of members ordering the pair right.
    """
    count = MEMBER_COUNT({"members": members})
    if chosen.dim() != 2 or chosen.shape[-1] != count:
        raise ValueError(
            f"ensemble_bradley_terry with members={count} needs (B, {count}) rewards per reply "
            f"(got {tuple(chosen.shape)})"
        )
    gaps = chosen - rejected
    target = torch.ones_like(gaps) if tie is None else torch.where(tie, 0.5, 1.0).to(gaps.dtype).unsqueeze(-1)
    member_losses = -target * F.logsigmoid(gaps) - (1 - target) * F.logsigmoid(-gaps)
    if bootstrap is not None:
        weights = bootstrap_weights(len(gaps), count, seed, bootstrap)
        member_losses = member_losses * weights.to(device=gaps.device, dtype=gaps.dtype)
    gaps = gaps.detach()
    return ObjectiveOutput(
        member_losses.mean(dim=-1),
        {"accuracy": (gaps.mean(dim=-1) > 0).float(), "member_accuracy": (gaps > 0).float().mean(dim=-1)},
    )

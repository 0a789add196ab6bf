"""Policy losses over groups of annotators: MaxMin-RLHF's policy step as a DPO loss.

A plain DPO batch weights every pair alike, so the group that labelled most pairs decides what the
policy learns and a minority whose labels oppose it on some pairs is outvoted. MaxMin-RLHF
(Chakraborty et al. 2024, "MaxMin-RLHF: Towards Equitable Alignment of Large Language Models with
Diverse Human Preferences"; only the abstract is known here) learns one reward per group and trains
the policy for the egalitarian objective max_π min_g (the group g's reward of π). Its DPO form
replaces each group's reward by its preference likelihood under the implicit reward: the policy
minimises the largest of the groups' DPO losses. Notation as in :mod:`rewardlab.policy.losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.policy.losses import check_positive, logratios, loss_output
from rewardlab.policy.registry import PolicyLossOutput, register_policy_loss


@register_policy_loss("maxmin_dpo", aliases=("maxmin",), couples_pairs=True)
def maxmin_dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    groups: Tensor | None = None,
    beta: float = 0.1,
    temperature: float = 0.1,
) -> PolicyLossOutput:
    """MaxMin DPO: τ·log Σ_g exp(L_g/τ), a smooth maximum of the groups' DPO losses L_g.

    L_g = (1/n_g) Σ_{i: g_i = g} −log σ(β·h_i) is the DPO loss (Rafailov et al. 2023, eq. 7) of the
    n_g pairs of group g in the batch (``groups``: each pair's group index; None: one group). As
    τ → 0 the objective tends to max_g L_g, the max-min policy objective of MaxMin-RLHF
    (Chakraborty et al. 2024; only the abstract is known here) with each group's reward replaced by
    its DPO likelihood; as τ → ∞ it tends to the mean of the L_g plus τ·log G, every group weighted
    alike whatever its size (plain DPO weights pairs alike, so the majority dominates). A batch of
    one group is exactly DPO.

    The trainer reduces per-pair losses by their mean, so the loss returns
    ℓ'_i = w_i·ℓ_i + c with w_i = B·p_{g_i}/n_{g_i}, p = softmax_g(L_g/τ) detached, and c (detached)
    = L − (1/B) Σ_i w_i·ℓ_i. Then (1/B) Σ_i ℓ'_i = L in value, and in gradient since
    ∂L/∂θ = Σ_g p_g·∂L_g/∂θ = (1/B) Σ_i w_i·∂ℓ_i/∂θ. Pair weights of the data multiply w_i on top.
    ``extras``: ``group_weight`` (w_i), ``worst_group_loss`` (max_g L_g, the same for every pair).
    """
    check_positive("beta", beta)
    check_positive("temperature", temperature)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    pair_losses = -F.logsigmoid(beta * (rho_w - rho_l))
    if groups is None:
        groups = torch.zeros(pair_losses.shape, dtype=torch.long, device=pair_losses.device)
    if groups.shape != pair_losses.shape:
        shape = tuple(groups.shape)
        raise ValueError(f"groups must have one entry per pair (got {shape} for {len(pair_losses)} pairs)")
    _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    sizes = counts.to(pair_losses.dtype)
    group_losses = torch.zeros(len(counts), dtype=pair_losses.dtype, device=pair_losses.device)
    group_losses = group_losses.index_add(0, index, pair_losses) / sizes
    smooth_max = temperature * torch.logsumexp(group_losses / temperature, dim=0)
    shares = torch.softmax(group_losses.detach() / temperature, dim=0)
    weights = len(pair_losses) * shares[index] / sizes[index]
    weighted = weights * pair_losses
    losses = weighted + (smooth_max - weighted.mean()).detach()
    worst = group_losses.detach().max().expand(pair_losses.shape)
    return loss_output(losses, beta * rho_w, beta * rho_l, group_weight=weights, worst_group_loss=worst)

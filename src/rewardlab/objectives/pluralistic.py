"""Pluralistic reward models: one head shared by all users, one row of parameters per annotator.

Each objective reads the ``user`` rows of each pair's annotator (the trainer gathers them from the
model's user table and optimises them with the model) and says, through ``users=``, which user model
of ``rewards/pluralistic.py`` gives those rows their meaning at scoring time. The papers' full texts
were not read here, only their abstracts; the equations are the methods' standard forms as issue 33
states them, and each docstring says where this form departs from the paper's training recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.objectives.registry import ObjectiveOutput, head_size_option, register_objective
from rewardlab.rewards.pluralistic import (
    latent_kl,
    mixture_weights,
    pair_router,
    split_latent,
)

PROTOTYPES = head_size_option("prototypes", meaning="PAL's number of prototype rewards")
CLUSTERS = head_size_option("clusters", meaning="MaxMin-RLHF's number of user clusters")
FEATURES = head_size_option("features", meaning="VPL's size of the reward features and the latent")
ROUTED_HEADS = head_size_option("heads", per_unit=2, meaning="MiCRo's number of reward heads, each with a router logit")


def _targets(tie: Tensor | None, like: Tensor) -> Tensor:
    """1 for a preference, ½ for a tied pair, shaped like ``like``'s batch dimension."""
    return (
        torch.ones(like.shape[0], dtype=like.dtype, device=like.device)
        if tie is None
        else torch.where(tie, 0.5, 1.0).to(like)
    )


def _check_shapes(name: str, chosen: Tensor, rejected: Tensor, user: Tensor, outputs: int, row: int) -> None:
    if chosen.dim() != 2 or chosen.shape[-1] != outputs or rejected.shape != chosen.shape:
        raise ValueError(
            f"{name} needs (B, {outputs}) outputs per reply (got {tuple(chosen.shape)} and {tuple(rejected.shape)})"
        )
    if user.shape != (chosen.shape[0], row):
        raise ValueError(f"{name} needs (B, {row}) user rows, one per pair (got {tuple(user.shape)})")


def _bradley_terry(gap: Tensor, target: Tensor) -> Tensor:
    """−y·log σ(d) − (1 − y)·log σ(−d), the Bradley-Terry negative log-likelihood (½/½ for a tie)."""
    return -target * F.logsigmoid(gap) - (1 - target) * F.logsigmoid(-gap)


@register_objective("pal", head_size=PROTOTYPES, head="users", users="mixture")
def pal_loss(
    chosen: Tensor, rejected: Tensor, user: Tensor, tie: Tensor | None = None, prototypes: int = 2
) -> ObjectiveOutput:
    """Bradley-Terry on the annotator's own mixture of K prototype rewards, per pair.

        r_u(y) = Σ_k softmax(u)_k · r_k(y),   loss = −log σ(r_u(c) − r_u(r))   (½/½ target for a tie)

    Chen et al. 2024, "PAL: Pluralistic Alignment Framework for Learning from Heterogeneous Preferences"
    (abstract only): each user's preference is a mixture over K prototypes learned together with a
    shared representation, so a new user needs only their K mixture weights (``fit`` of the ``mixture``
    user model). The prototypes here are K reward outputs of one head (the paper's reward-mixture form);
    u is the annotator's row of K logits. Accuracy: the annotator's reward orders the pair right.
    """
    count = PROTOTYPES({"prototypes": prototypes})
    _check_shapes("pal", chosen, rejected, user, count, count)
    weights = mixture_weights(user)
    gap = ((chosen - rejected) * weights).sum(dim=-1)
    losses = _bradley_terry(gap, _targets(tie, gap))
    gap = gap.detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})


@register_objective("maxmin_em", head_size=CLUSTERS, head="users", users="mixture")
def maxmin_em_loss(
    chosen: Tensor, rejected: Tensor, user: Tensor, tie: Tensor | None = None, clusters: int = 2
) -> ObjectiveOutput:
    """Expected Bradley-Terry loss over the annotator's cluster, per pair (a relaxed hard EM).

        loss = −Σ_k softmax(u)_k · log σ(r_k(c) − r_k(r))   (½/½ target for a tie)

    Chakraborty et al. 2024, "MaxMin-RLHF" (abstract only), learn a mixture of K reward functions by
    expectation-maximisation: each user is assigned to the cluster whose reward explains their pairs
    best, and each reward is refitted on its cluster's pairs. Here the assignment is softmax(u) of the
    annotator's row and both steps are gradient steps: the loss is linear in the weights, so the sum
    over a user's pairs is minimised by putting all weight on the single cluster with the smallest
    Bradley-Terry loss (the E-step), while each reward is trained on pairs weighted by their users'
    assignments (the M-step). The MaxMin policy objective (maximise the worst cluster's reward) is a
    policy-side choice, not part of this loss. Accuracy: the mixture reward orders the pair right.
    """
    count = CLUSTERS({"clusters": clusters})
    _check_shapes("maxmin_em", chosen, rejected, user, count, count)
    gaps = chosen - rejected
    weights = mixture_weights(user)
    target = _targets(tie, gaps).unsqueeze(-1)
    losses = (weights * _bradley_terry(gaps, target)).sum(dim=-1)
    gap = (gaps * weights).sum(dim=-1).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})


@register_objective("vpl", head_size=FEATURES, head="users", users="latent")
def vpl_loss(
    chosen: Tensor,
    rejected: Tensor,
    user: Tensor,
    tie: Tensor | None = None,
    features: int = 8,
    samples: int = 4,
    kl_weight: float = 0.01,
) -> ObjectiveOutput:
    """Negative evidence lower bound of the annotator's latent preference, per pair.

        loss = −(1/S)·Σ_s log σ(z_s·(φ(c) − φ(r))) + β·KL(N(μ_u, σ_u²) ‖ N(0, I)),   z_s = μ_u + σ_u ⊙ ε_s

    Poddar et al. 2024, "Personalizing RLHF with Variational Preference Learning" (abstract only): a
    user-specific latent z is inferred and the reward is conditioned on it; here the reward is linear
    in z over the head's D features φ, and the posterior q(z) = N(μ_u, σ_u²) is the annotator's row
    [μ_u, log σ_u] (free per-user parameters in place of the paper's amortised encoder; ``fit`` of the
    ``latent`` user model is the encoder's job for a new user). The expectation is estimated with S =
    ``samples`` reparameterised draws ε_s ~ N(0, I) from torch's global generator (the run's seed makes
    it reproducible). The ELBO's KL counts once per user, i.e. KL/n_u per pair for a user with n_u
    pairs; n_u is not a batch field, so β = ``kl_weight`` is the KL's weight per pair (set it near
    1/n_u for the exact ELBO). A tied pair has target ½. Accuracy: μ_u·Δφ > 0 (the reward it scores with).
    """
    count = FEATURES({"features": features})
    _check_shapes("vpl", chosen, rejected, user, count, 2 * count)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples (VPL's draws of the latent per pair) must be a positive integer (got {samples!r})")
    if kl_weight < 0:
        raise ValueError(f"kl_weight must be ≥ 0 (got {kl_weight})")
    mean, log_std = split_latent(user)
    delta = chosen - rejected
    noise = torch.randn((samples, *mean.shape), dtype=mean.dtype, device=mean.device)
    latents = mean + log_std.exp() * noise
    gaps = (latents * delta).sum(dim=-1)
    likelihood = _bradley_terry(gaps, _targets(tie, delta)).mean(dim=0)
    losses = likelihood + kl_weight * latent_kl(user)
    gap = (mean * delta).sum(dim=-1).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap, "kl": latent_kl(user).detach()})


@register_objective("micro", head_size=ROUTED_HEADS, head="users", users="routed")
def micro_loss(
    chosen: Tensor, rejected: Tensor, user: Tensor, tie: Tensor | None = None, heads: int = 2
) -> ObjectiveOutput:
    """Negative log-likelihood of the label under a routed mixture of K Bradley-Terry models, per pair.

        w = softmax(g + u),   loss = −log Σ_k w_k · σ(r_k(c) − r_k(r))   (σ(d)^½·σ(−d)^½ for a tie)

    Shen et al. 2025, "MiCRo: Mixture Modeling and Context-aware Routing for Personalized Preference
    Learning" (abstract only): a binary preference is a mixture over K subgroups' Bradley-Terry models,
    weighted by a context-aware router, which a second stage adapts to a user with few labels. The head
    has 2K outputs per reply, K rewards and K router logits from the same pass; g averages the two
    replies' router logits (the paper routes on the prompt, which they share) and u is the annotator's
    row of K router offsets (zero stands for the population). Accuracy: the routed reward Σ_k w_k·Δ_k > 0.
    """
    count = ROUTED_HEADS({"heads": heads})
    _check_shapes("micro", chosen, rejected, user, count, count // 2)
    gaps, router = pair_router(chosen, rejected)
    log_likelihoods = -_bradley_terry(gaps, _targets(tie, gaps).unsqueeze(-1))
    losses = -torch.logsumexp(torch.log_softmax(router + user, dim=-1) + log_likelihoods, dim=-1)
    gap = (torch.softmax(router + user, dim=-1) * gaps).sum(dim=-1).detach()
    return ObjectiveOutput(losses, {"accuracy": (gap > 0).float(), "margin": gap})

"""Several reward outputs made one: ensemble members, attribute rewards along a direction, and the
preference logit of two preference embeddings. Pure functions of tensors, shared by the objectives
that train such heads and the models that score with them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

AGGREGATIONS = ("mean", "wco", "uwo")


def standardise_members(rewards: Tensor, means: Sequence[float], stds: Sequence[float]) -> Tensor:
    """z_m = (R_m − μ_m) / σ_m for each member m of (..., M) rewards, μ_m and σ_m its own statistics.

    Independently trained members share no scale: a Bradley-Terry reward is defined up to a shift,
    and its spread depends on the seed and data. Aggregated raw, a member whose rewards spread 100
    times wider decides the mean, and wco is simply its (or the lowest-shifted member's) reward.
    In its own standard units each member counts alike, and the aggregate is invariant to any
    member's affine rescaling a·R_m + b (a > 0, its statistics rescaled with it: a·μ_m + b, a·σ_m).
    μ_m, σ_m are the member's rewards' mean and standard deviation on its training replies
    (``RewardModelInfo.reward_mean``/``reward_std``, saved when training finishes).
    """
    mean = torch.as_tensor(means, dtype=rewards.dtype, device=rewards.device)
    std = torch.as_tensor(stds, dtype=rewards.dtype, device=rewards.device)
    members = rewards.shape[-1] if rewards.dim() else 0
    if mean.shape != (members,) or std.shape != (members,):
        raise ValueError(
            f"need one mean and one std per member ({members}), got {tuple(mean.shape)} and {tuple(std.shape)}"
        )
    if not bool(torch.isfinite(mean).all() & torch.isfinite(std).all() & (std > 0).all()):
        raise ValueError(f"member statistics must be finite with std > 0 (means {list(means)}, stds {list(stds)})")
    return (rewards - mean) / std


def aggregate_ensemble(rewards: Tensor, method: str = "mean", uncertainty_weight: float = 1.0) -> tuple[Tensor, Tensor]:
    """One conservative reward and the members' variance from (..., M) member rewards.

        mean: R̄ = (1/M)·Σ_m R_m
        wco:  min_m R_m                      (worst-case optimisation)
        uwo:  R̄ - λ·Var,  Var = (1/M)·Σ_m (R_m - R̄)²   (uncertainty-weighted optimisation)

    Coste et al. 2024, "Reward Model Ensembles Help Mitigate Overoptimization": a policy
    optimised against wco or uwo is penalised where the members disagree, i.e. off the data the
    reward was fitted on. The variance is the population variance (divided by M), as in the paper.
    By construction wco ≤ mean ≤ max member and uwo ≤ mean. The same function combines an
    M-output head or M separately trained models (stack their scores on the last dimension).
    Members must be on one scale: separately trained models are put on theirs by
    ``standardise_members`` first (``models.ensemble.RewardEnsemble`` does, and so does a model with
    an M-output head, with the per-output statistics saved when its training finished).
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"method must be one of {', '.join(AGGREGATIONS)} (got {method!r})")
    if uncertainty_weight < 0:
        raise ValueError(
            f"uncertainty_weight must be ≥ 0 (got {uncertainty_weight}); a negative one would reward disagreement"
        )
    mean = rewards.mean(dim=-1)
    variance = rewards.var(dim=-1, correction=0)
    if method == "wco":
        return rewards.amin(dim=-1), variance
    if method == "uwo":
        return mean - uncertainty_weight * variance, variance
    return mean, variance


def combine_attributes(rewards: Tensor, direction: Tensor | Sequence[float]) -> Tensor:
    """rewards · u with u = direction / ‖direction‖: one scalar reward from (..., A) attribute rewards.

    Directional Preference Alignment (Wang et al. 2024, "Arithmetic Control of LLMs for Diverse
    User Preferences"): a user's preference is a unit vector in attribute space and the reward is
    the projection on it, so (1, 0) ranks by the first attribute, (0, 1) by the second, and the
    angle between them trades one for the other. Scaling the direction does not change the reward.
    """
    u = torch.as_tensor(direction, dtype=rewards.dtype, device=rewards.device)
    if u.dim() != 1 or u.shape[0] != rewards.shape[-1]:
        raise ValueError(f"direction needs one weight per attribute ({rewards.shape[-1]}), got shape {tuple(u.shape)}")
    norm = u.norm()
    if not bool(torch.isfinite(norm)) or norm == 0:
        raise ValueError(f"direction must be a finite, non-zero vector (got {u.tolist()})")
    return rewards @ (u / norm)


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

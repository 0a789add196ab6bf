"""The λ-Harmonic reward of Miao et al. 2024 ("Subject-driven Text-to-Image Generation via Preference-based
Reinforcement Learning"): two positive scores combined by a weighted harmonic mean,

    H_λ(a, b) = 1 / (λ/a + (1-λ)/b),     λ ∈ [0, 1],

where in the paper a = similarity to the reference subject images (ALIGN-I) and b = text alignment (ALIGN-T).
A harmonic mean is dominated by the smaller score, so an image that copies the references but ignores the
prompt (or the reverse) scores low: it penalises imbalance more than the arithmetic mean λ·a + (1-λ)·b does.
Its preference labels are Bradley-Terry's on H, P(x ≻ y) = σ(H(x) - H(y)).

``exemplar_similarity`` supplies the "similar to these reference images" score from any feature map, so that
"like these exemplars AND high on reward b" is one reward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.diffusion.align import ImageReward

SCORE_MAPS = ("none", "cosine", "sigmoid")
"""How a score is brought into (0, 1] before the harmonic mean: ``none`` (already positive; checked),
``cosine`` ((s + 1)/2, for scores in [-1, 1] such as cosine similarities or mean brightness) and ``sigmoid``
(σ(s), for unbounded scores such as log-probabilities). Mapped scores are floored at ``FLOOR``."""
FLOOR = 1e-6


def harmonic_mean(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """H_λ(a, b) = 1 / (λ/a + (1-λ)/b) (Miao et al. 2024), elementwise; λ = 1 gives a, λ = 0 gives b."""
    _check_lam(lam)
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise ValueError("the λ-Harmonic reward needs positive scores; map them into (0, 1] first (SCORE_MAPS)")
    return 1.0 / (lam / a + (1.0 - lam) / b)


def to_unit_interval(scores: Tensor, how: str) -> Tensor:
    """Scores mapped into (0, 1] as ``how`` (one of SCORE_MAPS) says."""
    if how == "none":
        return scores
    if how == "cosine":
        return ((scores + 1) / 2).clamp(FLOOR, 1.0)
    if how == "sigmoid":
        return torch.sigmoid(scores).clamp_min(FLOOR)
    raise ValueError(f"score map must be one of {', '.join(SCORE_MAPS)} (got {how!r})")


def harmonic_reward(
    reward_a: ImageReward, reward_b: ImageReward, lam: float, map_a: str = "none", map_b: str = "none"
) -> ImageReward:
    """The image reward x ↦ H_λ(map_a(r_a(x)), map_b(r_b(x))): high only when both rewards are high."""
    _check_lam(lam)
    for name, how in (("map_a", map_a), ("map_b", map_b)):
        if how not in SCORE_MAPS:
            raise ValueError(f"{name} must be one of {', '.join(SCORE_MAPS)} (got {how!r})")

    def reward(images: Tensor) -> Tensor:
        return harmonic_mean(to_unit_interval(reward_a(images), map_a), to_unit_interval(reward_b(images), map_b), lam)

    return reward


def harmonic_preference_probability(
    a_first: Tensor, b_first: Tensor, a_second: Tensor, b_second: Tensor, lam: float, temperature: float = 1.0
) -> Tensor:
    """Bradley-Terry's label on the λ-Harmonic reward, P(first ≻ second) = σ((H_λ(first) - H_λ(second)) / τ)
    (τ = 1 in the paper); the same as ``Feedback(harmonic_reward(...), temperature=τ).preference_probability``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    gap = harmonic_mean(a_first, b_first, lam) - harmonic_mean(a_second, b_second, lam)
    return torch.sigmoid(gap / temperature)


def exemplar_similarity(features_fn: Callable[[Tensor], Tensor], exemplars: Tensor) -> ImageReward:
    """r(x) = mean_j cos(f(x), f(e_j)) over the reference images e_j (the paper's ALIGN-I, with any feature map
    f): in [-1, 1], 1 when x's features point the same way as every exemplar's."""
    if exemplars.dim() < 2 or exemplars.shape[0] == 0:
        raise ValueError("exemplars must be a non-empty batch of reference images [N, C, H, W]")
    with torch.no_grad():
        reference = F.normalize(features_fn(exemplars).flatten(1), dim=1)

    @torch.no_grad()
    def reward(images: Tensor) -> Tensor:
        return (F.normalize(features_fn(images).flatten(1), dim=1) @ reference.T).mean(1)

    return reward


def _check_lam(lam: float) -> None:
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1] (got {lam})")

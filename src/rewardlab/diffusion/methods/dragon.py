"""DRAGON (Bai et al. 2025, "DRAGON: Distributional Rewards Optimize Diffusion Generative Models").

A reward may score one image or a whole set of them (a Fréchet distance to exemplars, a Vendi diversity, a
class mix). DRAGON gathers on-policy generations, scores them, keeps the best as a positive demonstration
set D⁺ and the worst as a negative set D⁻, and trains on the contrast between the two (the paper uses
DPO- and KTO-style contrasts; this module uses Diffusion-DPO on positive/negative pairs):

    min_θ  KL(D⁺ ‖ p_θ) - KL(D⁻ ‖ p_θ)   ≈   E_{(w,l) ∈ D⁺×D⁻} -log σ(-β·[(e_θ^w - e_ref^w) - (e_θ^l - e_ref^l)])

A set-level reward R is turned into one score per sample by its leave-one-out contribution
R(S) - R(S \\ {i}): the samples whose removal hurts the set most are the ones to demonstrate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rewardlab.diffusion.align import AlignConfig, Feedback, SetReward, method_options, register_method
from rewardlab.diffusion.denoiser import Condition, Denoiser
from rewardlab.diffusion.losses import diffusion_dpo_loss, noise_error
from rewardlab.diffusion.sampling import sample
from rewardlab.diffusion.schedule import add_noise

OPTIONS = {"fraction": 0.25}


def leave_one_out_contributions(images: Tensor, set_reward: SetReward) -> Tensor:
    """c_i = R(S) - R(S \\ {i}) per sample: how much the set's reward owes to sample i (n + 1 calls to R)."""
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"dragon: a set reward needs at least 2 samples per batch (got batch_size {n})")
    whole = float(set_reward(images))
    keep = torch.ones(n, dtype=torch.bool)
    contributions = torch.empty(n)
    for i in range(n):
        keep[i] = False
        contributions[i] = whole - float(set_reward(images[keep]))
        keep[i] = True
    return contributions


def demonstration_pairs(scores: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """Indices (positive, negative) of the pairs DRAGON contrasts: the top ⌈fraction·n⌉ scores form D⁺, the
    bottom as many D⁻; the k-th best is paired with the k-th worst, and pairs whose scores tie are dropped
    (they carry no preference)."""
    n = scores.shape[0]
    k = min(max(1, round(fraction * n)), n // 2)
    order = torch.argsort(scores, descending=True, stable=True)
    positive, negative = order[:k], order.flip(0)[:k]
    strict = scores[positive] > scores[negative]
    return positive[strict], negative[strict]


def check_options(options: dict[str, Any]) -> float:
    fraction = float(method_options("dragon", options, OPTIONS)["fraction"])
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"dragon: option fraction must be in (0, 0.5] (got {fraction})")
    return fraction


@dataclass(frozen=True)
class DragonBatch:
    winners: Tensor  # [P, C, H, W] from D⁺
    losers: Tensor  # [P, C, H, W] from D⁻, paired with winners
    condition_w: Condition
    condition_l: Condition
    timesteps: Tensor  # [P], shared by the pair
    noise: Tensor  # [P, C, H, W], shared by the pair
    score_gap: Tensor  # [P] score(winner) - score(loser), for the record


class Dragon:
    name = "dragon"

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> DragonBatch:
        """Generate ``batch_size`` on-policy samples, score them (set reward by leave-one-out, else the
        per-image reward) and pair the positive set with the negative one."""
        fraction = check_options(config.options)
        if config.batch_size < 2:
            raise ValueError(f"dragon: batch_size must be at least 2 (got {config.batch_size})")
        condition = config.condition.for_samples(config.batch_size)
        images = sample(policy, config.batch_size, config.sampling_steps, config.eta, condition, generator).images
        if feedback.set_reward is not None:
            scores = leave_one_out_contributions(images, feedback.set_reward)
        elif feedback.reward is not None:
            scores = feedback.reward(images).detach().float().flatten()
        else:
            raise ValueError("dragon needs a reward: a per-image reward or a set reward")
        positive, negative = demonstration_pairs(scores, fraction)
        p = positive.shape[0]
        return DragonBatch(
            winners=images[positive],
            losers=images[negative],
            condition_w=condition.rows(positive),
            condition_l=condition.rows(negative),
            timesteps=torch.randint(0, policy.train_steps, (p,), generator=generator),
            noise=torch.randn((p, *images.shape[1:]), generator=generator),
            score_gap=scores[positive] - scores[negative],
        )

    def loss(self, policy: Denoiser, reference: Denoiser, batch: DragonBatch, config: AlignConfig) -> Tensor:
        """Diffusion-DPO on the (D⁺, D⁻) pairs, each pair noised at the same t with the same ε."""
        if batch.winners.shape[0] == 0:  # every pair tied: nothing to contrast this round
            return sum((p.sum() * 0.0 for p in policy.parameters()), torch.zeros(()))
        alpha_bar = policy.alpha_bar[batch.timesteps]
        x_w, x_l = add_noise(batch.winners, batch.noise, alpha_bar), add_noise(batch.losers, batch.noise, alpha_bar)
        policy_w = noise_error(policy(x_w, batch.timesteps, batch.condition_w), batch.noise)
        policy_l = noise_error(policy(x_l, batch.timesteps, batch.condition_l), batch.noise)
        with torch.no_grad():
            ref_w = noise_error(reference(x_w, batch.timesteps, batch.condition_w), batch.noise)
            ref_l = noise_error(reference(x_l, batch.timesteps, batch.condition_l), batch.noise)
        return diffusion_dpo_loss(policy_w, policy_l, ref_w, ref_l, config.beta).mean()


register_method(Dragon())

"""Pairwise preference methods: Diffusion-DPO, D3PO, SmPO-Diffusion and DDIM-InPO.

Each update gathers ``config.batch_size`` pairs. On-policy (the default) the current policy samples two
images per pair and the feedback labels them; with ``feedback.pairs`` set, the pairs are drawn from that
fixed (chosen, rejected) set instead, Diffusion-DPO's offline setting. The methods then differ in the
latent each image is scored at (see ``rewardlab.diffusion.losses``):

- diffusion-dpo: winner and loser noised at one random t with one ε;
- d3po: the sampled chains themselves, every step a DPO pair (needs the chains, so no offline pairs);
- inpo, smpo: the latent DDIM inversion (by the policy, as the authors' code does) gives each image at a
  random inversion step, with the noise ε* that carries the image there as the target; SmPO also
  replaces the hard label by the reward model's P(w ≻ l).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from rewardlab.diffusion.align import AlignConfig, Feedback, method_options, register_method
from rewardlab.diffusion.denoiser import Condition, Denoiser
from rewardlab.diffusion.losses import (
    d3po_loss,
    diffusion_dpo_loss,
    inpo_loss,
    inverted_noise,
    noise_error,
    smpo_loss,
)
from rewardlab.diffusion.sampling import Chain, invert, sample, step_log_prob
from rewardlab.diffusion.schedule import add_noise, sampling_timesteps


@dataclass(frozen=True)
class Pairs:
    """Winner and loser images, one row per pair, with P(winner ≻ loser) and the pairs' condition."""

    winners: Tensor
    losers: Tensor
    probability: Tensor
    condition: Condition


def offline_pairs(policy: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator) -> Pairs:
    """``config.batch_size`` pairs drawn at random from ``feedback.pairs``; the label is the pair's own
    (chosen ≻ rejected) unless the method asks the reward for a soft one."""
    assert feedback.pairs is not None
    chosen, rejected = feedback.pairs
    if chosen.shape != rejected.shape or tuple(chosen.shape[1:]) != policy.image_shape:
        raise ValueError(
            f"preference pairs: chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} must both be "
            f"[N, {', '.join(map(str, policy.image_shape))}] images for this denoiser"
        )
    if chosen.shape[0] == 0:
        raise ValueError("preference pairs: the pair set is empty")
    index = torch.randint(0, chosen.shape[0], (config.batch_size,), generator=generator)
    condition = config.condition.for_samples(config.batch_size)
    return Pairs(chosen[index], rejected[index], torch.ones(config.batch_size), condition)


def sampled_pairs(policy: Denoiser, config: AlignConfig, generator: torch.Generator) -> tuple[Chain, Condition]:
    """Two chains per pair from the current policy: rows 2i and 2i+1 are pair i, under pair i's condition."""
    condition = config.condition.for_samples(config.batch_size)
    chain = sample(
        policy, 2 * config.batch_size, config.sampling_steps, config.eta, condition.repeat(2), generator=generator
    )
    return chain, condition


def labelled(
    images: Tensor, feedback: Feedback, soft: bool, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """(winner index, loser index, P(winner ≻ loser)) for images whose rows 2i, 2i+1 are pair i. A hard label is
    the simulated annotator's sampled choice (probability 1); a soft one orients the pair by P(a ≻ b) ≥ ½."""
    a, b = images[0::2], images[1::2]
    first = torch.arange(0, images.shape[0], 2)
    if soft:
        p = feedback.preference_probability(a, b)
        a_wins = p >= 0.5
        probability = torch.where(a_wins, p, 1 - p)
    else:
        a_wins = feedback.prefer(a, b, generator)
        probability = torch.ones(a.shape[0])
    winner = torch.where(a_wins, first, first + 1)
    return winner, torch.where(a_wins, first + 1, first), probability


def gather_pairs(
    policy: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator, soft: bool
) -> Pairs:
    """Offline pairs when ``feedback.pairs`` is set, else two fresh samples per pair, labelled."""
    if feedback.pairs is not None:
        pairs = offline_pairs(policy, feedback, config, generator)
        if soft:  # SmPO smooths even fixed labels with the reward model (P(chosen ≻ rejected) may be < ½)
            pairs = Pairs(
                pairs.winners,
                pairs.losers,
                feedback.preference_probability(pairs.winners, pairs.losers),
                pairs.condition,
            )
        return pairs
    chain, condition = sampled_pairs(policy, config, generator)
    winner, loser, probability = labelled(chain.images, feedback, soft, generator)
    return Pairs(chain.images[winner], chain.images[loser], probability, condition)


@dataclass(frozen=True)
class NoisedPairs:
    """Winner and loser latents at timestep ``t`` (per pair), the noise each should predict, and the images."""

    x_t_w: Tensor
    x_t_l: Tensor
    target_w: Tensor
    target_l: Tensor
    t: Tensor
    pairs: Pairs


def forward_noised(pairs: Pairs, policy: Denoiser, generator: torch.Generator) -> NoisedPairs:
    """Diffusion-DPO's latents: winner and loser noised by q(x_t|x_0) at the same random t with the same ε."""
    n = pairs.winners.shape[0]
    t = torch.randint(0, policy.train_steps, (n,), generator=generator)
    noise = torch.randn(pairs.winners.shape, generator=generator)
    a = policy.alpha_bar[t]
    return NoisedPairs(add_noise(pairs.winners, noise, a), add_noise(pairs.losers, noise, a), noise, noise, t, pairs)


def inverted(pairs: Pairs, policy: Denoiser, steps: int, generator: torch.Generator) -> NoisedPairs:
    """InPO's and SmPO's latents: the DDIM-inversion trajectory of each image, read at one random inversion step
    per pair (the same for winner and loser), with ε* = (x_t - √ᾱ_t·x_0)/√(1-ᾱ_t) as the target."""
    n = pairs.winners.shape[0]
    images = torch.cat([pairs.winners, pairs.losers])
    trajectory = invert(policy, images, steps, pairs.condition.cat(pairs.condition))
    timesteps = torch.tensor(sampling_timesteps(steps, policy.train_steps)[::-1])  # trajectory[k + 1] is at [k]
    k = torch.randint(0, steps, (n,), generator=generator)
    latents = torch.stack(trajectory[1:])  # [steps, 2n, C, H, W]
    rows = torch.arange(n)
    x_t_w, x_t_l = latents[k, rows], latents[k, rows + n]
    t = timesteps[k]
    a = policy.alpha_bar[t]
    target_w, target_l = inverted_noise(x_t_w, pairs.winners, a), inverted_noise(x_t_l, pairs.losers, a)
    return NoisedPairs(x_t_w, x_t_l, target_w, target_l, t, pairs)


def predictions(model: Denoiser, batch: NoisedPairs) -> tuple[Tensor, Tensor]:
    """The model's ε̂ at the winner and at the loser latents (one forward pass for both)."""
    n = batch.t.shape[0]
    condition = batch.pairs.condition.cat(batch.pairs.condition)
    eps = model(torch.cat([batch.x_t_w, batch.x_t_l]), batch.t.repeat(2), condition)
    return eps[:n], eps[n:]


def errors(model: Denoiser, batch: NoisedPairs) -> tuple[Tensor, Tensor]:
    """The model's ε-prediction error on the winner and on the loser latents."""
    eps_w, eps_l = predictions(model, batch)
    return noise_error(eps_w, batch.target_w), noise_error(eps_l, batch.target_l)


class DiffusionDPO:
    """Diffusion-DPO (Wallace et al. 2023): DPO with the denoising error of a forward-noised latent standing in for
    -log p(x_0). Works on fixed offline pairs (``feedback.pairs``) or, by default, fresh on-policy pairs."""

    name = "diffusion-dpo"
    defaults: ClassVar[dict[str, Any]] = {}

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> NoisedPairs:
        method_options(self.name, config.options, self.defaults)
        return forward_noised(gather_pairs(policy, feedback, config, generator, soft=False), policy, generator)

    def loss(self, policy: Denoiser, reference: Denoiser, batch: NoisedPairs, config: AlignConfig) -> Tensor:
        policy_w, policy_l = errors(policy, batch)
        with torch.no_grad():
            ref_w, ref_l = errors(reference, batch)
        return diffusion_dpo_loss(policy_w, policy_l, ref_w, ref_l, config.beta).mean()


class InPO:
    """DDIM-InPO (Lu et al. 2025): Diffusion-DPO's loss at the latents DDIM inversion assigns each image, with the
    inverted noise as the target, so the update concentrates on the latents that actually generate the images.
    Option ``inversion_steps``: DDIM steps of the inversion (default ``config.sampling_steps``)."""

    name = "inpo"
    defaults: ClassVar[dict[str, Any]] = {"inversion_steps": None}

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> NoisedPairs:
        steps = inversion_steps(self.name, config, self.defaults)
        return inverted(gather_pairs(policy, feedback, config, generator, soft=False), policy, steps, generator)

    def loss(self, policy: Denoiser, reference: Denoiser, batch: NoisedPairs, config: AlignConfig) -> Tensor:
        policy_w, policy_l = predictions(policy, batch)
        with torch.no_grad():
            ref_w, ref_l = predictions(reference, batch)
        pairs, a = batch.pairs, policy.alpha_bar[batch.t]
        losses = inpo_loss(
            policy_w, policy_l, ref_w, ref_l, pairs.winners, pairs.losers, batch.x_t_w, batch.x_t_l, a, config.beta
        )
        return losses.mean()


class SmPO:
    """SmPO-Diffusion (Lu et al. 2025): the DPO margin at inverted latents, weighted by 2p - 1 where p is the
    reward model's P(w ≻ l) (``feedback.preference_probability``), so near-ties barely move the model.
    Option ``inversion_steps`` as for InPO. The paper's inversion is ReNoise (ε̂ averaged over a refinement
    step); this uses plain DDIM inversion."""

    name = "smpo"
    defaults: ClassVar[dict[str, Any]] = {"inversion_steps": None}

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> NoisedPairs:
        steps = inversion_steps(self.name, config, self.defaults)
        return inverted(gather_pairs(policy, feedback, config, generator, soft=True), policy, steps, generator)

    def loss(self, policy: Denoiser, reference: Denoiser, batch: NoisedPairs, config: AlignConfig) -> Tensor:
        policy_w, policy_l = errors(policy, batch)
        with torch.no_grad():
            ref_w, ref_l = errors(reference, batch)
        return smpo_loss(policy_w, policy_l, ref_w, ref_l, batch.pairs.probability, config.beta).mean()


def inversion_steps(name: str, config: AlignConfig, defaults: dict[str, Any]) -> int:
    steps = method_options(name, config.options, defaults)["inversion_steps"] or config.sampling_steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"method {name!r}: inversion_steps must be a positive integer (got {steps!r})")
    return steps


@dataclass(frozen=True)
class ChainPairs:
    """The preferred chains (rows 0…n-1) then the dispreferred ones (rows n…2n-1), the chain steps this update
    trains on, and the condition of both."""

    chains: Chain
    steps: list[int]
    condition: Condition


def chain_rows(chain: Chain, rows: Tensor) -> Chain:
    return Chain([s[rows] for s in chain.states], chain.timesteps, [p[rows] for p in chain.log_probs])


class D3PO:
    """D3PO (Yang et al. 2024): on-policy pairs of denoising chains, DPO on every step's log π(x_{t-1}|x_t).

    Options: ``steps_per_update``, how many of the chain's stochastic steps (drawn at random each update) the
    loss averages over (default: all of them); ``ratio_clip``, the authors' clip ε of each step's π_θ/π_ref to
    [1-ε, 1+ε] (default 0.1, as there; None is the paper's unclipped loss). The clip matters: a late step's
    σ is tiny (0.006 for 100 → 0 on the cosine schedule), so its log-ratio, and the noise in its gradient,
    grow as 1/σ² and swamp the steps that choose the image; unclipped, the toy test's bright-mode fraction
    falls instead of rising. The chain's last step (to t = 0) is deterministic (σ = 0), so it has no
    log-probability and is never trained on. Needs η > 0 and a per-image reward.
    """

    name = "d3po"
    defaults: ClassVar[dict[str, Any]] = {"steps_per_update": None, "ratio_clip": 0.1}

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> ChainPairs:
        options = method_options(self.name, config.options, self.defaults)
        if feedback.pairs is not None:
            raise ValueError(
                "d3po trains on the denoising chains that made each image, which fixed preference pairs do not "
                "have; use diffusion-dpo, inpo or smpo for offline pairs, or drop the pairs to sample on-policy"
            )
        if config.eta <= 0:
            raise ValueError(
                f"d3po needs stochastic steps to have log-probabilities: eta must be > 0 (got {config.eta})"
            )
        stochastic = config.sampling_steps - 1  # the last step, to t = 0, has σ = 0
        if stochastic < 1:
            raise ValueError(f"d3po needs sampling_steps >= 2 (got {config.sampling_steps})")
        count = options["steps_per_update"] or stochastic
        if not isinstance(count, int) or not 1 <= count <= stochastic:
            raise ValueError(f"d3po: steps_per_update must be an integer in [1, {stochastic}] (got {count!r})")
        clip = options["ratio_clip"]
        if clip is not None and not (isinstance(clip, (int, float)) and 0 < clip < 1):
            raise ValueError(f"d3po: ratio_clip must be in (0, 1) or None (got {clip!r})")
        chain, condition = sampled_pairs(policy, config, generator)
        winner, loser, _ = labelled(chain.images, feedback, False, generator)
        steps = sorted(torch.randperm(stochastic, generator=generator)[:count].tolist())
        return ChainPairs(chain_rows(chain, torch.cat([winner, loser])), steps, condition.cat(condition))

    def loss(self, policy: Denoiser, reference: Denoiser, batch: ChainPairs, config: AlignConfig) -> Tensor:
        clip = method_options(self.name, config.options, self.defaults)["ratio_clip"]
        n = batch.chains.states[0].shape[0] // 2
        losses = []
        for k in batch.steps:
            policy_logp = step_log_prob(policy, batch.chains, k, config.eta, batch.condition)
            with torch.no_grad():
                ref_logp = step_log_prob(reference, batch.chains, k, config.eta, batch.condition)
            losses.append(d3po_loss(policy_logp[:n], policy_logp[n:], ref_logp[:n], ref_logp[n:], config.beta, clip))
        return torch.stack(losses).mean()


for method in (DiffusionDPO(), D3PO(), SmPO(), InPO()):
    register_method(method)

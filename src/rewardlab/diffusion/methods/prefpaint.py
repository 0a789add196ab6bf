"""PrefPaint (Liu et al. 2024, "PrefPaint: Aligning Image Inpainting Diffusion Model with Human Preference"):
DDPO's clipped policy gradient on an inpainting model, each sample weighted by how far the reward model can
be trusted on it.

The paper's reward model is a feature extractor (CLIP ViT-B) with a linear head, r̂(x) = θ̂ᵀz(x), fitted to
human preference scores. For such a head the error on an input is bounded by the ridge-regression width

    |r̂(x) - r(x)| ≤ C·‖z(x)‖_{V⁻¹},   V = λI + Σ_i z_i z_iᵀ  (z_i: the reward model's training features),

small where the training features cover z(x), large off them; PrefPaint derives a bound of this kind and uses
it to weight the RL loss toward samples whose reward is trustworthy ("accurate regularization"). With
b_i = ‖z(x_i)‖_{V⁻¹} = √(z_iᵀV⁻¹z_i):

    w_i = clamp(exp(-α·b_i + β), 1, w_max)
    A_i = clamp((r_i - mean r) / (std r + 1e-7), -A_max, A_max)
    ρ_ik = π_θ(x^i_{k+1} | x^i_k, c_i) / π_old(x^i_{k+1} | x^i_k, c_i)
    L = mean_{i,k} w_i · max(-A_i·ρ_ik, -A_i·clamp(ρ_ik, 1-ε, 1+ε))

with c_i the inpainting condition (masked source, mask). The weight's form, its clamp and the defaults
(α = 0.05, β = 0.7, w_max = 2.21, A_max = 10, ε = 1e-4) are those of the authors' released training script
(Kenkenzaii/PrefPaint, train_inpainting_model.py, configs/config.yaml). Two caveats: we could read only the
paper's abstract, a summary and that code, not the derivation, so b is the textbook V⁻¹-norm above, whereas
the script computes ‖V⁻¹z‖₂ = √(zᵀV⁻²z); and α is in the bound's units, so it must be set for the reward
model's feature scale (0.05 suits CLIP features and 51k training images; ``prefpaint_alpha_for`` gives the α
at which the weight falls to 1 at a chosen width, e.g. a high quantile of b on the base model's samples).

Here ``options`` give the confidence: ``features`` (images → [N, D], the reward model's penultimate layer,
e.g. the digit classifier's ``ImageNet.features``) and ``precision`` (V⁻¹, [D, D], from ``feature_precision``
on the reward model's training images). Without them every weight is 1 (plain DDPO with batch-normalised
advantages).

The loss is taken right after the batch is sampled by the current policy, so ρ = 1 in value and the clip is
inactive in this loop (its gradient is DDPO's ∇log π·A); the clip acts when the sampler lags the policy, as in
the authors' script (sampler refreshed every 15 updates). The mean replaces the script's sum (a constant).
``train_steps`` trains on a random subset of the chain's steps per update (the script's 5 of 50).
``group_size`` > 1 inpaints each source that many times (one mask per source) and normalises A within each
group instead of over the batch: DDPO's per-prompt baseline (the authors' config carries a ``group`` switch,
off by default). Without it, when sources differ in how completable they are, A mostly ranks sources, not
inpaintings, and the gradient is mostly noise (8×8 digits, r = log p(true digit), 60 updates at lr 3e-4:
the mean reward fell by 2.1 nats with batch-wide A, by 0.2 with groups of 4).
The last DDIM step (to t = 0) is deterministic, so it carries no policy gradient and is never trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rewardlab.diffusion.align import AlignConfig, Feedback, method_options, register_method
from rewardlab.diffusion.denoiser import Condition, Denoiser
from rewardlab.diffusion.inpainting import MASK_KINDS, box_mask, inpaint_chain, inpainting_condition
from rewardlab.diffusion.sampling import Chain
from rewardlab.diffusion.schedule import ddim_step, gaussian_log_prob

SourceReward = Callable[[Tensor, Tensor], Tensor]
"""A reward that reads the inpainting with its source: (inpainted [N, C, H, W], source index [N]) → [N]
(PrefPaint's reward model scores an inpainting beside the image it completes; e.g. the source's label)."""

DEFAULTS: dict[str, Any] = {
    "images": None,  # the sources to inpaint, [M, C, H, W] in [-1, 1] (required)
    "mask": "mixed",  # a kind of rewardlab.diffusion.inpainting.MASK_KINDS
    "source_reward": None,  # a SourceReward used instead of feedback.reward
    "features": None,  # the reward model's features, images → [N, D]
    "precision": None,  # V⁻¹ of its training features, [D, D]
    "alpha": 0.05,
    "beta": 0.7,
    "max_weight": 2.21,
    "clip_range": 1e-4,
    "advantage_clip": 10.0,
    "train_steps": None,  # chain steps trained on per update (a random subset); None: every stochastic step
    "group_size": 1,  # inpaintings per source; > 1 normalises advantages within each source's group
}


def feature_precision(features: Tensor, ridge: float = 1.0) -> Tensor:
    """V⁻¹ = (λI + ZᵀZ)⁻¹ over the reward model's training features Z [N, D]: the ridge-regression precision
    whose norm bounds the linear head's error (PrefPaint's V_inverse)."""
    if features.dim() != 2 or len(features) == 0:
        raise ValueError(f"features must be a non-empty [N, D] tensor (got shape {tuple(features.shape)})")
    if ridge <= 0:
        raise ValueError(f"ridge must be positive (got {ridge})")
    z = features.double()
    return torch.linalg.inv(ridge * torch.eye(z.shape[1], dtype=z.dtype) + z.T @ z).to(features.dtype)


def confidence_width(features: Tensor, precision: Tensor) -> Tensor:
    """b = ‖z‖_{V⁻¹} = √(zᵀV⁻¹z) per row of ``features`` [N, D]: the reward model's error bound, up to its constant."""
    if features.dim() != 2 or tuple(precision.shape) != (features.shape[1], features.shape[1]):
        raise ValueError(f"precision must be [D, D] for features [N, D] (got {tuple(precision.shape)} and "
                         f"{tuple(features.shape)})")  # fmt: skip
    return ((features @ precision) * features).sum(1).clamp_min(0).sqrt()


def confidence_weight(width: Tensor, alpha: float, beta: float, max_weight: float) -> Tensor:
    """w = clamp(exp(-α·b + β), 1, w_max): e^β (capped) where the reward is trusted (b = 0), falling to 1 at
    b ≥ β/α; a sample is never weighted below an ordinary DDPO sample."""
    if alpha < 0 or max_weight < 1:
        raise ValueError(f"alpha must be ≥ 0 and max_weight ≥ 1 (got {alpha}, {max_weight})")
    return torch.exp(-alpha * width + beta).clamp(1.0, max_weight)


def prefpaint_alpha_for(width: float, beta: float = 0.7) -> float:
    """The α at which the weight reaches 1 at bound ``width`` (e.g. a high quantile of b on generated images)."""
    if width <= 0:
        raise ValueError(f"width must be positive (got {width})")
    return beta / width


def normalised_advantages(rewards: Tensor, clip: float) -> Tensor:
    """A = clamp((r - mean r) / (std r + 1e-7), ±clip): the batch-normalised advantage of the authors' script."""
    if rewards.dim() != 1 or len(rewards) < 2:
        raise ValueError(f"advantages need a batch of at least 2 rewards (got shape {tuple(rewards.shape)})")
    if clip <= 0:
        raise ValueError(f"advantage_clip must be positive (got {clip})")
    return ((rewards - rewards.mean()) / (rewards.std() + 1e-7)).clamp(-clip, clip)


def grouped_advantages(rewards: Tensor, group_size: int, clip: float) -> Tensor:
    """``normalised_advantages`` within each run of ``group_size`` rows (the inpaintings of one source): DDPO's
    per-prompt baseline, so that how hard a source is to complete does not pass for how good an inpainting is."""
    if group_size < 2 or len(rewards) % group_size:
        raise ValueError(f"group_size must be ≥ 2 and divide the batch ({len(rewards)}) (got {group_size})")
    return torch.cat([normalised_advantages(g, clip) for g in rewards.split(group_size)])


def prefpaint_loss(log_ratio: Tensor, advantages: Tensor, weights: Tensor, clip_range: float) -> Tensor:
    """The module docstring's L: ``log_ratio`` [N, K] = log π_θ - log π_old per sample and trained step,
    ``advantages`` and ``weights`` [N]; the mean over samples and steps of the weighted clipped surrogate."""
    if not 0 < clip_range < 1:
        raise ValueError(f"clip_range must be in (0, 1) (got {clip_range})")
    if log_ratio.dim() != 2 or advantages.shape != (log_ratio.shape[0],) or weights.shape != advantages.shape:
        raise ValueError(f"log_ratio must be [N, K] with advantages and weights [N] (got {tuple(log_ratio.shape)}, "
                         f"{tuple(advantages.shape)}, {tuple(weights.shape)})")  # fmt: skip
    ratio = log_ratio.exp()
    a = advantages.unsqueeze(1)
    surrogate = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip_range, 1 + clip_range))
    return (weights.unsqueeze(1) * surrogate).mean()


def chain_log_probs(denoiser: Denoiser, chain: Chain, steps: Tensor, eta: float, condition: Condition) -> Tensor:
    """log π_θ(states[k+1] | states[k], c) for every k in ``steps`` [K], as [N, K], in one denoiser call (the
    small UNet's cost is per call, not per image)."""
    n, k = chain.states[0].shape[0], len(steps)
    index = steps.tolist()
    x_t = torch.cat([chain.states[j] for j in index])
    x_next = torch.cat([chain.states[j + 1] for j in index])
    t = torch.tensor([chain.timesteps[j] for j in index]).repeat_interleave(n)
    t_prev = [chain.timesteps[j + 1] if j + 1 < len(chain.timesteps) else None for j in index]
    a = denoiser.alpha_bar[t]
    a_prev = torch.cat([torch.ones(n) if tp is None else denoiser.alpha_bar[tp].expand(n) for tp in t_prev])
    rows = Condition(*(None if f is None else f.repeat(k, *([1] * (f.dim() - 1))) for f in
                       (condition.labels, condition.embeddings, condition.channels)))  # fmt: skip
    eps = denoiser(x_t, t, rows)
    return gaussian_log_prob(x_next, ddim_step(x_t, eps, a, a_prev, eta, denoiser.clip)).view(k, n).T


@dataclass(frozen=True)
class PrefPaintBatch:
    chain: Chain
    condition: Condition
    steps: Tensor  # the chain steps trained on, [K]
    old_log_probs: Tensor  # [N, K], under the sampling policy
    advantages: Tensor  # [N]
    weights: Tensor  # [N]
    rewards: Tensor  # [N]
    images: Tensor  # the inpaintings, known pixels pasted back


def prefpaint_options(
    options: dict[str, Any], image_shape: tuple[int, ...], sampling_steps: int, batch_size: int
) -> dict[str, Any]:
    """The method's options over its defaults, checked; an unknown or malformed option is a ValueError."""
    o = method_options("prefpaint", options, DEFAULTS)
    images = o["images"]
    if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        shape = ", ".join(map(str, image_shape))
        raise ValueError(f"prefpaint needs options['images']: the source images, [M, {shape}] (got {got})")
    if len(images) == 0 or not bool(torch.isfinite(images).all()):
        raise ValueError("options['images'] must be non-empty and finite")
    if o["mask"] not in MASK_KINDS:
        raise ValueError(f"options['mask'] must be one of {', '.join(MASK_KINDS)} (got {o['mask']!r})")
    if (o["features"] is None) != (o["precision"] is None):
        raise ValueError("options['features'] and options['precision'] (V⁻¹) go together: give both or neither")
    if o["source_reward"] is not None and not callable(o["source_reward"]):
        raise ValueError("options['source_reward'] must be callable (inpainted images, source index) → rewards")
    stochastic = sampling_steps - 1
    if o["train_steps"] is not None and not 1 <= o["train_steps"] <= stochastic:
        raise ValueError(f"options['train_steps'] must be in [1, {stochastic}] for {sampling_steps} sampling steps "
                         f"(got {o['train_steps']})")  # fmt: skip
    if not isinstance(o["group_size"], int) or o["group_size"] < 1 or batch_size % o["group_size"]:
        raise ValueError(f"options['group_size'] must be a positive divisor of batch_size {batch_size} "
                         f"(got {o['group_size']})")  # fmt: skip
    confidence_weight(torch.zeros(1), o["alpha"], o["beta"], o["max_weight"])  # checks alpha, max_weight
    if not 0 < o["clip_range"] < 1:
        raise ValueError(f"options['clip_range'] must be in (0, 1) (got {o['clip_range']})")
    return o


class PrefPaint:
    name = "prefpaint"

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> PrefPaintBatch:
        """Inpaint ``batch_size`` random sources with random holes by the current policy, keep the chains,
        score the inpaintings and their reward model's confidence."""
        if config.eta <= 0:
            raise ValueError(f"prefpaint is a policy gradient over stochastic steps: eta must be > 0 "
                             f"(got {config.eta})")  # fmt: skip
        if config.sampling_steps < 2:
            raise ValueError(f"prefpaint needs sampling_steps ≥ 2 (got {config.sampling_steps}): the last step is "
                             "deterministic")  # fmt: skip
        o = prefpaint_options(config.options, policy.image_shape, config.sampling_steps, config.batch_size)
        if (o["source_reward"] is None) == (feedback.reward is None):
            raise ValueError("prefpaint needs exactly one reward: feedback.reward (--reward) or "
                             "options['source_reward']")  # fmt: skip
        sources = o["images"]
        group = o["group_size"]
        index = torch.randint(0, len(sources), (config.batch_size // group,), generator=generator)
        index = index.repeat_interleave(group)
        images = sources[index]
        masks = box_mask(images[::group].shape, o["mask"], generator).repeat_interleave(group, 0)
        chain, inpainted = inpaint_chain(policy, images, masks, config.sampling_steps, config.eta, generator)
        rewards = o["source_reward"](inpainted, index) if o["source_reward"] else feedback.reward(inpainted)
        rewards = rewards.detach().float()
        if o["features"] is None:
            weights = torch.ones(len(rewards))
        else:
            width = confidence_width(o["features"](inpainted).detach(), o["precision"])
            weights = confidence_weight(width, o["alpha"], o["beta"], o["max_weight"])
        stochastic = config.sampling_steps - 1
        k = stochastic if o["train_steps"] is None else o["train_steps"]
        steps = torch.randperm(stochastic, generator=generator)[:k].sort().values
        condition = inpainting_condition(images, masks)
        # π_old recomputed the way the loss computes π_θ (one batched call), not read from the chain: the
        # sampler's per-step calls differ from it by float rounding (|Δlog π| ~ 1e-4 at the last steps, where
        # log π ~ 200), as large as DDPO's clip range, which would clip at random.
        old = chain_log_probs(policy, chain, steps, config.eta, condition)
        clip = o["advantage_clip"]
        advantages = normalised_advantages(rewards, clip) if group == 1 else grouped_advantages(rewards, group, clip)
        return PrefPaintBatch(chain, condition, steps, old, advantages, weights, rewards, inpainted)

    def loss(self, policy: Denoiser, reference: Denoiser, batch: PrefPaintBatch, config: AlignConfig) -> Tensor:
        log_probs = chain_log_probs(policy, batch.chain, batch.steps, config.eta, batch.condition)
        clip_range = config.options.get("clip_range", DEFAULTS["clip_range"])
        return prefpaint_loss(log_probs - batch.old_log_probs, batch.advantages, batch.weights, clip_range)


register_method(PrefPaint())
